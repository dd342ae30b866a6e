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


def was_ever_member(actor: Actor, project: str) -> bool:
    """Only someone who is or ever was on the project (removed members included) may do this."""
    ever = actor.member_of if actor.ever_in is None else actor.ever_in
    return project in ever or project in actor.member_of


def author_is_still_member(request: RequestFacts) -> bool:
    """The author must still be an approved member of the project (a removed researcher's requests are withdrawn)."""
    return request.author_active


def may_create_request(actor: Actor, project: str) -> bool:
    """Only a researcher who is an approved member of the project may create a release request for it."""
    return "researcher" in actor.roles and is_active_member(actor, project)


def may_edit_request(actor: Actor, request: RequestFacts) -> bool:
    """Only the author, still an approved member of the project, may change, submit or withdraw the request."""
    return is_author(actor, request) and is_active_member(actor, request.project)


def is_independent_of(actor: Actor, request: RequestFacts) -> bool:
    """A reviewer must be neither the author nor a present or past (removed) member of the project."""
    return not is_author(actor, request) and not was_ever_member(actor, request.project)


def is_independent_reviewer(actor: Actor, request: RequestFacts) -> bool:
    """Only a disclosure reviewer who never was the author or on the project may do this."""
    return "reviewer" in actor.roles and is_independent_of(actor, request)


def may_review_request(actor: Actor, request: RequestFacts) -> bool:
    """Only a disclosure reviewer who is neither the author nor a member (now or ever) of the project may review it, and only while its author is still a member."""
    return is_independent_reviewer(actor, request) and author_is_still_member(request)


def may_approve_for_agency(actor: Actor, request: RequestFacts, agency: str) -> bool:
    """Only a steward of that agency, independent of the project, may approve outputs of a current member's request."""
    return agency in actor.steward_of and is_independent_of(actor, request) and author_is_still_member(request)


def may_release_request(actor: Actor, request: RequestFacts) -> bool:
    """Only an independent disclosure reviewer may release, and only the request of a current member."""
    return may_review_request(actor, request)


def may_read_request(actor: Actor, request: RequestFacts) -> bool:
    """Only the author, project members, independent reviewers and the agencies' stewards may read the request."""
    return (
        is_author(actor, request)
        or is_project_member(actor, request.project)
        or is_independent_reviewer(actor, request)
        or bool(actor.steward_of & request.stewards_required)
    )
