"""Differential privacy: diffprivlib queries charged to a persisted per-project budget.

Every query needs explicit bounds: diffprivlib would otherwise read them from the data
and only warn (``PrivacyLeakWarning``); here that warning is an error. The budget lives in
a SQLite file and is charged inside an ``IMMEDIATE`` transaction, so concurrent callers
(several kernels of one project) serialise and the remaining budget never goes below zero.
Epsilon is stored in integer nano-units so repeated charges do not drift.
"""
from __future__ import annotations

import sqlite3
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Budget", "BudgetExceeded", "DPError", "count", "sum", "mean", "histogram", "quantile"]

_UNIT = 1_000_000_000  # nano-epsilon


class DPError(ValueError):
    """A DP query refused before it ran (missing bounds, privacy leak)."""


class BudgetExceeded(DPError):
    """The query would take the project's remaining budget below zero."""


def _units(epsilon: float) -> int:
    if not np.isfinite(epsilon) or epsilon <= 0:
        raise DPError(f"epsilon must be a positive finite number, got {epsilon!r}")
    return int(round(float(epsilon) * _UNIT))


class Budget:
    """The privacy budget of one project, persisted in the SQLite file at ``path``."""

    def __init__(self, path: str | Path, project: str):
        if not project:
            raise DPError("a budget needs a project id")
        self.path = Path(path)
        self.project = project
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS budget (project TEXT PRIMARY KEY, total INTEGER NOT NULL, spent INTEGER NOT NULL DEFAULT 0 CHECK (spent <= total))")
            db.execute("CREATE TABLE IF NOT EXISTS charge (id INTEGER PRIMARY KEY, project TEXT NOT NULL, units INTEGER NOT NULL, purpose TEXT NOT NULL, at REAL NOT NULL)")

    @contextmanager
    def _tx(self):
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading the balance
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def _row(self, db) -> tuple[int, int]:
        row = db.execute("SELECT total, spent FROM budget WHERE project = ?", (self.project,)).fetchone()
        return row if row else (0, 0)

    def set_total(self, epsilon: float) -> None:
        """Set the project's total budget (the board's approval); never below what is spent."""
        if epsilon < 0 or not np.isfinite(epsilon):
            raise DPError(f"total budget must be >= 0, got {epsilon!r}")
        units = int(round(epsilon * _UNIT))
        with self._tx() as db:
            _, spent = self._row(db)
            if units < spent:
                raise DPError(f"project {self.project}: total {epsilon} is below the {spent / _UNIT} already spent")
            db.execute("INSERT INTO budget(project, total, spent) VALUES (?, ?, 0) ON CONFLICT(project) DO UPDATE SET total = excluded.total", (self.project, units))

    @property
    def total(self) -> float:
        with self._tx() as db:
            return self._row(db)[0] / _UNIT

    @property
    def spent(self) -> float:
        with self._tx() as db:
            return self._row(db)[1] / _UNIT

    @property
    def remaining(self) -> float:
        with self._tx() as db:
            total, spent = self._row(db)
            return (total - spent) / _UNIT

    def charge(self, epsilon: float, purpose: str = "") -> float:
        """Take epsilon from the budget or raise ``BudgetExceeded``; returns what remains."""
        units = _units(epsilon)
        with self._tx() as db:
            total, spent = self._row(db)
            if spent + units > total:
                raise BudgetExceeded(
                    f"project {self.project}: epsilon {epsilon} exceeds the remaining budget {(total - spent) / _UNIT}")
            db.execute("UPDATE budget SET spent = spent + ? WHERE project = ?", (units, self.project))
            db.execute("INSERT INTO charge(project, units, purpose, at) VALUES (?, ?, ?, ?)", (self.project, units, purpose[:200], time.time()))
            return (total - spent - units) / _UNIT

    def history(self) -> list[dict]:
        with self._tx() as db:
            rows = db.execute("SELECT units, purpose, at FROM charge WHERE project = ? ORDER BY id", (self.project,)).fetchall()
        return [{"epsilon": u / _UNIT, "purpose": p, "at": a} for u, p, a in rows]


@contextmanager
def _no_leaks():
    from diffprivlib.utils import PrivacyLeakWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        try:
            yield
        except PrivacyLeakWarning as exc:
            raise DPError(f"privacy leak refused: {exc}") from exc


def _bounds(bounds) -> tuple[float, float]:
    if bounds is None:
        raise DPError("explicit bounds (lower, upper) are required; they may not come from the data")
    lower, upper = (float(b) for b in bounds)
    if not lower < upper:
        raise DPError(f"bounds must satisfy lower < upper, got {bounds!r}")
    return lower, upper


def _values(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def _accountant():
    # a private accountant per query: our Budget is the ledger, not diffprivlib's global one
    from diffprivlib.accountant import BudgetAccountant

    return BudgetAccountant()


def _charged(budget: Budget | None, epsilon: float, purpose: str) -> None:
    _units(epsilon)
    if budget is None:
        raise DPError("every DP query is charged to a project budget: pass budget=")
    budget.charge(epsilon, purpose)


def count(values, epsilon: float, budget: Budget, purpose: str = "count") -> float:
    """Noisy number of non-missing values (sensitivity 1)."""
    from diffprivlib.tools import count_nonzero

    present = ~np.asarray([v is None or v != v for v in np.asarray(values, dtype=object)], dtype=bool)
    _charged(budget, epsilon, purpose)
    with _no_leaks():
        return float(count_nonzero(present, epsilon=epsilon, accountant=_accountant()))


def sum(values, epsilon: float, bounds: Sequence[float], budget: Budget, purpose: str = "sum") -> float:  # noqa: A001
    from diffprivlib.tools import sum as dp_sum

    lower, upper = _bounds(bounds)
    _charged(budget, epsilon, purpose)
    with _no_leaks():
        return float(dp_sum(_values(values), epsilon=epsilon, bounds=(lower, upper), accountant=_accountant()))


def mean(values, epsilon: float, bounds: Sequence[float], budget: Budget, purpose: str = "mean") -> float:
    from diffprivlib.tools import mean as dp_mean

    lower, upper = _bounds(bounds)
    _charged(budget, epsilon, purpose)
    with _no_leaks():
        return float(dp_mean(_values(values), epsilon=epsilon, bounds=(lower, upper), accountant=_accountant()))


def histogram(values, epsilon: float, bins: int | Sequence[float], range: Sequence[float] | None, budget: Budget, purpose: str = "histogram"):  # noqa: A002
    """Noisy histogram; ``range`` (or explicit bin edges) is required."""
    from diffprivlib.tools import histogram as dp_histogram

    if range is None and np.ndim(bins) == 0:
        raise DPError("histogram needs range= or explicit bin edges; they may not come from the data")
    if range is not None:
        range = _bounds(range)
    _charged(budget, epsilon, purpose)
    with _no_leaks():
        return dp_histogram(_values(values), epsilon=epsilon, bins=bins, range=range, accountant=_accountant())


def quantile(values, q: float, epsilon: float, bounds: Sequence[float], budget: Budget, purpose: str = "quantile") -> float:
    from diffprivlib.tools import quantile as dp_quantile

    lower, upper = _bounds(bounds)
    if not 0 <= q <= 1:
        raise DPError(f"quantile q must be in [0, 1], got {q}")
    _charged(budget, epsilon, purpose)
    with _no_leaks():
        return float(dp_quantile(_values(values), q, epsilon=epsilon, bounds=(lower, upper), accountant=_accountant()))
