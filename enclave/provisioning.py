"""Extract provisioning: an approval builds the project's extract from the research store.

Only the approved sources, variables and cohort are copied; the person key is replaced by the
project's pseudonym (``linkage.pseudonyms``); quasi-identifiers are generalised and suppressed
until the approved k is met (``disclosure_control.microdata``), in each table and then over the
join of all tables on the pseudonym (``enclave.extract_linkage_risk``); a manifest records variables,
row counts, the k reached, checksums and the linkage quality of the sources.

On disk the build is all-or-nothing: it is written into a hidden temporary folder under
``extracts/<project>/``, made read-only, renamed to ``extracts/<project>/<version>/`` and only
then is the ``current`` symlink swapped (a symlink created beside it and ``os.replace``-d over
it). A crash leaves at worst a hidden temporary folder, removed by the next build, or a complete
version not yet in the registry, which the next build adopts. The same approval over the same
research store gives the same fingerprint and no new version.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, field_validator

from enclave.airlock.faults import crash_point
from enclave.airlock.snapshot import sha256_file
from enclave.conditions import ProjectConditions
from enclave.extract.shuffle import shuffle

MANIFEST = "manifest.json"
CURRENT = "current"
PSEUDONYM = "pseudonym"
PERSON_KEY = "person_key"
PERSONS_TABLE = "persons"
RELATIONSHIPS_TABLE = "relationships"
AGE = "age_at_event"


class ProvisioningError(Exception):
    """The extract cannot be built as approved; the message names the source, variable or file."""


class Cohort(BaseModel):
    """Which people and events an approval covers (the board's ``Cohort``); bounds inclusive and optional.

    Birth-year bounds and ``sources_present`` select people; age bounds select the events of tables
    that carry ``age_at_event``. A missing value never passes a bound.
    """

    model_config = ConfigDict(extra="forbid")

    birth_year_min: int | None = None
    birth_year_max: int | None = None
    age_min: int | None = None
    age_max: int | None = None
    sources_present: list[str] = Field(default_factory=list, description="People must appear in every one of these sources.")


class ExtractSpec(BaseModel):
    """What the board approved, as provisioning needs it (built from the registry's approval row)."""

    model_config = ConfigDict(extra="forbid")

    project: str
    approval_id: str
    variables: dict[str, list[str]] = Field(description="source (research table) -> approved columns")
    cohort: Cohort = Field(default_factory=Cohort)
    k: int = Field(ge=1)
    dp_epsilon: float | None = Field(default=None, description="The project's DP budget, shown to the workspace.")
    quasi_identifiers: list[str] = Field(
        default_factory=lambda: ["birth_year", "age_at_event", "sex", "race_ethnicity", "neighbourhood", "event_date"],
        description="Columns that can single a person out in combination; generalised until k holds.",
    )
    # Attributes of the person an attacker may already know. They are checked across the join of
    # all tables (one value set per person); event-level ones (event_date, age_at_event) differ
    # from row to row by nature, so they stay a per-table matter above.
    person_quasi_identifiers: list[str] = Field(
        default_factory=lambda: ["birth_year", "sex", "race_ethnicity", "neighbourhood"],
        description="Person-level quasi-identifiers: k must also hold for each person's values joined over all tables.",
    )

    conditions: ProjectConditions = Field(
        default_factory=ProjectConditions,
        description="The board's further conditions; the attacker model decides what the extract must withstand.")

    @field_validator("project")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not v or "/" in v or v.startswith(".") or v == CURRENT:
            raise ValueError(f"project id {v!r} cannot name a folder")
        return v

    def fingerprint_payload(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["variables"] = {s: sorted(c) for s, c in sorted(self.variables.items())}
        # Only the attacker model shapes the files; a workspace limit changed by the board is no new extract.
        data["conditions"] = {"attacker_model": data["conditions"]["attacker_model"]}
        return data


@dataclass
class BuildResult:
    project: str
    version: str
    path: Path
    manifest: dict[str, Any]
    created: bool  # False when an identical extract already existed (idempotent re-run)
    adopted: bool = False  # True when a complete version left by a crashed run was taken over

    def __str__(self) -> str:
        what = "built" if self.created else ("adopted" if self.adopted else "unchanged")
        return (f"{self.project}/{self.version} {what} (k required {self.manifest.get('k_required')}, "
                f"reached {self.manifest.get('k_reached')})")


# --------------------------------------------------------------------------- reading the store


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


# --------------------------------------------------------------------------- transforming


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


def _generalise(df: pd.DataFrame, table: str, quasi_ident: list[str], k: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generalise/suppress ``quasi_ident`` until k holds (disclosure_control.microdata), then re-measure k."""
    from disclosure_control import microdata

    if not quasi_ident or df.empty:
        return df, {"quasi_identifiers": quasi_ident, "k_reached": None, "actions": {}}
    if len(df) < k:
        raise ProvisioningError(f"table {table!r} has {len(df)} rows in the cohort: too few for k={k}")
    try:
        result = microdata.generalise(df, quasi_ident, k, hierarchies=_hierarchies(df, quasi_ident))
    except ValueError as exc:
        raise ProvisioningError(f"table {table!r}: {exc}") from None
    data, people_suppressed = _people_k(result.data, quasi_ident, k)
    # Re-measured independently of the search, so a bug there cannot ship an unsafe extract.
    reached = int(microdata.k_anonymity(data, quasi_ident)) if len(data) else None
    if reached is None or reached < k:
        raise ProvisioningError(f"table {table!r}: generalisation reached k={reached}, below the approved k={k}")
    report = {"quasi_identifiers": quasi_ident, "k_reached": reached, "actions": _jsonable(result.report()),
              "rows_suppressed_for_people": people_suppressed}
    if PSEUDONYM in data.columns:
        report["people_k_reached"] = int(_class_people(data, quasi_ident).min())
    return data, report


def _protect_join(frames: dict[str, pd.DataFrame], table_qis: dict[str, list[str]],
                  spec: ExtractSpec) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Person-level k over the join of all tables (``enclave.extract_linkage_risk``), with the
    per-table people-k rule re-applied as it goes; re-measured apart from the remedy, fail closed."""
    from enclave import extract_linkage_risk as join_risk

    def per_table(table: str, df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        if not table_qis.get(table):  # no class to protect; _people_k would treat the table as one class
            return df, 0
        return _people_k(df, table_qis[table], spec.k)

    out, report = join_risk.protect(frames, spec.person_quasi_identifiers, spec.k, per_table)
    emptied = sorted(t for t in frames if len(frames[t]) and not len(out[t]))
    if emptied:
        raise ProvisioningError(f"table(s) {emptied}: no rows left once k={spec.k} holds across the joined tables")
    report["k_reached"] = join_risk.verify(out, table_qis, spec.person_quasi_identifiers, spec.k)
    report["people"] = int(len(join_risk.people(out)))
    return out, report


MAX_PRIVACY_ROUNDS = 8


def _protect_attacker_knowledge(frames: dict[str, pd.DataFrame], table_qis: dict[str, list[str]], spec: ExtractSpec,
                                joined_report: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], dict[str, Any], dict[str, Any]]:
    """What the board's attacker model says an attacker knows (profile + m events, family edges)
    must leave k people (``enclave.extract``): remedy, re-apply the joined-tables step, repeat;
    then re-measure and refuse the extract if anything is still below k."""
    from enclave.extract import attacker, measure, remedy

    knowledge = attacker.knowledge_for({t: list(df.columns) for t, df in frames.items()}, spec.k,
                                       spec.conditions.attacker_model, spec.person_quasi_identifiers)
    originals = {t: frames[t][list(cols)].copy() for t, cols in knowledge.event_columns.items()}
    rows_in = {t: int(len(df)) for t, df in frames.items()}
    values_in = {t: {c: int(frames[t][c].notna().sum()) for c in cols} for t, cols in knowledge.event_columns.items()}
    loss = remedy.Loss()
    rounds = 0
    for rounds in range(1, MAX_PRIVACY_ROUNDS + 1):
        frames, changed = remedy.protect(frames, knowledge, originals, loss)
        if not changed:
            break
        frames, joined_report = _protect_join(frames, table_qis, spec)
    risk = measure.assess(frames, knowledge)
    if not risk.clean:
        below = {name: value for name, value in risk.figures().items() if value is not None and value < spec.k}
        raise ProvisioningError(f"tables {sorted(frames)}: after {rounds} rounds the attacker model "
                                f"({knowledge.model.model_dump()}) still leaves fewer than k={spec.k} people: {below}")
    report = {"attacker_model": knowledge.as_manifest(), "measured": risk.figures(), "rounds": rounds,
              "information_loss": loss.as_manifest(rows_in, values_in), "people_dropped_alone_in_family": loss.people_dropped}
    return frames, report, joined_report


def _common_levels(frames: dict[str, pd.DataFrame], originals: dict[str, pd.DataFrame],
                   k_reports: dict[str, dict[str, Any]], person_qis: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Bring each person-level quasi-identifier to the coarsest level any table generalised it to."""
    # Joined on the pseudonym, "2005" beside "2000-2019" reads as two values and the join check
    # would blank the year for everyone at risk; the common band keeps it and costs nothing the
    # coarser table had not already given up. Each table's current value is mapped (never its
    # original), so classes can only merge and per-table k cannot fall.
    from disclosure_control import microdata

    frames = dict(frames)
    done: dict[str, Any] = {}
    for col in person_qis:
        holders = [t for t, df in frames.items() if PSEUDONYM in df.columns and col in df.columns and len(df)]
        # The hierarchy generalise used (``_generalise``: ours, else the library default), so a
        # level means the same bands in every table; differing ladders are left to the join check.
        ladders = {t: _hierarchies(originals[t], [col]).get(col) or microdata.default_hierarchy(originals[t][col])
                   for t in holders}
        levels = {t: int(((k_reports[t].get("actions") or {}).get("levels") or {}).get(col, 0)) for t in holders}
        if len(holders) < 2 or any(ladders[t] != ladders[holders[0]] for t in holders):
            continue
        ladder = ladders[holders[0]]
        # A suppressed column carries nothing to join on; blanking it in every other table would
        # lose far more than the join check's per-person remedy.
        target = max((lv for lv in levels.values() if lv < ladder.levels()), default=0)
        lower = [t for t in holders if levels[t] < target]
        if not lower:
            continue
        mapped: dict[str, pd.Series] = {}
        for t in lower:
            pairs = pd.DataFrame({"now": ladder.apply(originals[t][col], levels[t]),
                                  "to": ladder.apply(originals[t][col], target)}).dropna().drop_duplicates()
            if pairs["now"].duplicated().any():  # bands that do not nest (20 inside 50): not a function
                break
            out = frames[t][col].map(pd.Series(pairs["to"].to_numpy(), index=pairs["now"].to_numpy()))
            if (out.isna() != frames[t][col].isna()).any():
                break
            mapped[t] = out.astype(object)
        else:
            for t, out in mapped.items():
                frames[t] = frames[t].assign(**{col: out})
            named_by = next(t for t in holders if levels[t] == target)
            done[col] = {"level": k_reports[named_by]["actions"]["level_names"][col], "tables_coarsened": sorted(lower)}
    return frames, done


def _refresh_k_report(report: dict[str, Any], df: pd.DataFrame, quasi_ident: list[str]) -> dict[str, Any]:
    """The per-table figures as the written table has them (the join check may have blanked or dropped rows)."""
    from disclosure_control import microdata

    if not quasi_ident or df.empty:
        return report
    report = dict(report)
    report["k_reached"] = int(microdata.k_anonymity(df, quasi_ident))
    if PSEUDONYM in df.columns:
        report["people_k_reached"] = int(_class_people(df, quasi_ident).min())
    return report


def _class_people(df: pd.DataFrame, quasi_ident: list[str]) -> pd.Series:
    """For each row, how many distinct people share its quasi-identifier values (missing = a value)."""
    keys = pd.util.hash_pandas_object(df[quasi_ident].astype("string").fillna("\x00missing"), index=False)
    return df.groupby(keys.to_numpy())[PSEUDONYM].transform("nunique")


def _people_k(df: pd.DataFrame, quasi_ident: list[str], k: int) -> tuple[pd.DataFrame, int]:
    """Drop the rows of classes shared by fewer than k distinct people.

    k-anonymity as the library measures it counts rows; in an event table one person's five rows
    make a class of five on their own. Hand-written because no library here counts people per
    class; classes are disjoint, so dropping the small ones leaves every other class intact.
    """
    if PSEUDONYM not in df.columns or df.empty:
        return df, 0
    small = _class_people(df, quasi_ident) < k
    return df.loc[~small.to_numpy()].reset_index(drop=True), int(small.sum())


def _hierarchies(df: pd.DataFrame, quasi_ident: list[str]) -> dict[str, Any]:
    """Coarsening ladders beyond the library defaults: an event month (``YYYY-MM``) goes to its
    quarter, then its year, before it is suppressed. Built from the values present (the library
    takes value -> group maps), so no value outside the table is ever named."""
    from disclosure_control.microdata import Hierarchy

    out: dict[str, Any] = {}
    if "event_date" in quasi_ident:
        months = [m for m in df["event_date"].dropna().astype(str).unique() if len(m) >= 7 and m[4] == "-"]
        quarter = {m: f"{m[:4]}-Q{(int(m[5:7]) - 1) // 3 + 1}" for m in months if m[5:7].isdigit()}
        year = {m: m[:4] for m in quarter}
        out["event_date"] = Hierarchy(groups=(quarter, year))
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------- building


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
    rmanifest = _research_manifest(research_dir)
    tables_read = list(spec.variables) + [PERSONS_TABLE] + spec.cohort.sources_present
    fingerprint = _fingerprint(spec, _research_fingerprint(research_dir, tables_read))

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
            cohort_keys = _cohort_keys(research_dir, spec.cohort)
            frames: dict[str, pd.DataFrame] = {}
            table_qis: dict[str, list[str]] = {}
            k_reports: dict[str, dict[str, Any]] = {}
            originals: dict[str, pd.DataFrame] = {}
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
                df = _pseudonymise(df, key_cols, spec.project, Path(keystore_dir))
                qis = [c for c in spec.quasi_identifiers if c in df.columns]
                frames[table], k_reports[table] = _generalise(df, table, qis, spec.k)
                table_qis[table] = qis
                originals[table] = df[[c for c in spec.person_quasi_identifiers if c in df.columns]]
            frames, common_levels = _common_levels(frames, originals, k_reports, spec.person_quasi_identifiers)
            frames, joined_report = _protect_join(frames, table_qis, spec)
            frames, privacy_report, joined_report = _protect_attacker_knowledge(frames, table_qis, spec, joined_report)
            joined_report["common_levels"] = common_levels
            frames = shuffle(frames)
            tables_meta: dict[str, Any] = {}
            for table, df in frames.items():
                k_report = _refresh_k_report(k_reports[table], df, table_qis[table])
                path = tmp / f"{table}.parquet"
                _write_parquet(df, path)
                col_info = _columns_info(rmanifest, table)
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


# --------------------------------------------------------------------------- registry side

def cohort_from_approval(raw: dict[str, Any] | None) -> Cohort:
    """The approval's cohort JSON (the board's ``Cohort``) as provisioning's ``Cohort``.

    An unknown key refuses the build: a cohort condition provisioning does not understand must
    never be silently ignored.
    """
    try:
        return Cohort(**{k: v for k, v in (raw or {}).items() if v is not None})
    except Exception as exc:  # pydantic ValidationError: it names the key
        raise ProvisioningError(f"approval cohort cannot be applied: {exc}") from None


def spec_for_approval(project_slug: str, approval: Any) -> ExtractSpec:
    """The build spec of a registry ``Approval`` row: only its sources, variables, cohort and k."""
    variables = {s: list((approval.variables or {}).get(s, [])) for s in (approval.sources or [])}
    extra = set(approval.variables or {}) - set(approval.sources or [])
    if extra:
        raise ProvisioningError(f"approval {approval.id} lists variables for unapproved sources {sorted(extra)}")
    return ExtractSpec(
        project=project_slug,
        approval_id=str(approval.id),
        variables=variables,
        cohort=cohort_from_approval(approval.cohort),
        k=int(approval.k),
        dp_epsilon=float(approval.dp_epsilon) if approval.dp_epsilon is not None else None,
        conditions=_conditions(approval),
    )


def _conditions(approval: Any) -> ProjectConditions:
    """The approval's conditions; settings provisioning cannot read refuse the build (never ignored)."""
    from enclave.conditions import conditions_of

    from pydantic import ValidationError

    try:
        return conditions_of(approval)
    except ValidationError as exc:
        named = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ProvisioningError(f"approval {approval.id} settings cannot be applied: {named}") from None


def _version_number(label: str) -> int:
    return int(label[1:])


def provision(project_slug: str, *, actor: str | None = None, url: str | None = None) -> BuildResult:
    """Build the extract of an approved project from its current approval and register it.

    Idempotent; a crash at any point is recovered by running it again (see the module doc).
    """
    from sqlalchemy import select

    from enclave import audit
    from enclave.board.states import ProjectState
    from enclave.registry.base import ensure_schema, session_scope
    from enclave.registry.models import Extract, ExtractFile, Person, Project
    from enclave.settings import get_settings

    settings = get_settings()
    url = ensure_schema(url)
    with session_scope(url, readonly=True) as session:
        project = session.scalars(select(Project).where(Project.slug == project_slug)).first()
        if project is None:
            raise ProvisioningError(f"no project named {project_slug!r}")
        if project.state != ProjectState.approved:
            raise ProvisioningError(f"project {project_slug} is {project.state}: extracts are built for approved projects only")
        approval = project.current_approval
        if approval is None:
            raise ProvisioningError(f"project {project_slug} has no current approval")
        spec = spec_for_approval(project_slug, approval)
        approval_id = approval.id

    result = build_extract(spec, settings.research, settings.vault / "keys", settings.extracts)
    crash_point("extract.before_register")

    with session_scope(url) as session:
        project = session.scalars(select(Project).where(Project.slug == project_slug)).one()
        if project.state != ProjectState.approved or project.current_approval_id != approval_id:
            # The board acted while we built: the new version must not become visible.
            raise ProvisioningError(f"project {project_slug} changed state or approval during the build; run again")
        number = _version_number(result.version)
        row = session.scalars(select(Extract).where(Extract.project_id == project.id, Extract.version == number)).first()
        if row is None:
            builder = session.scalars(select(Person).where(Person.username == actor)).first() if actor else None
            manifest_text = (result.path / MANIFEST).read_bytes()
            row = Extract(
                project_id=project.id,
                approval_id=approval_id,
                version=number,
                path=f"{project_slug}/{result.version}",
                state="ready",
                manifest=result.manifest,
                manifest_sha256=hashlib.sha256(manifest_text).hexdigest(),
                k_reached=result.manifest.get("k_reached"),
                rows=sum(int(t["rows"]) for t in result.manifest["tables"].values()),
                built_by_id=builder.id if builder else None,
            )
            for table, meta in sorted(result.manifest["tables"].items()):
                row.files.append(
                    ExtractFile(name=meta["file"], sha256=meta["sha256"],
                                size=(result.path / meta["file"]).stat().st_size, rows=int(meta["rows"]))
                )
            session.add(row)
            result.adopted = not result.created
            audit.append(
                session,
                actor=actor or "system",
                action="extract.adopted" if result.adopted else "extract.built",
                project=project_slug,
                subject=f"extract:{project_slug}/{result.version}",
                details={
                    "approval_id": approval_id,
                    "k_required": spec.k,
                    "k_reached": result.manifest.get("k_reached"),
                    "tables": {t: m["rows"] for t, m in result.manifest["tables"].items()},
                    "manifest_sha256": row.manifest_sha256,
                },
            )
        elif row.state != "ready":
            raise ProvisioningError(f"extract {project_slug}/{result.version} was withdrawn; it cannot be reused")
    return result


def withdraw(project_slug: str, *, actor: str, reason: str, url: str | None = None) -> int:
    """End access to every extract of a project at once (revocation): registry rows withdrawn,
    the ``current`` link removed, the version folders closed to everyone. Returns how many were withdrawn."""
    from sqlalchemy import select

    from enclave import audit
    from enclave.registry.base import ensure_schema, session_scope
    from enclave.registry.models import Extract, Project
    from enclave.settings import get_settings

    settings = get_settings()
    url = ensure_schema(url)
    with session_scope(url) as session:
        project = session.scalars(select(Project).where(Project.slug == project_slug)).first()
        if project is None:
            raise ProvisioningError(f"no project named {project_slug!r}")
        rows = session.scalars(select(Extract).where(Extract.project_id == project.id, Extract.state == "ready")).all()
        for row in rows:
            row.state = "withdrawn"
        withdraw_current(settings.extracts, project_slug)
        for version in list_versions(settings.extracts / project_slug):
            os.chmod(settings.extracts / project_slug / version, 0o000)
        audit.append(session, actor=actor, action="extract.withdrawn", project=project_slug,
                     subject=f"project:{project_slug}", details={"versions": [r.version for r in rows], "reason": reason})
        return len(rows)
