"""Stage 1, select: the approved tables, columns and cohort read from the research store, the
person key replaced by the project's pseudonym (``linkage.pseudonyms``)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from enclave.airlock.snapshot import sha256_file
from enclave.extract.spec import AGE, MANIFEST, PERSON_KEY, PERSONS_TABLE, PSEUDONYM, RELATIONSHIPS_TABLE, Cohort, ExtractSpec, ProvisioningError


def _research_manifest(research_dir: Path) -> dict[str, Any]:
    path = research_dir / MANIFEST
    if not path.is_file():
        raise ProvisioningError(f"research store manifest {path} is missing: build the research store first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProvisioningError(f"research store manifest {path} is not valid JSON (line {exc.lineno})") from None


def _research_fingerprint(research_dir: Path, tables: list[str]) -> str:
    """Hash of the research tables an extract reads: a rebuilt store changes it, a no-op rebuild does not."""
    digest = hashlib.sha256()
    for table in sorted(set(tables)):
        path = research_dir / f"{table}.parquet"
        digest.update(table.encode())
        digest.update(sha256_file(path).encode() if path.exists() else b"absent")
    return digest.hexdigest()


def _columns_info(research_manifest: dict[str, Any], table: str) -> dict[str, Any]:
    tables = research_manifest.get("tables", {})
    info = tables.get(table, {}) if isinstance(tables, dict) else {}
    cols = info.get("columns", {}) if isinstance(info, dict) else {}
    if isinstance(cols, list):  # tolerate a list of {"name", ...} records
        cols = {c.get("name"): c for c in cols if isinstance(c, dict)}
    return cols


def _read_table(research_dir: Path, table: str, columns: list[str]) -> pd.DataFrame:
    path = research_dir / f"{table}.parquet"
    if not path.is_file():
        raise ProvisioningError(f"approved source {table!r} has no research table {path}")
    import pyarrow.parquet as pq

    available = set(pq.read_schema(path).names)
    missing = [c for c in columns if c not in available]
    if missing:
        raise ProvisioningError(f"approved variable(s) {missing} are not columns of research table {path}")
    key_cols = [PERSON_KEY] if table != RELATIONSHIPS_TABLE else ["person_key_from", "person_key_to"]
    for key in key_cols:
        if key not in available:
            raise ProvisioningError(f"research table {path} has no {key!r} column")
    wanted = list(dict.fromkeys(key_cols + columns))
    return pd.read_parquet(path, columns=wanted)


def _schema(research_dir: Path, table: str) -> set[str]:
    import pyarrow.parquet as pq

    path = research_dir / f"{table}.parquet"
    return set(pq.read_schema(path).names) if path.is_file() else set()


def _cohort_keys(research_dir: Path, cohort: Cohort) -> set[str] | None:
    """Person keys in the cohort, or None when the cohort bounds no person-level attribute."""
    keys: set[str] | None = None
    if cohort.birth_year_min is not None or cohort.birth_year_max is not None:
        persons = _read_table(research_dir, PERSONS_TABLE, ["birth_year"])
        by = pd.to_numeric(persons["birth_year"], errors="coerce")
        mask = by.notna()
        if cohort.birth_year_min is not None:
            mask &= by >= cohort.birth_year_min
        if cohort.birth_year_max is not None:
            mask &= by <= cohort.birth_year_max
        keys = set(persons.loc[mask, PERSON_KEY].astype(str))
    for source in cohort.sources_present:
        present = set(_read_table(research_dir, source, []).loc[:, PERSON_KEY].astype(str))
        keys = present if keys is None else keys & present
    return keys


def _age_mask(df: pd.DataFrame, cohort: Cohort) -> pd.Series:
    age = pd.to_numeric(df[AGE], errors="coerce")
    mask = age.notna()
    if cohort.age_min is not None:
        mask &= age >= cohort.age_min
    if cohort.age_max is not None:
        mask &= age <= cohort.age_max
    return mask


def _pseudonymise(df: pd.DataFrame, key_cols: list[str], project: str, keystore: Path) -> pd.DataFrame:
    from linkage.pseudonyms import pseudonymise

    out = df.copy()
    for key_col in key_cols:
        target = PSEUDONYM if key_col == PERSON_KEY else key_col.replace("person_key", PSEUDONYM)
        keys = out[key_col].astype(str)
        uniques = keys.unique().tolist()
        mapping = dict(zip(uniques, pseudonymise(uniques, project, keystore), strict=True))
        out.insert(0, target, keys.map(mapping))
        out = out.drop(columns=[key_col])
    return out


def select_tables(spec: ExtractSpec, research_dir: Path, keystore_dir: Path) -> dict[str, pd.DataFrame]:
    """Each approved table: its approved columns, the cohort's people and events, pseudonymised."""
    cohort_keys = _cohort_keys(research_dir, spec.cohort)
    frames: dict[str, pd.DataFrame] = {}
    for table, columns in sorted(spec.variables.items()):
        key_cols = ["person_key_from", "person_key_to"] if table == RELATIONSHIPS_TABLE else [PERSON_KEY]
        age_bounded = (spec.cohort.age_min is not None or spec.cohort.age_max is not None) and AGE in _schema(
            research_dir, table)
        df = _read_table(research_dir, table, list(columns) + ([AGE] if age_bounded else []))
        if age_bounded:
            df = df.loc[_age_mask(df, spec.cohort)].reset_index(drop=True)
            if AGE not in columns:
                df = df.drop(columns=[AGE])
        if cohort_keys is not None:
            mask = pd.Series(True, index=df.index)
            for key_col in key_cols:
                mask &= df[key_col].astype(str).isin(cohort_keys)
            df = df.loc[mask].reset_index(drop=True)
        frames[table] = _pseudonymise(df, key_cols, spec.project, Path(keystore_dir))
    return frames
