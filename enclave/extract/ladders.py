"""Generalisation ladders for event-level columns, as data (``ladders.yaml``): each rung maps a
value to a coarser one; a column goes up one rung at a time, never back, and a missing value
stays missing. Hand-written rather than ``disclosure_control.microdata.Hierarchy`` because these
rungs are rules (a month to its quarter, a number to its band, a school to its level) applied to
values the build has not seen yet, not value -> group maps built from one table."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

LADDERS_FILE = Path(__file__).with_name("ladders.yaml")
MONTH = re.compile(r"^\d{4}-\d{2}$")
SCHOOL_YEAR = re.compile(r"^(\d{4})-\d{2}$")
OTHER = "other"


class Rung(BaseModel):
    """One step up a ladder; exactly one field set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quarter: bool = False
    year: bool = False
    band: int | None = Field(default=None, ge=2)
    school_year_span: int | None = Field(default=None, ge=2)
    pattern: dict[str, str] | None = None
    map: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Rung":
        kinds = [self.quarter, self.year, self.band is not None, self.school_year_span is not None,
                 self.pattern is not None, self.map is not None]
        if sum(kinds) != 1:
            raise ValueError("a rung sets exactly one of quarter, year, band, school_year_span, pattern, map")
        return self

    @property
    def name(self) -> str:
        for kind in ("quarter", "year"):
            if getattr(self, kind):
                return kind
        for kind in ("band", "school_year_span"):
            if getattr(self, kind) is not None:
                return f"{kind} {getattr(self, kind)}"
        return "pattern" if self.pattern is not None else "group"

    def apply(self, values: pd.Series) -> pd.Series:
        """``values`` (strings, missing as NA) one rung up."""
        text = values.astype("string")
        if self.quarter or self.year:
            ok = text.str.match(MONTH.pattern).fillna(False).astype(bool)
            out = pd.Series(pd.NA, index=values.index, dtype="string")
            if self.quarter:
                q = ((text[ok].str[5:7].astype(int) - 1) // 3 + 1).astype(str)
                out[ok] = text[ok].str[:4] + "-Q" + q
            else:
                out[ok] = text[ok].str[:4]
            done = text.str.match(r"^\d{4}(-Q\d)?$").fillna(False).astype(bool) & ~ok  # already coarser
            out[done] = text[done].str[:4] if self.year else text[done]
            return out
        if self.band is not None:
            num = pd.to_numeric(values, errors="coerce")
            low = (np.floor(num / self.band) * self.band)
            out = pd.Series(pd.NA, index=values.index, dtype="string")
            has = num.notna()
            out[has] = low[has].astype("int64").astype(str) + "-" + (low[has] + self.band - 1).astype("int64").astype(str)
            return out
        if self.school_year_span is not None:
            start = pd.to_numeric(text.str.extract(SCHOOL_YEAR.pattern)[0], errors="coerce")
            low = np.floor(start / self.school_year_span) * self.school_year_span
            out = pd.Series(pd.NA, index=values.index, dtype="string")
            has = start.notna()
            out[has] = low[has].astype("int64").astype(str) + "-" + (low[has] + self.school_year_span).astype("int64").astype(str)
            return out
        if self.pattern is not None:
            out = pd.Series(OTHER, index=values.index, dtype="string")
            matched = pd.Series(False, index=values.index)
            for regex, label in self.pattern.items():
                hit = text.str.contains(regex, regex=True).fillna(False).astype(bool) & ~matched
                out[hit] = label
                matched |= hit
            return out.mask(text.isna())
        mapped = text.map(self.map)  # type: ignore[arg-type]
        return mapped.fillna(OTHER).astype("string").mask(text.isna())


class Ladders(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    month: list[Rung]
    columns: dict[str, list[Rung]] = Field(default_factory=dict)

    def for_column(self, column: str, values: pd.Series) -> list[Rung]:
        """The ladder of one column: its own, else the month ladder for a YYYY-MM column, else none."""
        if column in self.columns:
            return list(self.columns[column])
        sample = values.dropna().astype(str)
        if len(sample) and sample.str.match(MONTH.pattern).all():
            return list(self.month)
        return []


@lru_cache(maxsize=4)
def load_ladders(path: Path = LADDERS_FILE) -> Ladders:
    raw: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    fixed = {"month": [_rung(r) for r in raw.get("month", [])],
             "columns": {c: [_rung(r) for r in rungs] for c, rungs in (raw.get("columns") or {}).items()}}
    return Ladders.model_validate(fixed)


def _rung(raw: Any) -> dict[str, Any]:
    """A bare word (``quarter``) is shorthand for ``{quarter: true}``."""
    return {raw: True} if isinstance(raw, str) else raw


def text_values(values: pd.Series) -> pd.Series:
    """A column as strings that compare equal across tables (2005.0 -> "2005"), missing as NA."""
    if pd.api.types.is_float_dtype(values):
        out = values.astype("string")
        integral = values.notna() & (values == np.floor(values))
        out[integral] = values[integral].astype("int64").astype("string")
        return out
    if pd.api.types.is_bool_dtype(values):
        return values.astype("string")
    if pd.api.types.is_object_dtype(values):
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind in ("string", "empty"):
            return values.astype("string")
        return values.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else v).astype("string")
    return values.astype("string")
