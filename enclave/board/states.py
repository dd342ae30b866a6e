"""States of applications and projects, and the transitions the board may make between them.

The tables here are data: a transition not listed is illegal whoever asks.
"""
from __future__ import annotations

from enum import StrEnum

from enclave.board.errors import NotAllowed


class Role(StrEnum):
    """Roles a person may hold (several at once)."""

    steward = "steward"
    linkage_operator = "linkage_operator"
    board_member = "board_member"
    researcher = "researcher"
    reviewer = "reviewer"
    admin = "admin"


class ApplicationKind(StrEnum):
    initial = "initial"
    amendment = "amendment"


class ApplicationState(StrEnum):
    submitted = "submitted"
    under_review = "under_review"
    approved = "approved"
    rejected = "rejected"
    changes_requested = "changes_requested"
    withdrawn = "withdrawn"


class ProjectState(StrEnum):
    proposed = "proposed"  # applied for, never approved yet
    approved = "approved"
    suspended = "suspended"
    expired = "expired"
    revoked = "revoked"
    rejected = "rejected"
    withdrawn = "withdrawn"


class MembershipState(StrEnum):
    pending = "pending"  # named in an application or amendment not approved yet
    active = "active"
    removed = "removed"


class MembershipRole(StrEnum):
    lead = "lead"
    researcher = "researcher"


class VoteChoice(StrEnum):
    approve = "approve"
    reject = "reject"
    changes = "changes"  # request changes


APPLICATION_TRANSITIONS: dict[ApplicationState, frozenset[ApplicationState]] = {
    ApplicationState.submitted: frozenset({ApplicationState.under_review, ApplicationState.withdrawn}),
    ApplicationState.under_review: frozenset(
        {ApplicationState.approved, ApplicationState.rejected, ApplicationState.changes_requested, ApplicationState.withdrawn}
    ),
    ApplicationState.changes_requested: frozenset({ApplicationState.withdrawn}),  # a resubmission is a new application
    ApplicationState.approved: frozenset(),
    ApplicationState.rejected: frozenset(),
    ApplicationState.withdrawn: frozenset(),
}

PROJECT_TRANSITIONS: dict[ProjectState, frozenset[ProjectState]] = {
    ProjectState.proposed: frozenset({ProjectState.approved, ProjectState.rejected, ProjectState.withdrawn}),
    ProjectState.approved: frozenset({ProjectState.suspended, ProjectState.expired, ProjectState.revoked}),
    ProjectState.suspended: frozenset({ProjectState.approved, ProjectState.expired, ProjectState.revoked}),
    ProjectState.expired: frozenset(),
    ProjectState.revoked: frozenset(),
    ProjectState.rejected: frozenset(),
    ProjectState.withdrawn: frozenset(),
}

# Project states in which an amendment may be filed and the project still exists for its members.
LIVE_PROJECT_STATES = frozenset({ProjectState.approved, ProjectState.suspended})


class IllegalTransition(NotAllowed):
    """A state change that the transition table does not allow."""


def check_application_transition(current: str, target: ApplicationState) -> None:
    """Raise unless an application may go from ``current`` to ``target``."""
    if target not in APPLICATION_TRANSITIONS[ApplicationState(current)]:
        raise IllegalTransition(f"an application cannot go from {current} to {target.value}")


def check_project_transition(current: str, target: ProjectState) -> None:
    """Raise unless a project may go from ``current`` to ``target``."""
    if target not in PROJECT_TRANSITIONS[ProjectState(current)]:
        raise IllegalTransition(f"a project cannot go from {current} to {target.value}")
