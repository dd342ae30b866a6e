"""Read the caller and a request out of the registry as the plain facts the rules take."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from enclave.airlock.errors import NotFound
from enclave.airlock.facts import Actor, OutputFacts, RequestFacts, ReviewFacts
from enclave.airlock.states import RequestState
from enclave.board.states import MembershipState, ProjectState
from enclave.registry.models import (
    Agency,
    Membership,
    Person,
    Project,
    ReleaseRequest,
    ReleaseSnapshot,
    Review,
    Source,
    SourceSteward,
    StewardApproval,
    Verdict,
)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def person(session: Session, username: str | None) -> Person:
    if not username:
        raise NotFound("no caller identity: set ENCLAVE_USER (or `user` in enclave.toml)")
    found = session.scalars(select(Person).where(Person.username == username)).first()
    if found is None or not found.active:
        raise NotFound(f"unknown or disabled user {username!r}")
    return found


def actor(session: Session, username: str | None) -> tuple[Person, Actor]:
    """The caller as a registry row and as facts: roles, active project memberships, stewarded agencies."""
    who = person(session, username)
    memberships = session.execute(
        select(Project.slug, Membership.state).join(Membership, Membership.project_id == Project.id).where(
            Membership.person_id == who.id
        )
    ).all()
    projects = [slug for slug, state in memberships if state != MembershipState.removed]
    active = [slug for slug, state in memberships if state == MembershipState.active]
    # A removed member is never independent of the project: kept apart for the independence rules.
    ever = [slug for slug, _ in memberships]
    agencies = session.scalars(
        select(Agency.name)
        .join(Source, Source.agency_id == Agency.id)
        .join(SourceSteward, SourceSteward.source_id == Source.id)
        .where(SourceSteward.person_id == who.id)
    ).all()
    # A pending member is still on the project's side of the wall: excluded from reviewing it.
    return who, Actor(who.username, frozenset(who.role_names), frozenset(projects), frozenset(agencies), frozenset(active),
                      frozenset(ever))


def project(session: Session, slug: str) -> Project:
    found = session.scalars(select(Project).where(Project.slug == slug)).first()
    if found is None:
        raise NotFound(f"no project named {slug!r}")
    return found


def project_is_live(proj: Project, today: dt.date | None = None) -> bool:
    """Approved, with a current approval whose end date has not passed (checked now, not by a cron)."""
    approval = proj.current_approval
    return (
        proj.state == ProjectState.approved
        and approval is not None
        and (today or today_utc()) <= approval.expires_on
    )


def request(session: Session, request_id: int) -> ReleaseRequest:
    found = session.get(ReleaseRequest, int(request_id))
    if found is None:
        raise NotFound(f"no release request {request_id}")
    return found


def current_round(session: Session, request_id: int) -> int:
    return int(session.scalar(select(func.max(ReleaseSnapshot.round)).where(ReleaseSnapshot.request_id == request_id)) or 0)


def snapshot(session: Session, request_id: int, round_: int) -> ReleaseSnapshot | None:
    return session.scalars(
        select(ReleaseSnapshot).where(ReleaseSnapshot.request_id == request_id, ReleaseSnapshot.round == round_)
    ).first()


def agencies_of(session: Session, proj: Project) -> list[Agency]:
    """Agencies whose sources the project's current approval uses."""
    approval = proj.current_approval
    if approval is None or not approval.sources:
        return []
    return list(
        session.scalars(
            select(Agency).join(Source, Source.agency_id == Agency.id).where(Source.name.in_(approval.sources)).distinct()
        ).all()
    )


def latest_verdict(session: Session, file_id: int) -> Verdict | None:
    return session.scalars(select(Verdict).where(Verdict.file_id == file_id).order_by(Verdict.id.desc()).limit(1)).first()


def facts(session: Session, req: ReleaseRequest, today: dt.date | None = None) -> RequestFacts:
    """Everything the rules need about ``req`` in its current round."""
    proj = session.get(Project, req.project_id)
    author = session.get(Person, req.author_id)
    round_ = current_round(session, req.id)
    outputs = []
    for f in sorted(req.files, key=lambda f: f.name):
        verdict = latest_verdict(session, f.id) if round_ else None
        exceptionable = bool(verdict is not None and isinstance(verdict.details, dict) and verdict.details.get("exceptionable") is True)
        outputs.append(OutputFacts(f.name, verdict.status if verdict else None, f.exception_text or None, exceptionable))
    reviews = []
    for r in session.scalars(select(Review).where(Review.request_id == req.id, Review.round == round_)).all():
        overridden = frozenset(n for n, d in (r.file_decisions or {}).items() if isinstance(d, dict) and d.get("override"))
        reviews.append(ReviewFacts(session.get(Person, r.reviewer_id).username, r.decision, overridden))
    required = frozenset(a.name for a in agencies_of(session, proj) if a.steward_release_approval)
    approved = frozenset(
        session.scalars(
            select(Agency.name)
            .join(StewardApproval, StewardApproval.agency_id == Agency.id)
            .where(StewardApproval.request_id == req.id, StewardApproval.round == round_,
                   StewardApproval.decision == "approve")
        ).all()
    )
    return RequestFacts(
        id=str(req.id),
        project=proj.slug,
        author=author.username,
        state=RequestState(req.state),
        outputs=tuple(outputs),
        reviews=tuple(reviews),
        stewards_required=required,
        stewards_approved=approved,
        project_active=project_is_live(proj, today),
        author_active=session.scalar(select(Membership.id).where(
            Membership.project_id == proj.id, Membership.person_id == author.id,
            Membership.state == MembershipState.active)) is not None,
        extra={"round": round_},
    )
