"""Cost of the hash-chained audit log against a plain audit table, side by side in one run.

Baseline: the same rows inserted into the same SQLite registry without hashing or the chain
head (what an unchained append-only table would cost). Figures:
  - appends in separate transactions (how services write: one event per state change);
  - appends in one transaction (a bulk import);
  - ``verify`` over the whole chain.
Usage: python benchmarks/audit_chain.py [--events 20000] [--commits 500]
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from rich.progress import track
from sqlalchemy import text

from enclave import audit
from enclave.registry.base import dispose_engines, session_scope, upgrade


def _plain_insert(session, seq: int, i: int) -> None:
    session.execute(
        text("INSERT INTO plain_events (seq, at, actor, action, project, subject, details) "
             "VALUES (:seq, :at, 'bench', 'bench.event', 'p', :subject, :details)"),
        {"seq": seq, "at": audit.format_time(dt.datetime.now(dt.UTC)), "subject": f"item:{i}",
         "details": audit.canonical_json({"i": i})},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'registry.db'}"
        upgrade(url)
        with session_scope(url) as session:
            session.execute(text("CREATE TABLE plain_events (seq INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT, "
                                 "project TEXT, subject TEXT, details TEXT)"))
        figures: dict[str, float] = {}

        start = time.perf_counter()
        for i in track(range(args.commits), description="chained, one commit each"):
            with session_scope(url) as session:
                audit.append(session, actor="bench", action="bench.event", project="p", subject=f"item:{i}", details={"i": i})
        figures["chain_commit_per_event_per_s"] = args.commits / (time.perf_counter() - start)

        start = time.perf_counter()
        for i in track(range(args.commits), description="plain, one commit each"):
            with session_scope(url) as session:
                _plain_insert(session, i + 1, i)
        figures["plain_commit_per_event_per_s"] = args.commits / (time.perf_counter() - start)

        bulk = args.events - args.commits
        start = time.perf_counter()
        with session_scope(url) as session:
            for i in track(range(bulk), description="chained, one transaction"):
                audit.append(session, actor="bench", action="bench.event", project="p", subject=f"item:{i}", details={"i": i})
        figures["chain_bulk_per_s"] = bulk / (time.perf_counter() - start)

        start = time.perf_counter()
        with session_scope(url) as session:
            for i in track(range(bulk), description="plain, one transaction"):
                _plain_insert(session, args.commits + i + 1, i)
        figures["plain_bulk_per_s"] = bulk / (time.perf_counter() - start)

        start = time.perf_counter()
        with session_scope(url, readonly=True) as session:
            result = audit.verify(session)
        elapsed = time.perf_counter() - start
        assert result.ok and result.events == args.events, result.problems[:3]
        figures["verify_events"] = result.events
        figures["verify_seconds"] = elapsed
        figures["verify_per_s"] = result.events / elapsed
        dispose_engines()

    print(f"audit chain vs plain table, {args.events} events ({args.commits} committed one by one)")
    for name, value in figures.items():
        print(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}")


if __name__ == "__main__":
    main()
