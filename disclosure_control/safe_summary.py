"""Summary outputs: ``describe`` statistics and survival tables, with their cell rules.

Minimum and maximum are a single record's value unless at least ``threshold`` records share
it (the data were top- or bottom-coded), so they fail otherwise; quantiles need
``quantile_min_contributors`` records; mean and standard deviation follow the magnitude
rules (dominance, p%).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .magnitude import cell_stats, magnitude_reasons
from .rules import RuleSet

__all__ = ["describe_table", "survival_table"]


def describe_table(values: pd.Series, rules: RuleSet) -> tuple[pd.DataFrame, list[str]]:
    values = pd.Series(values, dtype=float)
    name = values.name if values.name is not None else "value"
    present = values.dropna()
    table = present.describe().to_frame(name=name)
    n = len(present)
    reasons = []
    stats = cell_stats(np.zeros(n, dtype=np.int64), present.to_numpy(), 1, max(2, *[k for k, _ in rules.nk_rules]))
    magnitude = magnitude_reasons(stats, rules)[0]
    for stat in table.index:
        reason = []
        if n < rules.threshold:
            reason.append(f"fewer than {rules.threshold} records")
        if stat in ("mean", "std") and magnitude:
            reason.append(magnitude)
        if stat in ("min", "max") and n:
            extreme = present.min() if stat == "min" else present.max()
            if int((present == extreme).sum()) < rules.threshold:
                reason.append(f"{stat} is one record's value (top/bottom-code it first)")
        if stat.endswith("%") and n < rules.quantile_min_contributors:
            reason.append(f"quantile from fewer than {rules.quantile_min_contributors} records")
        reasons.append("; ".join(dict.fromkeys(reason)))
    return table, reasons


def survival_table(time: pd.Series, status: pd.Series, rules: RuleSet) -> tuple[pd.DataFrame, list[str]]:
    from statsmodels.duration.survfunc import SurvfuncRight

    frame = pd.DataFrame({"time": pd.Series(time, dtype=float).to_numpy(), "status": pd.Series(status, dtype=float).to_numpy()}).dropna()
    fitted = SurvfuncRight(frame["time"].to_numpy(), frame["status"].to_numpy())
    table = pd.DataFrame({"time": fitted.surv_times, "at_risk": fitted.n_risk.astype(int),
                          "events": fitted.n_events.astype(int), "survival": fitted.surv_prob})
    reasons = [f"fewer than {rules.threshold} at risk" if r < rules.threshold else "" for r in table["at_risk"]]
    return table, reasons
