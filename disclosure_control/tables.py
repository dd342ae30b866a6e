"""A table (crosstab or pivot) computed with its per-cell statistics, and its cell verdicts.

One pass of vectorised group statistics gives, for every published cell including the
margins, the count, the contributors and the largest contributors; the rules in
``frequency`` and ``magnitude`` then mark the disclosive cells. Both the researcher API
and the gate build tables here, so what the researcher saw is what the gate recomputes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .frequency import primary_reasons
from .magnitude import cell_stats, magnitude_reasons
from .rules import RuleSet

__all__ = ["TableResult", "build_table", "MARGINS_NAME", "AGGFUNCS"]

MARGINS_NAME = "All"
AGGFUNCS = {"count", "size", "sum", "mean", "median", "min", "max", "std", "var"}
# Statistics whose cells are sums of contributions: dominance and p% apply.
_MAGNITUDE = {"sum", "mean", "median", "std", "var", "min", "max"}


@dataclass
class TableResult:
    published: pd.DataFrame   # the table as pandas computes it (before suppression)
    counts: pd.DataFrame      # records per cell, same shape
    reasons: pd.DataFrame     # '' or why a cell is disclosive, same shape
    populations: dict         # cell label -> boolean row mask (only when asked)
    aggfunc: str
    margins: bool

    @property
    def disclosive(self) -> pd.DataFrame:
        return self.reasons != ""


def _margin_key(n_levels: int):
    return MARGINS_NAME if n_levels == 1 else (MARGINS_NAME,) + ("",) * (n_levels - 1)


def _frame_like(like: pd.DataFrame, fill) -> pd.DataFrame:
    return pd.DataFrame(fill, index=like.index, columns=like.columns, dtype=object if isinstance(fill, str) else float)


def build_table(
    keys: pd.DataFrame,
    index: list[str],
    columns: list[str],
    values: pd.Series | None,
    aggfunc: str,
    rules: RuleSet,
    margins: bool = False,
    want_populations: bool = False,
) -> TableResult:
    """Compute the table over ``keys`` (one column per grouping variable) and check it."""
    aggfunc = aggfunc or ("count" if values is None else "sum")
    if aggfunc not in AGGFUNCS:
        raise ValueError(f"aggfunc {aggfunc!r} is not supported; use one of {sorted(AGGFUNCS)}")
    if values is None and aggfunc not in ("count", "size"):
        raise ValueError(f"aggfunc {aggfunc!r} needs values")
    names = index + columns
    # Each grouping column is factorised once (sorted, as pandas sorts groups); the table is
    # computed over the integer codes and labelled at the end: strings are hashed once, not per step.
    labels_of: dict[str, Any] = {}
    coded: dict[str, Any] = {}
    valid = np.ones(len(keys), dtype=bool)   # pandas drops missing keys too
    for c in names:
        col = keys[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            valid &= col.notna().to_numpy()
            coded[c] = col.reset_index(drop=True)
            continue
        try:
            codes, uniques = pd.factorize(col, sort=True)
        except TypeError:
            codes, uniques = pd.factorize(col, sort=False)
        valid &= codes >= 0
        coded[c] = codes
        labels_of[c] = uniques
    data = pd.DataFrame({c: (v[valid] if isinstance(v, np.ndarray) else v[valid].reset_index(drop=True)) for c, v in coded.items()},
                        columns=names)
    vals = None if values is None else pd.Series(np.asarray(values, dtype=float)[valid])
    row_positions = np.flatnonzero(valid)

    if values is None or aggfunc in ("count", "size"):
        published = pd.crosstab([data[c] for c in index], [data[c] for c in columns] if columns else [pd.Series("count", index=data.index, name="")] , margins=margins, margins_name=MARGINS_NAME, dropna=False) if len(data) else pd.DataFrame()
    else:
        published = pd.crosstab([data[c] for c in index], [data[c] for c in columns] if columns else [pd.Series(values.name or "value", index=data.index, name="")],
                                values=vals, aggfunc=aggfunc, margins=margins, margins_name=MARGINS_NAME, dropna=False) if len(data) else pd.DataFrame()
    if published.empty:
        raise ValueError("the table has no cells (no rows with all grouping values present)")

    max_n = max([n for n, _ in rules.nk_rules] + [2])
    shape = published.shape
    counts_arr = np.zeros(shape)
    stat_arrs = {name: np.full(shape, np.nan) for name in ("contributors", "total", "abs_total", "negatives")}
    top_arrs = [np.zeros(shape) for _ in range(max_n)]
    populations: dict = {}
    pop_entries: list = []

    col_keys = columns if columns else []
    groupings = [(index, col_keys)]
    if margins:
        groupings += [([], col_keys), (index, []), ([], [])]
    for row_vars, col_vars in groupings:
        by = row_vars + col_vars
        if by:
            grouped = data.groupby(by, sort=False, observed=True)
            ids = grouped.ngroup().to_numpy()
            n_cells = int(ids.max()) + 1
            first = np.full(n_cells, len(ids), dtype=np.int64)
            np.minimum.at(first, ids, np.arange(len(ids)))
            key_frame = data.iloc[first][by].reset_index(drop=True)
        else:
            ids = np.zeros(len(data), dtype=np.int64)
            n_cells = 1
            key_frame = pd.DataFrame(index=[0])
        size = np.bincount(ids, minlength=n_cells).astype(float)
        stats = cell_stats(ids, vals.to_numpy(), n_cells, max_n) if vals is not None else None
        members = None
        if want_populations:
            order = np.argsort(ids, kind="stable")
            members = np.split(row_positions[order], np.cumsum(size.astype(int))[:-1])
        # the (row, column) of each cell in the published table, found in one pass
        if row_vars:
            row_cols = [key_frame[v].tolist() for v in row_vars]
            row_labels = row_cols[0] if len(index) == 1 else list(zip(*row_cols))
        else:
            row_labels = [_margin_key(len(index))] * n_cells
        if columns:
            if col_vars:
                col_cols = [key_frame[v].tolist() for v in col_vars]
                col_labels = col_cols[0] if len(columns) == 1 else list(zip(*col_cols))
            else:
                col_labels = [_margin_key(len(columns))] * n_cells
        else:
            col_labels = [published.columns[0]] * n_cells
        ri = _positions(published.index, row_labels)
        ci = _positions(published.columns, col_labels)
        ok = (ri >= 0) & (ci >= 0)
        cells = np.flatnonzero(ok)
        ri, ci = ri[cells], ci[cells]
        counts_arr[ri, ci] = size[cells]
        if stats is not None:
            stat_arrs["contributors"][ri, ci] = stats.contributors[cells]
            stat_arrs["total"][ri, ci] = stats.total[cells]
            stat_arrs["abs_total"][ri, ci] = stats.abs_total[cells]
            stat_arrs["negatives"][ri, ci] = stats.negatives[cells]
            for j in range(max_n):
                top_arrs[j][ri, ci] = stats.top[cells, j]
        if want_populations:
            pop_entries += [(r, c, members[cell]) for cell, r, c in zip(cells, ri, ci)]
    published.index = _relabel(published.index, index, labels_of)
    if columns:
        published.columns = _relabel(published.columns, columns, labels_of)
    for r, c, rows in pop_entries:
        populations[(published.index[r], published.columns[c])] = rows
    counts = pd.DataFrame(counts_arr, index=published.index, columns=published.columns)
    stat_frames = {name: pd.DataFrame(a, index=published.index, columns=published.columns) for name, a in stat_arrs.items()}
    tops = [pd.DataFrame(a, index=published.index, columns=published.columns) for a in top_arrs]
    reasons = _frame_like(published, "")
    reasons.loc[:, :] = primary_reasons(counts.to_numpy(), rules)
    if values is not None and aggfunc in _MAGNITUDE:
        from .magnitude import CellStats

        flat = CellStats(
            contributors=np.nan_to_num(stat_frames["contributors"].to_numpy().ravel()).astype(int),
            total=np.nan_to_num(stat_frames["total"].to_numpy().ravel()),
            abs_total=np.nan_to_num(stat_frames["abs_total"].to_numpy().ravel()),
            top=np.stack([t.to_numpy().ravel() for t in tops], axis=1),
            negatives=np.nan_to_num(stat_frames["negatives"].to_numpy().ravel()).astype(int),
        )
        mag = magnitude_reasons(flat, rules).reshape(counts.shape)
        base = reasons.to_numpy()
        merged = np.where(base == "", mag, np.where(mag == "", base, base + "; " + mag))
        reasons.loc[:, :] = merged
        if aggfunc in ("min", "max"):
            reasons.loc[:, :] = np.where(reasons.to_numpy() == "", f"{aggfunc} reveals one record's value (top/bottom-code first)",
                                         reasons.to_numpy() + f"; {aggfunc} reveals one record's value")
        if aggfunc == "median":
            few = stat_frames["contributors"].to_numpy() < rules.quantile_min_contributors
            reasons.loc[:, :] = np.where(few & (reasons.to_numpy() == ""), "quantile from too few contributors", reasons.to_numpy())
    return TableResult(published=published, counts=counts, reasons=reasons, populations=populations,
                       aggfunc=aggfunc, margins=margins)


def _relabel(labels: pd.Index, names: list[str], labels_of: dict) -> pd.Index:
    """Replace the integer codes of factorised variables by their labels (margins stay as they are)."""
    maps = [labels_of.get(n) for n in names]
    if all(m is None for m in maps):
        return labels

    def one(value, mapping):
        if mapping is None or isinstance(value, str):
            return value
        return mapping[int(value)]

    if isinstance(labels, pd.MultiIndex):
        tuples = [tuple(one(v, m) for v, m in zip(label, maps)) for label in labels]
        return pd.MultiIndex.from_tuples(tuples, names=labels.names)
    values = [one(v, maps[0]) for v in labels]
    values = [v.item() if hasattr(v, "item") and not isinstance(v, (pd.Timestamp, pd.Interval)) else v for v in values]
    return pd.Index(values, name=labels.name, tupleize_cols=False)


def _positions(labels: pd.Index, wanted: list) -> np.ndarray:
    """Position of each wanted label in ``labels`` (-1 when absent), tolerant of mixed label types."""
    lookup = {}
    for i, label in enumerate(labels):
        lookup.setdefault(_hashable(label), i)
    return np.array([lookup.get(_hashable(w), -1) for w in wanted], dtype=np.int64)


def _hashable(label):
    if isinstance(label, tuple):
        return tuple(_hashable(v) for v in label)
    if hasattr(label, "item") and not isinstance(label, (pd.Timestamp, pd.Interval)):
        try:
            label = label.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(label, float) and label != label:
        return ("nan",)
    return (type(label) is bool, label) if isinstance(label, (bool, int, float)) else label


def is_margin(label) -> bool:
    return label == MARGINS_NAME or (isinstance(label, tuple) and len(label) > 0 and label[0] == MARGINS_NAME)


def round_counts(published: pd.DataFrame, rules: RuleSet, margins: bool) -> pd.DataFrame:
    """Rounded counts; margins are recomputed from the rounded cells (never rounded totals)."""
    from .frequency import apply_rounding

    out = published.astype(float).copy()
    rows = [r for r in out.index if not is_margin(r)]
    cols = [c for c in out.columns if not is_margin(c)]
    out.loc[rows, cols] = apply_rounding(out.loc[rows, cols].to_numpy(), rules)
    if margins:
        inner = out.loc[rows, cols]
        margin_rows = [r for r in out.index if is_margin(r)]
        margin_cols = [c for c in out.columns if is_margin(c)]
        for c in margin_cols:
            out.loc[rows, c] = inner.sum(axis=1, min_count=0).to_numpy()
        for r in margin_rows:
            out.loc[r, cols] = inner.sum(axis=0).to_numpy()
            for c in margin_cols:
                out.loc[r, c] = np.nansum(inner.to_numpy())
    return out


def interior_cells(frame: pd.DataFrame, index: list[str], columns: list[str]) -> tuple[pd.DataFrame, list[tuple]]:
    """Long table of the interior cells (dims..., value) and their (row, col) labels."""
    records, labels = [], []
    for r in frame.index:
        if is_margin(r):
            continue
        rk = r if isinstance(r, tuple) else (r,)
        for c in frame.columns:
            if is_margin(c):
                continue
            ck = (c if isinstance(c, tuple) else (c,)) if columns else ()
            records.append(dict(zip(index + columns, [str(v) for v in rk + ck]), value=float(frame.at[r, c])))
            labels.append((r, c))
    return pd.DataFrame(records), labels


def cube_key(r, c, index: list[str], columns: list[str]) -> tuple:
    from .suppression import TOTAL

    rk = tuple(TOTAL for _ in index) if is_margin(r) else tuple(str(v) for v in (r if isinstance(r, tuple) else (r,)))
    if not columns:
        return rk
    ck = tuple(TOTAL for _ in columns) if is_margin(c) else tuple(str(v) for v in (c if isinstance(c, tuple) else (c,)))
    return rk + ck


def cell_label(r, c, index: list[str], columns: list[str]) -> dict:
    out = {}
    for names, key in ((index, r), (columns, c)):
        if not names:
            continue
        if is_margin(key):
            out.update({n: MARGINS_NAME for n in names})
        else:
            key = key if isinstance(key, tuple) else (key,)
            out.update({n: (v.item() if hasattr(v, "item") else v) for n, v in zip(names, key)})
    return out
