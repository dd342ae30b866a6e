"""The DP budget service as it runs: ``python -m enclave.dp_service`` on a real unix socket, called
by a process running as a workspace's uid and gid (what SO_PEERCRED reports), concurrently, to
two service processes sharing one registry."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from enclave.dp_service import client
from enclave.registry.base import session_scope

MEAN = {"statistic": "mean", "table": "school_enrollment", "column": "days_attended", "epsilon": 0.3,
        "bounds": [0, 200], "purpose": "mean days attended"}

def _ids(url, username, project="school-moves"):
    from enclave.registry.models import Person, Project

    with session_scope(url, readonly=True) as session:
        uid = session.scalars(select(Person.posix_uid).where(Person.username == username)).one()
        gid = session.scalars(select(Project.posix_gid).where(Project.slug == project)).one()
    return uid, gid


@pytest.fixture
def socket_dir():
    """A folder any uid can traverse (pytest's tmp folders are root-only), short enough for a socket path."""
    path = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_service(approved_project, registry, socket_dir):
    from hub_config.launcher import settings_env
    from enclave.settings import get_settings

    started = []

    def _start(*names: str) -> list[Path]:
        """Start one service per name (all at once) and return their sockets once they listen."""
        env = {**os.environ, **settings_env(get_settings())}
        socks = [socket_dir / name / "dp.sock" for name in names]
        procs = [subprocess.Popen([sys.executable, "-m", "enclave.dp_service", f"--socket={sock}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for sock in socks]
        started.extend(procs)
        deadline = time.monotonic() + 60
        for sock, proc in zip(socks, procs):
            while not sock.is_socket():  # waits on the state it needs: the socket exists
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the DP service did not start"
                time.sleep(0.05)
        return socks

    yield _start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def _ask_all(sockets: list[Path], query: dict, n: int) -> list[dict]:
    """``n`` threads ask at once, alternating between the sockets. Everything it uses is imported
    before the fork: the child has dropped root and may not read the checkout (a clone under a 0700
    temporary folder, as a clean-clone CI run makes)."""
    barrier = threading.Barrier(n)
    out: list[dict] = [{}] * n

    def ask(i: int) -> None:
        barrier.wait()
        try:
            out[i] = {"ok": True, "receipt": client.ask(query, str(sockets[i % len(sockets)]))["receipt"]}
        except client.DPServiceError as exc:
            out[i] = {"ok": False, "kind": exc.kind, "error": str(exc)}

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _as(uid: int, gid: int, sockets: list[Path], query: dict, n: int = 1) -> list[dict]:
    """Ask from a forked process that dropped to (uid, gid) with no supplementary groups, as a
    workspace sandbox runs (the interpreter lives under root's home: a fork needs no exec)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(_ask_all(sockets, query, n)))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


def test_the_service_answers_the_workspace_its_peer_credentials_name(registry, start_service):
    from enclave.dp_service import receipts

    (sock,) = start_service("a")
    uid, gid = _ids(registry, "alice")
    (answer,) = _as(uid, gid, [sock], MEAN)
    assert answer["ok"], answer
    payload = receipts.verify_signature(answer["receipt"])
    assert payload["project"] == "school-moves" and payload["epsilon"] == 0.3
    # A person who is not a member, with the project's gid: refused. Root (the host): refused.
    outsider, _ = _ids(registry, "rev1")
    (refused,) = _as(outsider, gid, [sock], MEAN)
    assert not refused["ok"] and "not a member" in refused["error"]
    (nobody,) = _as(65534, 65534, [sock], MEAN)
    assert not nobody["ok"]
    # Naming another project in the query is not even a field.
    (named,) = _as(uid, gid, [sock], {**MEAN, "project": "other"})
    assert not named["ok"] and "project" in named["error"]


def test_concurrent_queries_from_two_service_processes_never_overspend(approved_project, registry, start_service):
    from enclave.registry.models import DPBudget, DPSpend, Project

    sockets = start_service("a", "b")
    uid, gid = _ids(registry, "alice")
    answers = _as(uid, gid, sockets, MEAN, n=12)  # 12 x 0.3 asked at once against a budget of 2.0
    ok = [a for a in answers if a["ok"]]
    assert len(ok) == 6, answers  # 6 x 0.3 = 1.8; a 7th would make 2.1
    assert {a["kind"] for a in answers if not a["ok"]} == {"budget_exceeded"}
    with session_scope(registry, readonly=True) as session:
        proj = session.scalars(select(Project).where(Project.slug == approved_project)).one()
        assert session.get(DPBudget, proj.id).epsilon_spent == pytest.approx(1.8)
        spends = session.scalars(select(DPSpend.id).where(DPSpend.project_id == proj.id)).all()
    assert sorted(a["receipt"]["payload"]["spend_id"] for a in ok) == sorted(spends)
