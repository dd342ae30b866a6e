"""Plain, immutable facts about a caller and a request, read from the registry once.

Permissions and policies take these instead of ORM rows, so each rule can be read and
tested alone without a database.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from enclave.airlock.states import RequestState


@dataclass(frozen=True)
class Actor:
    username: str
    roles: frozenset[str] = frozenset()
    member_of: frozenset[str] = frozenset()  # projects the person belongs to, pending memberships included
    steward_of: frozenset[str] = frozenset()  # agency names the person is a steward of
    active_in: frozenset[str] | None = None  # projects with an active (approved) membership; None = member_of
    former_member_of: frozenset[str] = frozenset()  # projects the person was removed from (history counts)


@dataclass(frozen=True)
class OutputFacts:
    name: str
    verdict: str | None = None  # gate status: pass | fail | review (None before the gate ran)
    exception_text: str | None = None  # the researcher's justification for a failed output


@dataclass(frozen=True)
class ReviewFacts:
    reviewer: str
    decision: str  # approve | return | reject
    overridden: frozenset[str] = frozenset()  # failed outputs this reviewer explicitly lets pass


@dataclass(frozen=True)
class RequestFacts:
    id: str
    project: str
    author: str
    state: RequestState
    outputs: tuple[OutputFacts, ...] = ()
    reviews: tuple[ReviewFacts, ...] = ()
    stewards_required: frozenset[str] = frozenset()  # agencies whose steward must approve
    stewards_approved: frozenset[str] = frozenset()
    project_active: bool = True  # approved and not suspended, revoked or expired
    extra: dict = field(default_factory=dict, compare=False)
