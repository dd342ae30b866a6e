"""States of a release request and the transitions between them (ARCHITECTURE.md, "Release request states")."""
from __future__ import annotations

from enum import Enum


class RequestState(str, Enum):
    draft = "draft"
    submitted = "submitted"
    checked = "checked"
    partially_reviewed = "partially_reviewed"
    approved = "approved"
    released = "released"
    returned = "returned"
    rejected = "rejected"
    withdrawn = "withdrawn"


# The only moves the service makes; anything else is refused before a policy is even asked.
TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.draft: frozenset({RequestState.submitted, RequestState.withdrawn}),
    RequestState.submitted: frozenset({RequestState.checked, RequestState.withdrawn}),
    RequestState.checked: frozenset(
        {RequestState.partially_reviewed, RequestState.approved, RequestState.returned,
         RequestState.rejected, RequestState.withdrawn}
    ),
    RequestState.partially_reviewed: frozenset(
        {RequestState.partially_reviewed, RequestState.approved, RequestState.returned,
         RequestState.rejected, RequestState.withdrawn}
    ),
    RequestState.approved: frozenset({RequestState.released, RequestState.returned, RequestState.withdrawn}),
    RequestState.returned: frozenset({RequestState.submitted, RequestState.withdrawn}),
    RequestState.released: frozenset(),
    RequestState.rejected: frozenset(),
    RequestState.withdrawn: frozenset(),
}

EDITABLE = frozenset({RequestState.draft, RequestState.returned})
UNDER_REVIEW = frozenset({RequestState.checked, RequestState.partially_reviewed})
FINAL = frozenset({RequestState.released, RequestState.rejected, RequestState.withdrawn})


def can_move(current: RequestState, target: RequestState) -> bool:
    """True when ``target`` is a legal next state of ``current``."""
    return target in TRANSITIONS[current]
