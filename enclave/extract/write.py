"""Stage 6, write and register: the build as one all-or-nothing step on disk (this module) and
the registry side (``enclave.extract.register``).

On disk the build is all-or-nothing: it is written into a hidden temporary folder under
``extracts/<project>/``, made read-only, renamed to ``extracts/<project>/<version>/`` and only
then is the ``current`` symlink swapped (a symlink created beside it and ``os.replace``-d over
it). A crash leaves at worst a hidden temporary folder, removed by the next build, or a complete
version not yet in the registry, which the next build adopts. The same approval over the same
research store gives the same fingerprint and no new version (but a new build, in a fresh zone,
gets a fresh row order).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from enclave.airlock.faults import crash_point
from enclave.airlock.snapshot import sha256_file
from enclave.extract import generalise, joined, remedy, select
from enclave.extract import shuffle as shuffling
from enclave.extract.spec import CURRENT, MANIFEST, PERSONS_TABLE, PSEUDONYM, BuildResult, ExtractSpec, ProvisioningError


def _fingerprint(spec: ExtractSpec, research_fp: str) -> str:
    payload = json.dumps({"spec": spec.fingerprint_payload(), "research": research_fp}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def list_versions(project_dir: Path) -> list[str]:
    """Complete versions of a project's extract, oldest first (``v1``, ``v2``, ...)."""
    if not project_dir.is_dir():
        return []
    found = []
    for p in project_dir.iterdir():
        if p.name.startswith("v") and p.name[1:].isdigit() and p.is_dir() and not p.is_symlink():
            found.append(p.name)
    return sorted(found, key=lambda n: int(n[1:]))


def read_manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / MANIFEST).read_text())


def _clean_temporaries(project_dir: Path) -> None:
    """Remove folders and links left by a crashed build (we hold the project lock, so none is live)."""
    for p in project_dir.glob(".tmp-*"):
        if p.is_symlink() or p.is_file():
            p.unlink()
        else:
            _force_rmtree(p)


def _force_rmtree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o700)
    shutil.rmtree(path)


def _swap_current(project_dir: Path, version: str) -> None:
    tmp_link = project_dir / f".tmp-link-{uuid.uuid4().hex}"
    os.symlink(version, tmp_link)
    os.replace(tmp_link, project_dir / CURRENT)
    fd = os.open(project_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def build_extract(spec: ExtractSpec, research_dir: Path, keystore_dir: Path, extracts_dir: Path) -> BuildResult:
    """Build (or find) the extract for ``spec``; the filesystem half of provisioning, no registry."""
    if not spec.variables:
        raise ProvisioningError(f"approval {spec.approval_id} of project {spec.project} names no source")
    research_dir, extracts_dir = Path(research_dir), Path(extracts_dir)
    project_dir = extracts_dir / spec.project
    project_dir.mkdir(parents=True, exist_ok=True)
    rmanifest = select._research_manifest(research_dir)
    tables_read = list(spec.variables) + [PERSONS_TABLE] + spec.cohort.sources_present
    fingerprint = _fingerprint(spec, select._research_fingerprint(research_dir, tables_read))

    with FileLock(str(project_dir / ".build.lock")):
        _clean_temporaries(project_dir)
        versions = list_versions(project_dir)
        if versions:  # idempotent: the newest version built from the same approval and store is the answer
            latest = versions[-1]
            try:
                existing = read_manifest(project_dir / latest)
            except (OSError, json.JSONDecodeError):
                existing = {}
            if existing.get("fingerprint") == fingerprint:
                current = project_dir / CURRENT
                if not current.is_symlink() or os.readlink(current) != latest:
                    _swap_current(project_dir, latest)  # a crash after the rename, before the swap
                return BuildResult(spec.project, latest, project_dir / latest, existing, created=False)

        version = f"v{int(versions[-1][1:]) + 1 if versions else 1}"
        tmp = project_dir / f".tmp-{version}-{uuid.uuid4().hex}"
        tmp.mkdir(mode=0o700)
        try:
            crash_point("extract.after_tmpdir")
            frames = select.select_tables(spec, research_dir, Path(keystore_dir))
            frames, table_qis, k_reports, common_levels = generalise.generalise_tables(frames, spec)
            frames, joined_report = joined.protect_join(frames, table_qis, spec)
            frames, privacy_report, joined_report = remedy.protect_attacker_knowledge(frames, table_qis, spec, joined_report)
            joined_report["common_levels"] = common_levels
            frames = shuffling.shuffle(frames)
            tables_meta: dict[str, Any] = {}
            for table, df in frames.items():
                k_report = generalise._refresh_k_report(k_reports[table], df, table_qis[table])
                path = tmp / f"{table}.parquet"
                _write_parquet(df, path)
                col_info = select._columns_info(rmanifest, table)
                tables_meta[table] = {
                    "file": path.name,
                    "source": (rmanifest.get("tables", {}).get(table) or {}).get("source"),
                    "rows": int(len(df)),
                    "people": int(df[PSEUDONYM].nunique()) if PSEUDONYM in df.columns else None,
                    "sha256": sha256_file(path),
                    "columns": {
                        c: {
                            "type": str(df[c].dtype),
                            "description": (col_info.get(c) or {}).get("description", "")
                            if c != PSEUDONYM
                            else f"person pseudonym specific to project {spec.project}",
                        }
                        for c in df.columns
                    },
                    "k_anonymity": k_report,
                }
                crash_point("extract.after_table")
            reached = [t["k_anonymity"]["k_reached"] for t in tables_meta.values() if t["k_anonymity"]["k_reached"] is not None]
            if joined_report["k_reached"] is not None:
                reached.append(joined_report["k_reached"])
            reached.extend(v for v in privacy_report["measured"].values() if v is not None)
            quality = rmanifest.get("linkage_quality") or rmanifest.get("quality") or {}
            manifest = {
                "project": spec.project,
                "version": version,
                "approval_id": spec.approval_id,
                "built_at": datetime.now(timezone.utc).isoformat(),
                "fingerprint": fingerprint,
                "k_required": spec.k,
                "k_reached": min(reached) if reached else None,
                "cohort": spec.cohort.model_dump(mode="json"),
                "dp_epsilon": spec.dp_epsilon,
                "agencies": sorted({(t.get("source") or {}).get("agency") for t in tables_meta.values()} - {None}),
                "tables": tables_meta,
                "joined_tables": joined_report,
                "attacker_model": privacy_report["attacker_model"],
                "privacy": privacy_report,
                "conditions": spec.conditions.model_dump(mode="json"),
                "linkage_quality": {s: quality.get(s) for s in spec.variables if isinstance(quality, dict) and s in quality},
                "linkage_quality_overall": rmanifest.get("linkage_quality_overall") or {},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            with open(tmp / MANIFEST, "rb") as fh:
                os.fsync(fh.fileno())
            for p in tmp.iterdir():
                os.chmod(p, 0o444)
            os.chmod(tmp, 0o555)
            crash_point("extract.before_rename")
            os.rename(tmp, project_dir / version)
            crash_point("extract.before_current")
            _swap_current(project_dir, version)
        except BaseException:
            # A refused build leaves nothing behind; a killed one leaves the temp folder, which the next build removes.
            if tmp.exists():
                _force_rmtree(tmp)
            raise
        return BuildResult(spec.project, version, project_dir / version, manifest, created=True)


def verify_extract(version_dir: Path) -> list[str]:
    """Files of an extract whose checksum no longer matches its manifest (empty when intact)."""
    manifest = read_manifest(version_dir)
    bad = []
    for table, meta in manifest["tables"].items():
        path = version_dir / meta["file"]
        if not path.is_file() or sha256_file(path) != meta["sha256"]:
            bad.append(table)
    return bad


def withdraw_current(extracts_dir: Path, project: str) -> bool:
    """Remove the project's ``current`` link so nothing new opens its extract (revocation); True if removed."""
    link = Path(extracts_dir) / project / CURRENT
    if link.is_symlink():
        link.unlink()
        return True
    return False
