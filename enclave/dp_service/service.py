"""The DP budget service's one operation: answer a workspace's DP query and charge its project.

The caller is identified by the kernel, never by what it sends: the workspace's uid (one per
person) and gid (one per project) come from the unix socket's peer credentials and are looked
up in the registry, then ``enclave.entitlements`` decides, now, whether that person may work in
that project. The query runs on the project's current extract; the charge, the registry row of
the spend, the signed receipt and the audit event are one transaction.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from disclosure_control.dp import BudgetExceeded, DPError
from enclave import audit
from enclave.dp_service import receipts
from enclave.dp_service.budget import RegistryBudget
from enclave.dp_service.queries import DPQuery, QueryError, answer, load_values
from enclave.registry.base import session_scope
from enclave.registry.models import DPBudget, DPSpend, Person, Project
from enclave.settings import get_settings


class ServiceRefused(Exception):
    """The service refuses the caller or the query; the message is safe to show (no data values)."""


def identify(uid: int, gid: int, *, url: str | None = None) -> tuple[str, str]:
    """(username, project) of a workspace process from its kernel-given uid and gid, or ``ServiceRefused``."""
    from enclave.entitlements import Refused, check_workspace

    if uid == 0 or gid == 0:
        raise ServiceRefused("the DP service answers project workspaces only")
    with session_scope(url, readonly=True) as session:
        person = session.scalars(select(Person).where(Person.posix_uid == uid)).first()
        project = session.scalars(select(Project).where(Project.posix_gid == gid)).first()
        if person is None or project is None:
            raise ServiceRefused("the caller is not a project workspace")
        username, slug = person.username, project.slug
    try:
        check_workspace(username, slug, url=url, record=False)
    except Refused as refused:
        raise ServiceRefused(refused.reason) from None
    return username, slug


def _query(message: Any) -> DPQuery:
    if not isinstance(message, dict) or not isinstance(message.get("query"), dict):
        raise ServiceRefused("send {\"query\": {...}}")
    try:
        return DPQuery.model_validate(message["query"])
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "query"
        raise ServiceRefused(f"query field {field}: {first['msg']}") from None


def handle(uid: int, gid: int, message: Any, *, url: str | None = None) -> dict[str, Any]:
    """Answer one request: ``{"ok": true, "receipt": ..., "remaining": eps}`` or ``{"ok": false, "error": ...}``."""
    try:
        return {"ok": True, **_answer(uid, gid, message, url)}
    except (ServiceRefused, QueryError, DPError) as exc:
        kind = "budget_exceeded" if isinstance(exc, BudgetExceeded) else "refused"
        return {"ok": False, "error": str(exc), "kind": kind}


def _answer(uid: int, gid: int, message: Any, url: str | None) -> dict[str, Any]:
    from enclave.entitlements import current_extract

    username, slug = identify(uid, gid, url=url)
    query = _query(message)
    with session_scope(url, readonly=True) as session:
        project = session.scalars(select(Project).where(Project.slug == slug)).one()
        extract = current_extract(session, project)
        if extract is None:
            raise ServiceRefused(f"project {slug} has no extract")
        project_id, version, manifest, path = project.id, extract.version, extract.manifest, extract.path
    extract_dir = (get_settings().extracts / path).resolve()
    if not (manifest or {}).get("tables"):  # an extract recorded without its manifest: the host-written file
        manifest = json.loads((extract_dir / "manifest.json").read_text())
    values = load_values(query, extract_dir, manifest)  # read before the write lock

    with session_scope(url) as session:
        if session.get(DPBudget, project_id) is None:
            raise ServiceRefused(f"project {slug} has no DP budget")
        budget = RegistryBudget(session, project_id, slug)
        result = float(answer(query, values, budget))
        if not math.isfinite(result) or budget.charged != query.epsilon:
            raise ServiceRefused("the query has no answer (no records match)")
        spend = DPSpend(project_id=project_id, epsilon=query.epsilon,
                        description=f"dp {query.statistic} by {username}: {query.purpose}"[:500])
        session.add(spend)
        session.flush()
        receipt = receipts.sign({
            "spend_id": spend.id, "project": slug, "extract_version": version, "query": query.public(),
            "epsilon": query.epsilon, "result": result, "issued_at": dt.datetime.now(dt.UTC).isoformat(),
        })
        row = session.get(DPBudget, project_id)
        remaining = max(0.0, row.epsilon_total - row.epsilon_spent)
        audit.append(session, actor=username, action="dp.query", project=slug, subject=f"dp_spend:{spend.id}",
                     details={"statistic": query.statistic, "table": query.table, "epsilon": query.epsilon,
                              "extract_version": version, "remaining": remaining})
    return {"receipt": receipt, "remaining": remaining}
