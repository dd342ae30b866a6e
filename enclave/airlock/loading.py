"""Read the caller and a request out of the registry as the plain facts the rules take."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from enclave.airlock.errors import NotFound
from enclave.airlock.facts import Actor, OutputFacts, RequestFacts, ReviewFacts
from enclave.airlock.states import RequestState
from enclave.board.states import MembershipState, ProjectState
from enclave.registry.models import (
    Agency,
    Membership,
    Person,
    Project,
    ReleaseFile,
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


def facts_many(session: Session, reqs: list[ReleaseRequest], today: dt.date | None = None) -> dict[int, RequestFacts]:
    """``facts`` of many requests in a handful of queries (listings and queues): the same facts, batched."""
    if not reqs:
        return {}
    ids = [r.id for r in reqs]
    rounds = dict(session.execute(select(ReleaseSnapshot.request_id, func.max(ReleaseSnapshot.round))
                                  .where(ReleaseSnapshot.request_id.in_(ids)).group_by(ReleaseSnapshot.request_id)).all())
    files: dict[int, list] = {}  # plain rows, not ORM objects: a listing reads thousands of them
    for f in session.execute(select(ReleaseFile.id, ReleaseFile.request_id, ReleaseFile.name, ReleaseFile.exception_text)
                             .where(ReleaseFile.request_id.in_(ids))):
        files.setdefault(f.request_id, []).append(f)
    file_ids = [f.id for fs in files.values() for f in fs]
    latest = select(func.max(Verdict.id)).where(Verdict.file_id.in_(file_ids)).group_by(Verdict.file_id)
    verdicts = dict(session.execute(select(Verdict.file_id, Verdict.status).where(Verdict.id.in_(latest))).all()) if file_ids else {}
    names = dict(session.execute(select(Person.id, Person.username)).all())
    reviews: dict[int, list] = {}
    for r in session.scalars(select(Review).where(Review.request_id.in_(ids)).order_by(Review.id)):
        if r.round == rounds.get(r.request_id, 0):
            overridden = frozenset(n for n, d in (r.file_decisions or {}).items() if isinstance(d, dict) and d.get("override"))
            reviews.setdefault(r.request_id, []).append(ReviewFacts(names[r.reviewer_id], r.decision, overridden))
    approved: dict[int, set] = {}
    for request_id, round_, agency in session.execute(
        select(StewardApproval.request_id, StewardApproval.round, Agency.name)
        .join(Agency, StewardApproval.agency_id == Agency.id)
        .where(StewardApproval.request_id.in_(ids), StewardApproval.decision == "approve")
    ).all():
        if round_ == rounds.get(request_id, 0):
            approved.setdefault(request_id, set()).add(agency)
    projects = {p.id: p for p in session.scalars(select(Project).options(selectinload(Project.current_approval))
                                                 .where(Project.id.in_({r.project_id for r in reqs})))}
    source_agency = dict(session.execute(select(Source.name, Agency.name).join(Agency, Source.agency_id == Agency.id)).all())
    asking = set(session.scalars(select(Agency.name).where(Agency.steward_release_approval.is_(True))))
    active_members = set(session.execute(select(Membership.project_id, Membership.person_id).where(
        Membership.project_id.in_({r.project_id for r in reqs}), Membership.state == MembershipState.active)).all())
    out = {}
    for req in reqs:
        proj = projects[req.project_id]
        round_ = rounds.get(req.id, 0)
        approval = proj.current_approval
        agencies = {source_agency[s] for s in (approval.sources if approval else []) or [] if s in source_agency}
        outputs = tuple(
            OutputFacts(f.name, verdicts.get(f.id) if round_ else None, f.exception_text or None)
            for f in sorted(files.get(req.id, []), key=lambda f: f.name)
        )
        out[req.id] = RequestFacts(
            id=str(req.id), project=proj.slug, author=names[req.author_id], state=RequestState(req.state),
            outputs=outputs, reviews=tuple(reviews.get(req.id, [])), stewards_required=frozenset(agencies & asking),
            stewards_approved=frozenset(approved.get(req.id, set())), project_active=project_is_live(proj, today),
            author_active=(req.project_id, req.author_id) in active_members,
            extra={"round": round_},
        )
    return out
