"""The automated check of a submitted request: ``disclosure_control.gate`` on every snapshotted
output, recomputing from the extract version the request was submitted against and the output's
saved evidence, under the strictest rules of the agencies whose data the project uses.

The gate reads only the snapshot (never the workspace) and only tables listed in that extract's
manifest: a table name in the evidence is researcher-written text and is never used as a path.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from enclave import audit
from enclave.airlock import loading
from enclave.airlock import snapshot as snap
from enclave.airlock.errors import AirlockError, Refused
from enclave.airlock.requests import extract_for_round, require_intact_snapshot, tamper_alarm
from enclave.airlock.states import RequestState
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Verdict
from enclave.settings import get_settings


def extract_loader(extract_dir: Path, manifest: dict[str, Any]):
    """``data_loader(table) -> DataFrame`` over one extract version, refusing tables it does not hold."""
    tables = manifest.get("tables", {})
    cache: dict[str, pd.DataFrame] = {}

    def load(table: str) -> pd.DataFrame:
        if table not in tables:
            raise KeyError(f"table {table!r} is not in this extract")
        if table not in cache:
            cache[table] = pd.read_parquet(Path(extract_dir) / tables[table]["file"])
        return cache[table].copy()

    return load


def _plain(value: Any) -> dict[str, Any]:
    """A gate verdict as JSON-able data (without the record positions kept for the ledger)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.loads(json.dumps(value, default=str))


def dataset_id(project: str, version: int) -> str:
    """The extract identity the differencing ledger compares record positions within (as ``enclave.notebook``)."""
    return f"{project}@v{version}"


def gate_file(folder: Path, name: str, loader, rules, ledger, dataset: str):
    """Run ``disclosure_control.gate.check_file`` on one snapshotted output (with its evidence, if any)."""
    from disclosure_control import gate

    evidence_file = folder / snap.evidence_name(name)
    return gate.check_file(folder / name, evidence_file if evidence_file.is_file() else None, loader, rules, ledger,
                           dataset=dataset)


def _rules_for(session, proj):
    from disclosure_control.rules import load_rules

    return load_rules(None, [a.name for a in loading.agencies_of(session, proj)])


def run_gate(request_id: int, *, actor: str = "gate", url: str | None = None) -> dict[str, str]:
    """Check every output of a submitted request and move it to ``checked``; returns name -> status."""
    from disclosure_control import differencing

    from enclave.airlock.publishing import ledger_path

    url = ensure_schema(url)
    settings = get_settings()
    with tamper_alarm(url, actor), session_scope(url, readonly=True) as session:
        req = loading.request(session, request_id)
        if req.state != RequestState.submitted.value:
            raise Refused("request_is_submitted", f"the gate runs on submitted requests; request {request_id} is {req.state}")
        proj = session.get(loading.Project, req.project_id)
        require_intact_snapshot(session, req, proj.slug)
        round_ = loading.current_round(session, req.id)
        record = loading.snapshot(session, req.id, round_)
        extract = extract_for_round(session, req)
        extract_dir = settings.extracts / extract.path
        loader = extract_loader(extract_dir, extract.manifest)
        rules = _rules_for(session, proj)
        folder = settings.airlock / record.path
        names = sorted(f.name for f in req.files)

    ledger = differencing.Ledger(ledger_path())
    dataset = dataset_id(proj.slug, extract.version)
    results: dict[str, dict[str, Any]] = {}
    verdicts = {}
    for name in names:
        try:
            verdicts[name] = gate_file(folder, name, loader, rules, ledger, dataset)
        except Exception as exc:  # fail closed: an output the gate cannot assess does not pass
            results[name] = {"status": "fail", "reasons": [f"gate error: {type(exc).__name__}"], "details": {}}
    from disclosure_control import gate

    gate.cross_check(list(verdicts.values()), rules.threshold)  # the request's outputs against each other
    for name, verdict in verdicts.items():
        has_evidence = (folder / snap.evidence_name(name)).is_file()
        data = _plain(verdict)
        status = data.get("status")
        if status not in {"pass", "fail", "review"}:
            status = "fail"
        if not has_evidence and status == "pass":
            status = "review"  # without evidence nothing can be recomputed: a human must look
        reasons = data.get("reasons") or []
        results[name] = {"status": status, "reasons": reasons if isinstance(reasons, list) else [reasons], "details": data}

    with session_scope(url) as session:
        req = loading.request(session, request_id)
        if req.state != RequestState.submitted.value or loading.current_round(session, req.id) != round_:
            raise AirlockError(f"request {request_id} changed while it was being checked; run the check again")
        for f in req.files:
            r = results[f.name]
            session.add(Verdict(file_id=f.id, status=r["status"], reasons=r["reasons"], details=r["details"]))
        req.state = RequestState.checked.value
        req.state_changed_at = dt.datetime.now(dt.UTC)
        audit.append(session, actor=actor, action="release.checked", project=proj.slug, subject=f"request:{req.id}",
                     details={"round": round_, "verdicts": {n: r["status"] for n, r in sorted(results.items())},
                              "extract_version": extract.version})
    return {n: r["status"] for n, r in results.items()}
