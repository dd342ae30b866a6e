"""Verification of a submitted snapshot: its integrity against the checksums recorded at submission,
and the call into ``disclosure_control.gate`` on every output, recomputing from the extract version
the request was submitted against, under the strictest rules of the agencies whose data it uses.

The automated check (``checking``) and the release (``publishing``) both judge a snapshot through
this module, and the researcher and reviewer sides (``requests``, ``reviews``) check its integrity
here: the airlock's modules depend on it, it depends on none of them.

The gate reads only the snapshot (never the workspace) and only tables listed in that extract's
manifest: a table name in the evidence is researcher-written text and is never used as a path.
A differential-privacy output is judged by its service receipt (``enclave.dp_service.receipts``),
never by an epsilon the researcher wrote.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from enclave import audit
from enclave.airlock import loading
from enclave.airlock import policies as when
from enclave.airlock import snapshot as snap
from enclave.airlock.errors import AirlockError, Refused, TamperDetected
from enclave.registry.base import session_scope
from enclave.registry.models import Extract, Project, ReleaseRequest
from enclave.settings import get_settings

LEDGER_FILE = "ledger.sqlite"


def ledger_path() -> Path:
    """The differencing ledger of everything ever released (``releases/ledger.sqlite``)."""
    return get_settings().releases / LEDGER_FILE


# -- integrity of the snapshot -------------------------------------------------------------------------
def snapshot_problems(session, req: ReleaseRequest) -> list[str]:
    """Files of the current snapshot that are missing, extra or whose sha256 changed since submission."""
    round_ = loading.current_round(session, req.id)
    record = loading.snapshot(session, req.id, round_)
    if record is None:
        return ["no snapshot"]
    folder = get_settings().airlock / record.path
    problems = []
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for name, digest in sorted(record.checksums.items()):
        path = folder / name
        if name not in present or path.is_symlink() or not path.is_file():
            problems.append(f"{name}: missing")
        elif snap.sha256_file(path) != digest:
            problems.append(f"{name}: changed since its snapshot")
    for extra in sorted(present - set(record.checksums)):
        problems.append(f"{extra}: not part of the snapshot")
    return problems


def require_intact_snapshot(session, req: ReleaseRequest, project: str) -> None:
    """Refuse when the snapshot no longer matches its checksums (the caller audits via ``tamper_alarm``)."""
    problems = snapshot_problems(session, req)
    if problems:
        raise TamperDetected(req.id, project, problems)


@contextmanager
def tamper_alarm(url: str, actor_name: str | None):
    """Record a detected tampering in the audit chain after the refused transaction rolled back."""
    try:
        yield
    except TamperDetected as exc:
        with session_scope(url) as session:
            audit.append(session, actor=actor_name or "unknown", action="release.tamper_detected",
                         project=exc.project, subject=f"request:{exc.request_id}", details={"problems": exc.problems})
        raise


def extract_for_round(session, req: ReleaseRequest) -> Extract:
    """The extract version the request's current round was submitted against (refused if withdrawn)."""
    round_ = loading.current_round(session, req.id)
    record = loading.snapshot(session, req.id, round_)
    if record is None:
        raise AirlockError(f"request {req.id} has no snapshot")
    extract = session.scalars(
        select(Extract).where(Extract.project_id == req.project_id, Extract.version == record.extract_version)
    ).first()
    if extract is None or extract.state != "ready":
        raise Refused("extract_is_available", f"extract version {record.extract_version} of the project is withdrawn or missing")
    return extract


# -- the call into the gate ----------------------------------------------------------------------------
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


def dataset_id(project: str, version: int) -> str:
    """The extract identity the differencing ledger compares record positions within (as ``enclave.notebook``)."""
    return f"{project}@v{version}"


def rules_for(session, proj: Project):
    """The strictest rule set of the agencies whose sources the project's approval uses."""
    from disclosure_control.rules import load_rules

    return load_rules(None, [a.name for a in loading.agencies_of(session, proj)])


def plain(value: Any) -> dict[str, Any]:
    """A gate verdict as JSON-able data (without the record positions kept for the ledger)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Snapshot:
    """What judging one round of a request needs, read from the registry once."""

    request_id: int
    project: str
    folder: Path
    names: tuple[str, ...]
    extract_version: int
    extract_dir: Path
    manifest: dict
    rules: Any  # disclosure_control.rules.RuleSet

    @property
    def dataset(self) -> str:
        return dataset_id(self.project, self.extract_version)

    def loader(self):
        return extract_loader(self.extract_dir, self.manifest)


def open_snapshot(session, req: ReleaseRequest) -> Snapshot:
    """The current round of ``req`` as a ``Snapshot``, after checking it is intact."""
    proj = session.get(Project, req.project_id)
    require_intact_snapshot(session, req, proj.slug)
    record = loading.snapshot(session, req.id, loading.current_round(session, req.id))
    extract = extract_for_round(session, req)
    settings = get_settings()
    return Snapshot(req.id, proj.slug, settings.airlock / record.path, tuple(sorted(f.name for f in req.files)),
                    extract.version, settings.extracts / extract.path, extract.manifest, rules_for(session, proj))


def gate_file(folder: Path, name: str, loader, rules, ledger, dataset: str):
    """Run ``disclosure_control.gate.check_file`` on one snapshotted output (with its evidence, if any)."""
    from disclosure_control import gate

    evidence_file = folder / snap.evidence_name(name)
    return gate.check_file(folder / name, evidence_file if evidence_file.is_file() else None, loader, rules, ledger,
                           dataset=dataset)


def judge(session, shot: Snapshot, ledger, loader=None) -> dict[str, dict[str, Any]]:
    """Every output of the snapshot judged: name -> {status, reasons, details, verdict}.

    A DP output (one carrying a service receipt) is judged by its receipt alone; any other goes
    through the gate. ``details["exceptionable"]`` says whether the rulebook lets a researcher's
    exception and reviewers' overrides lift its ``fail``.
    """
    from enclave.dp_service import receipts

    loader = loader or shot.loader()
    results: dict[str, dict[str, Any]] = {}
    receipts_seen: set[str] = set()
    verdicts: dict[str, Any] = {}
    for name in shot.names:
        path = shot.folder / name
        if receipts.claims_receipt(path):
            results[name] = _judge_receipt(session, shot, path, receipts_seen)
            continue
        try:
            verdicts[name] = gate_file(shot.folder, name, loader, shot.rules, ledger, shot.dataset)
        except Exception as exc:  # fail closed: an output the gate cannot assess does not pass
            results[name] = {"status": "fail", "reasons": [f"gate error: {type(exc).__name__}"], "verdict": None,
                             "details": {"checks": {"gate_error": "fail"}, "exceptionable": False}}
    from disclosure_control import gate

    gate.cross_check(list(verdicts.values()), shot.rules.threshold)  # the request's outputs against each other
    for name, verdict in verdicts.items():
        results[name] = _judged_by_gate(shot, name, verdict)
    return {name: results[name] for name in shot.names}


def _judge_receipt(session, shot: Snapshot, path: Path, seen: set[str]) -> dict[str, Any]:
    """A DP output passes on a valid, unused receipt of this project and extract; anything else fails for good."""
    from enclave.dp_service import receipts

    problems = receipts.check_output(session, path, shot.project, shot.extract_version, shot.request_id)
    digest = snap.sha256_file(path)
    if digest in seen:
        problems.append("DP receipt refused: the same receipt appears twice in the request (replay)")
    seen.add(digest)
    status = "fail" if problems else "pass"
    reasons = problems or ["differentially private answer computed and charged by the DP service (receipt verified)"]
    checks = {"dp_receipt": status}
    if not problems and receipts.free_text_has_numbers(path):
        # The purpose is the researcher's own text, released with the answer: a number there may be
        # a value copied out of the data, so a reviewer must look at it.
        status = checks["labels"] = "review"
        reasons.append("the query's purpose text holds numbers: check that it discloses nothing")
    return {"status": status, "reasons": reasons, "verdict": None,
            "details": {"kind": "dp", "checks": checks, "exceptionable": False}}


def _judged_by_gate(shot: Snapshot, name: str, verdict) -> dict[str, Any]:
    """The airlock's status for one gate verdict: no evidence means review at best, DP needs a receipt."""
    has_evidence = (shot.folder / snap.evidence_name(name)).is_file()
    data = plain(verdict)
    status = data.get("status")
    if status not in {"pass", "fail", "review"}:
        status = "fail"
    if not has_evidence and status == "pass":
        status = "review"  # without evidence nothing can be recomputed: a human must look
    if data.get("kind") == "dp" and status != "fail":
        # Evidence that claims DP without a service receipt: its epsilon was never charged.
        status = "fail"
        data.setdefault("checks", {})["dp_receipt"] = "fail"
        data.setdefault("reasons", []).append("a DP output needs the DP service's receipt: none was found")
    reasons = data.get("reasons") or []
    data["exceptionable"] = status == "fail" and when.failure_is_exceptionable(
        _failed_checks(data), frozenset(shot.rules.exceptionable_checks))
    return {"status": status, "reasons": reasons if isinstance(reasons, list) else [reasons],
            "details": data, "verdict": verdict}


def _failed_checks(data: dict[str, Any]) -> frozenset[str]:
    checks = data.get("checks")
    if not isinstance(checks, dict):
        return frozenset()
    return frozenset(str(c) for c, s in checks.items() if s == "fail")
