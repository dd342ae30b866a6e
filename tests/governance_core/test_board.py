"""Board rules: quorum, majority, recusal, one vote each, who may vote, conditions, life cycle."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from enclave import audit
from enclave.board import service
from enclave.board.errors import InvalidInput, NotAllowed, NotPermitted
from enclave.board.requests import AmendmentRequest, Conditions
from enclave.board.states import IllegalTransition
from enclave.registry.base import session_scope
from enclave.registry.models import Approval, DPBudget, Membership, Vote, WorkspaceEntitlement

TODAY = dt.date(2026, 6, 1)


def _state(url, application_id):
    with session_scope(url, readonly=True) as s:
        app = service.get_application(s, application_id)
        return app.state, app.project.state


def _open(url, application_id, member="board1"):
    with session_scope(url) as s:
        service.open_review(s, member, application_id)


def _vote(url, member, application_id, choice):
    with session_scope(url) as s:
        service.vote(s, member, application_id, choice)


def _decide(url, member, application_id, conditions=None):
    with session_scope(url) as s:
        return service.decide(s, member, application_id, conditions, today=TODAY).outcome.value


def test_submitted_application_creates_proposed_project_with_pending_members(registry, submit):
    app_id = submit()
    assert _state(registry, app_id) == ("submitted", "proposed")
    with session_scope(registry, readonly=True) as s:
        members = {m.person.username: (m.role, m.state) for m in s.scalars(select(Membership))}
    assert members == {"alice": ("lead", "pending"), "bob": ("researcher", "pending")}


def test_only_researchers_apply_and_sources_must_be_registered(registry, submit):
    with pytest.raises(NotPermitted, match="not a researcher"):
        submit(actor="board1")
    with pytest.raises(NotAllowed, match="unknown source"):
        submit(sources=["births", "tax_returns"], variables={}, cohort={})
    with pytest.raises(InvalidInput, match="dave"):
        submit(researchers=["dave"])


def test_votes_only_after_review_opened(registry, submit):
    app_id = submit()
    with pytest.raises(NotAllowed, match="not under review"):
        _vote(registry, "board1", app_id, "approve")


def test_quorum_is_required(registry, submit):
    app_id = submit()
    _open(registry, app_id)
    _vote(registry, "board1", app_id, "approve")
    _vote(registry, "board2", app_id, "approve")
    with pytest.raises(NotAllowed, match="no quorum: 2 counted vote"):
        _decide(registry, "board1", app_id)
    _vote(registry, "board3", app_id, "approve")
    assert _decide(registry, "board1", app_id) == "approved"
    assert _state(registry, app_id) == ("approved", "approved")


def test_quorum_comes_from_settings(registry, submit, monkeypatch):
    from enclave.settings import get_settings

    monkeypatch.setenv("ENCLAVE_BOARD_QUORUM", "2")
    get_settings.cache_clear()
    app_id = submit()
    _open(registry, app_id)
    _vote(registry, "board1", app_id, "approve")
    _vote(registry, "board2", app_id, "approve")
    assert _decide(registry, "board1", app_id) == "approved"


def test_majority_must_be_strictly_exceeded(registry, submit):
    app_id = submit()
    _open(registry, app_id)
    for member, choice in (("board1", "approve"), ("board2", "approve"), ("board3", "reject"), ("board4", "reject")):
        _vote(registry, member, app_id, choice)
    # 2 of 4 is exactly one half, not more than the 0.5 majority: not approved, more rejects than changes.
    assert _decide(registry, "board1", app_id) == "rejected"
    assert _state(registry, app_id) == ("rejected", "rejected")


def test_configurable_supermajority(registry, submit, monkeypatch):
    from enclave.settings import get_settings

    monkeypatch.setenv("ENCLAVE_BOARD_MAJORITY", "0.7")
    get_settings.cache_clear()
    app_id = submit()
    _open(registry, app_id)
    for member, choice in (("board1", "approve"), ("board2", "approve"), ("board3", "changes")):
        _vote(registry, member, app_id, choice)
    assert _decide(registry, "board1", app_id) == "changes_requested"  # 2/3 < 0.7


def test_member_cannot_vote_twice(registry, submit):
    app_id = submit()
    _open(registry, app_id)
    _vote(registry, "board1", app_id, "approve")
    with pytest.raises(NotAllowed, match="already voted"):
        _vote(registry, "board1", app_id, "reject")
    with session_scope(registry, readonly=True) as s:
        assert [v.choice for v in s.scalars(select(Vote))] == ["approve"]


def test_database_refuses_a_duplicate_vote_even_past_the_service(registry, submit):
    from sqlalchemy.exc import IntegrityError

    app_id = submit()
    _open(registry, app_id)
    _vote(registry, "board1", app_id, "approve")
    with pytest.raises(IntegrityError), session_scope(registry) as s:
        s.add(Vote(application_id=app_id, voter_id=service.get_person(s, "board1").id, choice="reject"))
        s.flush()


def test_non_board_person_cannot_vote_open_or_decide(registry, submit):
    app_id = submit()
    with pytest.raises(NotPermitted, match="not a board member"):
        _open(registry, app_id, member="rev1")
    _open(registry, app_id)
    for outsider in ("rev1", "carol", "admin"):
        with pytest.raises(NotPermitted, match="not a board member"):
            _vote(registry, outsider, app_id, "approve")
    with pytest.raises(NotPermitted):
        _decide(registry, "stew", app_id)


def test_declared_conflict_recuses_member(registry, submit):
    app_id = submit()
    _open(registry, app_id)
    with session_scope(registry) as s:
        service.declare_conflict(s, "board2", "school-moves", "co-author of the lead")
    with pytest.raises(NotPermitted, match="conflict of interest"):
        _vote(registry, "board2", app_id, "approve")
    with pytest.raises(NotPermitted, match="conflict of interest"):
        _decide(registry, "board2", app_id)


def test_vote_cast_before_conflict_declared_is_not_counted(registry, submit):
    app_id = submit()
    _open(registry, app_id)
    for member in ("board1", "board2", "board3"):
        _vote(registry, member, app_id, "approve")
    with session_scope(registry) as s:
        service.declare_conflict(s, "admin", "school-moves", "spouse works for the lead", member="board3")
    with pytest.raises(NotAllowed, match="no quorum: 2 counted"):
        _decide(registry, "board1", app_id)
    with session_scope(registry, readonly=True) as s:
        tally = service.tally(s, service.get_application(s, app_id))
    assert (tally.approve, tally.not_counted) == (2, 1)


def test_only_admin_declares_for_someone_else(registry, submit):
    submit()
    with pytest.raises(NotPermitted, match="on behalf"), session_scope(registry) as s:
        service.declare_conflict(s, "board1", "school-moves", "reason", member="board2")


def test_board_member_on_the_project_is_recused(registry, submit):
    app_id = submit(researchers=["bob", "board5"])
    _open(registry, app_id)
    with pytest.raises(NotPermitted, match="recused"):
        _vote(registry, "board5", app_id, "approve")


def test_approval_stores_conditions_members_entitlements_and_budget(registry, submit, approve):
    app_id = submit()
    conditions = Conditions(variables={"school_enrollment": ["grade"], "foster_care": ["placement_type"]}, k=15,
                            dp_epsilon=1.0, expires_on=dt.date(2027, 1, 31), notes="no school ids")
    decision = approve(app_id, conditions=conditions)
    assert decision.outcome.value == "approved"
    with session_scope(registry, readonly=True) as s:
        approval = s.scalars(select(Approval)).one()
        assert approval.variables == {"school_enrollment": ["grade"], "foster_care": ["placement_type"]}
        assert (approval.k, approval.dp_epsilon, approval.expires_on, approval.notes) == (15, 1.0, dt.date(2027, 1, 31), "no school ids")
        assert approval.sources == ["births", "school_enrollment", "foster_care"]
        assert approval.cohort["birth_year_min"] == 2005
        project = service.get_project(s, "school-moves")
        assert project.current_approval_id == approval.id
        assert {m.person.username: m.state for m in project.memberships} == {"alice": "active", "bob": "active"}
        assert s.scalars(select(WorkspaceEntitlement).where(WorkspaceEntitlement.active)).all().__len__() == 2
        assert s.get(DPBudget, project.id).epsilon_total == 1.0
        event = [e for e in audit.show(s) if e.action == "application.approved"][0]
        assert '"k":15' in event.details


@pytest.mark.parametrize("conditions, message", [
    (Conditions(k=5), "k 5 is weaker"),
    (Conditions(dp_epsilon=3.0), "dp_epsilon 3.0 exceeds"),
    (Conditions(variables={"school_enrollment": ["address"]}), "not requested"),
    (Conditions(expires_on=dt.date(2028, 1, 1)), "after the requested end"),
    (Conditions(cohort={"birth_year_min": 2000, "birth_year_max": 2015, "sources_present": ["foster_care"]}), "wider"),
])
def test_conditions_cannot_widen_the_request(registry, submit, approve, conditions, message):
    app_id = submit()
    with pytest.raises(NotAllowed, match=message):
        approve(app_id, conditions=conditions)
    assert _state(registry, app_id) == ("submitted", "proposed")  # whole transaction rolled back


def test_changes_requested_then_resubmitted_gets_a_fresh_vote(registry, submit, request_for):
    app_id = submit()
    _open(registry, app_id)
    for member in ("board1", "board2", "board3"):
        _vote(registry, member, app_id, "changes")
    assert _decide(registry, "board1", app_id) == "changes_requested"
    with pytest.raises(NotPermitted), session_scope(registry) as s:
        service.resubmit(s, "bob", app_id, request_for(), today=TODAY)
    with session_scope(registry) as s:
        new_id = service.resubmit(s, "alice", app_id, request_for(k=20), today=TODAY).id
    assert _state(registry, new_id) == ("submitted", "proposed")
    with pytest.raises(NotAllowed, match="only one with changes requested"), session_scope(registry) as s:
        service.resubmit(s, "alice", new_id, request_for(), today=TODAY)


def _approved(registry, submit, approve, add_extract=None):
    app_id = submit()
    approve(app_id)
    if add_extract:
        add_extract()
    return app_id


def test_suspend_reinstate_revoke(registry, submit, approve):
    _approved(registry, submit, approve)
    with pytest.raises(NotPermitted), session_scope(registry) as s:
        service.suspend(s, "alice", "school-moves", "self-suspension")
    with session_scope(registry) as s:
        service.suspend(s, "board1", "school-moves", "data breach under investigation")
        assert not any(e.active for e in s.scalars(select(WorkspaceEntitlement)))
    with pytest.raises(IllegalTransition), session_scope(registry) as s:
        service.suspend(s, "board1", "school-moves", "again")
    with session_scope(registry) as s:
        service.reinstate(s, "board2", "school-moves", "cleared", today=TODAY)
        assert all(e.active for e in s.scalars(select(WorkspaceEntitlement)))
    with session_scope(registry) as s:
        service.revoke(s, "admin", "school-moves", "breach confirmed")
    for action in (lambda s: service.reinstate(s, "board1", "school-moves", "undo", today=TODAY),
                   lambda s: service.suspend(s, "board1", "school-moves", "x")):
        with pytest.raises(IllegalTransition, match="from revoked"), session_scope(registry) as s:
            action(s)


def test_reason_required_for_standing_changes(registry, submit, approve):
    _approved(registry, submit, approve)
    with pytest.raises(InvalidInput, match="reason"), session_scope(registry) as s:
        service.suspend(s, "board1", "school-moves", "  ")


def test_proposed_project_cannot_be_suspended_or_reinstated(registry, submit):
    submit()
    with pytest.raises(IllegalTransition), session_scope(registry) as s:
        service.suspend(s, "board1", "school-moves", "too early")
    with pytest.raises(NotAllowed, match="not suspended"), session_scope(registry) as s:
        service.reinstate(s, "board1", "school-moves", "nothing to lift", today=TODAY)


def test_expiry_only_after_end_date_and_blocks_reinstatement(registry, submit, approve):
    _approved(registry, submit, approve)
    with pytest.raises(NotAllowed, match="not reached"), session_scope(registry) as s:
        service.expire(s, "admin", "school-moves", today=dt.date(2027, 4, 30))
    with session_scope(registry) as s:
        service.suspend(s, "board1", "school-moves", "paused")
    with pytest.raises(NotAllowed, match="passed its end date"), session_scope(registry) as s:
        service.reinstate(s, "board1", "school-moves", "resume", today=dt.date(2027, 5, 1))
    with session_scope(registry) as s:
        assert service.expire_due(s, "admin", today=dt.date(2027, 5, 1)) == ["school-moves"]
        assert service.expire_due(s, "admin", today=dt.date(2027, 5, 2)) == []
    assert _state(registry, 1)[1] == "expired"


def test_amendment_adding_researcher_needs_approval_again(registry, submit, approve):
    from enclave.entitlements import Refused, check_workspace

    _approved(registry, submit, approve)
    with pytest.raises(NotPermitted, match="not the lead"), session_scope(registry) as s:
        service.amend(s, "bob", "school-moves", AmendmentRequest(reason="more hands needed", add_researchers=["carol"]))
    with session_scope(registry) as s:
        amendment_id = service.amend(s, "alice", "school-moves",
                                     AmendmentRequest(reason="more hands needed", add_researchers=["carol"],
                                                      add_variables={"foster_care": ["removal_reason"]}), today=TODAY).id
    with pytest.raises(Refused, match="awaits board approval"):
        check_workspace("carol", "school-moves", url=registry, today=TODAY)
    with pytest.raises(NotAllowed, match="already has application"), session_scope(registry) as s:
        service.amend(s, "alice", "school-moves", AmendmentRequest(reason="and another one", add_researchers=["carol"]), today=TODAY)
    with session_scope(registry, readonly=True) as s:
        assert service.get_project(s, "school-moves").current_approval.researchers == ["alice", "bob"]
    approve(amendment_id)
    with session_scope(registry, readonly=True) as s:
        project = service.get_project(s, "school-moves")
        assert project.current_approval.researchers == ["alice", "bob", "carol"]
        assert project.current_approval.variables["foster_care"] == ["placement_type", "removal_reason"]
        assert {m.person.username: m.state for m in project.memberships}["carol"] == "active"


def test_rejected_amendment_keeps_new_researcher_out(registry, submit, approve):
    _approved(registry, submit, approve)
    with session_scope(registry) as s:
        amendment_id = service.amend(s, "alice", "school-moves",
                                     AmendmentRequest(reason="more hands needed", add_researchers=["carol"]), today=TODAY).id
    _open(registry, amendment_id)
    for member in ("board1", "board2", "board3"):
        _vote(registry, member, amendment_id, "reject")
    assert _decide(registry, "board1", amendment_id) == "rejected"
    with session_scope(registry, readonly=True) as s:
        project = service.get_project(s, "school-moves")
        assert project.state == "approved"  # the project itself stands
        assert {m.person.username: m.state for m in project.memberships}["carol"] == "removed"


def test_every_transition_is_audited(registry, submit, approve):
    _approved(registry, submit, approve)
    with session_scope(registry) as s:
        service.suspend(s, "board1", "school-moves", "check")
        service.reinstate(s, "board1", "school-moves", "ok", today=TODAY)
        service.revoke(s, "board1", "school-moves", "end")
    with session_scope(registry, readonly=True) as s:
        actions = [e.action for e in audit.show(s, audit.Filters(project="school-moves"))]
        assert audit.verify(s).ok
    assert actions == ["application.submitted", "application.review_opened", "vote.cast", "vote.cast", "vote.cast",
                       "application.approved", "project.suspended", "project.reinstated", "project.revoked"]


def test_membership_removal_rules(registry, submit, approve):
    _approved(registry, submit, approve)
    with pytest.raises(NotPermitted, match="not the lead"), session_scope(registry) as s:
        service.remove_member(s, "bob", "school-moves", "alice", "coup")
    with pytest.raises(NotAllowed, match="lead cannot be removed"), session_scope(registry) as s:
        service.remove_member(s, "admin", "school-moves", "alice", "reshuffle")
    with session_scope(registry) as s:
        service.remove_member(s, "alice", "school-moves", "bob", "left the city")
        entitlement = s.scalars(select(WorkspaceEntitlement).join(Membership, Membership.person_id == WorkspaceEntitlement.person_id)
                                .where(Membership.state == "removed")).one()
        assert not entitlement.active and entitlement.ended_reason == "removed"


def test_withdrawal_only_by_the_applicant_and_only_while_open(registry, submit, approve):
    app_id = submit()
    with pytest.raises(NotPermitted, match="did not submit"), session_scope(registry) as s:
        service.withdraw(s, "bob", app_id)
    with session_scope(registry) as s:
        service.withdraw(s, "alice", app_id)
    assert _state(registry, app_id) == ("withdrawn", "withdrawn")
    other = submit(project="other-study")
    approve(other)
    with pytest.raises(IllegalTransition, match="from approved"), session_scope(registry) as s:
        service.withdraw(s, "alice", other)


def test_admins_cannot_lock_themselves_out(registry):
    from enclave import people

    with pytest.raises(NotAllowed, match="own admin role"), session_scope(registry) as s:
        people.revoke_role(s, "admin", "admin", "admin")
    with pytest.raises(NotAllowed, match="own account"), session_scope(registry) as s:
        people.set_active(s, "admin", "admin", False)
    with pytest.raises(NotPermitted, match="not an admin"), session_scope(registry) as s:
        people.add_person(s, "board1", "eve", "Eve", ["admin"])
    with pytest.raises(InvalidInput, match="unknown role"), session_scope(registry) as s:
        people.add_person(s, "admin", "eve", "Eve", ["superuser"])
