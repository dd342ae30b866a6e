"""Reviews of a checked request by independent disclosure reviewers, and agency stewards' approvals.

Each decision is one row written in an IMMEDIATE transaction that also re-reads every earlier
review and moves the request's state from that fresh count, so two reviewers deciding at the
same moment serialise: neither review is lost, none is counted twice (a unique key on
request, reviewer and round backs this up in the database).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from enclave import audit
from enclave.airlock import loading
from enclave.airlock import permissions as who
from enclave.airlock import policies as when
from enclave.airlock.errors import AirlockError, Refused, require
from enclave.airlock.facts import RequestFacts, ReviewFacts
from enclave.airlock.verification import require_intact_snapshot, tamper_alarm
from enclave.airlock.states import RequestState, can_move
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Agency, Review, StewardApproval
from enclave.settings import get_settings

DECISIONS = ("approve", "return", "reject")


def _next_state(facts: RequestFacts, decision: str) -> RequestState:
    if decision == "return":
        return RequestState.returned
    if decision == "reject":
        return RequestState.rejected
    if when.ready_for_approval(facts, get_settings().reviewers_required):
        return RequestState.approved
    return RequestState.partially_reviewed


def _move(req, facts: RequestFacts, target: RequestState) -> None:
    if not can_move(facts.state, target):
        raise Refused("legal_transition", f"a {facts.state.value} request cannot become {target.value}")
    req.state = target.value
    req.state_changed_at = dt.datetime.now(dt.UTC)


def review(
    username: str | None,
    request_id: int,
    decision: str,
    comments: str = "",
    *,
    overrides: list[str] | tuple[str, ...] = (),
    file_comments: dict[str, str] | None = None,
    url: str | None = None,
) -> RequestState:
    """Record one reviewer's decision (approve, return with comments, reject); returns the request's new state.

    Approving a request whose gate failed an output requires naming that output in
    ``overrides``, and is only possible when the researcher gave an exception text for it.
    """
    if decision not in DECISIONS:
        raise AirlockError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if decision in {"return", "reject"} and not comments.strip():
        raise AirlockError(f"a '{decision}' decision needs comments for the researcher")
    url = ensure_schema(url)
    with tamper_alarm(url, username), session_scope(url) as session:
        person, actor = loading.actor(session, username)
        req = loading.request(session, request_id)
        facts = loading.facts(session, req)
        require(who.may_review_request, actor, facts)
        require(when.request_is_under_review, facts)
        require(when.project_is_active, facts)
        require(when.reviewer_has_not_reviewed, facts, person.username)
        require_intact_snapshot(session, req, facts.project)
        names = {o.name for o in facts.outputs}
        unknown = set(overrides) - names
        if unknown:
            raise AirlockError(f"overrides name outputs not in request {request_id}: {sorted(unknown)}")
        mine = ReviewFacts(person.username, decision, frozenset(overrides))
        require(when.approval_overrides_every_failed_output, facts, mine)
        round_ = facts.extra["round"]
        verdicts = {o.name: o.verdict for o in facts.outputs}
        file_decisions = {
            name: {
                "decision": "approve" if decision == "approve" else decision,
                "override": name in set(overrides),
                "gate": verdicts.get(name),
                "comment": (file_comments or {}).get(name, ""),
            }
            for name in sorted(names)
        }
        session.add(Review(request_id=req.id, reviewer_id=person.id, round=round_, decision=decision,
                           comments=comments.strip(), file_decisions=file_decisions))
        session.flush()
        updated = loading.facts(session, req)
        target = _next_state(updated, decision)
        _move(req, facts, target)
        audit.append(session, actor=person.username, action=f"release.review_{decision}", project=facts.project,
                     subject=f"request:{req.id}",
                     details={"round": round_, "overrides": sorted(overrides), "state": target.value})
        return target


def steward_decision(
    username: str | None, request_id: int, agency: str, decision: str, comments: str = "", *, url: str | None = None
) -> RequestState:
    """An agency steward approves (or returns, or rejects) outputs of a request that use the agency's data."""
    if decision not in DECISIONS:
        raise AirlockError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    url = ensure_schema(url)
    with tamper_alarm(url, username), session_scope(url) as session:
        person, actor = loading.actor(session, username)
        req = loading.request(session, request_id)
        facts = loading.facts(session, req)
        require(who.may_approve_for_agency, actor, facts, agency)
        require(when.request_is_under_review, facts)
        require(when.project_is_active, facts)
        if agency not in facts.stewards_required:
            raise Refused("steward_approval_requested", f"agency {agency!r} has not asked to approve outputs of this project")
        require_intact_snapshot(session, req, facts.project)
        agency_row = session.scalars(select(Agency).where(Agency.name == agency)).one()
        round_ = facts.extra["round"]
        exists = session.scalars(select(StewardApproval).where(
            StewardApproval.request_id == req.id, StewardApproval.round == round_, StewardApproval.agency_id == agency_row.id
        )).first()
        if exists is not None:
            raise Refused("steward_has_not_decided", f"agency {agency!r} already decided on this round of the request")
        session.add(StewardApproval(request_id=req.id, round=round_, agency_id=agency_row.id, steward_id=person.id,
                                    decision=decision, comments=comments.strip()))
        session.flush()
        updated = loading.facts(session, req)
        if decision == "approve":
            target = RequestState.approved if when.ready_for_approval(updated, get_settings().reviewers_required) else facts.state
        else:
            target = _next_state(updated, decision)
        if target != facts.state:
            _move(req, facts, target)
        audit.append(session, actor=person.username, action=f"release.steward_{decision}", project=facts.project,
                     subject=f"request:{req.id}", details={"agency": agency, "round": round_, "state": target.value})
        return target
