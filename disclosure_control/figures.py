"""Figures: a histogram is saved with the table of what it plots, and the table is checked.

Bins are counts, so the frequency rules apply. Bin edges taken from the data (an integer
``bins``) put the minimum and maximum on the axis, so the extreme bins are flagged unless
the researcher gives edges (top- and bottom-coding).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .frequency import primary_reasons
from .rules import RuleSet

__all__ = ["histogram_table", "histogram_reasons", "plot_histogram"]


def histogram_table(values, bins) -> pd.DataFrame:
    array = pd.Series(values).dropna().to_numpy(dtype=float)
    counts, edges = np.histogram(array, bins=bins)
    return pd.DataFrame({"bin_lower": edges[:-1], "bin_upper": edges[1:], "count": counts.astype(int)})


def histogram_reasons(table: pd.DataFrame, rules: RuleSet, edges_from_data: bool) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    reasons = primary_reasons(table["count"].to_numpy(), rules)
    findings = []
    if edges_from_data:
        findings.append(("extreme_bins", "fail",
                         "bin edges come from the data, so the axis shows the minimum and maximum: give explicit edges (top/bottom-code)"))
    nonzero = np.flatnonzero(table["count"].to_numpy() > 0)
    if len(nonzero) and rules.extreme_bin_share > 0:
        total = table["count"].sum()
        for i in (nonzero[0], nonzero[-1]):
            if table["count"].iloc[i] / total < rules.extreme_bin_share:
                findings.append(("extreme_bins", "review", f"extreme bin {i} holds under {rules.extreme_bin_share:.0%} of records"))
    return reasons, findings


def plot_histogram(table: pd.DataFrame, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    shown = table["count"].where(table["count"].notna(), 0)
    ax.bar(table["bin_lower"], shown, width=table["bin_upper"] - table["bin_lower"], align="edge", edgecolor="black")
    ax.set_title(title)
    ax.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
