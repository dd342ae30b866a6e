"""Workspace entitlements: every way to be refused, checked live, and the grant's contents."""
from __future__ import annotations

import datetime as dt

import pytest

from enclave import audit, people
from enclave.board import service
from enclave.entitlements import Refused, check_workspace, projects_for
from enclave.registry.base import session_scope
from enclave.registry.models import Extract

TODAY = dt.date(2026, 6, 1)


@pytest.fixture
def approved(registry, submit, approve, add_extract):
    approve(submit())
    add_extract()
    return registry


def test_grant_for_an_approved_member(approved, enclave_home):
    grant = check_workspace("bob", "school-moves", url=approved, today=TODAY)
    assert grant.project == "school-moves" and grant.username == "bob" and grant.role == "researcher"
    assert grant.extract_version == 1
    assert grant.extract_path == (enclave_home / "extracts" / "school-moves" / "1").resolve()
    assert grant.home_path == enclave_home / "workspaces" / "school-moves" / "bob"
    assert grant.expires_on == dt.date(2027, 4, 30)
    alice = check_workspace("alice", "school-moves", url=approved, today=TODAY)
    assert alice.gid == grant.gid >= 30001  # one group per project
    assert alice.uid != grant.uid and min(alice.uid, grant.uid) >= 20001  # one uid per person


def test_uid_and_gid_are_stable_and_distinct_across_projects(approved, submit, approve, add_extract):
    approve(submit(project="second-study", researchers=[]))
    add_extract("second-study")
    first = check_workspace("alice", "school-moves", url=approved, today=TODAY)
    second = check_workspace("alice", "second-study", url=approved, today=TODAY)
    assert first.uid == second.uid and first.gid != second.gid
    assert check_workspace("alice", "school-moves", url=approved, today=TODAY) == first


def test_newest_ready_extract_wins(approved, add_extract, enclave_home):
    add_extract(version=2)
    assert check_workspace("bob", "school-moves", url=approved, today=TODAY).extract_version == 2
    with session_scope(approved) as s:
        s.query(Extract).filter(Extract.version == 2).update({"state": "withdrawn"})
    assert check_workspace("bob", "school-moves", url=approved, today=TODAY).extract_version == 1


@pytest.mark.parametrize("username, project, reason", [
    ("carol", "school-moves", "not a member"),
    ("mallory", "school-moves", "unknown user"),
    ("bob", "no-such-project", "no project named"),
])
def test_outsiders_refused(approved, username, project, reason):
    with pytest.raises(Refused, match=reason):
        check_workspace(username, project, url=approved, today=TODAY)


def test_not_yet_approved_refused(registry, submit):
    submit()
    with pytest.raises(Refused, match="awaits board approval"):
        check_workspace("bob", "school-moves", url=registry, today=TODAY)


def test_suspended_then_reinstated(approved):
    with session_scope(approved) as s:
        service.suspend(s, "board1", "school-moves", "investigation")
    with pytest.raises(Refused, match="suspended"):
        check_workspace("bob", "school-moves", url=approved, today=TODAY)
    with session_scope(approved) as s:
        service.reinstate(s, "board1", "school-moves", "cleared", today=TODAY)
    assert check_workspace("bob", "school-moves", url=approved, today=TODAY).username == "bob"


def test_revoked_refused_at_once(approved):
    with session_scope(approved) as s:
        service.revoke(s, "board1", "school-moves", "breach")
    with pytest.raises(Refused, match="revoked"):
        check_workspace("alice", "school-moves", url=approved, today=TODAY)


def test_expiry_checked_now_without_any_sweep(approved):
    assert check_workspace("bob", "school-moves", url=approved, today=dt.date(2027, 4, 30))  # last day still open
    with pytest.raises(Refused, match="expired on 2027-04-30"):
        check_workspace("bob", "school-moves", url=approved, today=dt.date(2027, 5, 1))


def test_removed_member_and_disabled_account_refused(approved):
    with session_scope(approved) as s:
        service.remove_member(s, "alice", "school-moves", "bob", "left the team")
    with pytest.raises(Refused, match="not a member"):
        check_workspace("bob", "school-moves", url=approved, today=TODAY)
    with session_scope(approved) as s:
        people.set_active(s, "admin", "alice", False)
    with pytest.raises(Refused, match="disabled"):
        check_workspace("alice", "school-moves", url=approved, today=TODAY)


def test_missing_extract_refused(registry, submit, approve, add_extract, enclave_home):
    approve(submit())
    with pytest.raises(Refused, match="no extract built"):
        check_workspace("bob", "school-moves", url=registry, today=TODAY)
    add_extract(on_disk=False)
    with pytest.raises(Refused, match="missing on disk"):
        check_workspace("bob", "school-moves", url=registry, today=TODAY)


def test_extract_path_outside_zone_refused(approved, enclave_home):
    (enclave_home / "vault").mkdir()
    with session_scope(approved) as s:
        s.query(Extract).update({"path": "../vault"})
    with pytest.raises(Refused, match="outside the extracts zone"):
        check_workspace("bob", "school-moves", url=approved, today=TODAY)


def test_decisions_are_audited(approved):
    check_workspace("bob", "school-moves", url=approved, today=TODAY)
    with pytest.raises(Refused):
        check_workspace("carol", "school-moves", url=approved, today=TODAY)
    check_workspace("bob", "school-moves", url=approved, today=TODAY, record=False)
    with session_scope(approved, readonly=True) as s:
        events = [(e.action, e.actor) for e in audit.show(s, audit.Filters(action="workspace."))]
        assert audit.verify(s).ok
    assert events == [("workspace.granted", "bob"), ("workspace.refused", "carol")]


def test_projects_for_lists_membership_with_reasons(approved, submit):
    submit(actor="carol", project="pending-study", researchers=["bob"])
    summaries = {p.project: p for p in projects_for("bob", url=approved, today=TODAY)}
    assert set(summaries) == {"school-moves", "pending-study"}
    assert summaries["school-moves"].can_open and summaries["school-moves"].extract_version == 1
    assert not summaries["pending-study"].can_open and "awaits" in summaries["pending-study"].reason
    assert projects_for("nobody", url=approved) == []
