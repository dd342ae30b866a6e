"""Row validation of one chunk against a source definition, vectorised with pandas.

Every check yields (rows, column, reason); a row with any problem is quarantined with all
of its reasons. Reasons are short stable codes (the summary counts them).
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .sources import SUBJECT_ROLE, SourceDefinition

# Leading characters that make spreadsheet programs evaluate a cell (OWASP "CSV injection");
# tab and carriage return are included because some programs strip them and then evaluate.
FORMULA_PREFIX = re.compile(r"^[=+\-@\t\r]")
# C0/C1 controls, zero-width and bidirectional-override characters (can disguise values).
CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]"
NEWLINES = r"[\r\n]"
NAME_PATTERN = r"[^\W\d_](?:[^\W\d_]|[ '’.\-])*"
STREET_PATTERN = r"[\w][\w #.,'’/&\-]*"
RECORD_ID_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"
IDENTIFIER_MAX_LENGTH = {"first_name": 50, "middle_name": 50, "last_name": 60, "street": 120, "zip": 10, "ssn": 11, "sex": 10, "dob": 20}
_SSN_PLACEHOLDERS = {d * 9 for d in "0123456789"} | {"123456789", "987654321"}
_BOOLEAN = {"Y": True, "YES": True, "TRUE": True, "T": True, "1": True, "N": False, "NO": False, "FALSE": False, "F": False, "0": False}
EARLIEST_DATE = np.datetime64("1900-01-01", "D")
_INT64_DIGITS = 18  # beyond this the value cannot be an int64 count or amount we expect


@dataclass
class ChunkResult:
    ok: np.ndarray  # bool per row
    problems: dict[int, list[tuple[str, str]]]  # row position -> [(column, reason)]
    values: dict[str, pd.Series]  # column -> parsed values (all rows; use ok to select)
    cleaned: Counter = field(default_factory=Counter)


def _shape_regex(fmt: str) -> str:
    out = re.escape(fmt)
    for code, rx in (("%Y", r"\d{4}"), ("%m", r"\d{1,2}"), ("%d", r"\d{1,2}"), ("%y", r"\d{2}"), ("%H", r"\d{1,2}"), ("%M", r"\d{2}")):
        out = out.replace(re.escape(code), rx)
    return out


def column_roles(definition: SourceDefinition) -> dict[str, str]:
    """Column -> standard identifier field (a column shared by roles has one field)."""
    out: dict[str, str] = {}
    for mapping in definition.roles.values():
        for std, column in mapping.items():
            out.setdefault(column, std)
    return out


class _Checks:
    def __init__(self, n: int):
        self.n = n
        self.items: list[tuple[np.ndarray, str, str]] = []

    def add(self, mask, column: str, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.items.append((mask, column, reason))


def validate_chunk(definition: SourceDefinition, columns: dict[str, list], today: dt.date, date_format: str) -> ChunkResult:
    n = len(columns[definition.record_id])
    checks = _Checks(n)
    cleaned: Counter = Counter()
    ident = column_roles(definition)
    values: dict[str, pd.Series] = {}
    text_content = {c for c, spec in definition.content.items() if spec.type == "text"}
    numeric_or_date = {c for c, spec in definition.content.items() if spec.type in ("integer", "float", "date")} | {
        c for c, std in ident.items() if std == "dob"}
    today64 = np.datetime64(today, "D")

    stripped: dict[str, pd.Series] = {}
    for column in definition.columns:
        raw = pd.Series(columns[column], dtype=object)
        present = raw.notna().to_numpy()
        s = raw.where(present, "").astype(str)
        if column not in numeric_or_date:
            checks.add(s.str.match(FORMULA_PREFIX).to_numpy(), column, "formula_injection")
        st = s.str.strip()
        checks.add(st.str.contains(CONTROL_CHARS, regex=True).to_numpy(), column, "control_character")
        if column not in text_content:
            checks.add(st.str.contains(NEWLINES, regex=True).to_numpy(), column, "embedded_newline")
        limit = (IDENTIFIER_MAX_LENGTH.get(ident[column], 100) if column in ident else
                 definition.content[column].max_length if column in definition.content else 64)
        checks.add((st.str.len() > limit).to_numpy(), column, "too_long")
        stripped[column] = st.where(st != "", None)

    def dates(column: str) -> pd.Series:
        st = stripped[column]
        parsed = pd.to_datetime(st, format=date_format, errors="coerce")
        failed = (st.notna() & parsed.isna()).to_numpy()
        shaped = st.fillna("").str.fullmatch(_shape_regex(date_format)).to_numpy()
        checks.add(failed & shaped, column, "impossible_date")
        checks.add(failed & ~shaped, column, "bad_date")
        day = parsed.to_numpy().astype("datetime64[D]")
        ok = ~np.isnat(day)
        checks.add(ok & (day < EARLIEST_DATE), column, "implausible_date")
        checks.add(ok & (day > today64), column, "future_date")
        return pd.Series(day)

    # Record id.
    rid = stripped[definition.record_id]
    checks.add(rid.isna().to_numpy(), definition.record_id, "missing_required")
    checks.add((rid.notna() & ~rid.fillna("x").str.fullmatch(RECORD_ID_PATTERN)).to_numpy(), definition.record_id, "invalid_record_id")
    values[definition.record_id] = rid

    # Identifiers.
    for column, std in ident.items():
        st = stripped[column]
        has = st.notna().to_numpy()
        if std == "dob":
            values[column] = dates(column)
        elif std == "sex":
            checks.add(has & ~st.isin(list(definition.sex_codes)).to_numpy(), column, "not_allowed_value")
            values[column] = st.map(definition.sex_codes)
        elif std == "ssn":
            digits = st.fillna("").str.replace(r"[\s\-]", "", regex=True)
            want = 4 if definition.ssn_kind == "last4" else 9
            shape_ok = digits.str.fullmatch(r"\d{9}") | (digits.str.fullmatch(r"\d{4}") if want == 4 else False)
            checks.add(has & ~shape_ok.to_numpy(), column, "wrong_type")
            if want == 4:
                digits = digits.str[-4:]
                placeholder = digits == "0000"
            else:
                placeholder = digits.isin(_SSN_PLACEHOLDERS) | digits.str[:3].isin(["000", "666"]) | (digits.str[3:5] == "00") | (digits.str[5:] == "0000")
            placeholder &= shape_ok
            if placeholder.any():
                cleaned["ssn_placeholder_nulled"] += int(placeholder.sum())
            values[column] = digits.where(shape_ok & ~placeholder & (digits != ""), None)
        elif std == "zip":
            ok = st.fillna("").str.fullmatch(r"\d{5}(?:-\d{4})?")
            checks.add(has & ~ok.to_numpy(), column, "wrong_type")
            values[column] = st.str[:5].where(ok & st.notna(), None)
        elif std == "street":
            checks.add(has & ~st.fillna("x").str.fullmatch(STREET_PATTERN).to_numpy(), column, "invalid_characters")
            values[column] = st
        else:  # names
            checks.add(has & ~st.fillna("x").str.fullmatch(NAME_PATTERN).to_numpy(), column, "invalid_characters")
            values[column] = st

    # Content.
    for column, spec in definition.content.items():
        if column in values:
            continue
        st = stripped[column]
        has = st.notna().to_numpy()
        if spec.required:
            checks.add(~has, column, "missing_required")
        if spec.type == "date":
            values[column] = dates(column)
            continue
        if spec.type == "integer":
            ok = st.fillna("").str.fullmatch(r"[+-]?\d{1,%d}" % _INT64_DIGITS).to_numpy()
            checks.add(has & ~ok & st.fillna("").str.fullmatch(r"[+-]?\d+").to_numpy(), column, "out_of_range")
            checks.add(has & ~st.fillna("").str.fullmatch(r"[+-]?\d+").to_numpy(), column, "wrong_type")
            num = pd.to_numeric(st.where(ok, None), errors="coerce").astype("Int64")
        elif spec.type == "float":
            num = pd.to_numeric(st, errors="coerce")
            finite = np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
            checks.add(has & ~finite, column, "wrong_type")
            num = num.where(finite, np.nan).astype(float)
        elif spec.type == "boolean":
            mapped = st.str.upper().map(_BOOLEAN)
            checks.add(has & mapped.isna().to_numpy(), column, "wrong_type")
            values[column] = mapped.astype("boolean")
            continue
        elif spec.type == "category":
            checks.add(has & ~st.isin(spec.values).to_numpy(), column, "not_allowed_value")
            values[column] = st
            continue
        else:
            values[column] = st
            continue
        arr = num.to_numpy(dtype=float, na_value=np.nan)
        low = spec.min if spec.min is not None else -np.inf
        high = spec.max if spec.max is not None else np.inf
        checks.add(~np.isnan(arr) & ((arr < low) | (arr > high)), column, "out_of_range")
        values[column] = num

    # Row-level rules.
    if definition.event_date not in definition.content:
        checks.add(stripped[definition.event_date].isna().to_numpy(), definition.event_date, "missing_required")
    subject = definition.roles[SUBJECT_ROLE]
    linkable = [subject[f] for f in ("first_name", "last_name", "dob", "ssn") if f in subject]
    any_id = np.zeros(n, dtype=bool)
    for column in linkable:
        any_id |= values[column].notna().to_numpy()
    checks.add(~any_id, linkable[0], "no_identifiers")
    dob_col = subject.get("dob")
    if dob_col and dob_col != definition.event_date:
        ev = values[definition.event_date].to_numpy()
        dob = values[dob_col].to_numpy()
        checks.add(~np.isnat(ev) & ~np.isnat(dob) & (ev < dob), definition.event_date, "event_before_birth")

    problems: dict[int, list[tuple[str, str]]] = {}
    bad = np.zeros(n, dtype=bool)
    for mask, column, reason in checks.items:
        bad |= mask
        for i in np.flatnonzero(mask):
            problems.setdefault(int(i), []).append((column, reason))
    return ChunkResult(ok=~bad, problems=problems, values=values, cleaned=cleaned)
