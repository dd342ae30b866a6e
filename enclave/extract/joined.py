"""Stage 2b, joined tables: person-level k across the tables of one extract (the join attack).

Every table of an extract carries the same per-project pseudonym, so a researcher can join them.
Per-table k-anonymity does not survive the join: neighbourhood from one table beside race from
another, two different birth years of one person (each source derives its own, typos included),
or an exact year in one table beside the band another table was generalised to. Here each person
gets a *profile*: per person-level quasi-identifier, the set of values they carry across every
table (missing is a value of its own). Every profile class must hold at least k distinct people.

The remedy for people in smaller classes loses as little as it can and fails closed:
harmonise (a column whose values differ across tables becomes missing for that person
everywhere), then suppress (all person-level quasi-identifiers of that person become missing
everywhere, joining the all-missing class), then drop (the person's rows leave every table).
Suppression creates new per-table classes, so the per-table people-k rule is re-applied and the
whole repeated, a bounded number of rounds. ``verify`` then re-measures both rules with separate
code (the library's k over one row per person) and refuses the extract if either fails.

Relationship tables (``pseudonym_from`` / ``pseudonym_to``) carry no person-level attribute, so
they add nothing to any one person's profile; their people count in the population (as
all-missing when they appear nowhere else) and a dropped person's edges are dropped with them.
What this does *not* measure is the pair risk: an edge joins two profiles (a mother's and a
child's), and a family's combined profiles can be rarer than either. That is a graph-level
measure (k over edges or households), not a per-person one, and is left to the board's review
of any approval that includes relationships.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from enclave.extract import generalise
from enclave.extract.spec import PSEUDONYM, ExtractSpec, ProvisioningError

MISSING = "\x00missing"  # cannot collide with a real value: no value in the store starts with NUL
PAIR_KEYS = ("pseudonym_from", "pseudonym_to")
MAX_ROUNDS = 10

TableRule = Callable[[str, pd.DataFrame], tuple[pd.DataFrame, int]]


# --------------------------------------------------------------------------- shared value normalisation


def _token(value: Any) -> Any:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return value


def tokens(series: pd.Series) -> pd.Series:
    """Values as strings that compare equal across tables: a year read as 2005 in one table and
    2005.0 in another (a float column because it holds a null) is one value, not a discrepancy."""
    if pd.api.types.is_float_dtype(series):
        out = series.astype("string")
        integral = series.notna() & (series == np.floor(series))
        out[integral] = series[integral].astype("int64").astype("string")
    elif pd.api.types.is_object_dtype(series):
        out = series.map(_token).astype("string")
    else:
        out = series.astype("string")
    return out.fillna(MISSING)


def people(tables: dict[str, pd.DataFrame]) -> pd.Index:
    """Everyone in the extract, whichever table they appear in."""
    found = []
    for df in tables.values():
        for col in (PSEUDONYM, *PAIR_KEYS):
            if col in df.columns:
                found.append(df[col].astype(str))
    if not found:
        return pd.Index([], dtype=object)
    return pd.Index(pd.concat(found, ignore_index=True).unique())


def person_columns(tables: dict[str, pd.DataFrame], person_qis: list[str]) -> list[str]:
    return [c for c in person_qis if any(PSEUDONYM in df.columns and c in df.columns for df in tables.values())]


# --------------------------------------------------------------------------- remedy


def _pairs(tables: dict[str, pd.DataFrame], col: str, population: pd.Index) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Distinct (person, value) pairs of one column over every table, as integer codes sorted by
    person then value code; also the number of value codes and the code of a missing value."""
    who = [population.get_indexer(df[PSEUDONYM]) for df in tables.values() if PSEUDONYM in df.columns and col in df.columns]
    val = [tokens(df[col]) for df in tables.values() if PSEUDONYM in df.columns and col in df.columns]
    codes, uniques = pd.factorize(pd.concat(val, ignore_index=True) if val else pd.Series([], dtype="string"))
    m = len(uniques)
    found = list(uniques)
    missing = found.index(MISSING) if MISSING in found else m
    m = max(m, missing + 1)
    keys = np.unique(np.concatenate(who).astype(np.int64) * m + codes) if who else np.zeros(0, np.int64)
    return keys // m, keys % m, m, missing


def _profiles(tables: dict[str, pd.DataFrame], cols: list[str], population: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per person: an id of the joined value set of each column, and how many values the set holds.

    A person absent from every table carrying a column is treated as missing there: in the
    joined data nothing is known about them in that column either way.
    """
    from disclosure_control.microdata import equivalence_class_ids

    n = len(population)
    profile = pd.DataFrame(index=population)
    n_values = pd.DataFrame(index=population)
    for col in cols:
        person, code, _, missing = _pairs(tables, col, population)
        counts = np.bincount(person, minlength=n)
        width = max(int(counts.max()) if n else 1, 1)
        # Row i lists person i's value codes in ascending order: equal rows are equal sets.
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else np.zeros(0, np.int64)
        position = np.arange(len(person)) - starts[person]
        matrix = np.full((n, width), -1, dtype=np.int64)
        matrix[person, position] = code
        matrix[counts == 0, 0] = missing
        ids, _ = equivalence_class_ids(pd.DataFrame(matrix), list(range(width)))
        profile[col] = ids
        n_values[col] = np.maximum(counts, 1)
    return profile, n_values


def _at_risk(profile: pd.DataFrame, cols: list[str], k: int) -> pd.Index:
    if profile.empty:
        return profile.index
    sizes = profile.groupby(cols, sort=False, dropna=False)[cols[0]].transform("size")
    return profile.index[(sizes < k).to_numpy()]


def _set_missing(tables: dict[str, pd.DataFrame], col: str, who: set[str]) -> int:
    """Blank ``col`` for ``who`` in every table; returns how many of them lost a real value."""
    lost: set[str] = set()
    for name, df in tables.items():
        if PSEUDONYM not in df.columns or col not in df.columns:
            continue
        mask = df[PSEUDONYM].astype(str).isin(who)
        if not mask.any():
            continue
        had_value = mask & df[col].notna()
        lost |= set(df.loc[had_value, PSEUDONYM].astype(str))
        out = df.copy()
        if pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("Int64")  # keep integers integers: a float year would read 2005.0
        out[col] = out[col].mask(mask.to_numpy())
        tables[name] = out
    return len(lost)


def _drop_people(tables: dict[str, pd.DataFrame], who: set[str]) -> None:
    for name, df in tables.items():
        mask = pd.Series(False, index=df.index)
        for col in (PSEUDONYM, *PAIR_KEYS):
            if col in df.columns:
                mask |= df[col].astype(str).isin(who)
        if mask.any():
            tables[name] = df.loc[~mask].reset_index(drop=True)


def protect(tables: dict[str, pd.DataFrame], person_qis: list[str], k: int, table_rule: TableRule,
            max_rounds: int = MAX_ROUNDS) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Harmonise, suppress, then drop until every profile class and every per-table class holds
    k people (``table_rule(table, df) -> (df, rows dropped)`` is provisioning's per-table rule).

    Returns new frames (the inputs are not modified) and an aggregate report: counts only, never
    a pseudonym or a value. A clean extract comes back unchanged, frame for frame.
    """
    tables = dict(tables)
    cols = person_columns(tables, person_qis)
    report: dict[str, Any] = {
        "person_quasi_identifiers": cols, "rounds": 0,
        "people_harmonised": {c: 0 for c in cols}, "people_suppressed": {c: 0 for c in cols},
        "people_suppressed_total": 0, "people_dropped": 0, "rows_dropped_per_table": {t: 0 for t in tables},
    }
    if not cols:  # nothing person-level in the extract: the join adds no attribute to anyone
        return tables, report
    suppressed_anyone: set[str] = set()
    dropped_anyone: set[str] = set()
    for round_no in range(1, max_rounds + 1):
        changed = False
        population = people(tables)
        profile, n_values = _profiles(tables, cols, population)
        risky = _at_risk(profile, cols, k)
        if len(risky):
            changed = True
            for col in cols:
                differing = set(risky[(n_values.loc[risky, col] > 1).to_numpy()])
                if differing:
                    report["people_harmonised"][col] += _set_missing(tables, col, differing)
            profile, _ = _profiles(tables, cols, population)
            risky = _at_risk(profile, cols, k)
        if len(risky):
            who = set(risky)
            for col in cols:
                report["people_suppressed"][col] += _set_missing(tables, col, who)
            suppressed_anyone |= who
            profile, _ = _profiles(tables, cols, population)
            risky = _at_risk(profile, cols, k)
        if len(risky):
            who = set(risky)
            _drop_people(tables, who)
            dropped_anyone |= who
        for name in list(tables):
            before = tables[name]
            after, n_dropped = table_rule(name, before)
            if n_dropped:
                changed = True
                tables[name] = after
                report["rows_dropped_per_table"][name] += int(n_dropped)
        report["rounds"] = round_no
        if not changed:
            break
    report["people_suppressed_total"] = len(suppressed_anyone - dropped_anyone)
    report["people_dropped"] = len(dropped_anyone)
    return tables, report


# --------------------------------------------------------------------------- independent measure


def measured_person_k(tables: dict[str, pd.DataFrame], person_qis: list[str]) -> int | None:
    """Smallest number of distinct people sharing a joined profile, measured apart from the remedy:
    each person's value set as a bit mask (one bit per distinct value), one row per person, and
    the library's own k over those rows (rows = people)."""
    from disclosure_control import microdata

    cols = person_columns(tables, person_qis)
    population = people(tables)
    if not cols or len(population) == 0:
        return None
    n = len(population)
    wide: dict[str, np.ndarray] = {}
    for col in cols:
        who = np.concatenate([population.get_indexer(df[PSEUDONYM]) for df in tables.values()
                              if PSEUDONYM in df.columns and col in df.columns])
        values = pd.concat([tokens(df[col]) for df in tables.values() if PSEUDONYM in df.columns and col in df.columns],
                           ignore_index=True)
        uniques = sorted(set(values) | {MISSING})
        bit = pd.Series(np.arange(len(uniques)), index=uniques)
        codes = bit.reindex(values.to_numpy()).to_numpy()
        masks = np.zeros((n, len(uniques) // 62 + 1), dtype=np.int64)
        np.bitwise_or.at(masks, (who, codes // 62), np.left_shift(np.int64(1), codes % 62))
        empty = ~masks.any(axis=1)
        masks[empty, bit[MISSING] // 62] = np.int64(1) << (bit[MISSING] % 62)
        for word in range(masks.shape[1]):
            wide[f"{col}:{word}"] = masks[:, word]
    frame = pd.DataFrame(wide)
    return int(microdata.k_anonymity(frame, list(frame.columns)))


def measured_table_people_k(df: pd.DataFrame, quasi_ident: list[str]) -> int | None:
    """Distinct people in the smallest per-table class: one row per (person, class), library k."""
    from disclosure_control import microdata

    if not quasi_ident or df.empty or PSEUDONYM not in df.columns:
        return None
    return int(microdata.k_anonymity(df[[PSEUDONYM, *quasi_ident]].drop_duplicates(), quasi_ident))


def verify(tables: dict[str, pd.DataFrame], table_qis: dict[str, list[str]], person_qis: list[str], k: int) -> int | None:
    """Refuse the extract unless both rules hold; returns the person-level k reached."""
    for name, df in sorted(tables.items()):
        reached = measured_table_people_k(df, table_qis.get(name, []))
        if reached is not None and reached < k:
            raise ProvisioningError(f"table {name!r} (columns {table_qis[name]}): per-table people k={reached} "
                                    f"after the joined-tables check, below the approved k={k}")
    person_k = measured_person_k(tables, person_qis)
    if person_k is not None and person_k < k:
        raise ProvisioningError(f"joined tables {sorted(tables)} on columns {person_columns(tables, person_qis)}: "
                                f"person-level k={person_k}, below the approved k={k}")
    return person_k


# --------------------------------------------------------------------------- the stage


def protect_join(frames: dict[str, pd.DataFrame], table_qis: dict[str, list[str]],
                  spec: ExtractSpec) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Person-level k over the join of all tables (``enclave.extract_linkage_risk``), with the
    per-table people-k rule re-applied as it goes; re-measured apart from the remedy, fail closed."""
    def per_table(table: str, df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        if not table_qis.get(table):  # no class to protect; _people_k would treat the table as one class
            return df, 0
        return generalise._people_k(df, table_qis[table], spec.k)

    out, report = protect(frames, spec.person_quasi_identifiers, spec.k, per_table)
    emptied = sorted(t for t in frames if len(frames[t]) and not len(out[t]))
    if emptied:
        raise ProvisioningError(f"table(s) {emptied}: no rows left once k={spec.k} holds across the joined tables")
    report["k_reached"] = verify(out, table_qis, spec.person_quasi_identifiers, spec.k)
    report["people"] = int(len(people(out)))
    return out, report
