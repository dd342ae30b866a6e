"""The evidence saved beside each output: its exact derivation, so the gate can recompute it.

An output's rows are the positions, in the extract table as ``data_loader(table)`` returns
it, of the records that entered it (a compressed bitmap): any filter the researcher
applied is captured exactly, whatever code expressed it. Grouping and value variables
are references to table columns, or, for variables the researcher derived (``pd.cut``
bands, recodes), their per-row codes, so the gate recounts every cell from records.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

SCHEMA = "ids-sdc-evidence/1"
EVIDENCE_SUFFIX = ".evidence.json"


class EvidenceError(ValueError):
    """Evidence that cannot be read or applied; names the file and the field."""


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")


def _unpack(text: str, dtype) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype)


class RowSet(BaseModel):
    """Positions of the records used, as a bitmap over the table's rows."""

    model_config = ConfigDict(extra="forbid")
    n_table_rows: int
    bitmap: str

    @classmethod
    def from_positions(cls, positions: np.ndarray, n_table_rows: int) -> "RowSet":
        mask = np.zeros(n_table_rows, dtype=bool)
        mask[np.asarray(positions, dtype=np.int64)] = True
        return cls(n_table_rows=n_table_rows, bitmap=_pack(np.packbits(mask)))

    def mask(self) -> np.ndarray:
        return np.unpackbits(_unpack(self.bitmap, np.uint8), count=self.n_table_rows).astype(bool)


def _json_label(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


MAX_MAP_KEYS = 5000          # a recode of a column with more distinct values is kept as codes
_SAFE_VALUE_OPS = {"column", "scale"}


def _aligned(table: pd.DataFrame, column: str, positions: np.ndarray) -> pd.Series:
    col = table[column]
    if len(positions) == len(table) and (len(positions) == 0 or (positions[0] == 0 and positions[-1] == len(table) - 1)):
        return col.reset_index(drop=True)
    return col.iloc[positions].reset_index(drop=True)


def _same_column(series: pd.Series, table: pd.DataFrame, positions: np.ndarray) -> str | None:
    """The extract column whose values at ``positions`` are exactly the series."""
    from .provenance import ROW_ID

    plain = series.reset_index(drop=True)
    names = [series.name] if series.name in table.columns else []
    names += [c for c in table.columns if c != series.name and table[c].dtype == series.dtype]
    for name in names:
        if name == ROW_ID or not isinstance(table[name], pd.Series):
            continue
        try:
            if _aligned(table, name, positions).equals(plain):
                return str(name)
        except Exception:
            continue
    return None


def _numeric_columns(table: pd.DataFrame) -> list[str]:
    from .provenance import ROW_ID

    return [str(c) for c in table.columns if c != ROW_ID and isinstance(table[c], pd.Series)
            and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]


def _scale_of(series: pd.Series, table: pd.DataFrame, positions: np.ndarray) -> dict | None:
    """``factor * column`` reproducing a numeric series exactly (unit changes: cents, thousands)."""
    y = series.to_numpy(dtype=np.float64, na_value=np.nan)
    for name in _numeric_columns(table):
        x = _aligned(table, name, positions).to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            continue
        ok = ~np.isnan(x)
        nz = ok & (x != 0)
        if not nz.any():
            continue
        factor = float(y[nz][0] / x[nz][0])
        if not np.isfinite(factor) or factor == 0:
            continue
        if np.allclose(y[ok], factor * x[ok], rtol=1e-12, atol=0):
            return {"op": "scale", "column": name, "factor": factor}
    return None


def _cut_of(series: pd.Series, table: pd.DataFrame, positions: np.ndarray) -> dict | None:
    """``pd.cut(column, intervals)`` reproducing a banded series."""
    cats = series.cat.categories
    if not isinstance(cats, pd.IntervalIndex):
        return None
    breaks = [[_json_label(i.left), _json_label(i.right)] for i in cats]
    want = series.cat.codes.to_numpy()
    for name in _numeric_columns(table):
        try:
            got = pd.cut(_aligned(table, name, positions), pd.IntervalIndex.from_tuples([tuple(b) for b in breaks], closed=cats.closed))
        except Exception:
            continue
        if np.array_equal(got.cat.codes.to_numpy(), want):
            return {"op": "cut", "column": name, "breaks": breaks, "closed": cats.closed}
    return None


def _map_of(series: pd.Series, table: pd.DataFrame, positions: np.ndarray) -> dict | None:
    """A recode: the series is a function of one extract column (``map``, comparisons, ``np.where``)."""
    from .provenance import ROW_ID

    s_codes, s_uniques = pd.factorize(series, use_na_sentinel=True)
    if len(s_uniques) <= 1:
        return None   # a constant is the researcher's value, not the extract's
    ordered = isinstance(series.dtype, pd.CategoricalDtype)
    for name in [c for c in table.columns if c != ROW_ID and isinstance(table[c], pd.Series)]:
        col = _aligned(table, name, positions)
        c_codes, c_uniques = pd.factorize(col, use_na_sentinel=True)
        if len(c_uniques) > MAX_MAP_KEYS or len(c_uniques) < len(s_uniques) or len(c_uniques) > max(50, len(col) // 2):
            continue   # a recode of a (near-)unique key is per-record values, not a recode
        pairs = pd.DataFrame({"c": c_codes, "s": s_codes}).drop_duplicates()
        if pairs["c"].duplicated().any():
            continue
        keys, labels = [], []
        for c, s_code in zip(pairs["c"].to_numpy(), pairs["s"].to_numpy()):
            keys.append(None if c < 0 else _json_label(c_uniques[c]))
            labels.append(None if s_code < 0 else _json_label(s_uniques[s_code]))
        if len(set(map(repr, keys))) != len(keys):
            continue   # two extract values print alike: the recode would not round-trip
        expr = {"op": "map", "column": str(name), "keys": keys, "labels": labels}
        if ordered:
            expr["categories"] = [_json_label(c) for c in series.cat.categories]
        return expr
    return None


def _map_key(value):
    return repr(_json_label(value))


def evaluate(expression: dict, table: pd.DataFrame, mask: np.ndarray):
    """Recompute a derived variable from the extract rows (never from researcher-supplied values)."""
    op = expression.get("op")
    column = expression.get("column")
    if not isinstance(column, str) or column not in table.columns:
        raise EvidenceError(f"expression {op}: column {column!r} is not in the table")
    values = table[column][mask] if len(mask) == len(table) else table[column].iloc[np.flatnonzero(mask)]
    values = values.reset_index(drop=True)
    if op == "scale":
        return values.to_numpy(dtype=np.float64, na_value=np.nan) * float(expression["factor"])
    if op == "cut":
        intervals = pd.IntervalIndex.from_tuples([tuple(b) for b in expression["breaks"]], closed=expression.get("closed", "right"))
        return pd.cut(values, intervals)
    if op == "map":
        lookup = {repr(k): v for k, v in zip(expression["keys"], expression["labels"])}
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        unknown = object()
        mapped = [lookup.get(_map_key(u), unknown) for u in uniques]
        if any(m is unknown for m in mapped) or (np.any(codes < 0) and repr(None) not in lookup):
            raise EvidenceError(f"expression map of {column}: the extract holds values the recode does not cover")
        table_labels = np.array(mapped + [lookup.get(repr(None))], dtype=object)
        out = table_labels[np.where(codes < 0, len(mapped), codes)]
        if "categories" in expression:
            return pd.Categorical(out, categories=pd.Index(expression["categories"], dtype=object))
        return _typed(out)
    raise EvidenceError(f"unknown expression {op!r}")


def _typed(values: np.ndarray) -> np.ndarray:
    """Object labels as the type they had (booleans stay True/False, numbers stay numbers)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return values.astype(bool)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64) if any(
            isinstance(v, float) for v in present) or len(present) < len(values) else values.astype(np.int64)
    return values


class Variable(BaseModel):
    """A grouping or value variable: a table column, an expression over one, or supplied codes.

    ``column`` and ``expression`` are recomputed by the gate from the extract; ``codes`` and
    ``numbers`` are values the researcher's code produced that the gate can only recount.
    """

    model_config = ConfigDict(extra="forbid")
    name: str
    column: str | None = None
    expression: dict[str, Any] | None = None
    labels: list[Any] | None = None      # supplied categorical: codes index into labels (-1 missing)
    codes: str | None = None
    numbers: str | None = None           # supplied numeric values (float64) for the rows used
    ordered_labels: bool = False         # labels are categories in their own order

    @property
    def recomputable(self) -> bool:
        """Whether the gate derives this variable from the extract itself."""
        return self.column is not None or self.expression is not None

    @property
    def extract_values(self) -> bool:
        """Whether the variable's numbers are the extract's own (a column or a change of unit)."""
        return self.column is not None or (self.expression or {}).get("op") in _SAFE_VALUE_OPS

    @classmethod
    def of(cls, series: pd.Series, table: pd.DataFrame | None, positions: np.ndarray | None) -> "Variable":
        name = str(series.name) if series.name is not None else "value"
        if table is not None and positions is not None and len(series) == len(positions):
            column = _same_column(series, table, positions)
            if column is not None:
                return cls(name=name, column=column)
            expression = None
            try:
                if isinstance(series.dtype, pd.CategoricalDtype):
                    expression = _cut_of(series, table, positions) or _map_of(series, table, positions)
                elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                    expression = _scale_of(series, table, positions) or _map_of(series, table, positions)
                else:
                    expression = _map_of(series, table, positions)
            except Exception:
                expression = None
            if expression is not None:
                return cls(name=name, expression=expression)
        if isinstance(series.dtype, pd.CategoricalDtype):
            # keep the category order (age bands sort as bands, not as strings)
            labels = [_json_label(c) for c in series.cat.categories]
            return cls(name=name, labels=labels, codes=_pack(series.cat.codes.to_numpy().astype(np.int32)), ordered_labels=True)
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return cls(name=name, numbers=_pack(series.to_numpy(dtype=np.float64, na_value=np.nan)))
        codes, uniques = pd.factorize(series, sort=False)
        return cls(name=name, labels=[_json_label(u) for u in uniques], codes=_pack(codes.astype(np.int32)))

    def values(self, table: pd.DataFrame, mask: np.ndarray):
        if self.column is not None:
            if self.column not in table.columns:
                raise EvidenceError(f"variable {self.name}: column {self.column!r} is not in the table")
            column = table[self.column]
            return column.to_numpy()[mask] if not isinstance(column.dtype, pd.CategoricalDtype) else column[mask].reset_index(drop=True).array
        if self.expression is not None:
            return evaluate(self.expression, table, mask)
        n = int(np.count_nonzero(mask))
        if self.numbers is not None:
            out = _unpack(self.numbers, np.float64)
        else:
            codes = _unpack(self.codes or "", np.int32)
            if self.ordered_labels:
                out = pd.Categorical.from_codes(codes, categories=pd.Index(self.labels or [], dtype=object))
            else:
                labels = np.array(list(self.labels or []) + [None], dtype=object)
                if len(codes) and (codes.max() >= len(labels) - 1 or codes.min() < -1):
                    raise EvidenceError(f"variable {self.name}: codes outside its labels")
                out = _typed(labels[np.where(codes < 0, len(labels) - 1, codes)])
        if len(out) != n:
            raise EvidenceError(f"variable {self.name}: {len(out)} values for {n} rows")
        return out


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = SCHEMA
    output_id: str
    output_file: str
    method: str                          # crosstab, pivot_table, ols, logit, probit, hist, surv_func, describe
    kind: Literal["table", "model", "histogram", "survival", "summary", "figure", "dp"]
    table: str | None = None             # extract table name (None: not reproducible)
    rows: RowSet | None = None
    index: list[Variable] = []
    columns: list[Variable] = []
    values: Variable | None = None
    aggfunc: str | None = None
    margins: bool = False
    options: dict[str, Any] = {}         # method-specific: formula, bins, treatment, ...
    agencies: list[str] = []
    rules: dict[str, Any] = {}
    output_sha256: str = ""
    created: str = ""
    note: str = ""

    def write(self, folder: Path) -> Path:
        path = Path(folder) / f"{self.output_id}{EVIDENCE_SUFFIX}"
        atomic_write_text(path, self.model_dump_json(indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> "Evidence":
        try:
            return cls.model_validate_json(Path(path).read_text())
        except Exception as exc:  # pydantic or OS error: name the file
            raise EvidenceError(f"{path}: unreadable evidence: {str(exc).splitlines()[0]}") from exc


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evidence_path_for(output: Path) -> Path | None:
    """The evidence file of an output (``<id>.evidence.json`` beside ``<id>.<ext>``)."""
    output = Path(output)
    stem = output.name.split(".")[0]
    candidate = output.with_name(stem + EVIDENCE_SUFFIX)
    return candidate if candidate.exists() else None


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
