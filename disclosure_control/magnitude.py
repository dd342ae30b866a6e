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
    order = np.lexsort((-absolute, ids))  # by cell, then largest first
    sorted_ids, sorted_abs = ids[order], absolute[order]
    starts = np.searchsorted(sorted_ids, np.arange(n_cells))
    rank = np.arange(len(sorted_ids)) - starts[sorted_ids]
    top = np.zeros((n_cells, max(max_n, 2)))
    keep = rank < top.shape[1]
    top[sorted_ids[keep], rank[keep]] = sorted_abs[keep]
    return CellStats(contributors, total, abs_total, top, negatives)


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
