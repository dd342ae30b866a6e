"""Permission and policy rules read and tested alone, and the vote count against its definition."""
from __future__ import annotations

import datetime as dt
import inspect
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.board import permissions, policies
from enclave.board.errors import NotAllowed, NotPermitted
from enclave.board.requests import Cohort, Conditions
from enclave.board.states import APPLICATION_TRANSITIONS, PROJECT_TRANSITIONS, ApplicationState, ProjectState


@pytest.mark.parametrize("module", [permissions, policies])
def test_every_rule_is_a_small_documented_function(module):
    rules = [f for name, f in inspect.getmembers(module, inspect.isfunction)
             if name.startswith("check_") and f.__module__ == module.__name__]
    assert len(rules) >= 8
    for rule in rules:
        doc = inspect.getdoc(rule)
        assert doc and "\n" not in doc, f"{rule.__name__} needs a one-line docstring"
        assert len(inspect.getsource(rule).splitlines()) <= 25, f"{rule.__name__} is not small"


def _person(pid=1, roles=(), active=True, username="p"):
    return SimpleNamespace(id=pid, username=username, active=active, role_names=set(roles))


def test_board_membership_rule():
    permissions.check_is_board_member(_person(roles={"board_member"}))
    with pytest.raises(NotPermitted, match="not a board member"):
        permissions.check_is_board_member(_person(roles={"admin", "reviewer"}))
    with pytest.raises(NotPermitted, match="disabled"):
        permissions.check_is_board_member(_person(roles={"board_member"}, active=False))


def test_recusal_rules():
    project = SimpleNamespace(slug="p", memberships=[SimpleNamespace(person_id=7, state="active")])
    permissions.check_no_declared_conflict(_person(3), project, {4, 5})
    with pytest.raises(NotPermitted, match="recused"):
        permissions.check_no_declared_conflict(_person(4), project, {4, 5})
    with pytest.raises(NotPermitted, match="on project"):
        permissions.check_not_on_project(_person(7), project)
    application = SimpleNamespace(researchers=["zed"], submitted_by_id=1)
    with pytest.raises(NotPermitted, match="on project"):
        permissions.check_not_on_project(_person(9, username="zed"), project, application)
    removed = SimpleNamespace(slug="p", memberships=[SimpleNamespace(person_id=7, state="removed")])
    with pytest.raises(NotPermitted, match="recused"):  # membership history: a removed member is never independent
        permissions.check_not_on_project(_person(7), removed)


def test_transition_tables_have_terminal_states():
    for terminal in (ProjectState.revoked, ProjectState.expired, ProjectState.rejected):
        assert PROJECT_TRANSITIONS[terminal] == frozenset()
    assert ProjectState.approved not in PROJECT_TRANSITIONS[ProjectState.revoked]
    assert APPLICATION_TRANSITIONS[ApplicationState.approved] == frozenset()


def test_conditions_within_request():
    application = SimpleNamespace(sources=["a", "b"], variables={"a": ["x", "y"]}, k=10, dp_epsilon=1.0,
                                  end_date=dt.date(2027, 1, 1), cohort={"birth_year_min": 2000})
    policies.check_conditions_within_request(Conditions(sources=["a"], variables={"a": ["x"]}, k=12, dp_epsilon=0.5,
                                                        cohort=Cohort(birth_year_min=2005)), application)
    with pytest.raises(NotAllowed, match="sources .'c'. were not requested"):
        policies.check_conditions_within_request(Conditions(sources=["a", "c"]), application)
    with pytest.raises(NotAllowed, match="cohort birth_year_min None is wider"):
        policies.check_conditions_within_request(Conditions(cohort=Cohort()), application)


def _votes(choices):
    return [SimpleNamespace(voter_id=i, choice=c) for i, c in enumerate(choices)]


@given(st.lists(st.sampled_from(["approve", "reject", "changes"]), max_size=12), st.integers(1, 6),
       st.sampled_from([0.5, 0.6, 2 / 3]), st.sets(st.integers(0, 11)))
def test_tally_follows_its_definition(choices, quorum, majority, recused):
    eligible = {i for i in range(len(choices)) if i not in recused}
    tally = policies.count_votes(_votes(choices), eligible, quorum, majority)
    counted = [c for i, c in enumerate(choices) if i in eligible]
    assert tally.counted == len(counted) and tally.not_counted == len(choices) - len(counted)
    if len(counted) < quorum:
        assert tally.outcome is None
    elif counted.count("approve") / len(counted) > majority:
        assert tally.outcome == ApplicationState.approved
    elif counted.count("changes") >= counted.count("reject"):
        assert tally.outcome == ApplicationState.changes_requested
    else:
        assert tally.outcome == ApplicationState.rejected
