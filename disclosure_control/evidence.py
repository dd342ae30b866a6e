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
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


class Variable(BaseModel):
    """A grouping or value variable: a table column, or derived codes for the rows used."""

    model_config = ConfigDict(extra="forbid")
    name: str
    column: str | None = None
    labels: list[Any] | None = None      # derived categorical: codes index into labels (-1 missing)
    codes: str | None = None
    numbers: str | None = None           # derived numeric values (float64) for the rows used
    ordered_labels: bool = False         # labels are categories in their own order

    @classmethod
    def of(cls, series: pd.Series, table: pd.DataFrame | None, positions: np.ndarray | None) -> "Variable":
        name = str(series.name) if series.name is not None else "value"
        if table is not None and positions is not None and series.name in table.columns:
            source = table[series.name].iloc[positions]
            if source.reset_index(drop=True).equals(series.reset_index(drop=True)):
                return cls(name=name, column=str(series.name))
        if isinstance(series.dtype, pd.CategoricalDtype):
            # keep the category order (age bands sort as bands, not as strings)
            labels = [_json_label(c) for c in series.cat.categories]
            return cls(name=name, labels=labels, codes=_pack(series.cat.codes.to_numpy().astype(np.int32)), ordered_labels=True)
        if pd.api.types.is_numeric_dtype(series):
            return cls(name=name, numbers=_pack(series.to_numpy(dtype=np.float64)))
        codes, uniques = pd.factorize(series, sort=True)
        return cls(name=name, labels=[_json_label(u) for u in uniques], codes=_pack(codes.astype(np.int32)))

    def values(self, table: pd.DataFrame, mask: np.ndarray) -> pd.Series:
        if self.column is not None:
            if self.column not in table.columns:
                raise EvidenceError(f"variable {self.name}: column {self.column!r} is not in the table")
            return table[self.column].to_numpy()[mask]
        if self.numbers is not None:
            return _unpack(self.numbers, np.float64)
        codes = _unpack(self.codes, np.int32)
        if self.ordered_labels:
            return pd.Categorical.from_codes(codes, categories=pd.Index(self.labels, dtype=object))
        labels = np.array(self.labels + [None], dtype=object)
        return labels[np.where(codes < 0, len(self.labels), codes)]


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
