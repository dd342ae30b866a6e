"""Comparison reports from a cohort, made through the SDC-aware session so every table is
checked and saved with its evidence; rates, intervals and charts are computed from the
*published* counts (suppressed and rounded as the rules say), so they add nothing the checked
tables do not already show.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from enclave.cohorts.definition import DEFAULT_DIR, CohortDefinition, CohortError, load_definition, load_definitions
from enclave.cohorts.describe import describe  # noqa: F401 - templates print a definition with report.describe
from enclave.cohorts.evaluate import Cohort, evaluate, wilson


def definition(name_or_path: str | Path) -> CohortDefinition:
    """A shipped definition by name, or a researcher's own copy by path (copy one, edit it, load it)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return load_definition(path)
    shipped = load_definitions(DEFAULT_DIR)
    if str(name_or_path) not in shipped:
        raise CohortError(f"no cohort definition {name_or_path!r}; shipped: {', '.join(shipped)}")
    return shipped[str(name_or_path)]


def cohort(session: Any, name_or_path: str | Path, person: str = "pseudonym") -> Cohort:
    """Evaluate a definition on the extract through ``session.load`` and record its text beside
    the outputs (``<name>_definition.txt``), so reviewers see exactly who was counted."""
    d = definition(name_or_path)
    needed = set(d.tables())
    if any(c.parent for c in _all_conditions(d)):
        needed.add("relationships")
    tables = {t: session.load(t) for t in sorted(needed)}
    result = evaluate(d, tables, person)
    result.rows = anchored_rows(result, tables)
    outputs = Path(getattr(session, "outputs_dir", "."))
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / f"{d.name}_definition.txt").write_text(describe(d) + "\n", encoding="utf-8")
    return result


def _all_conditions(d: CohortDefinition):
    stack = [*d.population, *d.exclude, *(c for v in d.measures.values() for c in v),
             *(c for v in d.subpopulations.values() for c in v)]
    while stack:
        c = stack.pop()
        yield c
        stack.extend(c.any_of or [])
        stack.extend(c.none_of or [])


def anchor_table(d: CohortDefinition) -> str:
    """The extract table whose rows stand for the units: the unit table, else the table of the
    population's first event (every member has a row there)."""
    if d.unit.table:
        return d.unit.table
    for c in d.population:
        if c.event is not None:
            return d.events[c.event].table
    raise CohortError(f"cohort {d.name}: name a unit table or start the population with an event, "
                      "so that its outputs count rows of one extract table")


def anchored_rows(result: Cohort, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row of the anchor table per unit, as loaded (so the session's row provenance goes with it):
    the gate then recounts every cell from those records of the extract. Flags the extract holds
    itself (a unit-table measure on one true/false column) stay that column; the others are added
    from the cohort and reach reviewers as values the gate cannot recompute."""
    d, person = result.definition, result.person
    rows = tables[anchor_table(d)]
    keys = [person, *d.unit.per]
    own = {}
    for flag, where in d.unit.row_measures.items():
        if len(where) == 1 and next(iter(where.values())) is True:
            own[flag] = next(iter(where))
    if own:  # keep, for each unit, a row that carries the flag when any of its rows does
        rows = rows.sort_values(list(own.values()), ascending=False, kind="stable", na_position="last")
    rows = rows[rows[person].isin(set(result.units[person]))].drop_duplicates(keys)
    if d.unit.table:
        flags = result.units.set_index(keys)
        extra = [f for f in result.flags if f not in own]
        if extra:
            joined = pd.MultiIndex.from_frame(rows[keys]) if len(keys) > 1 else pd.Index(rows[person])
            for f in extra:
                rows[f] = flags[f].reindex(joined).fillna(0).astype(int).to_numpy()
        for f, column in own.items():
            rows[f] = rows[column]
    else:
        flags = result.units.set_index(person)
        for f in result.flags:
            rows[f] = rows[person].map(flags[f]).fillna(0).astype(int)
    return rows


def counts(session: Any, result: Cohort, measure: str, by: str) -> pd.DataFrame:
    """Units by ``by`` and by the measure, with margins, through the checked session."""
    rows = getattr(result, "rows", None)
    if rows is None:
        raise CohortError("evaluate the cohort through report.cohort(session, ...) so its outputs count extract rows")
    if measure not in rows.columns:
        raise CohortError(f"cohort {result.definition.name} has no measure {measure!r}; it has {', '.join(result.flags)}")
    flag = rows[measure]
    if not pd.api.types.is_bool_dtype(flag):
        flag = flag.map({1: True, 0: False})
    return session.crosstab(rows[by], flag.rename(measure), margins=True)


def rates(published: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Share with the measure per group and its 95% Wilson interval, from published counts only;
    a group whose counts were suppressed gets no rate."""
    table = published.drop(index="All", errors="ignore")
    table.columns = [str(c) for c in table.columns]
    yes = pd.to_numeric(table["True"], errors="coerce") if "True" in table else pd.Series(np.nan, index=table.index)
    total = pd.to_numeric(table["All"], errors="coerce") if "All" in table else yes + pd.to_numeric(table.get("False"), errors="coerce")
    out = pd.DataFrame({"units": total, measure: yes})
    out["rate"] = out[measure] / out["units"]
    bounds = [wilson(int(k), int(n)) if np.isfinite(k) and np.isfinite(n) and n > 0 else (np.nan, np.nan)
              for k, n in zip(out[measure].to_numpy(dtype=float), out["units"].to_numpy(dtype=float))]
    out["ci_low"] = [b[0] for b in bounds]
    out["ci_high"] = [b[1] for b in bounds]
    return out


def chart(table: pd.DataFrame, title: str, path: Path) -> Path:
    """A bar chart of rates with their intervals (PNG), drawn from a rates table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.dropna(subset=["rate", "ci_low", "ci_high"])
    shown = shown[np.isfinite(shown["rate"].astype(float))]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(3, len(shown)) + 1.2))
    y = np.arange(len(shown))
    rate = shown["rate"].astype(float).to_numpy()
    err = np.clip(np.vstack([rate - shown["ci_low"].astype(float).to_numpy(),
                             shown["ci_high"].astype(float).to_numpy() - rate]), 0, None)
    if len(shown):
        ax.barh(y, rate * 100, xerr=err * 100, color="#2b6c9e", ecolor="#333", capsize=3)
    else:
        ax.text(0.5, 0.5, "no group has published counts", ha="center", va="center", transform=ax.transAxes)
    ax.set_yticks(y, [str(i) for i in shown.index])
    ax.invert_yaxis()
    ax.set_xlabel("per cent (95% interval)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def comparison_report(session: Any, result: Cohort, measure: str, by: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """For each comparison dimension: the checked counts table, then rates and a chart saved beside it."""
    outputs = Path(getattr(session, "outputs_dir", "."))
    out = {}
    rows = getattr(result, "rows", result.units)
    derived = _derived_index(outputs)
    for dim in by or [c for c in result.definition.compare_by if c in rows.columns]:
        before = set(outputs.glob("*.evidence.json"))
        published = counts(session, result, measure, dim)
        made = sorted(set(outputs.glob("*.evidence.json")) - before)
        table = rates(published, measure)
        stem = f"{result.definition.name}_{measure}_by_{dim}"
        table.to_csv(outputs / f"{stem}_rates.csv")
        chart(table, f"{measure.replace('_', ' ')} by {dim.replace('_', ' ')}", outputs / f"{stem}_rates.png")
        if made:  # rates and charts say what their counts table says: they stand or fall with it
            try:
                source = json.loads(made[-1].read_text(encoding="utf-8"))["output_file"]
            except (OSError, ValueError, KeyError):
                source = made[-1].name[: -len(".evidence.json")] + ".csv"
            derived[f"{stem}_rates.csv"] = derived[f"{stem}_rates.png"] = source
        out[dim] = table
    (outputs / DERIVED_INDEX).write_text(json.dumps(derived, indent=1, sort_keys=True), encoding="utf-8")
    return out


DERIVED_INDEX = ".derived_from.json"  # rates/chart file -> the checked counts table it was computed from


def _derived_index(outputs: Path) -> dict[str, str]:
    try:
        return json.loads((outputs / DERIVED_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def derived_from(outputs: Path) -> dict[str, str]:
    """Which checked counts table each rates file and chart was computed from."""
    return _derived_index(Path(outputs))
