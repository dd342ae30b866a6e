"""Who may act: one small rule per function, each raising ``NotPermitted`` with the reason.

Rules here look only at the person and their relation to the object (roles, authorship,
membership, declared conflicts); when an action is allowed by state lives in ``policies``.
"""
from __future__ import annotations

from collections.abc import Iterable

from enclave.board.errors import NotPermitted
from enclave.board.states import MembershipState, Role
from enclave.registry.models import Application, Person, Project


def has_role(person: Person, role: Role) -> bool:
    """True when an active person holds ``role``."""
    return person.active and role.value in person.role_names


def check_active(person: Person) -> None:
    """A disabled account may do nothing."""
    if not person.active:
        raise NotPermitted(f"account {person.username} is disabled")


def check_can_apply(person: Person) -> None:
    """Only researchers may apply for a project."""
    check_active(person)
    if not has_role(person, Role.researcher):
        raise NotPermitted(f"{person.username} is not a researcher and cannot apply for a project")


def check_is_applicant(person: Person, application: Application) -> None:
    """Only the person who submitted an application may resubmit or withdraw it."""
    if application.submitted_by_id != person.id:
        raise NotPermitted(f"{person.username} did not submit application {application.id}")


def check_is_project_lead(person: Person, project: Project) -> None:
    """Only the project lead may file an amendment."""
    check_active(person)
    if project.lead_id != person.id:
        raise NotPermitted(f"{person.username} is not the lead of project {project.slug}")


def check_is_board_member(person: Person) -> None:
    """Only board members review, vote on and decide applications."""
    check_active(person)
    if not has_role(person, Role.board_member):
        raise NotPermitted(f"{person.username} is not a board member")


def check_no_declared_conflict(person: Person, project: Project, conflicted_ids: Iterable[int]) -> None:
    """A board member who declared a conflict of interest on the project is recused."""
    if person.id in set(conflicted_ids):
        raise NotPermitted(f"{person.username} declared a conflict of interest on project {project.slug} and is recused")


def was_ever_on_project(person: Person, project: Project) -> bool:
    """True when the person is, or ever was, a member of the project (a removed member is never independent)."""
    return any(m.person_id == person.id for m in project.memberships)  # the lead holds a membership too


def check_not_on_project(person: Person, project: Project, application: Application | None = None) -> None:
    """A board member who is or ever was on the project, or is named in or submitted the application, is recused."""
    named = application is not None and (
        person.username in (application.researchers or []) or application.submitted_by_id == person.id
    )
    if was_ever_on_project(person, project) or named:
        raise NotPermitted(f"{person.username} is or was on project {project.slug} and is recused")


def check_can_declare_conflict_for(actor: Person, member: Person) -> None:
    """A board member declares their own conflicts; an admin may record one for a member."""
    check_active(actor)
    if actor.id != member.id and not has_role(actor, Role.admin):
        raise NotPermitted(f"{actor.username} cannot declare a conflict on behalf of {member.username}")
    if not has_role(member, Role.board_member):
        raise NotPermitted(f"{member.username} is not a board member")


def check_can_change_project_standing(person: Person) -> None:
    """Suspension, reinstatement, revocation and expiry are for board members and admins."""
    check_active(person)
    if not (has_role(person, Role.board_member) or has_role(person, Role.admin)):
        raise NotPermitted(f"{person.username} is neither a board member nor an admin")


def check_can_manage_people(person: Person) -> None:
    """Only admins create accounts, grant roles and register agencies and sources."""
    check_active(person)
    if not has_role(person, Role.admin):
        raise NotPermitted(f"{person.username} is not an admin")


def check_can_read_audit(person: Person) -> None:
    """The whole audit chain is readable by admins and board members."""
    check_active(person)
    if not (has_role(person, Role.admin) or has_role(person, Role.board_member)):
        raise NotPermitted(f"{person.username} may not read the audit chain")


def check_can_set_agency_policy(person: Person, agency: str, stewards_agency: bool) -> None:
    """An agency's release-approval switch is set by an admin or by a steward of that agency."""
    check_active(person)
    if not (has_role(person, Role.admin) or (has_role(person, Role.steward) and stewards_agency)):
        raise NotPermitted(f"{person.username} is neither an admin nor a steward of agency {agency}")


def check_can_list_registry(person: Person) -> None:
    """The registry's people and sources are listed to any active person of the registry."""
    check_active(person)


def check_can_read_extract(person: Person, project: Project) -> None:
    """An extract's manifest is read by the project's current members, the board and admins."""
    check_active(person)
    member = any(m.person_id == person.id and m.state == MembershipState.active for m in project.memberships)
    if not (member or has_role(person, Role.board_member) or has_role(person, Role.admin)):
        raise NotPermitted(f"{person.username} may not read the extracts of project {project.slug}")


def check_can_view_project(person: Person, project: Project) -> None:
    """A project's record is visible to its members, the board, reviewers and admins."""
    check_active(person)
    member = any(m.person_id == person.id and m.state != MembershipState.removed for m in project.memberships)
    if not (member or has_role(person, Role.board_member) or has_role(person, Role.admin) or has_role(person, Role.reviewer)):
        raise NotPermitted(f"{person.username} may not view project {project.slug}")


def check_can_read_board_business(person: Person) -> None:
    """Applications, votes, conflicts and project standing are read by board members and admins."""
    check_active(person)
    if not (has_role(person, Role.board_member) or has_role(person, Role.admin)):
        raise NotPermitted(f"{person.username} is neither a board member nor an admin")


def check_can_manage_deposits(person: Person, stewards_of_source: Iterable[int]) -> None:
    """A source's deposits are withdrawn or superseded by its stewards, a linkage operator or an admin."""
    check_active(person)
    if not (person.id in set(stewards_of_source) or has_role(person, Role.linkage_operator) or has_role(person, Role.admin)):
        raise NotPermitted(f"{person.username} is not a steward of this source and may not withdraw or supersede its deposits")
