"""The automated check of a submitted request: every snapshotted output judged through
``verification`` (the gate, or the DP service's receipt), its verdict recorded, the request moved
to ``checked``."""
from __future__ import annotations

import datetime as dt

from enclave import audit
from enclave.airlock import loading
from enclave.airlock import verification as verify
from enclave.airlock.errors import AirlockError, Refused
from enclave.airlock.states import RequestState
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Verdict

# Kept importable from here: the tests and the CLI build loaders the way the gate does.
extract_loader = verify.extract_loader
dataset_id = verify.dataset_id


def run_gate(request_id: int, *, actor: str = "gate", url: str | None = None) -> dict[str, str]:
    """Check every output of a submitted request and move it to ``checked``; returns name -> status."""
    from disclosure_control import differencing

    url = ensure_schema(url)
    with verify.tamper_alarm(url, actor), session_scope(url, readonly=True) as session:
        req = loading.request(session, request_id)
        if req.state != RequestState.submitted.value:
            raise Refused("request_is_submitted", f"the gate runs on submitted requests; request {request_id} is {req.state}")
        round_ = loading.current_round(session, req.id)
        shot = verify.open_snapshot(session, req)
        results = verify.judge(session, shot, differencing.Ledger(verify.ledger_path()))

    with session_scope(url) as session:
        req = loading.request(session, request_id)
        if req.state != RequestState.submitted.value or loading.current_round(session, req.id) != round_:
            raise AirlockError(f"request {request_id} changed while it was being checked; run the check again")
        for f in req.files:
            r = results[f.name]
            session.add(Verdict(file_id=f.id, status=r["status"], reasons=r["reasons"], details=r["details"]))
        req.state = RequestState.checked.value
        req.state_changed_at = dt.datetime.now(dt.UTC)
        audit.append(session, actor=actor, action="release.checked", project=shot.project, subject=f"request:{req.id}",
                     details={"round": round_, "verdicts": {n: r["status"] for n, r in sorted(results.items())},
                              "extract_version": shot.extract_version})
    return {n: r["status"] for n, r in results.items()}
