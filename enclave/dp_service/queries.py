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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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


def _read_table(extract_dir: Path, manifest: dict[str, Any], query: DPQuery) -> pa.Table:
    """The query's table, with only the columns it uses (and the person key)."""
    tables = manifest.get("tables") or {}
    if query.table not in tables:
        raise QueryError(f"table {query.table!r} is not in the extract; tables: {', '.join(sorted(tables))}")
    info = tables[query.table] if isinstance(tables[query.table], dict) else {}
    name = info.get("file") or f"{query.table}.parquet"
    path = (Path(extract_dir) / name).resolve()
    if path.parent != Path(extract_dir).resolve() or not path.is_file():
        raise QueryError(f"table {query.table!r} has no file in the extract")
    present = set(pq.read_schema(path).names)
    wanted = {*query.where, *([query.column] if query.column else []), PERSON_COLUMN} & present
    return pq.read_table(path, columns=sorted(wanted))


def _filter_mask(query: DPQuery, table: pa.Table) -> pa.ChunkedArray | None:
    mask = None
    for name, allowed in query.where.items():
        try:
            values = pa.array(allowed).cast(table[name].type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise QueryError(f"where[{name!r}]: values do not match the column's type {table[name].type}") from None
        hit = pc.fill_null(pc.is_in(table[name], value_set=values), False)
        mask = hit if mask is None else pc.and_(mask, hit)
    return mask


def select_values(query: DPQuery, table: pa.Table) -> np.ndarray:
    """The records the query is about, one per person, as the column's values (or presence flags).

    Filtering and the one-record-per-person reduction run in Arrow (a hash group-by): the person
    keys never become Python strings, which is most of a query's cost on a large table.
    """
    for name in [*query.where, *([query.column] if query.column else [])]:
        if name not in table.column_names:
            raise QueryError(f"column {name!r} is not in table {query.table!r}")
        if name == PERSON_COLUMN:
            raise QueryError(f"column {name!r} is the person key: it cannot be queried")
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):  # categorical columns compare by their values
            table = table.set_column(i, field.name, pc.cast(table[field.name], field.type.value_type))
    mask = _filter_mask(query, table)
    if mask is not None:
        table = table.filter(mask)
    if PERSON_COLUMN in table.column_names:  # one contribution per person: their first matching record
        rows = table.select([PERSON_COLUMN]).append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        first = rows.group_by(PERSON_COLUMN).aggregate([("row", "min")])["row_min"].to_numpy()
        table = table.take(np.sort(first))
    if query.column is None:
        return np.ones(table.num_rows, dtype=bool)
    column = table[query.column]
    if query.statistic == "count":
        return column.is_valid().to_numpy(zero_copy_only=False)
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind)):
        raise QueryError(f"column {query.column!r} is not numeric: a DP {query.statistic} needs numbers")
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


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
