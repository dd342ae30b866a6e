"""Who may publish a finding. Each rule is one small function; its docstring is the refusal reason."""
from __future__ import annotations

from enclave.airlock.facts import Actor, RequestFacts


def is_board_member(actor: Actor) -> bool:
    """Only a member of the governing board may do this."""
    return "board_member" in actor.roles


def is_active_researcher_of(actor: Actor, request: RequestFacts) -> bool:
    """Only a researcher with an approved (not pending, not removed) membership of the project may do this."""
    active = actor.member_of if actor.active_in is None else actor.active_in
    return "researcher" in actor.roles and request.project in active


def may_publish(actor: Actor, request: RequestFacts) -> bool:
    """Only an approved researcher of the project or a board member may publish its released outputs."""
    return is_board_member(actor) or is_active_researcher_of(actor, request)


def may_withdraw_finding(actor: Actor) -> bool:
    """Only a board member may withdraw a published finding."""
    return is_board_member(actor)
