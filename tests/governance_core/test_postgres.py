"""The registry on PostgreSQL (the scale-out backend): a real throwaway server on a unix socket.

Same migrations, same rules, same audit chain, same serialisation of concurrent writers.
"""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from enclave import audit, people
from enclave.board import service
from enclave.board.errors import NotAllowed
from enclave.entitlements import Refused, check_workspace
from enclave.registry.base import dispose_engines, session_scope, upgrade
from enclave.registry.models import Extract, Vote

TODAY = dt.date(2026, 6, 1)
# `make test` installs Debian's postgresql (15 on Debian 12) and CI runs as root: no skip, a missing
# server must fail the run rather than silently prove nothing.
PG_BIN = Path("/usr/lib/postgresql/15/bin")

pytestmark = [
    pytest.mark.timeout(180),
]


def _as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pg_socket_dir():
    """A private PostgreSQL cluster listening on a unix socket only (no TCP at all)."""
    root = Path(tempfile.mkdtemp(prefix="enclave-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, sock = root / "data", root / "sock"
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    _as_postgres("mkdir", str(sock))
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                 f"-k {sock} -c listen_addresses='' -c fsync=off -c max_connections=40", "start")
    try:
        yield sock
    finally:
        dispose_engines()
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_registry(pg_socket_dir, enclave_home, monkeypatch, request):
    """A fresh, migrated and seeded database on the cluster, as the configured registry."""
    import psycopg

    from enclave.settings import get_settings

    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:50]
    with psycopg.connect(host=str(pg_socket_dir), user="postgres", dbname="postgres", autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@/{name}?host={pg_socket_dir}"
    monkeypatch.setenv("ENCLAVE_DATABASE_URL", url)
    monkeypatch.setenv("ENCLAVE_BOARD_QUORUM", "3")
    get_settings.cache_clear()
    upgrade(url)
    with session_scope(url) as session:
        people.bootstrap_admin(session, "admin", "Ada Admin")
        for username, roles in (("board1", ["board_member"]), ("board2", ["board_member"]), ("board3", ["board_member"]),
                                ("board4", ["board_member"]), ("alice", ["researcher"]), ("bob", ["researcher"])):
            people.add_person(session, "admin", username, username.title(), roles)
        for source in ("foster_care", "school_enrollment"):
            people.register_source(session, "admin", source, "Agency")
    yield url
    dispose_engines()


def _request(request_for):
    return request_for(sources=["foster_care", "school_enrollment"], variables={"foster_care": ["placement_type"]},
                       cohort={"birth_year_min": 2005})


def test_migrations_match_models_on_postgres(pg_registry):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from enclave.registry.base import Base, get_engine

    with get_engine(pg_registry).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata) == []


def test_board_flow_entitlements_and_chain_on_postgres(pg_registry, request_for, enclave_home):
    with session_scope(pg_registry) as s:
        app_id = service.apply(s, "alice", _request(request_for), today=TODAY).id
        service.open_review(s, "board1", app_id)
        for member in ("board1", "board2", "board3"):
            service.vote(s, member, app_id, "approve")
        with pytest.raises(NotAllowed, match="already voted"):
            service.vote(s, "board1", app_id, "reject")
    with session_scope(pg_registry) as s:
        decision = service.decide(s, "board1", app_id, today=TODAY)
        assert decision.outcome.value == "approved"
        project = service.get_project(s, "school-moves")
        s.add(Extract(project_id=project.id, approval_id=project.current_approval_id, version=1, path="school-moves/1"))
    (enclave_home / "extracts" / "school-moves" / "1").mkdir(parents=True)
    grant = check_workspace("bob", "school-moves", today=TODAY)
    assert grant.extract_version == 1 and grant.gid == 30001
    with session_scope(pg_registry) as s:
        service.revoke(s, "board2", "school-moves", "breach")
    with pytest.raises(Refused, match="revoked"):
        check_workspace("bob", "school-moves", today=TODAY)
    with session_scope(pg_registry, readonly=True) as s:
        result = audit.verify(s)
        assert result.ok and result.events > 10


def test_audit_chain_is_append_only_and_tamper_evident_on_postgres(pg_registry):
    with pytest.raises(DBAPIError, match="append-only"), session_scope(pg_registry) as s:
        s.execute(text("UPDATE audit_events SET actor = 'x' WHERE seq = 2"))
    with session_scope(pg_registry) as s:
        s.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        s.execute(text("UPDATE audit_events SET actor = 'x' WHERE seq = 2"))
        s.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    with session_scope(pg_registry, readonly=True) as s:
        problems = [(p.seq, p.kind) for p in audit.verify(s).problems]
    assert problems == [(2, "edited"), (4, "deleted")]


_WORKER = """
import json, os, sys, time
url, go, member, app_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from enclave.registry.base import session_scope
from enclave.board import service
from enclave.board.errors import GovernanceError
open(go + "-ready-" + str(os.getpid()), "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
try:
    with session_scope(url) as session:
        service.vote(session, member, app_id, "approve")
    print("ok")
except GovernanceError as error:
    print("refused: " + str(error))
"""


def test_concurrent_votes_serialise_on_postgres(pg_registry, request_for, tmp_path):
    with session_scope(pg_registry) as s:
        app_id = service.apply(s, "alice", _request(request_for), today=TODAY).id
        service.open_review(s, "board1", app_id)
    go = tmp_path / "go"
    members = ["board1", "board1", "board2", "board3"]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, pg_registry, str(go), m, str(app_id)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in members]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go-ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    assert sorted(outputs)[:3] == ["ok", "ok", "ok"] and "already voted" in sorted(outputs)[3]
    with session_scope(pg_registry, readonly=True) as s:
        assert sorted(v.voter.username for v in s.scalars(select(Vote))) == ["board1", "board2", "board3"]
        assert audit.verify(s).ok
