"""Magnitude-table rules (sums, means, ratios): contributors, (n,k)-dominance, p%.

Per-cell statistics are computed in one vectorised pass over the microdata (sort by
cell then by absolute value); ACRO computes them with one Python aggregation per
statistic, which is what makes it slow on large tables. Negative values count by their
absolute value, so a large negative contributor still dominates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rules import RuleSet

__all__ = ["CellStats", "cell_stats", "magnitude_reasons"]


@dataclass
class CellStats:
    """Per-cell arrays (length n_cells)."""

    contributors: np.ndarray   # non-missing values in the cell
    total: np.ndarray          # sum of values
    abs_total: np.ndarray      # sum of absolute values
    top: np.ndarray            # (n_cells, max_n) largest absolute values, 0-padded
    negatives: np.ndarray      # number of negative values


def cell_stats(cell_ids: np.ndarray, values: np.ndarray, n_cells: int, max_n: int = 2) -> CellStats:
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    ids, vals = cell_ids[present], values[present]
    absolute = np.abs(vals)
    contributors = np.bincount(ids, minlength=n_cells)
    total = np.bincount(ids, weights=vals, minlength=n_cells)
    abs_total = np.bincount(ids, weights=absolute, minlength=n_cells)
    negatives = np.bincount(ids, weights=(vals < 0).astype(float), minlength=n_cells).astype(int)
    top = _largest(ids, absolute, n_cells, max(max_n, 2))
    return CellStats(contributors, total, abs_total, top, negatives)


def _largest(ids: np.ndarray, absolute: np.ndarray, n_cells: int, k: int) -> np.ndarray:
    """The k largest values per cell (0-padded), by peeling each cell's maximum k times.

    A per-cell maximum (``np.maximum.at``) is linear; sorting 1M values by (cell, value)
    costs several times more, and only the top few are needed.
    """
    top = np.zeros((n_cells, k))
    filled = np.zeros(n_cells, dtype=np.int64)
    work_ids, work_vals = ids, absolute
    while len(work_vals):
        peak = np.full(n_cells, -np.inf)
        np.maximum.at(peak, work_ids, work_vals)
        at_peak = work_vals == peak[work_ids]
        ties = np.bincount(work_ids[at_peak], minlength=n_cells)
        for j in range(k):  # slots filled..filled+ties-1 take this peak (ties count repeatedly)
            take = (ties > 0) & (filled <= j) & (j < filled + ties)
            top[take, j] = peak[take]
        filled += ties
        keep = ~at_peak & (filled[work_ids] < k)   # cells already full drop out
        work_ids, work_vals = work_ids[keep], work_vals[keep]
    return top


def magnitude_reasons(stats: CellStats, rules: RuleSet) -> np.ndarray:
    """Per cell: '' when safe, else the reasons (threshold on contributors, nk, p%)."""
    n_cells = len(stats.contributors)
    reasons = [[] for _ in range(n_cells)]

    def flag(mask, text):
        for i in np.flatnonzero(mask):
            reasons[i].append(text)

    flag((stats.contributors < rules.threshold) & ((stats.contributors > 0) | rules.zeros_disclosive),
         f"fewer than {rules.threshold} contributors")
    with np.errstate(divide="ignore", invalid="ignore"):
        for n, k in rules.nk_rules:
            share = stats.top[:, :n].sum(axis=1) / stats.abs_total
            flag(np.nan_to_num(share) >= k, f"dominance ({n}, {k:g}): top {n} contributors hold >= {k:.0%}")
        top1 = stats.top[:, 0]
        rest = stats.abs_total - stats.top[:, 0] - stats.top[:, 1]
        ratio = np.where(top1 > 0, rest / np.where(top1 > 0, top1, 1), 1.0)
        flag(ratio < rules.p_ratio, f"p% rule: others hold < {rules.p_ratio:.0%} of the largest contributor")
    out = np.empty(n_cells, dtype=object)
    out[:] = ["; ".join(r) for r in reasons]
    return out
