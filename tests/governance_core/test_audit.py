"""The audit chain: tampering of every kind is detected and the event named."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from enclave import audit
from enclave.registry.base import dispose_engines, session_scope


@pytest.fixture
def chain(registry):
    """A registry whose chain holds the seeding events plus ten more; returns (url, db path)."""
    with session_scope(registry) as s:
        for i in range(10):
            audit.append(s, actor="board1", action="test.event", project="p1" if i % 2 else "p2",
                         subject=f"item:{i}", details={"i": i})
    dispose_engines()
    return registry, registry.removeprefix("sqlite:///")


def _tamper(db_path, *statements):
    """What an attacker with the database file does: drop the append-only guard, then edit."""
    con = sqlite3.connect(db_path)
    con.execute("DROP TRIGGER audit_events_no_update")
    con.execute("DROP TRIGGER audit_events_no_delete")
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


def _verify(url):
    with session_scope(url, readonly=True) as s:
        return audit.verify(s)


def _last_seq(url):
    with session_scope(url, readonly=True) as s:
        return audit.show(s)[-1].seq


def test_intact_chain_verifies(chain):
    url, _ = chain
    result = _verify(url)
    assert result.ok and result.events == _last_seq(url)


def test_hash_matches_documented_canonical_form(chain):
    url, _ = chain
    with session_scope(url, readonly=True) as s:
        event = audit.show(s)[-1]
    payload = {"seq": event.seq, "at": event.at, "actor": event.actor, "action": event.action, "project": event.project,
               "subject": event.subject, "details": json.loads(event.details), "prev_hash": event.prev_hash}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == event.hash


def test_append_only_in_the_database(chain):
    url, _ = chain
    for statement in ("UPDATE audit_events SET actor = 'x' WHERE seq = 3", "DELETE FROM audit_events WHERE seq = 3"):
        with pytest.raises(DatabaseError, match="append-only"), session_scope(url) as s:
            s.execute(text(statement))
    assert _verify(url).ok


def test_edited_event_is_named(chain):
    url, db = chain
    target = _last_seq(url) - 4
    _tamper(db, f"UPDATE audit_events SET details = '{{\"i\":99}}' WHERE seq = {target}")
    result = _verify(url)
    assert [(p.seq, p.kind) for p in result.problems] == [(target, "edited")]
    assert f"event {target} (test.event) was edited" in result.problems[0].message


def test_edited_actor_is_named(chain):
    url, db = chain
    _tamper(db, "UPDATE audit_events SET actor = 'someone_else' WHERE seq = 2")
    assert [(p.seq, p.kind) for p in _verify(url).problems] == [(2, "edited")]


def test_rehashed_edit_is_still_detected_at_the_next_event(chain):
    url, db = chain
    target = _last_seq(url) - 3
    with session_scope(url, readonly=True) as s:
        event = [e for e in audit.show(s) if e.seq == target][0]
        forged = audit.event_hash(event.seq, event.at, "intruder", event.action, event.project, event.subject,
                                  event.details, event.prev_hash)
    _tamper(db, f"UPDATE audit_events SET actor = 'intruder', hash = '{forged}' WHERE seq = {target}")
    problems = _verify(url).problems
    assert [(p.seq, p.kind) for p in problems] == [(target + 1, "rewritten")]
    assert f"event {target} was rewritten" in problems[0].message


def test_deleted_event_is_named(chain):
    url, db = chain
    target = _last_seq(url) - 5
    _tamper(db, f"DELETE FROM audit_events WHERE seq = {target}")
    result = _verify(url)
    assert [(p.seq, p.kind) for p in result.problems] == [(target, "deleted")]
    assert f"event {target} is missing" in result.problems[0].message


def test_deleted_tail_is_named(chain):
    url, db = chain
    last = _last_seq(url)
    _tamper(db, f"DELETE FROM audit_events WHERE seq >= {last - 1}")
    result = _verify(url)
    assert [(p.seq, p.kind) for p in result.problems] == [(last - 1, "deleted")]
    assert f"event {last - 1}-{last} at the end" in result.problems[0].message


def test_reordered_events_are_named(chain):
    url, db = chain
    a = _last_seq(url) - 6
    b = a + 1
    _tamper(db, f"UPDATE audit_events SET seq = -1 WHERE seq = {a}",
            f"UPDATE audit_events SET seq = {a} WHERE seq = {b}",
            f"UPDATE audit_events SET seq = {b} WHERE seq = -1")
    result = _verify(url)
    assert [(p.seq, p.kind) for p in result.problems] == [(a, "reordered"), (b, "reordered")]
    assert f"event {a} (test.event) was reordered: it was written as event {b}" == result.problems[0].message


def test_appends_continue_the_chain_across_sessions(chain):
    url, _ = chain
    before = _last_seq(url)
    with session_scope(url) as s:
        event = audit.append(s, actor="admin", action="test.more")
    assert event.seq == before + 1
    assert _verify(url).ok


def test_rolled_back_transaction_leaves_no_event(chain):
    url, _ = chain
    before = _last_seq(url)
    with pytest.raises(RuntimeError), session_scope(url) as s:
        audit.append(s, actor="admin", action="test.lost")
        raise RuntimeError("the change failed")
    assert _last_seq(url) == before and _verify(url).ok


def test_show_filters(chain):
    url, _ = chain
    with session_scope(url, readonly=True) as s:
        assert len(audit.show(s, audit.Filters(project="p1"))) == 5
        about_board1 = audit.show(s, audit.Filters(person="board1"))
        assert {(e.actor, e.action) for e in about_board1 if e.actor != "board1"} == {("admin", "person.added")}
        assert len([e for e in about_board1 if e.actor == "board1"]) == 10
        by_subject = audit.show(s, audit.Filters(person="stew"))
        assert by_subject and all(e.subject == "user:stew" or e.actor == "stew" for e in by_subject)
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert audit.show(s, audit.Filters(since=future)) == []
        assert len(audit.show(s, audit.Filters(until=future, action="test."))) == 10
        assert [e.subject for e in audit.show(s, audit.Filters(limit=2))] == ["item:8", "item:9"]


def test_details_refuse_unserialisable_values(registry):
    with pytest.raises(TypeError, match="cannot hold"), session_scope(registry) as s:
        audit.append(s, actor="admin", action="bad", details={"x": object()})


def test_full_rewrite_is_caught_by_an_anchor(chain):
    """Recomputing every hash after an edit makes the chain consistent; a published anchor still catches it."""
    url, db = chain
    with session_scope(url, readonly=True) as s:
        anchor = audit.head(s)
        events = audit.show(s)
    target = events[-3].seq
    statements, prev = [], None
    for event in events:
        if event.seq < target:
            prev = event.hash
            continue
        actor = "intruder" if event.seq == target else event.actor
        digest = audit.event_hash(event.seq, event.at, actor, event.action, event.project, event.subject, event.details, prev)
        statements.append(f"UPDATE audit_events SET actor = '{actor}', prev_hash = '{prev}', hash = '{digest}' WHERE seq = {event.seq}")
        prev = digest
    statements.append(f"UPDATE audit_head SET hash = '{prev}'")
    _tamper(db, *statements)
    assert _verify(url).ok  # consistent without an anchor: the limit of any unkeyed chain
    with session_scope(url, readonly=True) as s:
        result = audit.verify(s, [anchor])
    assert [(p.seq, p.kind) for p in result.problems] == [(anchor[0], "rewritten")]


def test_anchor_parsing():
    assert audit.parse_anchor("12:" + "a" * 64) == (12, "a" * 64)
    for bad in ("12", "x:" + "a" * 64, "3:abc"):
        with pytest.raises(ValueError, match="not <seq>"):
            audit.parse_anchor(bad)
