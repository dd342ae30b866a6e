"""The board's actions: applications, review, votes, decisions and the project life cycle.

Each action takes the caller's session (one transaction, opened with the write lock) and the
caller's username, checks who (``permissions``) and when (``policies``), changes state through
the transition tables of ``states``, and appends an audit event in the same transaction.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from enclave import audit
from enclave.board import permissions as who
from enclave.board import policies as when
from enclave.board.errors import InvalidInput, NotAllowed, NotFound
from enclave.board.requests import AmendmentRequest, ApplicationRequest, Cohort, Conditions
from enclave.board.states import (
    ApplicationKind,
    ApplicationState,
    MembershipRole,
    MembershipState,
    ProjectState,
    Role,
    VoteChoice,
    check_application_transition,
    check_project_transition,
)
from enclave.people import get_person
from enclave.registry.models import (
    GID_BASE,
    Application,
    Approval,
    ConflictOfInterest,
    DPBudget,
    Membership,
    Person,
    Project,
    Source,
    Vote,
    WorkspaceEntitlement,
    utcnow,
)
from enclave.settings import get_settings


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# ---------------------------------------------------------------- look-ups
def get_project(session: Session, slug: str, lock: bool = False) -> Project:
    """The project called ``slug``; with ``lock`` its row is locked until the transaction ends.

    On SQLite the writer already holds the database lock (BEGIN IMMEDIATE); on PostgreSQL the
    row lock makes two concurrent actions on one project run one after the other.
    """
    query = select(Project).where(Project.slug == slug)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    project = session.scalars(query).first()
    if project is None:
        raise NotFound(f"no project named {slug!r}")
    return project


def get_application(session: Session, application_id: int, lock: bool = False) -> Application:
    """An application; with ``lock`` it and its project are locked until the transaction ends."""
    query = select(Application).where(Application.id == application_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    application = session.scalars(query).first()
    if application is None:
        raise NotFound(f"no application {application_id}")
    if lock:
        session.scalars(select(Project).where(Project.id == application.project_id).with_for_update()
                        .execution_options(populate_existing=True)).first()
    return application


def project_applications(session: Session, project: Project) -> list[Application]:
    return list(session.scalars(select(Application).where(Application.project_id == project.id).order_by(Application.id)))


def conflicted_ids(session: Session, project: Project) -> set[int]:
    return set(session.scalars(select(ConflictOfInterest.person_id).where(ConflictOfInterest.project_id == project.id)))


def _registered_sources(session: Session) -> set[str]:
    return set(session.scalars(select(Source.name)))


def _set_project_state(project: Project, target: ProjectState) -> None:
    check_project_transition(project.state, target)
    project.state = target.value
    project.state_changed_at = utcnow()


def _set_application_state(application: Application, target: ApplicationState) -> None:
    check_application_transition(application.state, target)
    application.state = target.value


def _researchers_of(session: Session, usernames: list[str], origin: str) -> list[Person]:
    people = []
    for username in usernames:
        try:
            person = get_person(session, username)
        except NotFound:
            raise InvalidInput(f"{origin}: researchers: no person {username!r} in the registry") from None
        if not who.has_role(person, Role.researcher):
            raise InvalidInput(f"{origin}: researchers: {username} does not hold the researcher role")
        people.append(person)
    return people


def _ensure_membership(session: Session, project: Project, person: Person, role: MembershipRole) -> Membership:
    membership = session.scalars(
        select(Membership).where(Membership.project_id == project.id, Membership.person_id == person.id)
    ).first()
    if membership is None:
        membership = Membership(project_id=project.id, person_id=person.id, role=role.value, state=MembershipState.pending.value)
        session.add(membership)
        project.memberships.append(membership)
    elif membership.state == MembershipState.removed:
        membership.state = MembershipState.pending.value
    return membership


# ---------------------------------------------------------------- applications
def apply(session: Session, actor: str, request: ApplicationRequest, today: dt.date | None = None) -> Application:
    """A researcher applies for a new project; they become its lead."""
    applicant = get_person(session, actor)
    who.check_can_apply(applicant)
    when.check_dates_sensible(request.start_date, request.end_date, today or today_utc())
    when.check_known_sources(request.sources, _registered_sources(session))
    if session.scalars(select(Project.id).where(Project.slug == request.project)).first() is not None:
        raise NotAllowed(f"a project named {request.project} already exists")
    names = [actor] + [u for u in dict.fromkeys(request.researchers) if u != actor]
    researchers = _researchers_of(session, names, f"application {request.project}")
    last_gid = session.scalar(select(func.max(Project.posix_gid)))
    project = Project(slug=request.project, title=request.title, lead_id=applicant.id, state=ProjectState.proposed.value,
                      posix_gid=(last_gid or GID_BASE) + 1)
    session.add(project)
    session.flush()
    for person in researchers:
        _ensure_membership(session, project, person, MembershipRole.lead if person.id == applicant.id else MembershipRole.researcher)
    application = _new_application(session, project, applicant, ApplicationKind.initial, request, names, previous=None)
    audit.append(session, actor=actor, action="application.submitted", project=project.slug,
                 subject=f"application:{application.id}",
                 details={"kind": "initial", "sources": request.sources, "researchers": names, "k": request.k,
                          "end_date": request.end_date})
    return application


def _new_application(session: Session, project: Project, applicant: Person, kind: ApplicationKind, request: ApplicationRequest,
                     researchers: list[str], previous: Application | None) -> Application:
    application = Application(
        project_id=project.id, kind=kind.value, state=ApplicationState.submitted.value, submitted_by_id=applicant.id,
        previous_id=previous.id if previous else None, purpose=request.purpose, use_case=request.use_case,
        sources=list(request.sources), variables={s: list(v) for s, v in request.variables.items()},
        cohort=request.cohort.model_dump(), k=request.k, dp_epsilon=request.dp_epsilon,
        start_date=request.start_date, end_date=request.end_date, researchers=researchers,
    )
    session.add(application)
    session.flush()
    return application


def resubmit(session: Session, actor: str, application_id: int, request: ApplicationRequest, today: dt.date | None = None) -> Application:
    """The applicant answers a request for changes with a new application (a fresh vote)."""
    previous = get_application(session, application_id, lock=True)
    person = get_person(session, actor)
    who.check_is_applicant(person, previous)
    when.check_resubmittable(previous)
    if previous.kind != ApplicationKind.initial:
        raise NotAllowed(f"application {previous.id} is an amendment: file a new amendment instead")
    project = previous.project
    if request.project != project.slug:
        raise InvalidInput(f"resubmission: project must stay {project.slug}")
    when.check_no_open_application(project, project_applications(session, project))
    when.check_dates_sensible(request.start_date, request.end_date, today or today_utc())
    when.check_known_sources(request.sources, _registered_sources(session))
    names = [actor] + [u for u in dict.fromkeys(request.researchers) if u != actor]
    researchers = _researchers_of(session, names, f"application {request.project}")
    for membership in project.memberships:
        if membership.state == MembershipState.pending and membership.person.username not in names:
            membership.state = MembershipState.removed.value
    for person_ in researchers:
        _ensure_membership(session, project, person_, MembershipRole.lead if person_.id == project.lead_id else MembershipRole.researcher)
    application = _new_application(session, project, person, ApplicationKind(previous.kind), request, names, previous)
    audit.append(session, actor=actor, action="application.resubmitted", project=project.slug,
                 subject=f"application:{application.id}", details={"previous": previous.id})
    return application


def withdraw(session: Session, actor: str, application_id: int) -> Application:
    """The applicant withdraws an application that is not decided yet."""
    application = get_application(session, application_id, lock=True)
    who.check_is_applicant(get_person(session, actor), application)
    _set_application_state(application, ApplicationState.withdrawn)
    project = application.project
    if project.state == ProjectState.proposed:
        _set_project_state(project, ProjectState.withdrawn)
    for membership in project.memberships:
        if membership.state == MembershipState.pending:
            membership.state = MembershipState.removed.value
    audit.append(session, actor=actor, action="application.withdrawn", project=project.slug, subject=f"application:{application.id}")
    return application


def amend(session: Session, actor: str, project_slug: str, amendment: AmendmentRequest, today: dt.date | None = None) -> Application:
    """The lead asks to change an approved project; nothing changes until the board approves."""
    project = get_project(session, project_slug, lock=True)
    who.check_is_project_lead(get_person(session, actor), project)
    today = today or today_utc()
    when.check_amendable(project, today)
    when.check_no_open_application(project, project_applications(session, project))
    approval = project.current_approval
    sources = list(dict.fromkeys([*approval.sources, *amendment.add_sources]))
    when.check_known_sources(sources, _registered_sources(session))
    variables = {s: list(v) for s, v in approval.variables.items()}
    for source, names in amendment.add_variables.items():
        variables[source] = list(dict.fromkeys([*variables.get(source, []), *names]))
    origin = f"amendment of {project.slug}"
    new_people = _researchers_of(session, [u for u in dict.fromkeys(amendment.add_researchers) if u not in approval.researchers], origin)
    researchers = [*approval.researchers, *(p.username for p in new_people)]
    latest_approved = approval.application
    end_date = amendment.end_date or approval.expires_on
    if end_date < approval.expires_on:
        raise InvalidInput(f"{origin}: end_date {end_date} would shorten the project; ask the board to change it instead")
    try:
        request = ApplicationRequest(
            project=project.slug, title=project.title, purpose=latest_approved.purpose + f"\n\nAmendment: {amendment.reason}",
            use_case=latest_approved.use_case, researchers=researchers, sources=sources, variables=variables,
            cohort=Cohort.model_validate(approval.cohort), k=approval.k,
            dp_epsilon=amendment.dp_epsilon if amendment.dp_epsilon is not None else approval.dp_epsilon,
            start_date=latest_approved.start_date, end_date=end_date,
        )
    except ValueError as error:
        raise InvalidInput(f"{origin}: {error}") from None
    for person in new_people:
        _ensure_membership(session, project, person, MembershipRole.researcher)
    application = _new_application(session, project, get_person(session, actor), ApplicationKind.amendment, request, researchers, None)
    audit.append(session, actor=actor, action="application.submitted", project=project.slug, subject=f"application:{application.id}",
                 details={"kind": "amendment", "reason": amendment.reason, "add_researchers": [p.username for p in new_people],
                          "add_sources": amendment.add_sources, "add_variables": amendment.add_variables,
                          "end_date": end_date, "dp_epsilon": request.dp_epsilon})
    return application


# ---------------------------------------------------------------- review and votes
def open_review(session: Session, actor: str, application_id: int) -> Application:
    """A board member puts a submitted application before the board."""
    application = get_application(session, application_id, lock=True)
    member = get_person(session, actor)
    _check_may_sit(session, member, application)  # a recused member may not put their own application before the board
    when.check_open_for_review(application)
    _set_application_state(application, ApplicationState.under_review)
    audit.append(session, actor=actor, action="application.review_opened", project=application.project.slug,
                 subject=f"application:{application.id}")
    return application


def declare_conflict(session: Session, actor: str, project_slug: str, reason: str, member: str | None = None) -> ConflictOfInterest:
    """Record a board member's conflict of interest on a project: they are recused from it."""
    if not reason.strip():
        raise InvalidInput("a conflict of interest needs a reason")
    project = get_project(session, project_slug, lock=True)
    actor_person = get_person(session, actor)
    member_person = get_person(session, member or actor)
    who.check_can_declare_conflict_for(actor_person, member_person)
    existing = session.scalars(select(ConflictOfInterest).where(
        ConflictOfInterest.project_id == project.id, ConflictOfInterest.person_id == member_person.id)).first()
    if existing is not None:
        return existing
    conflict = ConflictOfInterest(project_id=project.id, person_id=member_person.id, reason=reason)
    session.add(conflict)
    session.flush()
    audit.append(session, actor=actor, action="conflict.declared", project=project.slug,
                 subject=f"user:{member_person.username}", details={"reason": reason})
    return conflict


def _check_may_sit(session: Session, member: Person, application: Application) -> None:
    who.check_is_board_member(member)
    who.check_no_declared_conflict(member, application.project, conflicted_ids(session, application.project))
    who.check_not_on_project(member, application.project, application)


def vote(session: Session, actor: str, application_id: int, choice: str, comment: str = "") -> Vote:
    """A board member who is not recused votes once on an application under review."""
    try:
        parsed = VoteChoice(choice)
    except ValueError:
        raise InvalidInput(f"vote must be one of {', '.join(c.value for c in VoteChoice)}, not {choice!r}") from None
    application = get_application(session, application_id, lock=True)
    member = get_person(session, actor)
    _check_may_sit(session, member, application)
    when.check_open_for_votes(application)
    when.check_not_voted_yet(application, member.id)
    cast = Vote(application_id=application.id, voter_id=member.id, choice=parsed.value, comment=comment)
    session.add(cast)
    application.votes.append(cast)
    try:
        session.flush()  # the unique (application, voter) constraint is the last line of defence
    except IntegrityError:
        raise NotAllowed(f"this member has already voted on application {application.id}") from None
    audit.append(session, actor=actor, action="vote.cast", project=application.project.slug,
                 subject=f"application:{application.id}", details={"choice": parsed.value})
    return cast


def tally(session: Session, application: Application) -> when.Tally:
    """Count an application's votes under the configured quorum and majority."""
    settings = get_settings()
    project = application.project
    conflicted = conflicted_ids(session, project)
    eligible = set()
    for v in application.votes:
        person = v.voter
        try:
            who.check_is_board_member(person)
            who.check_no_declared_conflict(person, project, conflicted)
            who.check_not_on_project(person, project, application)
        except who.NotPermitted:
            continue
        eligible.add(person.id)
    return when.count_votes(application.votes, eligible, settings.board_quorum, settings.board_majority)


@dataclass(frozen=True)
class Decision:
    application: Application
    outcome: ApplicationState
    tally: when.Tally
    approval: Approval | None


def _final_conditions(application: Application, conditions: Conditions | None) -> dict:
    conditions = conditions or Conditions()
    when.check_conditions_within_request(conditions, application)
    sources = conditions.sources if conditions.sources is not None else list(application.sources)
    variables = conditions.variables if conditions.variables is not None else application.variables
    variables = {s: list(v) for s, v in variables.items() if s in sources}
    cohort = conditions.cohort.model_dump() if conditions.cohort is not None else dict(application.cohort)
    absent = set(cohort.get("sources_present") or []) - set(sources)
    if absent:
        raise NotAllowed(f"conditions keep cohort.sources_present {sorted(absent)} but drop those sources")
    return {
        "sources": sources, "variables": variables, "cohort": cohort,
        "k": conditions.k if conditions.k is not None else application.k,
        "dp_epsilon": conditions.dp_epsilon if conditions.dp_epsilon is not None else application.dp_epsilon,
        "expires_on": conditions.expires_on or application.end_date, "notes": conditions.notes,
    }


def decide(session: Session, actor: str, application_id: int, conditions: Conditions | None = None, note: str = "",
           today: dt.date | None = None) -> Decision:
    """A board member closes the vote; the outcome is what the counted votes carry.

    An approval records its conditions (the application's request, narrowed by ``conditions``),
    activates the approved members and their workspace entitlements and sets the DP budget.
    """
    application = get_application(session, application_id, lock=True)
    member = get_person(session, actor)
    _check_may_sit(session, member, application)
    when.check_open_for_votes(application)
    counted = tally(session, application)
    when.check_quorum(counted)
    outcome = counted.outcome
    assert outcome is not None  # quorum checked above
    project = application.project
    approval = None
    if outcome == ApplicationState.approved:
        final = _final_conditions(application, conditions)
        if final["expires_on"] < (today or today_utc()):
            raise NotAllowed(f"the approval would expire on {final['expires_on']}, already past")
        _set_application_state(application, outcome)
        approval = Approval(project_id=project.id, application_id=application.id, decided_by_id=member.id,
                            researchers=list(application.researchers), **final)
        session.add(approval)
        session.flush()
        if project.state == ProjectState.proposed:
            _set_project_state(project, ProjectState.approved)
        project.current_approval_id = approval.id
        project.current_approval = approval
        _admit_members(session, project, approval)
        _set_budget(session, project, approval.dp_epsilon)
    else:
        _set_application_state(application, outcome)
        if outcome == ApplicationState.rejected and project.state == ProjectState.proposed:
            _set_project_state(project, ProjectState.rejected)
            for membership in project.memberships:
                membership.state = MembershipState.removed.value
        elif application.kind == ApplicationKind.amendment:
            # People added by a refused amendment stay out of the project.
            for membership in project.memberships:
                if membership.state == MembershipState.pending:
                    membership.state = MembershipState.removed.value
    application.decided_at = utcnow()
    application.decision_note = note
    details = {"outcome": outcome.value, "approve": counted.approve, "reject": counted.reject, "changes": counted.changes,
               "not_counted": counted.not_counted, "quorum": counted.quorum, "majority": counted.majority}
    if approval is not None:
        details["conditions"] = {"sources": approval.sources, "variables": approval.variables, "cohort": approval.cohort,
                                 "k": approval.k, "dp_epsilon": approval.dp_epsilon, "expires_on": approval.expires_on,
                                 "notes": approval.notes}
    audit.append(session, actor=actor, action=f"application.{outcome.value}", project=project.slug,
                 subject=f"application:{application.id}", details=details)
    return Decision(application, outcome, counted, approval)


def _admit_members(session: Session, project: Project, approval: Approval) -> None:
    approved = set(approval.researchers)
    for membership in project.memberships:
        if membership.person.username in approved and membership.state != MembershipState.removed:
            if membership.state == MembershipState.pending:
                membership.state = MembershipState.active.value
                membership.approval_id = approval.id
            if project.state == ProjectState.approved:  # a suspended project's members wait for reinstatement
                _grant_entitlement(session, project, membership.person)


def _grant_entitlement(session: Session, project: Project, person: Person) -> None:
    entitlement = session.scalars(select(WorkspaceEntitlement).where(
        WorkspaceEntitlement.project_id == project.id, WorkspaceEntitlement.person_id == person.id)).first()
    if entitlement is None:
        session.add(WorkspaceEntitlement(project_id=project.id, person_id=person.id, active=True))
    elif not entitlement.active:
        entitlement.active, entitlement.ended_at, entitlement.ended_reason = True, None, ""


def _end_entitlements(session: Session, project: Project, reason: str, person_id: int | None = None) -> None:
    query = select(WorkspaceEntitlement).where(WorkspaceEntitlement.project_id == project.id, WorkspaceEntitlement.active.is_(True))
    if person_id is not None:
        query = query.where(WorkspaceEntitlement.person_id == person_id)
    for entitlement in session.scalars(query):
        entitlement.active, entitlement.ended_at, entitlement.ended_reason = False, utcnow(), reason


def _set_budget(session: Session, project: Project, epsilon_total: float) -> None:
    budget = session.get(DPBudget, project.id)
    if budget is None:
        session.add(DPBudget(project_id=project.id, epsilon_total=epsilon_total, epsilon_spent=0.0))
    else:
        budget.epsilon_total, budget.updated_at = epsilon_total, utcnow()


# ---------------------------------------------------------------- life cycle
def suspend(session: Session, actor: str, project_slug: str, reason: str) -> Project:
    """The board suspends an approved project: every workspace closes until reinstated."""
    project = get_project(session, project_slug, lock=True)
    who.check_can_change_project_standing(get_person(session, actor))
    _require_reason(reason)
    _set_project_state(project, ProjectState.suspended)
    _end_entitlements(session, project, "suspended")
    audit.append(session, actor=actor, action="project.suspended", project=project.slug, details={"reason": reason})
    return project


def reinstate(session: Session, actor: str, project_slug: str, reason: str, today: dt.date | None = None) -> Project:
    """The board lifts a suspension, if the project has not passed its end date."""
    project = get_project(session, project_slug, lock=True)
    who.check_can_change_project_standing(get_person(session, actor))
    _require_reason(reason)
    check_project_transition(project.state, ProjectState.approved)
    when.check_suspended(project)
    when.check_not_past_end(project, today or today_utc())
    _set_project_state(project, ProjectState.approved)
    for membership in project.memberships:
        if membership.state == MembershipState.active:
            _grant_entitlement(session, project, membership.person)
    audit.append(session, actor=actor, action="project.reinstated", project=project.slug, details={"reason": reason})
    return project


def revoke(session: Session, actor: str, project_slug: str, reason: str) -> Project:
    """The board revokes a project for good: access ends at once and it cannot be reinstated."""
    project = get_project(session, project_slug, lock=True)
    who.check_can_change_project_standing(get_person(session, actor))
    _require_reason(reason)
    _set_project_state(project, ProjectState.revoked)
    _end_entitlements(session, project, "revoked")
    for application in project_applications(session, project):
        if application.state in (ApplicationState.submitted, ApplicationState.under_review):
            _set_application_state(application, ApplicationState.withdrawn)
    audit.append(session, actor=actor, action="project.revoked", project=project.slug, details={"reason": reason})
    return project


def expire(session: Session, actor: str, project_slug: str, today: dt.date | None = None) -> Project:
    """A project past its end date expires (entitlements already refuse it from that day)."""
    project = get_project(session, project_slug, lock=True)
    who.check_can_change_project_standing(get_person(session, actor))
    today = today or today_utc()
    when.check_due_for_expiry(project, today)
    _set_project_state(project, ProjectState.expired)
    _end_entitlements(session, project, "expired")
    audit.append(session, actor=actor, action="project.expired", project=project.slug,
                 details={"expires_on": project.current_approval.expires_on, "today": today})
    return project


def expire_due(session: Session, actor: str, today: dt.date | None = None) -> list[str]:
    """Expire every live project whose end date has passed; returns their names."""
    today = today or today_utc()
    due = session.scalars(
        select(Project).join(Approval, Project.current_approval_id == Approval.id)
        .where(Project.state.in_([ProjectState.approved.value, ProjectState.suspended.value]), Approval.expires_on < today)
        .order_by(Project.slug)
    ).all()
    return [expire(session, actor, project.slug, today).slug for project in due]


def remove_member(session: Session, actor: str, project_slug: str, username: str, reason: str) -> None:
    """The lead (or an admin) removes a researcher at once; removal needs no board vote."""
    project = get_project(session, project_slug, lock=True)
    actor_person = get_person(session, actor)
    if not who.has_role(actor_person, Role.admin):
        who.check_is_project_lead(actor_person, project)
    _require_reason(reason)
    person = get_person(session, username)
    if person.id == project.lead_id:
        raise NotAllowed("the project lead cannot be removed; the board can revoke the project")
    membership = next((m for m in project.memberships if m.person_id == person.id and m.state != MembershipState.removed), None)
    if membership is None:
        raise NotFound(f"{username} is not a member of project {project.slug}")
    membership.state = MembershipState.removed.value
    _end_entitlements(session, project, "removed", person.id)
    audit.append(session, actor=actor, action="membership.removed", project=project.slug, subject=f"user:{username}",
                 details={"reason": reason})


def _require_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise InvalidInput("a reason is required and goes into the audit chain")
