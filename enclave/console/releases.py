"""Release requests in the console: the researcher's outputs folder (checked on demand), requests
(create, context, exceptions, submit, withdraw), the reviewers' queue and request page (each output
shown with its verdict, evidence and checksum; approve, return, reject; release), the stewards'
decisions. Every action calls ``enclave.airlock``, which checks who (permissions) and when (policies).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


from enclave.airlock import loading, publishing, requests, reviews, views
from enclave.airlock import permissions as who
from enclave.airlock import snapshot as snap
from enclave.airlock.errors import AirlockError, require
from enclave.console.board import parse_slug
from enclave.console.outputs import describe_output, image_type
from enclave.console.web import Page, PageError, parse_id
from enclave.registry.base import session_scope
from enclave.settings import get_settings

MAX_NAME = 200


def parse_output_name(text: str) -> str:
    """An output's file name from a form: a plain name in the outputs folder (the airlock re-checks it)."""
    try:
        snap.check_name(text)
    except AirlockError:
        raise PageError(400, "not a file name in your outputs folder") from None
    if len(text) > MAX_NAME:
        raise PageError(400, "file name too long")
    return text


def list_outputs(project: str, username: str) -> list[dict]:
    """Plain regular files of the researcher's outputs folder (evidence files go with their output)."""
    folder = requests.outputs_dir(project, username)
    if not folder.is_dir():
        return []
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(snap.EVIDENCE_SUFFIX) or not entry.is_file(follow_symlinks=False):
                continue
            evidence = (folder / snap.evidence_name(entry.name))
            found.append({"name": entry.name, "size": entry.stat(follow_symlinks=False).st_size,
                          "evidence": evidence.is_file() and not evidence.is_symlink()})
    return sorted(found, key=lambda f: f["name"])


def _active_actor(url: str, username: str, project: str):
    with session_scope(url, readonly=True) as session:
        _, actor = loading.actor(session, username)
        loading.project(session, project)
        require(who.may_create_request, actor, project)
        proj = loading.project(session, project)
        from enclave.entitlements import current_extract

        extract = current_extract(session, proj)
        return actor, (extract.path if extract else None), (extract.version if extract else None), \
            [a.name for a in loading.agencies_of(session, proj)]


def check_now(url: str, username: str, project: str, name: str) -> dict:
    """The gate's verdict on one output of the outputs folder, now, from a private copy (never the live file)."""
    from disclosure_control import differencing
    from disclosure_control.rules import load_rules

    from enclave.airlock.verification import dataset_id, extract_loader, gate_file, ledger_path
    from enclave.airlock.verification import plain as _plain

    _, extract_path, version, agencies = _active_actor(url, username, project)
    if extract_path is None:
        raise PageError(409, "the project has no extract to check outputs against")
    settings = get_settings()
    extract_dir = settings.extracts / extract_path
    import json

    manifest = json.loads((extract_dir / "manifest.json").read_text())
    names = [name]
    fd = requests._open_outputs(project, username)
    with tempfile.TemporaryDirectory(prefix="console-check-") as tmp:
        try:
            snap.inspect_outputs(fd, names)
            folder, _ = snap.snapshot(fd, names, Path(tmp), "check")
        finally:
            os.close(fd)
        try:
            verdict = gate_file(folder, name, extract_loader(extract_dir, manifest), load_rules(None, agencies),
                                differencing.Ledger(ledger_path()), dataset_id(project, version))
            data = _plain(verdict)
        except Exception as error:  # fail closed, as the gate does
            data = {"status": "fail", "reasons": [f"gate error: {type(error).__name__}"]}
        status = data.get("status") if data.get("status") in ("pass", "fail", "review") else "fail"
        has_evidence = (folder / snap.evidence_name(name)).is_file()
        if status == "pass" and not has_evidence:
            status = "review"
        return {"name": name, "status": status, "reasons": data.get("reasons") or [],
                "view": describe_output(folder, name, data)}


# ---------------------------------------------------------------- researcher
class OutputsPage(Page):
    """The researcher's outputs folder of one project, with a check on demand per file."""

    def get(self, raw_slug: str) -> None:
        project = parse_slug(raw_slug)
        _active_actor(self.ctx.url, self.username, project)
        self.render_page("outputs.html", project=project, files=list_outputs(project, self.username), checked=None)

    def post(self, raw_slug: str) -> None:
        project = parse_slug(raw_slug)
        name = parse_output_name(self.form("name", limit=MAX_NAME))
        result = check_now(self.ctx.url, self.username, project, name)
        self.render_page("outputs.html", project=project, files=list_outputs(project, self.username), checked=result)


class NewRequestPage(Page):
    """Create a draft: outputs chosen from the folder, a context for each, a title."""

    def get(self, raw_slug: str) -> None:
        project = parse_slug(raw_slug)
        _active_actor(self.ctx.url, self.username, project)
        self.render_page("request_new.html", project=project, files=list_outputs(project, self.username))

    def post(self, raw_slug: str) -> None:
        project = parse_slug(raw_slug)
        title = self.form("title", "", limit=200)
        chosen = self.get_body_arguments("output")
        outputs = {}
        for name in chosen[:100]:
            name = parse_output_name(name)
            outputs[name] = self.form(f"context:{name}", "", limit=4000)
        if not outputs:
            raise PageError(400, "choose at least one output")
        request_id = requests.create(self.username, project, outputs, title, url=self.ctx.url)
        self.done(f"requests/{request_id}", "Draft created. Add exceptions if needed, then submit.")


class RequestsPage(Page):
    """Every request the caller may read, with its state."""

    def get(self) -> None:
        rows = views.listing(self.username, url=self.ctx.url)
        mine = [r for r in rows if r["author"] == self.username]
        others = [r for r in rows if r["author"] != self.username]
        self.render_page("requests.html", mine=mine, others=others)


# ---------------------------------------------------------------- reviewers
class QueuePage(Page):
    """Requests waiting for the caller's review (or steward decision): title, author, project, age, verdicts."""

    def get(self) -> None:
        if not self.has("reviewer", "steward"):
            raise PageError(403, "the review queue is for disclosure reviewers and agency stewards")
        rows = views.listing(self.username, queue=True, url=self.ctx.url)
        self.render_page("queue.html", rows=rows)


def _snapshot_folder(url: str, request_id: int) -> Path | None:
    with session_scope(url, readonly=True) as session:
        round_ = loading.current_round(session, request_id)
        record = loading.snapshot(session, request_id, round_) if round_ else None
        return (get_settings().airlock / record.path) if record else None


class RequestPage(Page):
    """One request: each output shown (table, image, model), its verdict, evidence and checksum; the
    reviews and overrides; the two-reviewer and steward rules; the actions open to the caller."""

    def get(self, raw_id: str) -> None:
        request_id = parse_id(raw_id, "request")
        d = views.describe(self.username, request_id, url=self.ctx.url)  # refuses whoever may not read it
        folder = _snapshot_folder(self.ctx.url, request_id)
        for i, f in enumerate(d["files"]):
            f["index"] = i
            f["view"] = describe_output(folder, f["name"], f["details"] or {})
        with session_scope(self.ctx.url, readonly=True) as session:
            _, actor = loading.actor(session, self.username)
            req = loading.request(session, request_id)
            facts = loading.facts(session, req)
            may = {
                "edit": who.may_edit_request(actor, facts),
                "review": who.may_review_request(actor, facts),
                "release": who.may_release_request(actor, facts),
                "steward": sorted(a for a in facts.stewards_required - facts.stewards_approved
                                  if who.may_approve_for_agency(actor, facts, a)),
            }
            submitted = req.submitted_at
            available = list_outputs(facts.project, self.username) if may["edit"] else []
        settings = get_settings()
        approvals = sorted({r["reviewer"] for r in d["reviews"] if r["round"] == d["round"] and r["decision"] == "approve"})
        rules = {"required": settings.reviewers_required, "approvals": approvals,
                 "reviewed": any(r["reviewer"] == self.username and r["round"] == d["round"] for r in d["reviews"])}
        self.render_page("request.html", r=d, may=may, rules=rules, submitted=submitted,
                         available=[f for f in available if f["name"] not in {x["name"] for x in d["files"]}])

    def post(self, raw_id: str) -> None:
        request_id = parse_id(raw_id, "request")
        action = self.form("action", limit=20)
        url, me = self.ctx.url, self.username
        path = f"requests/{request_id}"
        if action == "context":
            name = parse_output_name(self.form("name", limit=MAX_NAME))
            requests.add_outputs(me, request_id, {name: self.form("context", limit=4000)}, url=url)
            return self.done(path, f"Context of {name} saved.")
        if action == "add":
            name = parse_output_name(self.form("name", limit=MAX_NAME))
            requests.add_outputs(me, request_id, {name: self.form("context", limit=4000)}, url=url)
            return self.done(path, f"{name} added.")
        if action == "remove":
            requests.remove_output(me, request_id, parse_output_name(self.form("name", limit=MAX_NAME)), url=url)
            return self.done(path, "Output removed.")
        if action == "exception":
            name = parse_output_name(self.form("name", limit=MAX_NAME))
            requests.add_exception(me, request_id, name, self.form("text", limit=4000), url=url)
            return self.done(path, f"Exception for {name} saved.")
        if action == "submit":
            round_ = requests.submit(me, request_id, url=url)
            return self.done(path, f"Submitted (round {round_}) and checked by the gate.")
        if action == "withdraw":
            requests.withdraw(me, request_id, url=url)
            return self.done(path, "Request withdrawn.")
        if action == "review":
            decision = self.form("decision", limit=10)
            with session_scope(url, readonly=True) as session:
                names = [f.name for f in loading.request(session, request_id).files]
            overrides = [n for n in self.get_body_arguments("override") if n in names]
            file_comments = {n: self.get_body_argument(f"comment:{n}", "")[:4000] for n in names}
            state = reviews.review(me, request_id, decision, self.form("comments", "", limit=8000),
                                   overrides=overrides, file_comments={k: v for k, v in file_comments.items() if v}, url=url)
            return self.done(path, f"Your review ({decision}) is recorded; the request is {state.value}.")
        if action == "steward":
            agency = self.form("agency", limit=100)
            state = reviews.steward_decision(me, request_id, agency, self.form("decision", limit=10),
                                             self.form("comments", "", limit=8000), url=url)
            return self.done(path, f"Decision for {agency} recorded; the request is {state.value}.")
        if action == "release":
            publishing.release(me, request_id, url=url)
            return self.done(path, "Released: the outputs are in the release zone with their checksums.")
        raise PageError(400, "unknown action")


class OutputImage(Page):
    """The bytes of an image output of a request's snapshot, for the request page (readers only)."""

    def get(self, raw_id: str, raw_index: str) -> None:
        request_id = parse_id(raw_id, "request")
        index = int(raw_index) if raw_index.isdigit() and len(raw_index) < 5 else -1
        d = views.describe(self.username, request_id, url=self.ctx.url)
        if not 0 <= index < len(d["files"]):
            raise PageError(404, "no such output")
        folder = _snapshot_folder(self.ctx.url, request_id)
        path = folder / d["files"][index]["name"] if folder else None
        if path is None or path.is_symlink() or not path.is_file() or path.stat().st_size > 8 * 1024 * 1024:
            raise PageError(404, "no such image")
        data = path.read_bytes()
        kind = image_type(data[:16])
        if kind is None:
            raise PageError(404, "not an image")
        self.set_header("Content-Type", kind)
        self.set_header("Content-Disposition", "inline")
        self.finish(data)
