"""Who may open which project workspace, decided from the registry's live state at every call.

The hub calls ``check_workspace`` at every server start: membership, approval, suspension,
revocation and the end date are checked now (not only by a nightly sweep), and so is the
extract on disk. Anything unexpected refuses: the function fails closed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave import audit
from enclave.board.states import MembershipState, ProjectState
from enclave.conditions import WorkspaceLimits, conditions_of
from enclave.registry.base import session_scope
from enclave.registry.models import Extract, Membership, Person, Project, WorkspaceEntitlement
from enclave.settings import get_settings


class Refused(Exception):
    """A workspace is refused; ``reason`` is safe to show to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WorkspaceGrant:
    """Everything a spawner needs to start one (user, project) workspace."""

    username: str
    project: str
    role: str
    extract_version: int
    extract_path: Path  # read-only inside the workspace
    uid: int  # per person, stable
    gid: int  # per project, stable
    home_path: Path  # the (project, user) private writable home
    expires_on: dt.date
    # The board's limits on the workspace (read cap, ingress, longest busy kernel), enforced by the
    # workspace's Jupyter server, which the spawner starts with them on its command line.
    limits: WorkspaceLimits = WorkspaceLimits()


@dataclass(frozen=True)
class ProjectSummary:
    """A project as its member sees it in the hub's list."""

    project: str
    title: str
    state: str
    role: str
    membership: str
    expires_on: dt.date | None
    extract_version: int | None
    can_open: bool
    reason: str  # why it cannot be opened ("" when it can)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def current_extract(session: Session, project: Project) -> Extract | None:
    """The newest ready extract of ``project`` (built by provisioning)."""
    return session.scalars(
        select(Extract)
        .where(Extract.project_id == project.id, Extract.state == "ready")
        .order_by(Extract.version.desc())
        .limit(1)
    ).first()


def _evaluate(session: Session, person: Person, project: Project, membership: Membership | None, today: dt.date) -> WorkspaceGrant:
    if not person.active:
        raise Refused(f"account {person.username} is disabled")
    if membership is None or membership.state == MembershipState.removed:
        raise Refused(f"{person.username} is not a member of project {project.slug}")
    if membership.state == MembershipState.pending:
        raise Refused(f"{person.username}'s membership of project {project.slug} awaits board approval")
    if membership.state != MembershipState.active:
        raise Refused(f"membership state {membership.state} does not give access")
    state = project.state
    if state == ProjectState.suspended:
        raise Refused(f"project {project.slug} is suspended")
    if state == ProjectState.revoked:
        raise Refused(f"project {project.slug} has been revoked")
    if state == ProjectState.expired:
        raise Refused(f"project {project.slug} has expired")
    if state != ProjectState.approved:
        raise Refused(f"project {project.slug} is not approved (state {state})")
    approval = project.current_approval
    if approval is None:
        raise Refused(f"project {project.slug} has no approval on record")
    if today > approval.expires_on:
        raise Refused(f"project {project.slug} expired on {approval.expires_on.isoformat()}")
    try:
        limits = conditions_of(approval).workspace
    except ValueError:  # pydantic's ValidationError: conditions that cannot be read open nothing
        raise Refused(f"project {project.slug}'s approval conditions cannot be read; ask the board") from None
    entitlement = session.scalars(
        select(WorkspaceEntitlement).where(
            WorkspaceEntitlement.project_id == project.id, WorkspaceEntitlement.person_id == person.id
        )
    ).first()
    if entitlement is None or not entitlement.active:
        raise Refused(f"{person.username} holds no workspace entitlement for project {project.slug}")
    extract = current_extract(session, project)
    if extract is None:
        raise Refused(f"project {project.slug} has no extract built yet")
    settings = get_settings()
    extracts_zone = settings.extracts.resolve()
    extract_path = (extracts_zone / extract.path).resolve()
    if not extract_path.is_relative_to(extracts_zone):
        raise Refused(f"extract {extract.version} of project {project.slug} lies outside the extracts zone")
    if not extract_path.is_dir():
        raise Refused(f"extract {extract.version} of project {project.slug} is missing on disk")
    return WorkspaceGrant(
        username=person.username,
        project=project.slug,
        role=membership.role,
        extract_version=extract.version,
        extract_path=extract_path,
        uid=person.posix_uid,
        gid=project.posix_gid,
        home_path=settings.workspaces / project.slug / person.username,
        expires_on=approval.expires_on,
        limits=limits,
    )


def _load(session: Session, username: str, project_slug: str) -> tuple[Person, Project, Membership | None]:
    person = session.scalars(select(Person).where(Person.username == username)).first()
    if person is None:
        raise Refused(f"unknown user {username}")
    project = session.scalars(select(Project).where(Project.slug == project_slug)).first()
    if project is None:
        raise Refused(f"no project named {project_slug}")
    membership = session.scalars(
        select(Membership).where(Membership.project_id == project.id, Membership.person_id == person.id)
    ).first()
    return person, project, membership


def check_workspace(
    username: str, project: str, *, url: str | None = None, today: dt.date | None = None, record: bool = True
) -> WorkspaceGrant:
    """The grant for ``username`` to open ``project``'s workspace, or ``Refused(reason)``.

    With ``record`` (the default, for spawns) the decision is appended to the audit chain.
    """
    today = today or today_utc()
    with session_scope(url, readonly=not record) as session:
        try:
            person, proj, membership = _load(session, username, project)
            grant = _evaluate(session, person, proj, membership, today)
        except Refused as refused:
            if record:
                audit.append(session, actor=username, action="workspace.refused", project=project,
                             subject=f"user:{username}", details={"reason": refused.reason})
                session.commit()
            raise
        if record:
            audit.append(session, actor=username, action="workspace.granted", project=project,
                         subject=f"user:{username}", details={"extract_version": grant.extract_version})
        return grant


def projects_for(username: str, *, url: str | None = None, today: dt.date | None = None) -> list[ProjectSummary]:
    """Every project ``username`` belongs to (pending memberships included), with whether it opens now."""
    today = today or today_utc()
    summaries: list[ProjectSummary] = []
    with session_scope(url, readonly=True) as session:
        person = session.scalars(select(Person).where(Person.username == username)).first()
        if person is None:
            return []
        memberships = session.scalars(
            select(Membership)
            .join(Project)
            .where(Membership.person_id == person.id, Membership.state != MembershipState.removed)
            .order_by(Project.slug)
        ).all()
        for membership in memberships:
            project = membership.project
            try:
                grant = _evaluate(session, person, project, membership, today)
                can_open, reason, version = True, "", grant.extract_version
            except Refused as refused:
                extract = current_extract(session, project)
                can_open, reason, version = False, refused.reason, (extract.version if extract else None)
            approval = project.current_approval
            summaries.append(
                ProjectSummary(
                    project=project.slug,
                    title=project.title,
                    state=project.state,
                    role=membership.role,
                    membership=membership.state,
                    expires_on=approval.expires_on if approval else None,
                    extract_version=version,
                    can_open=can_open,
                    reason=reason,
                )
            )
    return summaries
