"""Release requests, researcher side: create from the outputs folder, add context and exceptions,
submit (snapshot into the airlock), withdraw; and recovery of snapshots orphaned by a crash.

A submission snapshots inside the registry's write transaction: the snapshot folder is renamed
into place and only then is the transaction committed. A crash in between leaves a complete
folder the registry does not know; ``recover`` (also run by the next submission) removes it.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from sqlalchemy import delete, select

from enclave import audit
from enclave.airlock import loading
from enclave.airlock import permissions as who
from enclave.airlock import policies as when
from enclave.airlock import checking
from enclave.airlock import snapshot as snap
from enclave.airlock.errors import AirlockError, NotFound, Refused, require
from enclave.airlock.faults import crash_point
from enclave.airlock.states import RequestState
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import ReleaseFile, ReleaseRequest, ReleaseSnapshot, Verdict
from enclave.settings import get_settings

OUTPUTS_FOLDER = "outputs"
_ROUND_DIR = re.compile(r"^r(\d+)$")


def outputs_dir(project: str, username: str) -> Path:
    """The researcher's outputs folder for a project: ``workspaces/<project>/<user>/outputs``."""
    return get_settings().workspaces / project / username / OUTPUTS_FOLDER


def request_dir(request_id: int) -> Path:
    return get_settings().airlock / str(int(request_id))


def _open_outputs(project: str, username: str) -> int:
    return snap.open_dir_chain(get_settings().workspaces, [project, username, OUTPUTS_FOLDER])


def _require_context(outputs: dict[str, str]) -> None:
    for name, context in outputs.items():
        snap.check_name(name)
        if name.endswith(snap.EVIDENCE_SUFFIX):
            raise AirlockError(f"{name!r} is an evidence file: request the output it describes, its evidence goes with it")
        if not (context or "").strip():
            raise AirlockError(f"output {name!r} needs context: what it shows and how it was made")


def create(username: str | None, project: str, outputs: dict[str, str], title: str = "", *, url: str | None = None) -> int:
    """A new draft request for files in the caller's outputs folder, each with its context; returns its id."""
    url = ensure_schema(url)
    _require_context(outputs)
    if not outputs:
        raise AirlockError("a release request needs at least one output")
    with session_scope(url) as session:
        person, actor = loading.actor(session, username)
        proj = loading.project(session, project)
        require(who.may_create_request, actor, project)
        if not loading.project_is_live(proj):
            raise Refused("project_is_active", when.project_is_active.__doc__)
        fd = _open_outputs(project, person.username)
        try:
            snap.inspect_outputs(fd, list(outputs))
        finally:
            os.close(fd)
        req = ReleaseRequest(project_id=proj.id, author_id=person.id, state=RequestState.draft.value, title=title)
        for name, context in outputs.items():
            req.files.append(ReleaseFile(name=name, sha256="", size=0, context=context.strip()))
        session.add(req)
        session.flush()
        audit.append(session, actor=person.username, action="release.created", project=project,
                     subject=f"request:{req.id}", details={"files": sorted(outputs)})
        return req.id


def _editable(session, username: str | None, request_id: int):
    person, actor = loading.actor(session, username)
    req = loading.request(session, request_id)
    facts = loading.facts(session, req)
    require(who.may_edit_request, actor, facts)
    return person, req, facts


def add_outputs(username: str | None, request_id: int, outputs: dict[str, str], *, url: str | None = None) -> None:
    """Add outputs (with context) to a draft or returned request, or change the context of listed ones."""
    url = ensure_schema(url)
    _require_context(outputs)
    with session_scope(url) as session:
        person, req, facts = _editable(session, username, request_id)
        require(when.request_is_editable, facts)
        fd = _open_outputs(facts.project, person.username)
        try:
            snap.inspect_outputs(fd, list(outputs))
        finally:
            os.close(fd)
        existing = {f.name: f for f in req.files}
        for name, context in outputs.items():
            if name in existing:
                existing[name].context = context.strip()
            else:
                req.files.append(ReleaseFile(name=name, sha256="", size=0, context=context.strip()))
        audit.append(session, actor=person.username, action="release.outputs_added", project=facts.project,
                     subject=f"request:{req.id}", details={"files": sorted(outputs)})


def remove_output(username: str | None, request_id: int, name: str, *, url: str | None = None) -> None:
    """Take an output out of a draft or returned request."""
    url = ensure_schema(url)
    with session_scope(url) as session:
        person, req, facts = _editable(session, username, request_id)
        require(when.request_is_editable, facts)
        target = next((f for f in req.files if f.name == name), None)
        if target is None:
            raise NotFound(f"request {request_id} has no output {name!r}")
        session.execute(delete(Verdict).where(Verdict.file_id == target.id))
        req.files.remove(target)
        audit.append(session, actor=person.username, action="release.output_removed", project=facts.project,
                     subject=f"request:{req.id}", details={"file": name})


def add_exception(username: str | None, request_id: int, name: str, text: str, *, url: str | None = None) -> None:
    """The researcher's justification for releasing an output the gate failed (before any review of this round)."""
    url = ensure_schema(url)
    if not (text or "").strip():
        raise AirlockError("an exception needs a justification text")
    with session_scope(url) as session:
        person, req, facts = _editable(session, username, request_id)
        if not (when.request_is_editable(facts) or (facts.state == RequestState.checked and not facts.reviews)):
            raise Refused("exceptions_are_open", "exceptions can be added to a draft, a returned request, or a checked one before any review")
        target = next((f for f in req.files if f.name == name), None)
        if target is None:
            raise NotFound(f"request {request_id} has no output {name!r}")
        require(when.failed_output_is_exceptionable, next(o for o in facts.outputs if o.name == name))
        target.exception_text = text.strip()
        audit.append(session, actor=person.username, action="release.exception_added", project=facts.project,
                     subject=f"request:{req.id}", details={"file": name})


def _clean_orphans(session, request_id: int) -> list[str]:
    """Remove snapshot folders of ``request_id`` that the registry does not record (left by a crash)."""
    base = request_dir(request_id)
    if not base.is_dir():
        return []
    known = {s.path for s in session.scalars(select(ReleaseSnapshot).where(ReleaseSnapshot.request_id == request_id)).all()}
    removed = []
    for child in base.iterdir():
        rel = f"{request_id}/{child.name}"
        if child.name.startswith(".tmp-") or (_ROUND_DIR.match(child.name) and rel not in known):
            snap.remove_tree(child)
            removed.append(child.name)
    return removed


def recover(*, url: str | None = None) -> dict[str, list[str]]:
    """Remove every airlock snapshot folder not recorded in the registry (crash leftovers). Returns what went."""
    url = ensure_schema(url)
    root = get_settings().airlock
    removed: dict[str, list[str]] = {}
    if not root.is_dir():
        return removed
    with session_scope(url) as session:  # the write lock keeps a live submission from being mistaken for debris
        for child in sorted(root.iterdir()):
            if child.name.isdigit():
                gone = _clean_orphans(session, int(child.name))
                if gone:
                    removed[child.name] = gone
        if removed:
            audit.append(session, actor="system", action="airlock.recovered", subject="airlock",
                         details={"removed": removed})
    return removed


def submit(username: str | None, request_id: int, *, url: str | None = None, check: bool = True) -> int:
    """Snapshot the request's files into the airlock and submit it; then run the gate. Returns the round."""
    url = ensure_schema(url)
    with session_scope(url) as session:
        person, req, facts = _editable(session, username, request_id)
        require(when.request_is_editable, facts)
        require(when.request_has_outputs, facts)
        if not facts.project_active:
            raise Refused("project_is_active", when.project_is_active.__doc__)
        _clean_orphans(session, req.id)
        round_ = loading.current_round(session, req.id) + 1
        proj = loading.project(session, facts.project)
        from enclave.entitlements import current_extract

        extract = current_extract(session, proj)
        if extract is None:
            raise AirlockError(f"project {facts.project} has no extract to check the outputs against")
        names = [f.name for f in req.files]
        fd = _open_outputs(facts.project, person.username)
        try:
            folder, copied = snap.snapshot(fd, names, request_dir(req.id), f"r{round_}")
        finally:
            os.close(fd)
        crash_point("airlock.after_snapshot")
        checksums = {c.name: c.sha256 for c in copied}
        by_name = {c.name: c for c in copied}
        for f in req.files:
            f.sha256, f.size = by_name[f.name].sha256, by_name[f.name].size
            session.execute(delete(Verdict).where(Verdict.file_id == f.id))
        session.add(ReleaseSnapshot(request_id=req.id, round=round_, path=f"{req.id}/{folder.name}",
                                    checksums=checksums, extract_version=extract.version))
        req.state = RequestState.submitted.value
        req.submitted_at = req.state_changed_at = dt.datetime.now(dt.UTC)
        audit.append(session, actor=person.username, action="release.submitted", project=facts.project,
                     subject=f"request:{req.id}",
                     details={"round": round_, "checksums": checksums, "extract_version": extract.version})
        crash_point("airlock.before_commit")
    if check:
        checking.run_gate(request_id, url=url)
    return round_


def withdraw(username: str | None, request_id: int, *, url: str | None = None) -> None:
    """The author withdraws a request that is not yet released, rejected or withdrawn."""
    url = ensure_schema(url)
    with session_scope(url) as session:
        person, req, facts = _editable(session, username, request_id)
        if facts.state in {RequestState.released, RequestState.rejected, RequestState.withdrawn}:
            raise Refused("request_is_open", f"a {facts.state.value} request cannot be withdrawn")
        req.state = RequestState.withdrawn.value
        req.state_changed_at = dt.datetime.now(dt.UTC)
        audit.append(session, actor=person.username, action="release.withdrawn", project=facts.project,
                     subject=f"request:{req.id}", details={})
