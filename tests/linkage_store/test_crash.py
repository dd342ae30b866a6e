"""Crash safety, tested by really killing a process with SIGKILL at each named step."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

import pandas as pd
import pytest

from linkage import keys, research_store
from linkage.keys import assign_person_keys, load_crosswalk, load_events, load_state

KEYS_SCRIPT = textwrap.dedent(
    """
    import sys, pandas as pd
    from linkage.keys import assign_person_keys
    vault, clusters, step = sys.argv[1:4]
    assign_person_keys(pd.read_parquet(clusters), vault, "run-2", _pause_at=step or None)
    print("FINISHED", flush=True)
    """
)
STORE_SCRIPT = textwrap.dedent(
    """
    import sys
    from linkage.research_store import build
    vault, research, step = sys.argv[1:4]
    build(vault, research, _pause_at=step)
    print("FINISHED", flush=True)
    """
)
COMMITTED = {"journal_written", "crosswalk_replaced", "all_replaced"}


def start_paused(script: str, *args: str) -> subprocess.Popen:
    # stderr to a file, not a pipe: a child that fills an unread pipe would block before pausing.
    err = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=err, text=True)
    proc.errfile = err  # type: ignore[attr-defined]
    return proc


def kill_when_paused(proc: subprocess.Popen, step: str) -> None:
    line = proc.stdout.readline()
    if line.strip() != f"PAUSED {step}":
        proc.kill()
        proc.wait()
        proc.errfile.seek(0)
        raise AssertionError(f"process did not pause at {step}: {line!r} {proc.errfile.read()[-2000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def changed_clusters(clusters: pd.DataFrame) -> pd.DataFrame:
    """The second run: two people merge, a newcomer arrives, one record leaves its person."""
    frame = clusters.copy()
    people = sorted(frame["cluster_id"].unique())
    frame.loc[frame["cluster_id"] == people[1], "cluster_id"] = people[0]
    frame.loc[frame.index[-1], "cluster_id"] = "someone-new"
    return frame


def test_killed_key_assignment_leaves_previous_crosswalk_or_completes(tmp_path, linked_vault):
    vault, clusters = linked_vault
    before_bytes = (vault / "linkage" / "crosswalk.parquet").read_bytes()
    before = load_crosswalk(vault)
    second = changed_clusters(clusters)
    second_path = tmp_path / "second.parquet"
    second.to_parquet(second_path, index=False)

    # All steps at once, each on its own copy of the vault (2 cores: overlap the interpreter start-ups).
    runs = {}
    for step in keys.PAUSE_POINTS:
        copy = tmp_path / f"vault-{step}"
        shutil.copytree(vault, copy)
        runs[step] = (copy, start_paused(KEYS_SCRIPT, str(copy), str(second_path), step))
    try:
        for step, (copy, proc) in runs.items():
            kill_when_paused(proc, step)
    finally:  # never leave a paused child behind when one of them misbehaves
        for _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for step, (copy, _) in runs.items():
        linkage_dir = copy / "linkage"
        if step in COMMITTED:
            assert (linkage_dir / keys.JOURNAL_FILE).exists(), step
            after = load_crosswalk(copy)  # a reader rolls the committed run forward
            assert load_state(copy)["generation"] == 2, step
            assert set(load_events(copy)["event"]) == {"merge", "split"}, step
        else:
            assert (linkage_dir / "crosswalk.parquet").read_bytes() == before_bytes, step
            after = load_crosswalk(copy)
            pd.testing.assert_frame_equal(after, before)
            assert load_state(copy)["generation"] == 1 and load_events(copy).empty, step
        assert not list(linkage_dir.glob(f"*{keys.TEMP_MARK}*")) and not (linkage_dir / keys.JOURNAL_FILE).exists(), step

        # A re-run completes, and every person untouched by the change keeps the first key.
        result = assign_person_keys(second, copy, "run-2-again")
        final = load_crosswalk(copy).merge(before, on="record_key", how="left", suffixes=("", "_first"))
        moved = set(second["record_key"][second["cluster_id"] != clusters["cluster_id"]]) | set(
            clusters.loc[clusters["cluster_id"].isin(sorted(clusters["cluster_id"].unique())[:2]), "record_key"]
        )
        untouched = final[~final["record_key"].isin(moved)]
        assert (untouched["person_key"] == untouched["person_key_first"]).all(), step
        assert result.generation == (3 if step in COMMITTED else 2), step


def test_killed_research_build_leaves_the_old_store_or_the_new_one(tmp_path, linked_vault):
    vault, clusters = linked_vault
    research = tmp_path / "research"
    research_store.build(vault, research)
    old_manifest = research_store.read_manifest(research)
    # Change the vault so a new store differs: one more linkage run with a merge.
    assign_person_keys(changed_clusters(clusters), vault, "run-2")

    leftovers = lambda: list(tmp_path.glob(f".research{research_store.BUILD_PREFIX}*"))  # noqa: E731
    for step in ("inputs_loaded", "tables_written"):
        kill_when_paused(start_paused(STORE_SCRIPT, str(vault), str(research), step), step)
        manifest = research_store.read_manifest(research)
        assert manifest == old_manifest, step
        for info in manifest.tables.values():
            assert keys.sha256_file(research / info.file) == info.sha256, step
    assert leftovers(), "the kill after writing the tables should leave a half-built folder behind"

    kill_when_paused(start_paused(STORE_SCRIPT, str(vault), str(research), "swapped"), "swapped")
    manifest = research_store.read_manifest(research)
    assert manifest.linkage_run_id == "run-2"
    for info in manifest.tables.values():
        assert keys.sha256_file(research / info.file) == info.sha256

    rebuilt = research_store.build(vault, research)
    assert rebuilt.linkage_run_id == "run-2" and rebuilt.tables.keys() == old_manifest.tables.keys()
    assert not leftovers()


def test_a_second_writer_waits_for_the_lock_and_completes_after_the_first_is_killed(tmp_path, linked_vault):
    vault, clusters = linked_vault
    second_path = tmp_path / "second.parquet"
    changed_clusters(clusters).to_parquet(second_path, index=False)
    first = start_paused(KEYS_SCRIPT, str(vault), str(second_path), "temp_files_written")
    waiting = None
    try:
        assert first.stdout.readline().strip() == "PAUSED temp_files_written"  # it holds the lock now
        waiting = subprocess.Popen(
            [sys.executable, "-c", KEYS_SCRIPT, str(vault), str(second_path), ""], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=8)  # blocked on the lock, not writing beside the first
        # (load_state would wait for the lock too: read the committed state file directly)
        assert json.loads((vault / "linkage" / keys.STATE_FILE).read_text())["generation"] == 1
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        out, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0 and out.strip() == "FINISHED"
        assert load_state(vault)["generation"] == 2 and set(load_events(vault)["event"]) == {"merge", "split"}
    finally:  # never leave a paused child behind when an assertion fails
        for proc in (first, waiting):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
