"""Release of an approved request: copy its outputs out of the airlock into
``releases/<project>/<request>/`` with checksums, enter them in the differencing ledger and
tie each verified DP receipt to the release (DP is charged by the DP service, never here), all audited.

The copy is staged in a hidden folder inside the registry transaction and renamed into the
public zone only after the commit; ``recover`` rolls a committed release forward and removes the
staging of an uncommitted one, so the public zone never shows a release the registry lacks.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from enclave import audit
from enclave.airlock import loading
from enclave.airlock import permissions as who
from enclave.airlock import policies as when
from enclave.airlock import snapshot as snap
from enclave.airlock import verification as verify
from enclave.airlock.errors import Refused, require
from enclave.airlock.faults import crash_point
from enclave.airlock.states import RequestState
from enclave.airlock.verification import ledger_path, require_intact_snapshot, tamper_alarm
from enclave.dp_service import receipts as dp_receipts
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Release
from enclave.settings import get_settings

CHECKSUMS_FILE = "SHA256SUMS"


def _populations(verdict: Any, prefix: str) -> list:
    """The released cells of one gate verdict as ledger populations (record positions, never values).

    Output ids are only unique within a request, so the ledger stores them as
    ``<project>/<request>/<output id>``: two researchers' ``table1`` are still compared.
    """
    from disclosure_control.differencing import Population

    p = getattr(verdict, "populations", None) or {}
    if not p:
        return []
    return [Population(prefix + verdict.output_id, label, p["dataset"], p["table"], p["n_table_rows"],
                       np.asarray(members, dtype=np.int64)) for label, members in p["cells"].items()]


def _recheck(session, req, facts) -> list:
    """Judge the snapshot again, now, against everything released since the check.

    Two requests approved side by side could each pass alone and together difference each
    other: an output that passed at its check and fails now, or any output whose cells now
    difference against released ones, is refused. A DP output's receipt is verified again (not
    forged, not edited, this project's, this extract's, not released before). Returns the
    populations to enter in the ledger.
    """
    from disclosure_control import differencing

    shot = verify.open_snapshot(session, req)
    ledger = differencing.Ledger(ledger_path())
    prefix = f"{facts.project}/{req.id}/"
    judged = verify.judge(session, shot, None)
    populations = []
    for output in facts.outputs:
        result = judged[output.name]
        if output.verdict == "pass" and result["status"] != "pass":
            raise Refused("still_passes_at_release",
                          f"{output.name} passed its check but now fails: " + "; ".join(result["reasons"][:3]))
        if result["status"] == "fail" and not result["details"].get("exceptionable"):
            raise Refused("failed_output_is_exceptionable",
                          f"{output.name}: " + when.failed_output_is_exceptionable.__doc__.strip())
        pops = _populations(result["verdict"], prefix) if result["verdict"] is not None else []
        # Cells this very request entered before a crash interrupted its release are not an attack.
        hits = [h for h in ledger.attacks(pops, shot.rules.threshold) if not h.released_output.startswith(prefix)]
        if hits:
            raise Refused("no_differencing_at_release", f"{output.name}: " + hits[0].reason())
        populations += pops
    return populations


def release(username: str | None, request_id: int, *, url: str | None = None) -> Path:
    """Release an approved request; returns the folder the outputs were published in."""
    url = ensure_schema(url)
    settings = get_settings()
    with tamper_alarm(url, username), session_scope(url) as session:
        person, actor = loading.actor(session, username)
        req = loading.request(session, request_id)
        facts = loading.facts(session, req)
        require(who.may_release_request, actor, facts)
        require(when.request_is_approved, facts)
        require(when.project_is_active, facts)
        if not when.ready_for_approval(facts, settings.reviewers_required):
            raise Refused("ready_for_approval", when.ready_for_approval.__doc__.strip())
        require_intact_snapshot(session, req, facts.project)
        if session.scalars(select(Release).where(Release.request_id == req.id)).first() is not None:
            raise Refused("not_yet_released", f"request {request_id} was already released")

        round_ = facts.extra["round"]
        record = loading.snapshot(session, req.id, round_)
        source = settings.airlock / record.path
        populations = _recheck(session, req, facts)
        names = sorted(f.name for f in req.files)
        # DP outputs were charged by the DP service when the researcher saw them: the release only
        # ties each verified receipt to this request (a receipt is released once), never charges.
        try:
            receipts_released = dp_receipts.mark_released(session, source, names, req.id)
        except dp_receipts.ReceiptError as exc:
            raise Refused("dp_receipt_used_once", str(exc)) from None

        staging = _staging_dir(facts.project, req.id)
        if staging.exists():  # left by an attempt that died before its commit: never published, redo it
            snap.remove_tree(staging)
        staging.mkdir(parents=True, mode=0o700)
        checksums: dict[str, str] = {}
        try:
            for name in names:
                shutil.copyfile(source / name, staging / name, follow_symlinks=False)
                digest = snap.sha256_file(staging / name)
                if digest != record.checksums.get(name):
                    raise Refused("snapshot_is_intact", f"{name} changed while being released")
                checksums[name] = digest
            (staging / CHECKSUMS_FILE).write_text("".join(f"{d}  {n}\n" for n, d in sorted(checksums.items())))
            for p in staging.iterdir():
                os.chmod(p, 0o444)
            os.chmod(staging, 0o555)
        except BaseException:
            snap.remove_tree(staging)
            raise
        crash_point("release.after_copy")
        # The ledger is outside the registry transaction: entered before the commit, so a crash
        # here can only leave extra cells in it, which makes later checks stricter, never looser.
        from disclosure_control import differencing

        entered = differencing.Ledger(ledger_path()).record(populations)
        session.add(Release(request_id=req.id, path=f"{facts.project}/{req.id}", checksums=checksums,
                            released_by_id=person.id))
        req.state = RequestState.released.value
        req.state_changed_at = dt.datetime.now(dt.UTC)
        audit.append(session, actor=person.username, action="release.released", project=facts.project,
                     subject=f"request:{req.id}",
                     details={"round": round_, "checksums": checksums, "ledger_cells": entered, "dp_receipts": receipts_released})
        project_slug, request_number = facts.project, req.id
    # Published only once the registry has committed the release: nothing appears in the public
    # zone that the registry does not record. A crash in between is rolled forward by ``recover``.
    crash_point("release.before_publish")
    return _publish(project_slug, request_number)


def _staging_dir(project: str, request_id: int) -> Path:
    return get_settings().releases / project / f".staging-{int(request_id)}"


def _publish(project: str, request_id: int) -> Path:
    staging, dest = _staging_dir(project, request_id), get_settings().releases / project / str(int(request_id))
    if staging.exists() and not dest.exists():
        os.rename(staging, dest)
        fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return dest


def recover(*, url: str | None = None) -> dict[str, list[str]]:
    """Finish releases committed but not yet published; remove staging left by uncommitted attempts."""
    url = ensure_schema(url)
    root = get_settings().releases
    done: dict[str, list[str]] = {"published": [], "removed": []}
    if not root.is_dir():
        return done
    with session_scope(url, readonly=True) as session:
        recorded = {(r.path.split("/")[0], r.request_id) for r in session.scalars(select(Release)).all()}
        for staging in sorted(root.glob("*/.staging-*")):
            key = (staging.parent.name, int(staging.name.split("-")[-1]))
            if key in recorded:
                _publish(*key)
                done["published"].append(f"{key[0]}/{key[1]}")
            else:
                snap.remove_tree(staging)
                done["removed"].append(f"{key[0]}/{key[1]}")
    if done["published"] or done["removed"]:
        with session_scope(url) as session:
            audit.append(session, actor="system", action="release.recovered", subject="releases", details=done)
    return done


def verify_release(folder: Path) -> list[str]:
    """Files of a released folder whose checksum no longer matches ``SHA256SUMS`` (empty when intact)."""
    bad = []
    lines = (Path(folder) / CHECKSUMS_FILE).read_text().splitlines()
    for line in lines:
        digest, name = line.split("  ", 1)
        path = Path(folder) / name
        if not path.is_file() or snap.sha256_file(path) != digest:
            bad.append(name)
    return bad


__all__ = ["release", "recover", "verify_release", "ledger_path"]
