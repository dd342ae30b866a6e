"""DP queries as data, answered on the extract by ``disclosure_control.dp`` (diffprivlib).

A query names a table and a column of the project's extract, equality filters on other columns,
the statistic, epsilon and (for magnitudes) the bounds. Nothing computed in the workspace is
used: the service reads the extract itself. Each person contributes one row (the first that
matches the filters, in table order), so a query's sensitivity is that of one record whatever
the table's rows per person. Bounds are required; ``PrivacyLeakWarning`` is an error.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from disclosure_control import dp

PERSON_COLUMN = "pseudonym"  # enclave.provisioning.PSEUDONYM: the extract's per-person key
MAX_EPSILON_PER_QUERY = 10.0
Scalar = str | int | float | bool


class QueryError(ValueError):
    """A query that cannot be answered; the message names the field and holds no data values."""


class DPQuery(BaseModel):
    """One DP question about the extract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: Literal["count", "sum", "mean", "quantile"]
    table: str = Field(min_length=1, max_length=100)
    column: str | None = Field(None, max_length=100)
    where: dict[str, list[Scalar]] = Field(default_factory=dict, max_length=10)
    epsilon: float = Field(gt=0, le=MAX_EPSILON_PER_QUERY)
    bounds: tuple[float, float] | None = None
    q: float | None = Field(None, ge=0, le=1)
    purpose: str = Field("", max_length=200)

    @field_validator("epsilon")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("epsilon must be finite")
        return value

    @model_validator(mode="after")
    def _complete(self) -> "DPQuery":
        if self.statistic != "count" and not self.column:
            raise ValueError(f"a DP {self.statistic} needs column=")
        if self.statistic in ("sum", "mean", "quantile"):
            if self.bounds is None:
                raise ValueError(f"a DP {self.statistic} needs explicit bounds=(lower, upper); they may not come from the data")
            lower, upper = self.bounds
            if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
                raise ValueError("bounds must be finite with lower < upper")
        if self.statistic == "quantile" and self.q is None:
            raise ValueError("a DP quantile needs q= in [0, 1]")
        return self

    def public(self) -> dict[str, Any]:
        """The query as it is named in the receipt."""
        return self.model_dump(mode="json", exclude_none=True)


def _read_table(extract_dir: Path, manifest: dict[str, Any], query: DPQuery) -> pd.DataFrame:
    """The query's table, with only the columns it uses (and the person key)."""
    import pyarrow.parquet as pq

    tables = manifest.get("tables") or {}
    if query.table not in tables:
        raise QueryError(f"table {query.table!r} is not in the extract; tables: {', '.join(sorted(tables))}")
    info = tables[query.table] if isinstance(tables[query.table], dict) else {}
    name = info.get("file") or f"{query.table}.parquet"
    path = (Path(extract_dir) / name).resolve()
    if path.parent != Path(extract_dir).resolve() or not path.is_file():
        raise QueryError(f"table {query.table!r} has no file in the extract")
    present = set(pq.read_schema(path).names)
    for column in [*query.where, *([query.column] if query.column else [])]:
        if column not in present:
            raise QueryError(f"column {column!r} is not in table {query.table!r}")
    wanted = {*query.where, *([query.column] if query.column else []), PERSON_COLUMN} & present
    return pd.read_parquet(path, columns=sorted(wanted))


def select_values(query: DPQuery, frame: pd.DataFrame) -> np.ndarray | pd.Series:
    """The records the query is about, one per person, as the column's values (or presence flags)."""
    for name in [*query.where, *([query.column] if query.column else [])]:
        if name not in frame.columns:
            raise QueryError(f"column {name!r} is not in table {query.table!r}")
        if name == PERSON_COLUMN:
            raise QueryError(f"column {name!r} is the person key: it cannot be queried")
    mask = np.ones(len(frame), dtype=bool)
    for name, allowed in query.where.items():
        mask &= frame[name].isin(allowed).to_numpy()
    chosen = frame.loc[mask]
    if PERSON_COLUMN in chosen.columns:
        chosen = chosen.drop_duplicates(PERSON_COLUMN, keep="first")  # one contribution per person
    if query.column is None:
        return np.ones(len(chosen), dtype=bool)
    values = chosen[query.column]
    if query.statistic == "count":
        return values.notna().to_numpy()
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() < values.notna().sum():
        raise QueryError(f"column {query.column!r} is not numeric: a DP {query.statistic} needs numbers")
    return numeric.to_numpy(dtype=float)


def answer(query: DPQuery, values, budget) -> float:
    """The noisy answer; ``budget.charge(epsilon, purpose)`` is called once, before any noise is drawn."""
    purpose = query.purpose or query.statistic
    if query.statistic == "count":
        return dp.count(np.where(values, 1.0, np.nan), epsilon=query.epsilon, budget=budget, purpose=purpose)
    if query.statistic == "sum":
        return dp.sum(values, epsilon=query.epsilon, bounds=query.bounds, budget=budget, purpose=purpose)
    if query.statistic == "mean":
        return dp.mean(values, epsilon=query.epsilon, bounds=query.bounds, budget=budget, purpose=purpose)
    return dp.quantile(values, query.q, epsilon=query.epsilon, bounds=query.bounds, budget=budget, purpose=purpose)


def load_values(query: DPQuery, extract_dir: Path, manifest: dict[str, Any]):
    """Read the extract and select the query's records (before any budget is touched)."""
    return select_values(query, _read_table(extract_dir, manifest, query))
