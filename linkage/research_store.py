"""The de-identified research store: content tables keyed by person key, no direct identifier.

``build(vault_dir, research_dir)`` reads the vault (content, identifier partitions,
relationships, the committed person-key crosswalk and the linkage run behind it) and writes:
  * ``<source>.parquet`` - one row per content record: ``person_key, source, event_date,
    age_at_event, birth_year, sex, race_ethnicity, neighbourhood`` + the source's content;
  * ``persons.parquet`` - one row per person key;
  * ``relationships.parquet`` - ``person_key_from, person_key_to, relation`` (parents from
    birth records, ``same_household`` from household numbers);
  * ``manifest.json`` - every table's columns (type, description), rows, checksum, and the
    linkage quality per source.

What is removed, and why (the policy is data: ``ResearchStorePolicy``):
  * names, SSN, date of birth, street, zip, record ids: never copied (only person keys,
    birth year, age at event and the neighbourhood derived from the zip survive);
  * every date is cut to its month (``YYYY-MM``): the event date of a birth record *is* the
    date of birth, and any other exact date could coincide with it;
  * household numbers become ``same_household`` pairs of person keys, then are dropped;
  * free-text columns are dropped (nothing can vouch for what is typed in them).
Before anything is published a scan looks for the vault's own SSNs (in text and number
cells), streets, full dates of birth and each person's own names, and refuses to publish if it
finds one (``scan_for_identifiers``).

Person-level attributes are one value per person (the most frequent across their records,
ties to the smallest), so a person's rows never contradict each other; the neighbourhood is
per event (where they lived then), and the person's latest one in ``persons``.

The store is built in a hidden sibling folder and swapped in with one atomic
``renameat2(RENAME_EXCHANGE)``: readers see the old store or the new one, never a mixture,
and a build killed at any point leaves the old store as it was.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from linkage import keys as person_keys
from linkage.sources import STANDARD_FIELDS, SUBJECT_ROLE, SourceDefinition, load_definitions

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
PERSONS_TABLE = "persons"
RELATIONSHIPS_TABLE = "relationships"
BUILD_PREFIX = ".building-"
PAUSE_POINTS = ("inputs_loaded", "tables_written", "swapped")
DEFAULT_NEIGHBOURHOODS = Path(__file__).parent / "data" / "neighbourhoods.csv"
COMMON_COLUMNS: dict[str, tuple[str, str]] = {
    "person_key": ("string", "Internal person key (vault crosswalk); replaced by a per-project pseudonym in extracts"),
    "source": ("string", "Source (agency file) of the record"),
    "event_date": ("month", "Month of the event the record is about (YYYY-MM; the day is removed)"),
    "age_at_event": ("integer", "Age in completed years at the event (from the person's date of birth)"),
    "birth_year": ("integer", "Year of birth (most frequent across the person's records)"),
    "sex": ("category", "Sex, M or F (most frequent across the person's records, else implied by a mother/father role; empty if unknown)"),
    "race_ethnicity": ("category", "Race and ethnicity (most frequent known value across the person's records)"),
    "neighbourhood": ("category", "Neighbourhood of residence at the event, derived from the zip code"),
}
PERSON_COLUMNS = ["person_key", "birth_year", "sex", "race_ethnicity", "neighbourhood"]
RELATIONSHIP_COLUMNS: dict[str, tuple[str, str]] = {
    "person_key_from": ("string", "Person key of the parent or household member"),
    "person_key_to": ("string", "Person key of the child or other household member"),
    "relation": ("category", "mother_of, father_of (from birth records) or same_household (both directions listed once, from < to)"),
}


class ResearchStorePolicy(BaseModel):
    """What the research store keeps and how it generalises; defaults are the enclave's policy."""

    model_config = ConfigDict(extra="forbid")

    household_columns: dict[str, str] = Field(
        default_factory=lambda: {"housing_assistance": "household_id", "shelter_stays": "HouseholdID"},
        description="source -> content column holding an agency household number (turned into pairs, then dropped)",
    )
    dropped_types: list[str] = Field(default_factory=lambda: ["text"], description="Content column types never copied.")
    race_ethnicity_column: str = "race_ethnicity"
    unknown_values: list[str] = Field(default_factory=lambda: ["unknown", "U", ""])
    sex_of_role: dict[str, str] = Field(
        default_factory=lambda: {"mother": "F", "father": "M"},
        description="Sex implied by a related role, used only for people whose records never state one.",
    )
    min_name_length: int = Field(default=2, description="Shorter name parts (initials) are not scanned for.")


class TableInfo(BaseModel):
    file: str
    rows: int
    persons: int
    sha256: str
    columns: dict[str, dict[str, str]]
    source: dict[str, str] | None = None


class ResearchManifest(BaseModel):
    built_at: str
    crosswalk_generation: int
    linkage_run_id: str
    date_precision: str = "month"
    tables: dict[str, TableInfo]
    linkage_quality: dict[str, Any]
    linkage_quality_overall: dict[str, Any] = Field(default_factory=dict)
    excluded: dict[str, Any] = Field(default_factory=dict, description="What was left out, as counts and column names.")


class ResearchStoreError(ValueError):
    """The store cannot be built safely; messages name files, tables and columns, never values."""


# ---------------------------------------------------------------- small helpers
def _pause(step: str, pause_at: str | None) -> None:
    """Test hook: announce the step on stdout and wait to be killed (see tests/linkage_store)."""
    if pause_at != step:
        return
    sys.stdout.write(f"PAUSED {step}\n")
    sys.stdout.flush()
    while True:
        signal.pause()


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories atomically. The standard library has no call for it (os.replace
    cannot replace a non-empty directory), so glibc's renameat2 is called through ctypes."""
    rc = _libc.renameat2(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"atomic exchange of {a} and {b} failed: {os.strerror(err)}")


def _read_partitions(folder: Path, columns: list[str] | None = None, key: str | None = "record_key") -> pd.DataFrame:
    """Every complete deposit of one source in one zone (``vault/<zone>/<source>/``).

    A deposit is complete only once ingest has written its manifest in ``vault/deposits/<source>/``;
    a partition without one belongs to an ingest still running or killed, and is not read.
    """
    from linkage.deposits import live_deposits

    complete = set(live_deposits(folder.parent.parent, folder.name))  # not withdrawn or superseded
    files = [f for f in sorted(folder.glob("*.parquet")) if f.stem in complete] if folder.is_dir() else []
    if not files:
        return pd.DataFrame(columns=columns or [])
    frame = pd.concat([pq.read_table(f, columns=columns).to_pandas() for f in files], ignore_index=True)
    if key is not None and frame[key].duplicated().any():
        raise ResearchStoreError(f"{folder}: {int(frame[key].duplicated().sum())} {key}(s) appear in more than one row")
    return frame


def _mode(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Most frequent non-null ``value`` per ``key``; ties go to the smallest value."""
    known = frame[[key, value]].dropna()
    if known.empty:
        return pd.Series(dtype=object, name=value)
    counts = known.groupby([key, value], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", value], ascending=[True, False, True], kind="mergesort")
    return counts.drop_duplicates(key).set_index(key)[value]


def _month(values: pd.Series) -> pd.Series:
    """'YYYY-MM' strings; numpy formats datetime64[M] in C (strftime per value is ~10x slower)."""
    parsed = pd.to_datetime(values, errors="coerce").to_numpy(dtype="datetime64[ns]")
    text = np.datetime_as_string(parsed.astype("datetime64[M]")).astype(object)
    return pd.Series(text, index=values.index).where(~np.isnat(parsed), None)


def _age(dob: pd.Series, event: pd.Series) -> pd.Series:
    b = pd.to_datetime(dob, errors="coerce")
    e = pd.to_datetime(event, errors="coerce")
    before_birthday = (e.dt.month * 100 + e.dt.day) < (b.dt.month * 100 + b.dt.day)
    age = (e.dt.year - b.dt.year - before_birthday.astype("int64")).astype("Int64")
    return age.where(age >= 0)  # an event before birth is a data error: unknown, not negative


def _zip5(values: pd.Series) -> pd.Series:
    return values.astype("string").str.extract(r"(\d{5})", expand=False)


def _zip_neighbourhood(zips: pd.Series, zip_map: dict[str, str]) -> pd.Series:
    """The same derivation as ingest's: a zip outside the city's list gives no neighbourhood."""
    return _zip5(zips).map(zip_map).astype(object).where(lambda s: s.notna(), None)


def _neighbourhoods(path: Path) -> dict[str, str]:
    table = pd.read_csv(path, dtype=str)
    missing = {"zip", "neighbourhood"} - set(table.columns)
    if missing:
        raise ResearchStoreError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return dict(zip(table["zip"].str.strip(), table["neighbourhood"].str.strip()))


# ---------------------------------------------------------------- identifier scan
def _norm(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.lower()


def _digits(values: pd.Series) -> pd.Series:
    return values.astype(str).str.replace(r"\D", "", regex=True)


def _lookup(values: pd.Series) -> pd.Index:
    """Distinct values as an Index: isin() against a Python set converts the set on every call."""
    return pd.Index(pd.unique(values.dropna().to_numpy()))


# Columns this module derives itself from coded values (keys, months, codes, the neighbourhood
# list): nothing typed by a person reaches them, so the scan skips them to stay fast at 1M rows.
_DERIVED_COLUMNS = {"person_key", "person_key_from", "person_key_to", "source", "event_date", "sex", "race_ethnicity", "relation"}
_SSN_LIKE = r"(?<!\d)(\d{3}[- ]?\d{2}[- ]?\d{4})(?!\d)"


def scan_for_identifiers(
    tables: dict[str, pd.DataFrame],
    columns: dict[str, dict[str, tuple[str, str]]],
    identifiers: pd.DataFrame,
    policy: ResearchStorePolicy,
) -> list[str]:
    """Findings (``table.column: kind in n cell(s)``) of vault identifiers inside research tables.

    Every text column except the derived ones is checked against the vault: an SSN anywhere in
    a cell (nine digits, with or without dashes), a street address or a full date of birth as the
    whole cell; every number column for an SSN as a number. Free-text (``string``) content columns are also checked, per person, for that
    person's own names (checking against every name in the vault would flag categories and
    schools named after a surname). Identifier column names are findings too.
    """
    findings: list[str] = []
    ssn_digits = _digits(_lookup(identifiers["ssn"]).to_series())
    ssns = pd.Index(ssn_digits[ssn_digits.str.len() == 9].unique())
    ssn_numbers = ssns.astype("int64") if len(ssns) else pd.Index([], dtype="int64")
    streets = _lookup(_norm(_lookup(identifiers["street"]).to_series()))
    iso = pd.Series(pd.unique(pd.to_datetime(identifiers["dob"], errors="coerce").dropna().dt.strftime("%Y-%m-%d")), dtype=object)
    dob_texts = pd.Index(pd.concat([iso, iso.str[5:7] + "/" + iso.str[8:10] + "/" + iso.str[:4], iso.str.replace("-", "", regex=False)]))
    parts = identifiers.melt(id_vars=["person_key"], value_vars=["first_name", "middle_name", "last_name"]).dropna(subset=["value"])
    parts["value"] = _norm(parts["value"])
    parts = parts[parts["value"].str.len() >= policy.min_name_length]
    own_names = _lookup(parts["person_key"].astype(str) + "\x1f" + parts["value"])
    banned_columns = (set(STANDARD_FIELDS) - {"sex"}) | {"record_key", "source_record_id", "household_id"}
    for name, table in tables.items():
        for column in table.columns:
            where = f"{name}.{column}"
            if column in banned_columns:
                findings.append(f"{where}: identifier column")
            kind = columns.get(name, {}).get(column, ("string", ""))[0]
            series = table[column]
            if column in _DERIVED_COLUMNS or kind == "month":
                continue
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                numbers = series.dropna()  # an SSN typed into a number column (float when it has gaps)
                numbers = numbers[(numbers % 1 == 0) & (numbers.abs() < 1e9)].astype("int64")
                n = int(numbers.isin(ssn_numbers).sum())
                if n:
                    findings.append(f"{where}: SSN in {n} cell(s)")
                continue
            if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
                continue
            present = series.dropna()
            if present.empty:
                continue
            # Content columns repeat few values over many rows (a school, a service code): each
            # distinct value is checked once and its hits weighted by how many cells hold it,
            # which counts exactly what checking every cell counts (a test compares the two).
            distinct = present.value_counts(sort=False)
            cells = _norm(distinct.index.to_series()).reset_index(drop=True)
            weight = pd.Series(distinct.to_numpy(), index=cells.index)
            found = cells.str.extractall(_SSN_LIKE)[0] if len(ssns) else pd.Series(dtype=str)
            ssn_rows = found.index.get_level_values(0)[_digits(found).isin(ssns).to_numpy()] if len(found) else []
            hits = {
                "SSN": int(weight.loc[ssn_rows].sum()),
                "street address": int(weight[cells.isin(streets)].sum()),
                "full date of birth": int(weight[cells.isin(dob_texts)].sum()),
            }
            if kind == "string" and "person_key" in table.columns:
                keyed = table.loc[present.index, "person_key"].astype(str) + "\x1f" + _norm(present)
                hits["person's own name"] = int(keyed.isin(own_names).sum())
            findings.extend(f"{where}: {what} in {n} cell(s)" for what, n in hits.items() if n)
    return findings


# ---------------------------------------------------------------- building
def _linked_identifiers(vault_dir: Path, crosswalk: pd.DataFrame, allow_unlinked: bool) -> pd.DataFrame:
    columns = ["record_key", "source", "role", "first_name", "middle_name", "last_name", "dob", "sex", "ssn", "street", "zip"]
    ids = []
    for folder in sorted((vault_dir / "identifiers").glob("*")):
        part = _read_partitions(folder)
        missing = [c for c in columns if c not in part.columns]
        if missing:
            raise ResearchStoreError(f"{folder}: identifier partition lacks column(s) {', '.join(missing)}")
        ids.append(part[columns])
    if not ids:
        raise ResearchStoreError(f"{vault_dir / 'identifiers'}: no identifier partitions")
    identifiers = pd.concat(ids, ignore_index=True)
    identifiers = identifiers.merge(crosswalk, on="record_key", how="left")
    unlinked = identifiers["person_key"].isna()
    if unlinked.any() and not allow_unlinked:
        per_source = identifiers.loc[unlinked, "source"].value_counts().to_dict()
        raise ResearchStoreError(
            f"{unlinked.sum()} identifier record(s) have no person key (per source: {per_source}): "
            "run linkage over every deposit before building the research store"
        )
    return identifiers[~unlinked].reset_index(drop=True)


def _person_attributes(identifiers: pd.DataFrame, race: pd.DataFrame, policy: ResearchStorePolicy) -> pd.DataFrame:
    ids = identifiers[["person_key", "dob", "sex", "role"]].copy()
    ids["dob"] = pd.to_datetime(ids["dob"], errors="coerce")
    ids.loc[ids["sex"].isin(policy.unknown_values), "sex"] = None
    by_role = pd.DataFrame({"person_key": ids["person_key"], "sex": ids["role"].map(policy.sex_of_role)})
    known_race = race[~race["race_ethnicity"].isin(policy.unknown_values)]
    persons = pd.DataFrame(index=pd.Index(identifiers["person_key"].unique(), name="person_key"))
    persons["dob"] = _mode(ids, "person_key", "dob")
    persons["sex"] = _mode(ids, "person_key", "sex")
    persons["sex"] = persons["sex"].fillna(_mode(by_role, "person_key", "sex"))  # only when no record states it
    persons["race_ethnicity"] = _mode(known_race, "person_key", "race_ethnicity")
    any_race = set(race.loc[race["race_ethnicity"].notna(), "person_key"])
    unknown = persons["race_ethnicity"].isna() & persons.index.isin(any_race)
    persons.loc[unknown, "race_ethnicity"] = "unknown"
    persons["birth_year"] = persons["dob"].dt.year.astype("Int64")
    return persons


def _content_tables(
    vault_dir: Path,
    definitions: dict[str, SourceDefinition],
    identifiers: pd.DataFrame,
    policy: ResearchStorePolicy,
    excluded: dict[str, Any],
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, tuple[str, str]]], pd.DataFrame, pd.DataFrame]:
    """Per source: linked content rows; their column specs; race per person; household members."""
    subject = identifiers[identifiers["role"] == SUBJECT_ROLE].set_index("record_key")
    frames: dict[str, pd.DataFrame] = {}
    specs: dict[str, dict[str, tuple[str, str]]] = {}
    races, households = [], []
    for folder in sorted((vault_dir / "content").glob("*")):
        source = folder.name
        if source not in definitions:
            raise ResearchStoreError(f"{folder}: no source definition named {source!r}")
        definition = definitions[source]
        content = _read_partitions(folder)
        # get_indexer reuses the index's hash table, built once for all sources (isin rebuilds it).
        position = subject.index.get_indexer(content["record_key"])
        linked = position >= 0
        if not linked.all():
            excluded.setdefault("content_rows_without_person_key", {})[source] = int((~linked).sum())
        content = content[linked].reset_index(drop=True)
        keyed = subject.iloc[position[linked]][["person_key", "dob", "zip"]].reset_index(drop=True)
        keyed.columns = ["person_key", "_dob", "_zip"]  # underscored: cannot collide with a content column
        content = pd.concat([keyed, content], axis=1)
        race_col = policy.race_ethnicity_column
        if race_col in content.columns:
            races.append(content[["person_key", race_col]].rename(columns={race_col: "race_ethnicity"}))
        household_col = policy.household_columns.get(source)
        if household_col and household_col in content.columns:
            members = content[["person_key", household_col]].dropna()
            households.append(pd.DataFrame({"household": source + "\x1f" + members[household_col].astype(str), "person_key": members["person_key"]}))
        spec: dict[str, tuple[str, str]] = {}
        dropped: list[str] = []
        for column, col_def in definition.content.items():
            if column not in content.columns:
                continue
            if column in (race_col, household_col) or col_def.type in policy.dropped_types or column in STANDARD_FIELDS:
                dropped.append(column)
                continue
            if col_def.type == "date":
                spec[column] = ("month", f"{col_def.description} (YYYY-MM; the day is removed)")
            else:
                spec[column] = (col_def.type, col_def.description)
        unknown_columns = sorted(set(content.columns) - set(definition.content) - {"record_key", "event_date", "person_key", "_dob", "_zip", "neighbourhood"})
        if unknown_columns:
            raise ResearchStoreError(f"{folder}: content column(s) {unknown_columns} are not in the {source} source definition")
        if dropped:
            excluded.setdefault("dropped_columns", {})[source] = dropped
        frames[source] = content
        specs[source] = spec
    race = pd.concat(races, ignore_index=True) if races else pd.DataFrame(columns=["person_key", "race_ethnicity"])
    household = pd.concat(households, ignore_index=True) if households else pd.DataFrame(columns=["household", "person_key"])
    return frames, specs, race, household


def _finish_content(
    source: str, content: pd.DataFrame, spec: dict[str, tuple[str, str]], persons: pd.DataFrame, zip_map: dict[str, str]
) -> pd.DataFrame:
    person = persons.iloc[persons.index.get_indexer(content["person_key"])].reset_index(drop=True)
    neighbourhood = content["neighbourhood"] if "neighbourhood" in content.columns else _zip_neighbourhood(content["_zip"], zip_map)
    out = pd.DataFrame(
        {
            "person_key": content["person_key"].astype(str),
            "source": source,
            "event_date": _month(content["event_date"]),
            "age_at_event": _age(person["dob"], content["event_date"]),
            "birth_year": person["birth_year"],
            "sex": person["sex"],
            "race_ethnicity": person["race_ethnicity"],
            "neighbourhood": neighbourhood.astype(object),
        }
    )
    for column, (kind, _) in spec.items():
        out[column] = _month(content[column]) if kind == "month" else content[column]
    return out.sort_values(["person_key", "event_date"], kind="mergesort", na_position="last").reset_index(drop=True)


def _latest_neighbourhood(identifiers: pd.DataFrame, frames: dict[str, pd.DataFrame], zip_map: dict[str, str]) -> pd.Series:
    """Each person's neighbourhood at their latest dated record, counting the records where they
    are a related role (a mother's zip on her child's birth record), dated by that record's event."""
    if not frames:
        return pd.Series(dtype=object)
    dated = pd.concat(
        [f[["record_key", "event_date"]].assign(
            nb=f["neighbourhood"] if "neighbourhood" in f.columns else _zip_neighbourhood(f["_zip"], zip_map))
         for f in frames.values()],
        ignore_index=True,
    ).set_index("record_key")
    ids = identifiers[["record_key", "role", "person_key", "zip"]]
    is_subject = ids["role"] == SUBJECT_ROLE
    base = ids["record_key"].where(is_subject, ids["record_key"].str.replace(r"/[^/]*$", "", regex=True))
    seen = pd.DataFrame({
        "person_key": ids["person_key"].to_numpy(),
        "event_date": pd.to_datetime(base.map(dated["event_date"]), errors="coerce").to_numpy(),
        "neighbourhood": ids["record_key"].map(dated["nb"]).where(is_subject, _zip_neighbourhood(ids["zip"], zip_map)).to_numpy(),
    }).dropna()
    seen = seen.sort_values(["person_key", "event_date", "neighbourhood"], kind="mergesort")
    return seen.drop_duplicates("person_key", keep="last").set_index("person_key")["neighbourhood"]


def _relationships(vault_dir: Path, crosswalk: pd.DataFrame, household: pd.DataFrame, excluded: dict[str, Any]) -> pd.DataFrame:
    links = _read_partitions_all(vault_dir / "relationships", ["record_key_from", "record_key_to", "relation"])
    to_person = crosswalk.set_index("record_key")["person_key"]
    pairs = pd.DataFrame(
        {
            "person_key_from": links["record_key_from"].map(to_person),
            "person_key_to": links["record_key_to"].map(to_person),
            "relation": links["relation"],
        }
    )
    unlinked = pairs[["person_key_from", "person_key_to"]].isna().any(axis=1)
    if unlinked.any():
        excluded["relationships_without_person_key"] = int(unlinked.sum())
    pairs = pairs[~unlinked]
    members = household.drop_duplicates()
    if not members.empty:
        both = members.merge(members, on="household", suffixes=("_from", "_to"))
        both = both[both["person_key_from"] < both["person_key_to"]]
        pairs = pd.concat(
            [pairs, pd.DataFrame({"person_key_from": both["person_key_from"], "person_key_to": both["person_key_to"], "relation": "same_household"})],
            ignore_index=True,
        )
    self_pairs = pairs["person_key_from"] == pairs["person_key_to"]
    if self_pairs.any():  # a parent linked to their own child is a linkage error, not a relationship
        excluded["relationships_to_self"] = int(self_pairs.sum())
    pairs = pairs[~self_pairs].drop_duplicates()
    return pairs.sort_values(["relation", "person_key_from", "person_key_to"], kind="mergesort").reset_index(drop=True)


def _read_partitions_all(root: Path, columns: list[str]) -> pd.DataFrame:
    frames = [_read_partitions(folder, columns, key=None) for folder in sorted(root.glob("*")) if folder.is_dir()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _linkage_quality(vault_dir: Path, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    path = vault_dir / "linkage" / "runs" / run_id / "quality.json"
    if not path.is_file():
        return {}, {}
    quality = json.loads(path.read_text(encoding="utf-8"))
    per_source = (quality.get("sources") or {}).get("per_source") or {}
    overall = {k: quality[k] for k in ("records", "clusters", "threshold_match_probability", "estimated") if k in quality}
    truth = quality.get("ground_truth") or {}
    overall.update({k: truth[k] for k in ("precision", "recall", "f1", "blocking_recall") if k in truth})
    return per_source, overall


def _arrow_table(frame: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> pa.Table:
    fields = []
    for name, (kind, _) in columns.items():
        arrow_type = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_()}.get(kind, pa.string())
        fields.append(pa.field(name, arrow_type))
    return pa.Table.from_pandas(frame[list(columns)], schema=pa.schema(fields), preserve_index=False)


def _write_table(folder: Path, name: str, table: pa.Table) -> Path:
    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    person_keys.fsync_file(path)
    return path


def build(
    vault_dir: Path,
    research_dir: Path,
    *,
    definitions_dir: Path | None = None,
    neighbourhoods_file: Path = DEFAULT_NEIGHBOURHOODS,
    policy: ResearchStorePolicy | None = None,
    allow_unlinked: bool = False,
    _pause_at: str | None = None,
) -> ResearchManifest:
    """Rebuild the research store from the vault and swap it in atomically; return its manifest."""
    if _pause_at is not None and _pause_at not in PAUSE_POINTS:
        raise ValueError(f"unknown pause point {_pause_at!r}; known: {', '.join(PAUSE_POINTS)}")
    vault_dir, research_dir = Path(vault_dir), Path(research_dir)
    policy = policy or ResearchStorePolicy()
    state, crosswalk = person_keys.load_committed(vault_dir)
    if state is None:
        raise ResearchStoreError(f"{vault_dir / 'linkage'}: no person-key crosswalk yet: run linkage first")
    definitions = load_definitions(definitions_dir)
    zip_map = _neighbourhoods(Path(neighbourhoods_file))
    excluded: dict[str, Any] = {}

    identifiers = _linked_identifiers(vault_dir, crosswalk, allow_unlinked)
    frames, specs, race, household = _content_tables(vault_dir, definitions, identifiers, policy, excluded)
    persons = _person_attributes(identifiers, race, policy)
    _pause("inputs_loaded", _pause_at)

    tables: dict[str, pd.DataFrame] = {}
    columns: dict[str, dict[str, tuple[str, str]]] = {}
    for source, content in frames.items():
        tables[source] = _finish_content(source, content, specs[source], persons, zip_map)
        columns[source] = {**COMMON_COLUMNS, **specs[source]}
    persons["neighbourhood"] = _latest_neighbourhood(identifiers, frames, zip_map)
    tables[PERSONS_TABLE] = persons.reset_index()[PERSON_COLUMNS].sort_values("person_key").reset_index(drop=True)
    persons_desc = dict(COMMON_COLUMNS)
    persons_desc["neighbourhood"] = ("category", "Neighbourhood at the person's latest event, derived from the zip code")
    columns[PERSONS_TABLE] = {c: persons_desc[c] for c in PERSON_COLUMNS}
    tables[RELATIONSHIPS_TABLE] = _relationships(vault_dir, crosswalk, household, excluded)
    columns[RELATIONSHIPS_TABLE] = RELATIONSHIP_COLUMNS

    findings = scan_for_identifiers(tables, columns, identifiers, policy)
    if findings:
        raise ResearchStoreError("research store not published: vault identifiers found in " + "; ".join(findings))

    per_source_quality, overall_quality = _linkage_quality(vault_dir, state["run_id"])
    research_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(research_dir.parent / f".{research_dir.name}.lock"))
    with lock:
        for leftover in research_dir.parent.glob(f".{research_dir.name}{BUILD_PREFIX}*"):
            shutil.rmtree(leftover)  # a build killed before or after its swap: either way unused now
        temp = research_dir.parent / f".{research_dir.name}{BUILD_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir(mode=0o700)
        infos: dict[str, TableInfo] = {}
        for name, frame in tables.items():
            path = _write_table(temp, name, _arrow_table(frame, columns[name]))
            key = "person_key_from" if name == RELATIONSHIPS_TABLE else "person_key"
            people = set(frame[key]) | (set(frame["person_key_to"]) if name == RELATIONSHIPS_TABLE else set())
            definition = definitions.get(name)
            infos[name] = TableInfo(
                file=path.name,
                rows=len(frame),
                persons=len(people),
                sha256=person_keys.sha256_file(path),
                columns={c: {"type": t, "description": d} for c, (t, d) in columns[name].items()},
                source={"domain": definition.domain, "agency": definition.agency, "steward": definition.steward} if definition else None,
            )
        manifest = ResearchManifest(
            built_at=datetime.now(timezone.utc).isoformat(),
            crosswalk_generation=state["generation"],
            linkage_run_id=state["run_id"],
            tables=infos,
            linkage_quality={s: per_source_quality[s] for s in frames if s in per_source_quality},
            linkage_quality_overall=overall_quality,
            excluded=excluded,
        )
        manifest_path = temp / MANIFEST_FILE
        manifest_path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True), encoding="utf-8")
        person_keys.fsync_file(manifest_path)
        person_keys.fsync_dir(temp)
        _pause("tables_written", _pause_at)
        if research_dir.exists():
            os.chmod(temp, research_dir.stat().st_mode & 0o7777)
            _exchange(temp, research_dir)
        else:
            os.rename(temp, research_dir)
        person_keys.fsync_dir(research_dir.parent)
        _pause("swapped", _pause_at)
        shutil.rmtree(temp, ignore_errors=True)
    log.info("research store built: %d tables, %d persons", len(tables), len(tables[PERSONS_TABLE]))
    return manifest


def read_manifest(research_dir: Path) -> ResearchManifest:
    path = Path(research_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ResearchStoreError(f"{path}: no research store manifest (build the research store first)")
    return ResearchManifest.model_validate_json(path.read_text(encoding="utf-8"))
