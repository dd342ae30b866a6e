"""Persistent person keys: give every linked cluster a random key that outlives re-runs.

A linkage run produces clusters of record keys whose labels mean nothing from one run to
the next. This module turns them into person keys that stay put: a person whose cluster
survives a re-run or an incremental deposit keeps their key, and when clusters split or
merge the change is written down as an event.

When does a cluster "survive"? An old key K survives into the new cluster C when C holds at
least half of K's records that are still present (records that no longer appear do not
vote). A key can therefore qualify for at most two clusters (an exact half split), and a
cluster may qualify for several keys (a merge). Conflicts are settled greedily over all
(key, cluster) candidates in one total order, so the outcome never depends on row order
or on the run's arbitrary cluster labels:
  1. larger overlap first;
  2. then the key that had more records before the run (the bigger history wins a merge);
  3. then the smaller person key (any fixed order of keys would do);
  4. then, for a key split exactly in half, the half holding the key's smallest record key.
Clusters left without a key get a fresh one. A key that finds no cluster is retired.

Events (``events.parquet``, one row per flow of records between two different keys):
  * ``split`` - some of K's records now belong to another key while K lives on, or K was
    broken into pieces none of which could keep it;
  * ``merge`` - K was retired and its records joined a key that existed before the run;
  * ``retired`` - every record of K disappeared from the clustering (needs ``allow_removed_records``).

Crash safety: new files are written to temporary names and fsynced; then a journal naming
every pending rename is written atomically (the commit point); then the renames happen and
the journal is removed. Every reader and writer first rolls a leftover journal forward. A
process killed before the commit point leaves the previous crosswalk untouched; one killed
after it is completed by the next reader. A file lock serialises writers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

PERSON_KEY_PREFIX = "P"
PERSON_KEY_HEX_CHARS = 20  # 80 random bits: collisions are checked anyway, never silently reused
CROSSWALK_FILE = "crosswalk.parquet"
EVENTS_FILE = "events.parquet"
STATE_FILE = "keys_state.json"
JOURNAL_FILE = "keys_journal.json"
LOCK_FILE = ".keys.lock"
TEMP_MARK = ".tmp-"
ROW_GROUP_ROWS = 262_144

# Named steps at which a test can make the writer stop and wait to be killed (see _pause).
PAUSE_POINTS = (
    "previous_loaded",
    "crosswalk_partly_written",
    "temp_files_written",
    "journal_written",
    "crosswalk_replaced",
    "all_replaced",
)

CROSSWALK_SCHEMA = pa.schema([("record_key", pa.string()), ("person_key", pa.string())])
EVENTS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("event", pa.string()),
        ("from_person_key", pa.string()),
        ("to_person_key", pa.string()),
        ("records", pa.int64()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]
)


class KeyAssignmentError(ValueError):
    """Bad clusters, or a vault whose crosswalk cannot be trusted. Messages never hold record keys."""


@dataclass(frozen=True)
class KeyAssignment:
    """What a key assignment did (counts only: no identifier leaves through this object)."""

    run_id: str
    generation: int
    records: int
    persons: int
    kept: int
    created: int
    retired: int
    splits: int
    merges: int
    records_removed: int
    crosswalk_path: Path
    events_path: Path


# ---------------------------------------------------------------- durable file helpers
def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f"{path.name}{TEMP_MARK}{uuid.uuid4().hex}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _pause(step: str, pause_at: str | None) -> None:
    """Test hook: at the named step, announce it on stdout and wait to be killed by the test."""
    if pause_at != step:
        return
    sys.stdout.write(f"PAUSED {step}\n")
    sys.stdout.flush()
    while True:  # the test sends SIGKILL; nothing else ends this wait
        signal.pause()


def _write_parquet(df: pd.DataFrame, schema: pa.Schema, path: Path, pause_at: str | None = None, pause_step: str = "") -> None:
    """Write in row groups and fsync; the pause hook can stop it after the first group (a torn file)."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    rows_per_group = max(1, min(ROW_GROUP_ROWS, (table.num_rows + 1) // 2))
    with pq.ParquetWriter(path, schema) as writer:
        for i, batch in enumerate(_slices(table, rows_per_group)):
            writer.write_table(batch)
            if i == 0 and pause_step:
                _pause(pause_step, pause_at)
    fsync_file(path)


def _slices(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        yield table
        return
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


# ---------------------------------------------------------------- journal
def _roll_forward(linkage_dir: Path) -> None:
    """Finish a commit whose journal was written before a crash; drop temp files of uncommitted runs."""
    journal = linkage_dir / JOURNAL_FILE
    if journal.exists():
        pending = json.loads(journal.read_text(encoding="utf-8"))["renames"]
        for temp_name, final_name in pending:
            temp = linkage_dir / temp_name
            if temp.exists():  # absent means this rename already happened before the crash
                os.replace(temp, linkage_dir / final_name)
        fsync_dir(linkage_dir)
        journal.unlink()
        fsync_dir(linkage_dir)
        log.info("completed an interrupted person-key commit")
    for name in (CROSSWALK_FILE, EVENTS_FILE, STATE_FILE, JOURNAL_FILE):
        for leftover in linkage_dir.glob(f"{name}{TEMP_MARK}*"):
            leftover.unlink()


def _lock(linkage_dir: Path) -> filelock.FileLock:
    linkage_dir.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(linkage_dir / LOCK_FILE))


# ---------------------------------------------------------------- readers
def _read_state(linkage_dir: Path) -> dict | None:
    path = linkage_dir / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _read_verified(linkage_dir: Path, name: str, schema: pa.Schema, state: dict | None) -> pd.DataFrame:
    path = linkage_dir / name
    if state is None:
        if path.exists():
            raise KeyAssignmentError(f"{path}: present without {STATE_FILE}; refusing to trust it")
        return schema.empty_table().to_pandas()
    expected = state["files"][name]
    if not path.exists() or sha256_file(path) != expected:
        raise KeyAssignmentError(f"{path}: missing or does not match the checksum in {STATE_FILE}")
    return pq.read_table(path, schema=schema).to_pandas()


def load_crosswalk(vault_dir: Path) -> pd.DataFrame:
    """The committed crosswalk (``record_key, person_key``); empty before the first run."""
    linkage_dir = Path(vault_dir) / "linkage"
    with _lock(linkage_dir):
        _roll_forward(linkage_dir)
        return _read_verified(linkage_dir, CROSSWALK_FILE, CROSSWALK_SCHEMA, _read_state(linkage_dir))


def load_events(vault_dir: Path) -> pd.DataFrame:
    """Every split, merge and retirement recorded so far."""
    linkage_dir = Path(vault_dir) / "linkage"
    with _lock(linkage_dir):
        _roll_forward(linkage_dir)
        return _read_verified(linkage_dir, EVENTS_FILE, EVENTS_SCHEMA, _read_state(linkage_dir))


def load_committed(vault_dir: Path) -> tuple[dict | None, pd.DataFrame]:
    """State and crosswalk of the same generation, read under one lock (None and empty before the first run)."""
    linkage_dir = Path(vault_dir) / "linkage"
    with _lock(linkage_dir):
        _roll_forward(linkage_dir)
        state = _read_state(linkage_dir)
        return state, _read_verified(linkage_dir, CROSSWALK_FILE, CROSSWALK_SCHEMA, state)


def load_state(vault_dir: Path) -> dict | None:
    """Generation, run id and checksums of the committed crosswalk, or None before the first run."""
    linkage_dir = Path(vault_dir) / "linkage"
    with _lock(linkage_dir):
        _roll_forward(linkage_dir)
        return _read_state(linkage_dir)


# ---------------------------------------------------------------- assignment
def _validate_clusters(clusters: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("record_key", "cluster_id") if c not in clusters.columns]
    if missing:
        raise KeyAssignmentError(f"clusters: missing column(s) {', '.join(missing)}")
    frame = clusters[["record_key", "cluster_id"]].reset_index(drop=True)
    for field in ("record_key", "cluster_id"):
        nulls = frame[field].isna().to_numpy().nonzero()[0]
        if len(nulls):
            raise KeyAssignmentError(f"clusters row {nulls[0]}, field {field}: missing value ({len(nulls)} row(s) in all)")
    record_keys = frame["record_key"]
    if pd.api.types.infer_dtype(record_keys, skipna=False) != "string":
        not_text = (~record_keys.map(lambda v: isinstance(v, str))).to_numpy().nonzero()[0]
        raise KeyAssignmentError(f"clusters row {not_text[0]}, field record_key: not a non-empty string")
    not_text = (record_keys == "").to_numpy().nonzero()[0]
    if len(not_text):
        raise KeyAssignmentError(f"clusters row {not_text[0]}, field record_key: not a non-empty string")
    dup = frame["record_key"].duplicated().to_numpy().nonzero()[0]
    if len(dup):
        raise KeyAssignmentError(
            f"clusters row {dup[0]}, field record_key: record appears in more than one row ({len(dup)} duplicate(s))"
        )
    return frame


def _fresh_keys(count: int, taken: set[str]) -> list[str]:
    keys: list[str] = []
    while len(keys) < count:
        key = PERSON_KEY_PREFIX + secrets.token_hex(PERSON_KEY_HEX_CHARS // 2)
        if key not in taken:
            taken.add(key)
            keys.append(key)
    return keys


def _text_rank(values: pd.Series) -> np.ndarray:
    """Dense rank of strings in code-point order. numpy sorts a fixed-width unicode array in C;
    sorting Python string objects (pandas' path for object columns, and for min() per group)
    compares them one pair at a time in the interpreter, several times slower at 1M rows."""
    return np.unique(np.asarray(values.to_numpy(), dtype=str), return_inverse=True)[1].reshape(-1)


@dataclass(frozen=True)
class _Plan:
    crosswalk: pd.DataFrame  # record_key, person_key in record-key order
    events: pd.DataFrame  # event, from_person_key, to_person_key, records
    kept: int
    created: int
    retired: int


def _plan(old: pd.DataFrame, new: pd.DataFrame, where: np.ndarray, taken: set[str]) -> _Plan:
    """Apply the rule of the module docstring. Everything runs on integer codes (record ranks,
    person-key indices): merges and groupbys over 1M strings cost several times more."""
    n_new = len(new)
    rank = _text_rank(new["record_key"])  # position of each record in key order
    cluster = pd.factorize(new["cluster_id"])[0]
    anchor = pd.Series(rank).groupby(cluster, sort=False).transform("min").to_numpy()  # cluster = its smallest record

    old_key_codes, old_keys = pd.factorize(old["person_key"])
    n_old = len(old_keys)
    present = where >= 0  # where: position of each old record among the new ones, -1 if gone
    k = old_key_codes[present]
    a = anchor[where[present]]
    r = rank[where[present]]
    history = np.bincount(old_key_codes, minlength=n_old)
    surviving = np.bincount(k, minlength=n_old)

    key_of_anchor = np.full(n_new, -1, dtype=np.int64)  # anchor rank -> index into all_keys
    if len(k):
        pairs = (
            pd.DataFrame({"k": k, "a": a, "r": r})
            .groupby(["k", "a"], sort=False)["r"]
            .agg(["size", "min"])
            .reset_index()
        )
        pk, pa_, overlap, first = (pairs[c].to_numpy() for c in ("k", "a", "size", "min"))
        eligible = overlap * 2 >= surviving[pk]
        pk, pa_, overlap, first = pk[eligible], pa_[eligible], overlap[eligible], first[eligible]
        key_rank = _text_rank(pd.Series(old_keys))[pk]
        order = np.lexsort((first, key_rank, -history[pk], -overlap))  # last key sorts first
        key_done = np.zeros(n_old, dtype=bool)
        # A plain loop: greedy matching is sequential by nature, and nearly every key has one candidate.
        for key, anc in zip(pk[order].tolist(), pa_[order].tolist()):
            if key_done[key] or key_of_anchor[anc] >= 0:
                continue
            key_done[key] = True
            key_of_anchor[anc] = key

    anchors = np.unique(anchor)
    orphans = anchors[key_of_anchor[anchors] < 0]
    key_of_anchor[orphans] = n_old + np.arange(len(orphans))
    all_keys = np.concatenate([np.asarray(old_keys, dtype=object), np.array(_fresh_keys(len(orphans), taken), dtype=object)])
    key_index = key_of_anchor[anchor]
    in_order = np.argsort(rank, kind="stable")
    crosswalk = pd.DataFrame({"record_key": new["record_key"].to_numpy()[in_order], "person_key": all_keys[key_index[in_order]]})

    alive = np.zeros(len(all_keys), dtype=bool)
    alive[key_index] = True
    to = key_of_anchor[a]
    flows = pd.DataFrame({"k": k, "to": to})[k != to].groupby(["k", "to"], sort=False).size().reset_index(name="records")
    fk, tk = flows["k"].to_numpy(), flows["to"].to_numpy()
    merge = ~alive[fk] & (tk < n_old)
    vanished = np.flatnonzero((surviving == 0) & (history > 0))
    events = pd.DataFrame(
        {
            "event": np.concatenate([np.where(merge, "merge", "split"), np.full(len(vanished), "retired")]).astype(object),
            "from_person_key": np.concatenate([all_keys[fk], all_keys[vanished]]),
            "to_person_key": np.concatenate([all_keys[tk], np.full(len(vanished), None, dtype=object)]),
            "records": np.concatenate([flows["records"].to_numpy(), history[vanished]]).astype("int64"),
        }
    )
    kept = int(alive[:n_old].sum())
    return _Plan(crosswalk, events, kept=kept, created=len(orphans), retired=n_old - kept)


def _events_table(events: pd.DataFrame, run_id: str, now: datetime) -> pd.DataFrame:
    events = events.copy()
    events.insert(0, "run_id", run_id)
    events["recorded_at"] = pd.Timestamp(now)
    return events.sort_values(["event", "from_person_key", "to_person_key"], kind="mergesort").reset_index(drop=True)


def assign_person_keys(
    clusters: pd.DataFrame,
    vault_dir: Path,
    run_id: str,
    *,
    allow_removed_records: bool = False,
    _pause_at: str | None = None,
) -> KeyAssignment:
    """Give every cluster a person key, keep surviving keys, record events, commit atomically.

    ``clusters`` must cover every record the vault knows (a full linkage run): records of the
    previous crosswalk that are missing are refused unless ``allow_removed_records`` (a deposit
    was withdrawn), in which case their keys are retired.
    """
    if _pause_at is not None and _pause_at not in PAUSE_POINTS:
        raise ValueError(f"unknown pause point {_pause_at!r}; known: {', '.join(PAUSE_POINTS)}")
    if not run_id or "/" in run_id:
        raise KeyAssignmentError("run_id: must be a non-empty name without '/'")
    new = _validate_clusters(clusters)
    linkage_dir = Path(vault_dir) / "linkage"
    with _lock(linkage_dir):
        _roll_forward(linkage_dir)
        state = _read_state(linkage_dir)
        old = _read_verified(linkage_dir, CROSSWALK_FILE, CROSSWALK_SCHEMA, state)
        old_events = _read_verified(linkage_dir, EVENTS_FILE, EVENTS_SCHEMA, state)
        _pause("previous_loaded", _pause_at)

        where = pd.Index(new["record_key"]).get_indexer(old["record_key"])  # -1: record no longer present
        removed = int((where < 0).sum())
        if removed and not allow_removed_records:
            raise KeyAssignmentError(
                f"clusters: {removed} record(s) of the current crosswalk are absent; a run must cover every "
                "record (pass allow_removed_records=True when a deposit was withdrawn)"
            )

        taken = set(old["person_key"]) | set(old_events["from_person_key"]) | set(old_events["to_person_key"].dropna())
        plan = _plan(old, new, where, taken)
        crosswalk = plan.crosswalk
        now = datetime.now(timezone.utc)
        events = _events_table(plan.events, run_id, now)
        all_events = pd.concat([old_events, events], ignore_index=True) if len(old_events) else events

        tag = f"{TEMP_MARK}{uuid.uuid4().hex}"
        temp_crosswalk = linkage_dir / f"{CROSSWALK_FILE}{tag}"
        temp_events = linkage_dir / f"{EVENTS_FILE}{tag}"
        temp_state = linkage_dir / f"{STATE_FILE}{tag}"
        _write_parquet(crosswalk, CROSSWALK_SCHEMA, temp_crosswalk, _pause_at, "crosswalk_partly_written")
        _write_parquet(all_events, EVENTS_SCHEMA, temp_events)
        generation = (state["generation"] if state else 0) + 1
        persons = int(crosswalk["person_key"].nunique())
        new_state = {
            "generation": generation,
            "run_id": run_id,
            "committed_at": now.isoformat(),
            "records": len(crosswalk),
            "persons": persons,
            "files": {CROSSWALK_FILE: sha256_file(temp_crosswalk), EVENTS_FILE: sha256_file(temp_events)},
        }
        with open(temp_state, "w", encoding="utf-8") as fh:
            json.dump(new_state, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(linkage_dir)
        _pause("temp_files_written", _pause_at)

        # Commit point: once the journal exists, the new generation wins (rolled forward if we die).
        renames = [[temp_crosswalk.name, CROSSWALK_FILE], [temp_events.name, EVENTS_FILE], [temp_state.name, STATE_FILE]]
        write_json_atomic(linkage_dir / JOURNAL_FILE, {"run_id": run_id, "renames": renames})
        _pause("journal_written", _pause_at)
        os.replace(temp_crosswalk, linkage_dir / CROSSWALK_FILE)
        fsync_dir(linkage_dir)
        _pause("crosswalk_replaced", _pause_at)
        for temp_name, final_name in renames[1:]:
            os.replace(linkage_dir / temp_name, linkage_dir / final_name)
        fsync_dir(linkage_dir)
        _pause("all_replaced", _pause_at)
        (linkage_dir / JOURNAL_FILE).unlink()
        fsync_dir(linkage_dir)

    result = KeyAssignment(
        run_id=run_id,
        generation=generation,
        records=len(crosswalk),
        persons=persons,
        kept=plan.kept,
        created=plan.created,
        retired=plan.retired,
        splits=int((events["event"] == "split").sum()),
        merges=int((events["event"] == "merge").sum()),
        records_removed=removed,
        crosswalk_path=linkage_dir / CROSSWALK_FILE,
        events_path=linkage_dir / EVENTS_FILE,
    )
    log.info(
        "person keys generation %d: %d records, %d persons, %d kept, %d new, %d retired, %d splits, %d merges",
        generation, result.records, persons, result.kept, result.created, result.retired, result.splits, result.merges,
    )
    return result
