"""Stage 2, generalise: per table, quasi-identifiers generalised and suppressed until k holds
(``disclosure_control.microdata``), counted in people; then each person-level quasi-identifier
brought to the coarsest level any table used, so the tables agree once joined."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from enclave.extract.spec import PSEUDONYM, ExtractSpec, ProvisioningError


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


def generalise_tables(frames: dict[str, pd.DataFrame], spec: ExtractSpec
                      ) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]], dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-table k, then common levels; returns frames, each table's quasi-identifiers, the per-table reports and the common levels."""
    out: dict[str, pd.DataFrame] = {}
    table_qis: dict[str, list[str]] = {}
    k_reports: dict[str, dict[str, Any]] = {}
    originals: dict[str, pd.DataFrame] = {}
    for table, df in frames.items():
        qis = [c for c in spec.quasi_identifiers if c in df.columns]
        out[table], k_reports[table] = _generalise(df, table, qis, spec.k)
        table_qis[table] = qis
        originals[table] = df[[c for c in spec.person_quasi_identifiers if c in df.columns]]
    out, common_levels = _common_levels(out, originals, k_reports, spec.person_quasi_identifiers)
    return out, table_qis, k_reports, common_levels
