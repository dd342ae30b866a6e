"""Deposits as a lifecycle: which deposits are live, withdrawal, supersession, and the
clean-up of what a killed ingest left behind.

A deposit's manifest (``vault/deposits/<source>/<deposit_id>.json``) is its commit record:
ingest writes it last, so a partition without one is an ingest that never finished. States:

- ``complete``: live; linkage and the research store read it.
- ``withdrawn``: the steward took it back; its data files are deleted, the manifest stays
  as a tombstone (counts and reason, no values).
- ``superseded``: a corrected file replaced it; likewise a tombstone naming its successor.

A complete manifest that names ``supersedes: X`` retires X at the moment it is written (one
atomic rename), so readers never see the old and the new rows together, even if the process
dies before X's own manifest is rewritten; ``reconcile`` finishes that later.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
import os
import shutil
from pathlib import Path

from filelock import FileLock

DATA_ZONES = ("identifiers", "content", "relationships", "quarantine", "flags")


class DepositState(str, enum.Enum):
    complete = "complete"
    withdrawn = "withdrawn"
    superseded = "superseded"


class DepositError(ValueError):
    """A lifecycle request that cannot be carried out; the message says why."""


def manifest_dir(vault: Path, source: str) -> Path:
    return Path(vault) / "deposits" / source


def source_lock(vault: Path, source: str) -> FileLock:
    """The one lock every change to a source's deposits takes."""
    folder = manifest_dir(vault, source)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".lock"))


def read_manifests(vault: Path, source: str) -> dict[str, dict]:
    """deposit id -> manifest, for every manifest of the source."""
    out = {}
    for path in sorted(manifest_dir(vault, source).glob("*.json")):
        out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out


def state_of(manifest: dict) -> DepositState:
    """Manifests written before the lifecycle existed have no state: they are complete."""
    return DepositState(manifest.get("state", DepositState.complete.value))


def live_deposits(vault: Path, source: str) -> list[str]:
    """Deposit ids whose data linkage and the research store may read, oldest name first."""
    manifests = read_manifests(vault, source)
    complete = {d for d, m in manifests.items() if state_of(m) == DepositState.complete}
    retired = {m.get("supersedes") for d, m in manifests.items() if d in complete and m.get("supersedes")}
    return sorted(complete - retired)


def live_partitions(vault: Path, zone: str) -> list[Path]:
    """Every file of ``zone`` (identifiers, content, relationships) that belongs to a live deposit."""
    root = Path(vault) / zone
    files = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()):
        for deposit in live_deposits(vault, folder.name):
            path = folder / f"{deposit}.parquet"
            if path.is_file():
                files.append(path)
    return files


def _write_manifest(vault: Path, source: str, deposit_id: str, manifest: dict) -> None:
    path = manifest_dir(vault, source) / f"{deposit_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _delete_data(vault: Path, source: str, deposit_id: str) -> None:
    for zone in DATA_ZONES:
        for path in (Path(vault) / zone / source).glob(f"{deposit_id}.*"):
            path.unlink(missing_ok=True)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def withdraw(vault: Path, source: str, deposit_id: str, reason: str, by: str) -> dict:
    """Take a live deposit back: tombstone first (readers stop at once), then delete its data."""
    if not reason.strip():
        raise DepositError("a withdrawal needs a reason")
    with source_lock(vault, source):
        manifests = read_manifests(vault, source)
        if deposit_id not in manifests:
            raise DepositError(f"no deposit {deposit_id!r} of source {source!r} (deposits: {', '.join(manifests) or 'none'})")
        if deposit_id not in live_deposits(vault, source):
            raise DepositError(f"deposit {source}/{deposit_id} is {state_of(manifests[deposit_id]).value}, not live")
        manifest = manifests[deposit_id]
        manifest.update(state=DepositState.withdrawn.value, withdrawn_at=_now(), withdrawn_by=by, withdrawal_reason=reason)
        _write_manifest(vault, source, deposit_id, manifest)
        _delete_data(vault, source, deposit_id)
    return manifest


def check_supersedable(vault: Path, source: str, deposit_id: str) -> None:
    """Only a live deposit of the same source can be replaced."""
    if deposit_id not in live_deposits(vault, source):
        known = ", ".join(live_deposits(vault, source)) or "none"
        raise DepositError(f"deposit {source}/{deposit_id} is not a live deposit of {source} (live: {known})")


def reconcile(vault: Path, source: str) -> dict[str, int]:
    """Finish what a killed process left (call under the source lock): staging folders of the
    source, partitions without a manifest, and the tombstone and files of superseded deposits."""
    vault = Path(vault)
    done = {"staging_removed": 0, "orphans_removed": 0, "supersessions_finished": 0}
    for stale in (vault / ".staging").glob(f"{source}-*"):
        shutil.rmtree(stale, ignore_errors=True)
        done["staging_removed"] += 1
    manifests = read_manifests(vault, source)
    for zone in DATA_ZONES:
        for path in (vault / zone / source).glob("*.*"):
            if path.stem not in manifests or state_of(manifests[path.stem]) != DepositState.complete:
                path.unlink(missing_ok=True)
                done["orphans_removed"] += 1
    for deposit_id, manifest in manifests.items():
        old = manifest.get("supersedes")
        if state_of(manifest) == DepositState.complete and old in manifests and state_of(manifests[old]) == DepositState.complete:
            manifests[old].update(state=DepositState.superseded.value, superseded_by=deposit_id,
                                  superseded_at=manifest.get("ingested_at", _now()))
            _write_manifest(vault, source, old, manifests[old])
            _delete_data(vault, source, old)
            done["supersessions_finished"] += 1
    for tmp in manifest_dir(vault, source).glob("*.json.tmp"):
        tmp.unlink(missing_ok=True)
    return done


def any_retired(vault: Path) -> bool:
    """Whether some deposit was withdrawn or superseded: then records may leave the crosswalk."""
    for folder in (Path(vault) / "deposits").glob("*"):
        if folder.is_dir():
            manifests = read_manifests(vault, folder.name)
            if any(state_of(m) != DepositState.complete for m in manifests.values()) or len(live_deposits(vault, folder.name)) < len(
                    [m for m in manifests.values() if state_of(m) == DepositState.complete]):
                return True
    return False
