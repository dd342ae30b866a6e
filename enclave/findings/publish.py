"""Publish a released request as a public finding; withdraw one. Both audited.

Files are taken from the releases zone, never from the workspace or the airlock, and each is
verified against the checksum the release recorded before it is copied. A finding is written to
a staging folder and renamed into ``public/findings/`` in one step, so the catalogue never shows
half a finding; the catalogue pages are then rebuilt from every ``finding.json``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from enclave import audit
from enclave.airlock import loading
from enclave.airlock.errors import NotFound, require
from enclave.findings import catalogue
from enclave.findings import permissions as who
from enclave.findings import policies as when
from enclave.findings.spec import FindingSpec
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Extract, Person, Project, Release, Review, StewardApproval
from enclave.settings import get_settings

FINDING_FILE = "finding.json"


def public_dir() -> Path:
    """The public zone: ``ENCLAVE_HOME/public`` (served without sign-in)."""
    return get_settings().home / "public"


def findings_dir() -> Path:
    return public_dir() / "findings"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _slug(request_id: int, title: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return f"{request_id}-{words or 'finding'}"


def published() -> dict[int, dict[str, Any]]:
    """Every finding on disk (withdrawn ones included), by request id."""
    out = {}
    for path in sorted(findings_dir().glob(f"*/{FINDING_FILE}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a damaged record is left for the operator; it is not shown
        out[int(record["request_id"])] = record
    return out


def _checks(session, req, release: Release, names: list[str]) -> dict[str, Any]:
    """What the finding passed, in words a reader can check against the request."""
    files = {f.name: f for f in req.files}
    verdicts = {}
    for name in names:
        verdict = loading.latest_verdict(session, files[name].id) if name in files else None
        verdicts[name] = verdict.status if verdict else "unchecked"
    round_ = loading.current_round(session, req.id)
    approvals = session.scalars(
        select(Review).where(Review.request_id == req.id, Review.round == round_, Review.decision == "approve")
    ).all()
    stewards = session.scalars(
        select(StewardApproval).where(StewardApproval.request_id == req.id, StewardApproval.round == round_,
                                      StewardApproval.decision == "approve")
    ).all()
    return {
        "automated_check": verdicts,
        "independent_reviews": len(approvals),
        "agency_steward_approvals": len(stewards),
        "released_at": audit.format_time(release.released_at),
        "release_id": release.id,
        "review_round": round_,
    }


def publish(username: str | None, request_id: int, spec: FindingSpec, *, url: str | None = None) -> dict[str, Any]:
    """Turn released request ``request_id`` into a public finding; returns its record."""
    url = ensure_schema(url)
    releases = get_settings().releases
    staging = public_dir() / f".staging-{uuid.uuid4().hex}"
    final: Path | None = None  # set once the finding is in place, before the commit
    try:
        with session_scope(url) as session:
            _, actor = loading.actor(session, username)
            req = loading.request(session, request_id)
            facts = loading.facts(session, req)
            require(who.may_publish, actor, facts)
            require(when.request_is_released, facts)
            require(when.not_published_already, req.id, set(published()))
            release = session.scalars(select(Release).where(Release.request_id == req.id)).first()
            if release is None:
                raise NotFound(f"request {req.id} has no release record")
            released = dict(release.checksums or {})
            names = sorted(spec.files) if spec.files else sorted(
                n for n in released if n.lower().endswith(when.PUBLISHABLE_SUFFIXES))
            require(when.only_released_files, names, released)
            require(when.only_publishable_types, names)
            source = (releases / release.path).resolve()
            if not source.is_relative_to(releases.resolve()):
                raise NotFound(f"release {release.id} points outside the releases zone")
            (staging / "files").mkdir(parents=True)
            actual = {}
            for name in names:
                copied = staging / "files" / Path(name).name
                shutil.copyfile(source / name, copied)
                actual[name] = _sha256(copied)  # verify the copy itself, not the file it came from
            require(when.files_match_release, actual, released)

            project = session.get(Project, req.project_id)
            extract_version = session.scalars(
                select(Extract.version).where(Extract.project_id == project.id).order_by(Extract.version.desc())
            ).first()
            slug = _slug(req.id, spec.title)
            record = {
                "slug": slug,
                "request_id": req.id,
                "title": spec.title,
                "question": spec.question,
                "use_case": spec.use_case,
                "domains": list(spec.domains),
                "cohort": spec.cohort,
                "summary": spec.summary,
                "comparisons": list(spec.comparisons),
                "project": {"slug": project.slug, "title": project.title},
                "extract_version": extract_version,
                "files": [
                    {"name": Path(n).name, "caption": spec.files.get(n, ""), "sha256": actual[n],
                     "kind": "table" if n.lower().endswith(".csv") else "chart"}
                    for n in names
                ],
                "checks": _checks(session, req, release, names),
                "published_at": audit.format_time(dt.datetime.now(dt.UTC)),
                "published_by": actor.username,
                "withdrawn": None,
            }
            (staging / FINDING_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
            audit.append(session, actor=actor.username, action="finding.published", project=project.slug,
                         subject=f"request:{req.id}",
                         details={"slug": slug, "files": {f["name"]: f["sha256"] for f in record["files"]}})
            findings_dir().mkdir(parents=True, exist_ok=True)
            os.replace(staging, findings_dir() / slug)
            final = findings_dir() / slug  # the commit follows: if it fails, the finding goes again
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if final is not None:
            shutil.rmtree(final, ignore_errors=True)
        raise
    catalogue.build(public_dir(), list(published().values()))
    return record


def withdraw(username: str | None, slug: str, reason: str, *, url: str | None = None) -> dict[str, Any]:
    """Take a finding off the catalogue: its files are removed, a notice stays at its address."""
    url = ensure_schema(url)
    reason = re.sub(r"[\x00-\x1f\x7f]", " ", reason).strip()
    if not reason:
        raise ValueError("give a reason for the withdrawal")
    folder = (findings_dir() / slug).resolve()
    if not folder.is_relative_to(findings_dir().resolve()) or not (folder / FINDING_FILE).is_file():
        raise NotFound(f"no finding {slug!r}")
    with session_scope(url) as session:
        _, actor = loading.actor(session, username)
        require(who.may_withdraw_finding, actor)
        record = json.loads((folder / FINDING_FILE).read_text(encoding="utf-8"))
        if record.get("withdrawn"):
            raise ValueError(f"finding {slug!r} was already withdrawn")
        record["withdrawn"] = {"at": audit.format_time(dt.datetime.now(dt.UTC)), "by": actor.username, "reason": reason}
        audit.append(session, actor=actor.username, action="finding.withdrawn", project=record["project"]["slug"],
                     subject=f"request:{record['request_id']}", details={"slug": slug, "reason": reason})
        tmp = folder / f".{FINDING_FILE}.tmp"
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, folder / FINDING_FILE)
    shutil.rmtree(folder / "files", ignore_errors=True)
    catalogue.build(public_dir(), list(published().values()))
    return record
