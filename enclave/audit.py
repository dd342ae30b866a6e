"""The audit chain: an append-only, hash-chained log of every state change and data access.

Each event's hash is sha256 over a canonical JSON serialisation of its fields and the
previous event's hash, so an edited, deleted, inserted or reordered event breaks the chain
at a place ``verify`` can name. ``append`` writes inside the caller's transaction: the event
commits (or rolls back) together with the change it records.

Details must never carry identifiers or cell values of research data: only registry ids,
names of files and variables, counts of things and reasons.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from enclave.registry.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
_HEAD_ID = 1
_events = AuditEvent.__table__
_head = AuditHead.__table__
# Built once: constructing statements per call cost more than executing them.
_LOCK_HEAD = select(_head.c.seq, _head.c.hash).where(_head.c.id == _HEAD_ID).with_for_update()
_CREATE_HEAD = insert(_head).values(id=_HEAD_ID, seq=0, hash=GENESIS_HASH)
_INSERT_EVENT = insert(_events)
_MOVE_HEAD = update(_head).where(_head.c.id == _HEAD_ID).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"audit details cannot hold a {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def event_hash(seq: int, at: str, actor: str, action: str, project: str | None, subject: str | None,
               details: str, prev_hash: str) -> str:
    """The hash of one event; ``details`` is its canonical JSON text."""
    payload = canonical_json(
        {"seq": seq, "at": at, "actor": actor, "action": action, "project": project, "subject": subject,
         "details": json.loads(details), "prev_hash": prev_hash}
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def format_time(moment: dt.datetime) -> str:
    """Fixed-width UTC ISO text, so stored times sort and compare as strings."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(session: Session, *, actor: str, action: str, project: str | None = None, subject: str | None = None,
           details: dict[str, Any] | None = None, at: dt.datetime | None = None) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction and return a copy of it."""
    # The head row is the chain's lock: FOR UPDATE on PostgreSQL; on SQLite the writer already
    # holds the database write lock since BEGIN IMMEDIATE, so appends serialise either way.
    # Prepared Core statements rather than ORM objects: three statements, no unit-of-work flush.
    connection = session.connection()
    row = connection.execute(_LOCK_HEAD).first()
    if row is None:
        connection.execute(_CREATE_HEAD)
        prev_seq, prev_hash = 0, GENESIS_HASH
    else:
        prev_seq, prev_hash = row
    seq = prev_seq + 1
    when = format_time(at or dt.datetime.now(dt.UTC))
    details_text = canonical_json(details or {})
    digest = event_hash(seq, when, actor, action, project, subject, details_text, prev_hash)
    values = {"seq": seq, "at": when, "actor": actor, "action": action, "project": project, "subject": subject,
              "details": details_text, "prev_hash": prev_hash, "hash": digest}
    connection.execute(_INSERT_EVENT, values)
    connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": digest})
    return AuditEvent(**values)


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # edited | deleted | reordered | rewritten
    message: str


@dataclass
class Verification:
    events: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _iter_events(session: Session) -> Iterator[AuditEvent]:
    yield from session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(1000)


def _chain_positions(links: dict[str, str]) -> dict[str, int]:
    """Position of each hash along its prev_hash links from the genesis (the order it was written in)."""
    positions: dict[str, int] = {GENESIS_HASH: 0}
    for start in links:
        path, current = [], start
        while current not in positions and current in links and current not in path:
            path.append(current)
            current = links[current]
        if current not in positions:
            continue  # the chain behind this event is broken (a deleted or rewritten predecessor)
        base = positions[current]
        for offset, digest in enumerate(reversed(path), start=1):
            positions[digest] = base + offset
    return positions


def _recompute(event: AuditEvent, seq: int) -> str:
    try:
        return event_hash(seq, event.at, event.actor, event.action, event.project, event.subject, event.details,
                          event.prev_hash)
    except (ValueError, TypeError):  # details no longer valid JSON
        return ""


def head(session: Session) -> tuple[int, str]:
    """The last sequence number and hash: publish it outside the registry as an anchor."""
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == _HEAD_ID)).first()
    return (row[0], row[1]) if row is not None else (0, GENESIS_HASH)


def parse_anchor(text: str) -> tuple[int, str]:
    """``<seq>:<sha256 hex>`` as printed by ``enclave audit head``."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"anchor {text!r} is not <seq>:<64 hex digits>")
    return int(seq), digest


def verify(session: Session, anchors: Iterable[tuple[int, str]] = ()) -> Verification:
    """Walk the chain and name every event that was edited, deleted, inserted or reordered.

    A chain rewritten from some point on with every hash recomputed is consistent again; an
    anchor (a ``(seq, hash)`` published earlier, outside the database) catches that too.
    """
    result = Verification(events=0)
    # Where each event was written in the chain, from the prev_hash links alone: a moved event
    # still hashes correctly at its original position, which lets the report call it reordered.
    links = {digest: prev for digest, prev in session.execute(select(AuditEvent.hash, AuditEvent.prev_hash))}
    written_at = _chain_positions(links)
    expected_seq, expected_prev = 1, GENESIS_HASH
    for event in _iter_events(session):
        result.events += 1
        previous_flagged = bool(result.problems) and result.problems[-1].seq == event.seq - 1
        after_gap = event.seq > expected_seq
        if after_gap:
            missing = f"{expected_seq}" if event.seq == expected_seq + 1 else f"{expected_seq}-{event.seq - 1}"
            result.problems.append(Problem(expected_seq, "deleted", f"event {missing} is missing (deleted)"))
        if _recompute(event, event.seq) != event.hash:
            original = written_at.get(event.hash)
            if original and original != event.seq and _recompute(event, original) == event.hash:
                result.problems.append(Problem(event.seq, "reordered",
                                               f"event {event.seq} ({event.action}) was reordered: it was written as event {original}"))
            else:
                result.problems.append(Problem(event.seq, "edited",
                                               f"event {event.seq} ({event.action}) was edited: its hash does not match its content"))
        elif event.prev_hash != expected_prev and not after_gap and not previous_flagged:
            result.problems.append(Problem(event.seq, "rewritten",
                                           f"event {event.seq} ({event.action}) does not follow event {event.seq - 1}: "
                                           f"event {event.seq - 1} was rewritten or event {event.seq} inserted"))
        expected_seq, expected_prev = event.seq + 1, event.hash
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == _HEAD_ID)).first()
    last_seq = expected_seq - 1
    if head is None:
        if result.events:
            result.problems.append(Problem(1, "edited", "the chain head record is missing"))
    elif head.seq > last_seq:
        result.problems.append(Problem(last_seq + 1, "deleted",
                                       f"event {last_seq + 1}" + (f"-{head.seq}" if head.seq > last_seq + 1 else "")
                                       + " at the end of the chain is missing (deleted)"))
    elif head.seq != last_seq or head.hash != expected_prev:
        result.problems.append(Problem(last_seq, "edited", f"the chain head does not match event {last_seq}"))
    for seq, digest in anchors:
        stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
        if stored is None:
            result.problems.append(Problem(seq, "deleted", f"anchored event {seq} is missing (deleted)"))
        elif stored != digest:
            result.problems.append(Problem(seq, "rewritten",
                                           f"event {seq} no longer has its anchored hash {digest[:12]}: the chain was rewritten"))
    return result


@dataclass(frozen=True)
class Filters:
    project: str | None = None
    person: str | None = None  # the actor, or the subject "user:<name>"
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int | None = None


def show(session: Session, filters: Filters = Filters()) -> list[AuditEvent]:
    """Events matching every given filter, oldest first."""
    query = select(AuditEvent)
    if filters.project:
        query = query.where(AuditEvent.project == filters.project)
    if filters.person:
        query = query.where((AuditEvent.actor == filters.person) | (AuditEvent.subject == f"user:{filters.person}"))
    if filters.action:
        query = query.where(AuditEvent.action.startswith(filters.action))
    if filters.since:
        query = query.where(AuditEvent.at >= format_time(filters.since))
    if filters.until:
        query = query.where(AuditEvent.at <= format_time(filters.until))
    query = query.order_by(AuditEvent.seq)
    if filters.limit:
        # The newest ``limit`` events, still printed oldest first.
        rows = list(session.scalars(query.order_by(None).order_by(AuditEvent.seq.desc()).limit(filters.limit)))
        return rows[::-1]
    return list(session.scalars(query))
