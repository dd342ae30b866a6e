"""Differential privacy: explicit bounds, leaks refused, a persisted budget that never overdraws."""
from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from disclosure_control import dp


def test_queries_charge_the_budget_and_persist(tmp_path):
    path = tmp_path / "budget.sqlite"
    budget = dp.Budget(path, "proj-1")
    budget.set_total(1.0)
    values = np.arange(1000, dtype=float)
    assert abs(dp.mean(values, 0.5, (0, 1000), budget) - 499.5) < 100
    assert dp.Budget(path, "proj-1").remaining == pytest.approx(0.5)   # persisted
    assert dp.Budget(path, "proj-2").remaining == 0                  # budgets are per project
    assert [h["epsilon"] for h in budget.history()] == [0.5]


def test_overdraw_is_refused_and_nothing_is_spent(tmp_path):
    budget = dp.Budget(tmp_path / "b.sqlite", "p")
    budget.set_total(0.3)
    dp.count(list(range(50)), 0.2, budget)
    with pytest.raises(dp.BudgetExceeded):
        dp.sum(np.ones(10), 0.2, (0, 1), budget)
    assert budget.remaining == pytest.approx(0.1)
    with pytest.raises(dp.DPError):
        budget.set_total(0.1)   # cannot go below what is spent


def test_missing_bounds_are_an_error(tmp_path):
    budget = dp.Budget(tmp_path / "b.sqlite", "p")
    budget.set_total(5)
    with pytest.raises(dp.DPError, match="bounds"):
        dp.mean(np.arange(10.0), 0.1, None, budget)
    with pytest.raises(dp.DPError, match="range"):
        dp.histogram(np.arange(10.0), 0.1, 5, None, budget)
    assert budget.remaining == 5   # refused before charging


def test_privacy_leak_warning_becomes_an_error():
    from diffprivlib.tools import mean
    from diffprivlib.utils import PrivacyLeakWarning

    with pytest.raises(dp.DPError, match="privacy leak"):
        with dp._no_leaks():
            mean(np.arange(10.0), epsilon=0.1)   # no bounds: diffprivlib would only warn
    with pytest.warns(PrivacyLeakWarning):       # the library really warns here
        mean(np.arange(10.0), epsilon=0.1)


def test_histogram_and_quantile(tmp_path):
    budget = dp.Budget(tmp_path / "b.sqlite", "p")
    budget.set_total(2)
    counts, edges = dp.histogram(np.arange(100.0), 1.0, 4, (0, 100), budget)
    assert len(counts) == 4 and edges[0] == 0 and edges[-1] == 100
    q = dp.quantile(np.arange(100.0), 0.5, 0.5, (0, 100), budget)
    assert 0 <= q <= 100


def _spend(args):
    path, n = args
    budget = dp.Budget(path, "shared")
    ok = 0
    for _ in range(n):
        try:
            budget.charge(0.1, "concurrent")
            ok += 1
        except dp.BudgetExceeded:
            pass
    return ok


def test_concurrent_charges_never_overdraw(tmp_path):
    path = tmp_path / "b.sqlite"
    dp.Budget(path, "shared").set_total(2.0)   # room for exactly 20 charges
    with mp.get_context("fork").Pool(4) as pool:
        granted = sum(pool.map(_spend, [(path, 15)] * 4))   # 60 attempts
    assert granted == 20
    assert dp.Budget(path, "shared").remaining == pytest.approx(0.0)
