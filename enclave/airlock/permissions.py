"""Who may act on a release request. Each rule is one small function; its docstring is the refusal reason."""
from __future__ import annotations

from enclave.airlock.facts import Actor, RequestFacts


def is_author(actor: Actor, request: RequestFacts) -> bool:
    """Only the author of the request may do this."""
    return actor.username == request.author


def is_project_member(actor: Actor, project: str) -> bool:
    """Only a member of the project may do this."""
    return project in actor.member_of


def is_active_member(actor: Actor, project: str) -> bool:
    """Only a member whose membership the board approved (not pending, not removed) may do this."""
    active = actor.member_of if actor.active_in is None else actor.active_in
    return project in active


def may_create_request(actor: Actor, project: str) -> bool:
    """Only a researcher who is an approved member of the project may create a release request for it."""
    return "researcher" in actor.roles and is_active_member(actor, project)


def may_edit_request(actor: Actor, request: RequestFacts) -> bool:
    """Only the author, still an approved member of the project, may change, submit or withdraw the request."""
    return is_author(actor, request) and is_active_member(actor, request.project)


def was_removed_from(actor: Actor, project: str) -> bool:
    """True for a person once a member of the project and removed from it (membership history counts)."""
    return project in actor.former_member_of


def is_independent_of(actor: Actor, request: RequestFacts) -> bool:
    """A reviewer must be neither the author nor a member of the project, now or before."""
    return (not is_author(actor, request) and not is_project_member(actor, request.project)
            and not was_removed_from(actor, request.project))


def may_review_request(actor: Actor, request: RequestFacts) -> bool:
    """Only a disclosure reviewer who is neither the author nor a member of the project may review it."""
    return "reviewer" in actor.roles and is_independent_of(actor, request)


def may_approve_for_agency(actor: Actor, request: RequestFacts, agency: str) -> bool:
    """Only a steward of that agency, independent of the project, may approve outputs that use its data."""
    return agency in actor.steward_of and is_independent_of(actor, request)


def may_release_request(actor: Actor, request: RequestFacts) -> bool:
    """Only an independent disclosure reviewer may carry out the release."""
    return may_review_request(actor, request)


def may_read_request(actor: Actor, request: RequestFacts) -> bool:
    """Only the author, project members, independent reviewers and the agencies' stewards may read the request."""
    return (
        is_author(actor, request)
        or is_project_member(actor, request.project)
        or may_review_request(actor, request)
        or bool(actor.steward_of & request.stewards_required)
    )
