"""Crashes and races, for real: a subprocess is SIGKILLed at a named crash point of an extract
build, a submission or a release, and two processes review at the same moment."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from enclave.airlock import publishing, requests, reviews, views
from enclave.airlock.states import RequestState
from enclave.registry.base import dispose_engines, session_scope

REPO = Path(__file__).resolve().parents[2]


def _env(enclave_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update(ENCLAVE_HOME=str(enclave_home), ENCLAVE_BOARD_QUORUM="3", ENCLAVE_REVIEWERS_REQUIRED="2",
               PYTHONPATH=str(REPO))
    return env


def _start(code: str, enclave_home: Path, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=_env(enclave_home), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_at(point: str, call: str, enclave_home: Path, tmp_path: Path) -> None:
    """Run ``call`` in a subprocess armed to stop at ``point``; SIGKILL it there."""
    ready = tmp_path / f"ready-{point}"
    proc = _start(f"""
        from enclave.airlock import faults
        faults.arm({point!r}, {str(ready)!r})
        {call}
        print("FINISHED")
    """, enclave_home, tmp_path)
    deadline = time.monotonic() + 90
    while not ready.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"subprocess ended before crash point {point}: {out} {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"crash point {point} never reached")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _visible_versions(project_dir: Path) -> list[str]:
    return sorted(p.name for p in project_dir.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("point", ["extract.after_tmpdir", "extract.after_table", "extract.before_rename",
                                   "extract.before_current", "extract.before_register"])
def test_extract_build_killed_at_each_step_recovers(point, registry, research_store, approve_application,
                                                    make_application, enclave_home, tmp_path):
    from enclave.entitlements import Refused, check_workspace
    from enclave.provisioning import provision, read_manifest, verify_extract
    from enclave.registry.models import Extract
    from enclave.settings import get_settings

    approve_application(make_application())
    dispose_engines()
    _kill_at(point, "from enclave.provisioning import provision; provision('school-moves', actor='admin')",
             enclave_home, tmp_path)
    project_dir = get_settings().extracts / "school-moves"
    # Nothing half-written is visible: any visible version is complete and verifies; the registry
    # (what the hub reads) lists no extract yet, so no workspace opens on it.
    for version in _visible_versions(project_dir):
        if version != "current":
            assert verify_extract(project_dir / version) == []
    if (project_dir / "current").is_symlink():
        assert read_manifest(project_dir / "current")["version"] == os.readlink(project_dir / "current")
    with session_scope(registry, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Extract)) == 0
    with pytest.raises(Refused, match="no extract"):
        check_workspace("bob", "school-moves", record=False)
    # The re-run completes: one version, registered, temporaries gone.
    result = provision("school-moves", actor="admin")
    assert result.version == "v1"
    renamed_before_kill = point in {"extract.before_current", "extract.before_register"}
    assert result.adopted == renamed_before_kill and result.created == (not renamed_before_kill)
    assert _visible_versions(project_dir) == ["current", "v1"]
    assert not list(project_dir.glob(".tmp-*"))
    assert verify_extract(project_dir / "v1") == []
    assert check_workspace("bob", "school-moves", record=False).extract_version == 1
    with session_scope(registry, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Extract)) == 1


@pytest.mark.parametrize("point", ["airlock.after_snapshot", "airlock.before_commit"])
def test_submission_killed_between_snapshot_and_commit_recovers(point, approved_project, make_outputs, enclave_home,
                                                                 tmp_path, registry):
    from enclave.registry.models import ReleaseSnapshot
    from enclave.settings import get_settings

    name = make_outputs("safe")
    rid = requests.create("alice", approved_project, {name: "sex by homeless flag"})
    dispose_engines()
    _kill_at(point, f"from enclave.airlock import requests; requests.submit('alice', {rid})", enclave_home, tmp_path)
    request_dir = get_settings().airlock / str(rid)
    assert (request_dir / "r1").is_dir()  # the orphaned snapshot is on disk ...
    with session_scope(registry, readonly=True) as session:  # ... but the registry never saw it
        assert session.scalar(select(func.count()).select_from(ReleaseSnapshot)) == 0
    assert views.describe("alice", rid)["state"] == "draft"
    assert requests.recover() == {str(rid): ["r1"]}
    assert not (request_dir / "r1").exists()
    requests.submit("alice", rid)  # the re-run completes
    info = views.describe("rev1", rid)
    assert info["state"] == "checked" and info["round"] == 1
    assert sorted(p.name for p in request_dir.iterdir()) == ["r1"]


def test_release_killed_after_copy_recovers(approved_project, make_outputs, enclave_home, tmp_path, registry):
    from disclosure_control.differencing import Ledger

    from enclave.settings import get_settings

    name = make_outputs("safe")
    rid = requests.create("alice", approved_project, {name: "sex by homeless flag"})
    requests.submit("alice", rid)
    reviews.review("rev1", rid, "approve")
    reviews.review("rev2", rid, "approve")
    dispose_engines()
    _kill_at("release.after_copy", f"from enclave.airlock import publishing; publishing.release('rev1', {rid})",
             enclave_home, tmp_path)
    assert views.describe("rev1", rid)["state"] == "approved"
    folder = publishing.release("rev1", rid)
    assert views.describe("rev1", rid)["state"] == "released"
    assert publishing.verify_release(folder) == []
    assert Ledger(publishing.ledger_path()).released_outputs() == [f"{approved_project}/{rid}/{name.split('.')[0]}"]


def test_two_reviewers_approving_at_once_lose_nothing(approved_project, make_outputs, enclave_home, tmp_path, registry):
    from enclave import audit
    from enclave.registry.models import Person, Review

    name = make_outputs("safe")
    rid = requests.create("alice", approved_project, {name: "sex by homeless flag"})
    requests.submit("alice", rid)
    dispose_engines()
    go = tmp_path / "go"
    procs = []
    for reviewer in ("rev1", "rev2", "rev2"):  # rev2 twice: exactly one of those may count
        procs.append(_start(f"""
            import time, pathlib
            from enclave.airlock import reviews
            from enclave.airlock.errors import Refused
            from sqlalchemy.exc import IntegrityError
            while not pathlib.Path({str(go)!r}).exists():
                time.sleep(0.005)
            try:
                print(reviews.review({reviewer!r}, {rid}, "approve").value)
            except (Refused, IntegrityError) as exc:
                print("REFUSED", type(exc).__name__)
        """, enclave_home, tmp_path))
    time.sleep(1.5)  # let all three import and wait at the barrier
    go.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    results = sorted(o[0].strip() for o in outs)
    assert sum(r.startswith("REFUSED") for r in results) == 1, results
    assert sorted(r for r in results if not r.startswith("REFUSED")) == ["approved", "partially_reviewed"]
    with session_scope(registry, readonly=True) as session:
        rows = session.scalars(select(Review).where(Review.request_id == rid)).all()
        assert sorted(session.get(Person, r.reviewer_id).username for r in rows) == ["rev1", "rev2"]
        assert len(rows) == 2
        assert audit.verify(session).ok
    assert views.describe("rev3", rid)["state"] == RequestState.approved.value
