"""Read-only views of release requests for the CLI and the console: what a reader may see."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from enclave.airlock import loading
from enclave.airlock import permissions as who
from enclave.airlock.errors import require
from enclave.airlock.states import UNDER_REVIEW
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Person, ReleaseRequest, Review


def describe(username: str | None, request_id: int, *, url: str | None = None) -> dict[str, Any]:
    """A request with its outputs, context, exceptions, gate verdicts (per output and per cell) and reviews."""
    url = ensure_schema(url)
    with session_scope(url, readonly=True) as session:
        _, actor = loading.actor(session, username)
        req = loading.request(session, request_id)
        facts = loading.facts(session, req)
        require(who.may_read_request, actor, facts)
        round_ = facts.extra["round"]
        files = []
        for f in sorted(req.files, key=lambda f: f.name):
            verdict = loading.latest_verdict(session, f.id) if round_ else None
            files.append({
                "name": f.name, "context": f.context, "exception": f.exception_text, "sha256": f.sha256, "size": f.size,
                "verdict": verdict.status if verdict else None,
                "reasons": verdict.reasons if verdict else [],
                "details": verdict.details if verdict else {},
            })
        reviews = [
            {"reviewer": session.get(Person, r.reviewer_id).username, "round": r.round, "decision": r.decision,
             "comments": r.comments, "files": r.file_decisions}
            for r in session.scalars(select(Review).where(Review.request_id == req.id).order_by(Review.id)).all()
        ]
        return {
            "id": req.id, "project": facts.project, "author": facts.author, "title": req.title, "state": req.state,
            "round": round_, "files": files, "reviews": reviews,
            "stewards_required": sorted(facts.stewards_required), "stewards_approved": sorted(facts.stewards_approved),
            "project_active": facts.project_active,
        }


def listing(username: str | None, *, project: str | None = None, queue: bool = False, url: str | None = None) -> list[dict[str, Any]]:
    """Requests the caller may read (``queue``: only those waiting for the caller's review)."""
    url = ensure_schema(url)
    out = []
    with session_scope(url, readonly=True) as session:
        person, actor = loading.actor(session, username)
        query = select(ReleaseRequest).order_by(ReleaseRequest.id)
        if project:
            query = query.where(ReleaseRequest.project_id == loading.project(session, project).id)
        reqs = session.scalars(query).all()
        batched = loading.facts_many(session, reqs)  # the facts of every request in a few queries
        for req in reqs:
            facts = batched[req.id]
            if not who.may_read_request(actor, facts):
                continue
            waiting_for_review = who.may_review_request(actor, facts) and all(
                r.reviewer != person.username for r in facts.reviews)
            waiting_for_steward = any(
                who.may_approve_for_agency(actor, facts, agency)
                for agency in facts.stewards_required - facts.stewards_approved)
            if queue and not (facts.state in UNDER_REVIEW and (waiting_for_review or waiting_for_steward)):
                continue
            verdicts = {status: sum(o.verdict == status for o in facts.outputs) for status in ("pass", "review", "fail")}
            out.append({"id": req.id, "project": facts.project, "author": facts.author, "state": req.state,
                        "title": req.title, "outputs": len(facts.outputs), "reviews": len(facts.reviews),
                        "verdicts": verdicts, "submitted_at": req.submitted_at})
    return out
