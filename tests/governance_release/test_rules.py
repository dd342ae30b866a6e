"""Each permission and policy rule of the airlock, read and tested alone on plain facts."""
from __future__ import annotations

import pytest

from enclave.airlock import permissions as who
from enclave.airlock import policies as when
from enclave.airlock.errors import Refused, require
from enclave.airlock.facts import Actor, OutputFacts, RequestFacts, ReviewFacts
from enclave.airlock.states import TRANSITIONS, RequestState, can_move

ALICE = Actor("alice", frozenset({"researcher"}), frozenset({"p"}))
BOB = Actor("bob", frozenset({"researcher"}), frozenset({"p"}))
REVIEWER = Actor("rev", frozenset({"reviewer"}))
MEMBER_REVIEWER = Actor("mr", frozenset({"reviewer", "researcher"}), frozenset({"p"}))
STEWARD = Actor("stew", frozenset({"steward"}), steward_of=frozenset({"Vital Records"}))


def request(**kw) -> RequestFacts:
    data = dict(id="1", project="p", author="alice", state=RequestState.checked,
                outputs=(OutputFacts("t.csv", "pass"),))
    data.update(kw)
    return RequestFacts(**data)


def test_only_project_researchers_create_and_only_the_author_edits():
    assert who.may_create_request(ALICE, "p")
    assert not who.may_create_request(ALICE, "other")
    assert not who.may_create_request(REVIEWER, "p")
    assert who.may_edit_request(ALICE, request())
    assert not who.may_edit_request(BOB, request())  # a co-member is not the author
    removed = Actor("alice", frozenset({"researcher"}))
    assert not who.may_edit_request(removed, request())  # an author removed from the project


def test_reviewers_are_independent():
    assert who.may_review_request(REVIEWER, request())
    assert not who.may_review_request(MEMBER_REVIEWER, request())  # on the project
    assert not who.may_review_request(MEMBER_REVIEWER, request(author="mr"))  # the author
    assert not who.may_review_request(BOB, request())  # no reviewer role
    assert who.may_release_request(REVIEWER, request()) and not who.may_release_request(ALICE, request())


def test_stewards_approve_only_for_their_agency():
    r = request(stewards_required=frozenset({"Vital Records"}))
    assert who.may_approve_for_agency(STEWARD, r, "Vital Records")
    assert not who.may_approve_for_agency(STEWARD, r, "Schools")
    member_steward = Actor("stew", frozenset({"steward"}), frozenset({"p"}), frozenset({"Vital Records"}))
    assert not who.may_approve_for_agency(member_steward, r, "Vital Records")
    assert who.may_read_request(STEWARD, r) and not who.may_read_request(STEWARD, request())


def test_failed_outputs_need_exception_and_override():
    failed = request(outputs=(OutputFacts("t.csv", "fail"), OutputFacts("u.csv", "pass")))
    excused = request(outputs=(OutputFacts("t.csv", "fail", "public figure", exceptionable=True), OutputFacts("u.csv", "pass")))
    assert not when.failed_outputs_have_exceptions(failed)
    assert when.failed_outputs_have_exceptions(excused)
    plain = ReviewFacts("rev", "approve")
    override = ReviewFacts("rev", "approve", frozenset({"t.csv"}))
    assert not when.approval_overrides_every_failed_output(excused, plain)
    assert not when.approval_overrides_every_failed_output(failed, override)
    assert when.approval_overrides_every_failed_output(excused, override)
    assert when.approval_overrides_every_failed_output(failed, ReviewFacts("rev", "return"))


def test_an_exception_lifts_only_what_the_rulebook_marks_exceptionable():
    small_cells = frozenset({"threshold", "primary"})
    assert when.failure_is_exceptionable(small_cells, frozenset({"threshold", "primary", "zeros"}))
    assert not when.failure_is_exceptionable(small_cells | {"identifiers"}, frozenset({"threshold", "primary"}))
    assert not when.failure_is_exceptionable(frozenset(), frozenset({"threshold"}))  # a fail without a named check
    blocked = request(outputs=(OutputFacts("ids.csv", "fail", "needed", exceptionable=False),),
                      reviews=(ReviewFacts("r1", "approve", frozenset({"ids.csv"})),
                               ReviewFacts("r2", "approve", frozenset({"ids.csv"}))))
    assert not when.failed_output_is_exceptionable(blocked.outputs[0])
    assert not when.no_output_is_blocked(blocked)
    assert not when.approval_overrides_every_failed_output(blocked, blocked.reviews[0])
    assert not when.ready_for_approval(blocked, 2)
    lifted = request(outputs=(OutputFacts("t.csv", "fail", "public figure", exceptionable=True),),
                     reviews=blocked.reviews[:0] + (ReviewFacts("r1", "approve", frozenset({"t.csv"})),
                                                    ReviewFacts("r2", "approve", frozenset({"t.csv"}))))
    assert when.ready_for_approval(lifted, 2)


def test_the_rulebook_marks_small_cells_exceptionable_and_identifiers_not():
    from disclosure_control.rules import RuleSet, load_rules

    rules = load_rules()
    assert {"threshold", "primary", "zeros"} <= set(rules.exceptionable_checks)
    assert not {"identifiers", "row_level", "file_type", "integrity", "evidence", "differencing"} & set(rules.exceptionable_checks)
    narrower = RuleSet(exceptionable_checks=("threshold",))
    assert RuleSet.strictest(rules, narrower).exceptionable_checks == ("threshold",)  # agencies only narrow


def test_approval_needs_enough_independent_approvals_and_the_stewards():
    one = request(reviews=(ReviewFacts("r1", "approve"),))
    two = request(reviews=(ReviewFacts("r1", "approve"), ReviewFacts("r2", "approve")))
    assert not when.ready_for_approval(one, 2)
    assert when.ready_for_approval(one, 1)
    assert when.ready_for_approval(two, 2)
    assert not when.ready_for_approval(two, 3)
    objection = request(reviews=(ReviewFacts("r1", "approve"), ReviewFacts("r2", "return")))
    assert not when.ready_for_approval(objection, 2)
    steward_missing = request(reviews=two.reviews, stewards_required=frozenset({"Vital Records"}))
    assert not when.ready_for_approval(steward_missing, 2)
    steward_done = request(reviews=two.reviews, stewards_required=frozenset({"Vital Records"}),
                           stewards_approved=frozenset({"Vital Records"}))
    assert when.ready_for_approval(steward_done, 2)
    unchecked = request(reviews=two.reviews, outputs=(OutputFacts("t.csv", None),))
    assert not when.ready_for_approval(unchecked, 2)
    assert not when.reviewer_has_not_reviewed(one, "r1") and when.reviewer_has_not_reviewed(one, "r2")


def test_states_and_require():
    assert when.request_is_editable(request(state=RequestState.returned))
    assert not when.request_is_editable(request(state=RequestState.checked))
    assert not when.project_is_active(request(project_active=False))
    assert all(not TRANSITIONS[s] for s in (RequestState.released, RequestState.rejected, RequestState.withdrawn))
    assert can_move(RequestState.approved, RequestState.released)
    assert not can_move(RequestState.checked, RequestState.released)  # no release without approval
    assert not can_move(RequestState.draft, RequestState.approved)
    with pytest.raises(Refused) as refused:
        require(who.may_review_request, MEMBER_REVIEWER, request())
    assert refused.value.rule == "may_review_request" and "neither the author nor a member" in refused.value.reason
    for module in (who, when):
        for name in dir(module):
            rule = getattr(module, name)
            if callable(rule) and getattr(rule, "__module__", "") == module.__name__:
                assert rule.__doc__ and len(rule.__doc__.strip().splitlines()) == 1, name


def test_pending_or_removed_members_cannot_request_but_stay_excluded_from_review():
    pending = Actor("carl", frozenset({"researcher", "reviewer"}), frozenset({"p"}), active_in=frozenset())
    assert not who.may_create_request(pending, "p")
    assert not who.may_edit_request(pending, request(author="carl"))
    assert not who.may_review_request(pending, request())  # still on the project's side of the wall
