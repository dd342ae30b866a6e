"""Crashes and races, for real: a subprocess is SIGKILLed at a named crash point of an extract
build, a submission or a release, and two processes review at the same moment."""
from __future__ import annotations

import os
import signal
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import func, select

from enclave.airlock import publishing, requests, reviews, views
from enclave.airlock.states import RequestState
from enclave.registry.base import dispose_engines, session_scope


def _fork(task) -> int:
    """Run ``task`` in a forked child (a real process sharing nothing but the files); return its pid.

    Forking the already-imported test process instead of starting a new interpreter keeps these
    tests fast; the registry's connection pool is emptied first so no connection is shared.
    """
    dispose_engines()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            task()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def _wait(pid: int, timeout: float) -> int:
    """The child's exit status; a child still running after ``timeout`` is killed and the test fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} did not finish within {timeout} s")


def _kill_at(point: str, task, tmp_path: Path) -> None:
    """Run ``task`` in a child armed to stop at crash point ``point``; SIGKILL it there."""
    from enclave.airlock import faults

    ready = tmp_path / f"ready-{point}"

    def armed():
        faults.arm(point, ready)
        task()

    pid = _fork(armed)
    deadline = time.monotonic() + 60
    while not ready.exists():
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            pytest.fail(f"the child ended (status {status}) before crash point {point}")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"crash point {point} never reached")
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


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
    _kill_at(point, lambda: provision("school-moves", actor="admin"), tmp_path)
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
    _kill_at(point, lambda: requests.submit("alice", rid), tmp_path)
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


@pytest.mark.parametrize("point", ["release.after_copy", "release.before_publish"])
def test_release_killed_before_or_after_its_commit_recovers(point, approved_project, make_outputs, tmp_path, registry):
    from disclosure_control.differencing import Ledger

    from enclave.settings import get_settings

    name = make_outputs("safe")
    rid = requests.create("alice", approved_project, {name: "sex by homeless flag"})
    requests.submit("alice", rid)
    reviews.review("rev1", rid, "approve")
    reviews.review("rev2", rid, "approve")
    _kill_at(point, lambda: publishing.release("rev1", rid), tmp_path)
    public = get_settings().releases / approved_project / str(rid)
    assert not public.exists()  # the public zone never shows a release the registry may not record
    if point == "release.after_copy":  # killed before the commit: still approved, release again
        assert views.describe("rev1", rid)["state"] == "approved"
        assert publishing.release("rev1", rid) == public
        assert publishing.recover() == {"published": [], "removed": []}
    else:  # committed, not yet published: recovery rolls it forward
        assert views.describe("rev1", rid)["state"] == "released"
        assert publishing.recover() == {"published": [f"{approved_project}/{rid}"], "removed": []}
    assert views.describe("rev1", rid)["state"] == "released"
    assert publishing.verify_release(public) == []
    assert sorted(p.name for p in public.parent.iterdir()) == [str(rid)]
    assert Ledger(publishing.ledger_path()).released_outputs() == [f"{approved_project}/{rid}/{name.split('.')[0]}"]


def test_two_reviewers_approving_at_once_lose_nothing(approved_project, make_outputs, enclave_home, tmp_path, registry):
    from enclave import audit
    from enclave.registry.models import Person, Review

    name = make_outputs("safe")
    rid = requests.create("alice", approved_project, {name: "sex by homeless flag"})
    requests.submit("alice", rid)
    dispose_engines()
    go = tmp_path / "go"

    def reviewer_task(reviewer: str, out: Path):
        def task():
            from sqlalchemy.exc import IntegrityError

            from enclave.airlock.errors import Refused

            while not go.exists():
                time.sleep(0.002)
            try:
                out.write_text(reviews.review(reviewer, rid, "approve").value)
            except (Refused, IntegrityError) as exc:
                out.write_text(f"REFUSED {type(exc).__name__}")
        return task

    results_files = [tmp_path / f"result-{i}" for i in range(3)]
    # rev2 twice: exactly one of those two may count.
    pids = [_fork(reviewer_task(r, f)) for r, f in zip(("rev1", "rev2", "rev2"), results_files)]
    time.sleep(0.3)
    go.write_text("go")
    for pid in pids:
        status = _wait(pid, 90)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    results = sorted(f.read_text() for f in results_files)
    assert sum(r.startswith("REFUSED") for r in results) == 1, results
    assert sorted(r for r in results if not r.startswith("REFUSED")) == ["approved", "partially_reviewed"]
    with session_scope(registry, readonly=True) as session:
        rows = session.scalars(select(Review).where(Review.request_id == rid)).all()
        assert sorted(session.get(Person, r.reviewer_id).username for r in rows) == ["rev1", "rev2"]
        assert len(rows) == 2
        assert audit.verify(session).ok
    assert views.describe("rev3", rid)["state"] == RequestState.approved.value
