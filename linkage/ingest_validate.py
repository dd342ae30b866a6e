"""Row validation of one chunk against a source definition, vectorised with pyarrow
compute (RE2 regular expressions in C++); dates are parsed by pandas, whose strptime is
strict about impossible dates where Arrow's rolls 30 February over into March.

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
import pyarrow as pa
import pyarrow.compute as pc

from .sources import SUBJECT_ROLE, SourceDefinition

# Leading characters that make spreadsheet programs evaluate a cell (OWASP "CSV injection");
# tab and carriage return are included because some programs strip them and then evaluate.
FORMULA_PREFIX = re.compile(r"^[=+\-@\t\r]")
_FORMULA_RE2 = r"^[=+\-@\t\r]"
# C0/C1 controls, zero-width and bidirectional-override characters (they can disguise values).
_CONTROL_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x{9f}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2028}\x{2029}\x{2066}-\x{2069}\x{feff}]"
_NEWLINE_RE2 = r"[\r\n]"
NAME_PATTERN = r"\p{L}(?:\p{L}|[ '’.\-])*"
STREET_PATTERN = r"[\p{L}\p{N}][\p{L}\p{N} #.,'’/&\-]*"
RECORD_ID_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"
_FLOAT_PATTERN = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?"
IDENTIFIER_MAX_LENGTH = {"first_name": 50, "middle_name": 50, "last_name": 60, "street": 120, "zip": 10, "ssn": 11, "sex": 10, "dob": 20}
_SSN_PLACEHOLDERS = pa.array(sorted({d * 9 for d in "0123456789"} | {"123456789", "987654321"}))
_TRUE = pa.array(["Y", "YES", "TRUE", "T", "1"])
_FALSE = pa.array(["N", "NO", "FALSE", "F", "0"])
EARLIEST_DATE = np.datetime64("1900-01-01", "D")
_NULL_STRING = pa.scalar(None, pa.string())


@dataclass
class ChunkResult:
    ok: np.ndarray  # bool per row
    problems: dict[int, list[tuple[str, str]]]  # row position -> [(column, reason)]
    values: dict[str, pa.Array | np.ndarray]  # column -> parsed values for all rows (dates: datetime64[D])
    cleaned: Counter = field(default_factory=Counter)
    flags: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # kept rows with nulled fields
    refusal: tuple[int, str, str] | None = None  # (row position, column, reason) under refuse_file


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


def _np(mask) -> np.ndarray:
    """Arrow boolean (nulls = False) -> numpy bool."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _full(arr: pa.Array, pattern: str) -> np.ndarray:
    return _np(pc.match_substring_regex(arr, f"^(?:{pattern})$"))


def _present(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return ~np.isnat(values)
    return np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)


class _Checks:
    def __init__(self) -> None:
        self.items: list[tuple[np.ndarray, str, str]] = []

    def add(self, mask: np.ndarray, column: str, reason: str) -> None:
        if mask.any():
            self.items.append((mask, column, reason))


def validate_chunk(definition: SourceDefinition, columns: dict[str, list], today: dt.date, date_format: str) -> ChunkResult:
    n = len(columns[definition.record_id])
    checks = _Checks()
    cleaned: Counter = Counter()
    ident = column_roles(definition)
    values: dict[str, pa.Array | np.ndarray] = {}
    text_content = {c for c, spec in definition.content.items() if spec.type == "text"}
    numeric_or_date = {c for c, spec in definition.content.items() if spec.type in ("integer", "float", "date")} | {
        c for c, std in ident.items() if std == "dob"}
    today64 = np.datetime64(today, "D")
    shape = _shape_regex(date_format)

    stripped: dict[str, pa.Array] = {}
    has: dict[str, np.ndarray] = {}
    for column in definition.columns:
        raw = pa.array(columns[column], type=pa.string())
        if column not in numeric_or_date:
            checks.add(_np(pc.match_substring_regex(raw, _FORMULA_RE2)), column, "formula_injection")
        st = pc.utf8_trim_whitespace(raw)
        checks.add(_np(pc.match_substring_regex(st, _CONTROL_RE2)), column, "control_character")
        if column not in text_content:
            checks.add(_np(pc.match_substring_regex(st, _NEWLINE_RE2)), column, "embedded_newline")
        limit = (IDENTIFIER_MAX_LENGTH.get(ident[column], 100) if column in ident else
                 definition.content[column].max_length if column in definition.content else 64)
        checks.add(_np(pc.greater(pc.utf8_length(st), limit)), column, "too_long")
        st = pc.if_else(pc.equal(st, ""), _NULL_STRING, st)
        placeholders = definition.placeholders.get(ident.get(column, ""), [])
        if placeholders:  # this agency's "unknown" (zip 00000, dob 01/01/1900): missing, not data
            is_placeholder = _np(pc.is_in(st, value_set=pa.array(placeholders, pa.string())))
            if is_placeholder.any():
                cleaned[f"{ident[column]}_placeholder_nulled"] += int(is_placeholder.sum())
                st = pc.if_else(pa.array(is_placeholder), _NULL_STRING, st)
        stripped[column] = st
        has[column] = _present(st)

    for name, parts in definition.composite.items():
        # Joined after each part's own checks; then validated as the identifier it is.
        joined = pc.binary_join_element_wise(*[stripped[c] for c in parts], " ", null_handling="skip")
        joined = pc.if_else(pc.equal(joined, ""), _NULL_STRING, joined)
        stripped[name], has[name] = joined, _present(joined)

    def dates(column: str) -> np.ndarray:
        st = stripped[column]
        text = pd.Series(st.to_numpy(zero_copy_only=False), dtype=object)
        day = pd.to_datetime(text, format=date_format, errors="coerce").to_numpy().astype("datetime64[D]")
        failed = has[column] & np.isnat(day)
        shaped = _full(st, shape)
        checks.add(failed & shaped, column, "impossible_date")
        checks.add(failed & ~shaped, column, "bad_date")
        ok = ~np.isnat(day)
        checks.add(ok & (day < EARLIEST_DATE), column, "implausible_date")
        checks.add(ok & (day > today64), column, "future_date")
        return day

    # Record id.
    rid = stripped[definition.record_id]
    checks.add(~has[definition.record_id], definition.record_id, "missing_required")
    checks.add(has[definition.record_id] & ~_full(rid, RECORD_ID_PATTERN), definition.record_id, "invalid_record_id")
    values[definition.record_id] = rid

    # Identifiers.
    for column, std in ident.items():
        st, present = stripped[column], has[column]
        if std == "dob":
            values[column] = dates(column)
        elif std == "sex":
            keys = pa.array(list(definition.sex_codes))
            checks.add(present & ~_np(pc.is_in(st, value_set=keys)), column, "not_allowed_value")
            values[column] = pc.take(pa.array(list(definition.sex_codes.values())), pc.index_in(st, value_set=keys))
        elif std == "ssn":
            digits = pc.replace_substring_regex(st, r"[\s\-]", "")
            nine = _full(digits, r"\d{9}")
            shape_ok = nine | (_full(digits, r"\d{4}") if definition.ssn_kind == "last4" else False)
            checks.add(present & ~shape_ok, column, "wrong_type")
            if definition.ssn_kind == "last4":
                digits = pc.utf8_slice_codeunits(digits, -4)
                placeholder = _np(pc.equal(digits, "0000"))
            else:
                placeholder = (_np(pc.is_in(digits, value_set=_SSN_PLACEHOLDERS))
                               | _np(pc.is_in(pc.utf8_slice_codeunits(digits, 0, 3), value_set=pa.array(["000", "666"])))
                               | _np(pc.equal(pc.utf8_slice_codeunits(digits, 3, 5), "00"))
                               | _np(pc.equal(pc.utf8_slice_codeunits(digits, 5, 9), "0000")))
            placeholder &= shape_ok
            if placeholder.any():
                cleaned["ssn_placeholder_nulled"] += int(placeholder.sum())
            values[column] = pc.if_else(pa.array(shape_ok & ~placeholder), digits, _NULL_STRING)
        elif std == "zip":
            ok = _full(st, r"\d{5}(?:-\d{4})?")
            checks.add(present & ~ok, column, "wrong_type")
            values[column] = pc.if_else(pa.array(ok), pc.utf8_slice_codeunits(st, 0, 5), _NULL_STRING)
        elif std == "street":
            checks.add(present & ~_full(st, STREET_PATTERN), column, "invalid_characters")
            values[column] = st
        else:  # names
            checks.add(present & ~_full(st, NAME_PATTERN), column, "invalid_characters")
            values[column] = st

    # Content.
    for column, spec in definition.content.items():
        if column in values:
            continue
        st, present = stripped[column], has[column]
        if spec.required:
            checks.add(~present, column, "missing_required")
        if spec.type == "date":
            values[column] = dates(column)
            continue
        if spec.type in ("integer", "float"):
            if spec.type == "integer":
                digits = _full(st, r"[+-]?\d+")
                ok = digits & _full(st, r"[+-]?\d{1,18}")  # longer cannot be an int64 count or amount
                checks.add(present & digits & ~ok, column, "out_of_range")
                checks.add(present & ~digits, column, "wrong_type")
                num = pc.cast(pc.if_else(pa.array(ok), st, _NULL_STRING), pa.int64())
            else:
                ok = _full(st, _FLOAT_PATTERN)  # also refuses NaN and inf spelled out
                checks.add(present & ~ok, column, "wrong_type")
                num = pc.cast(pc.if_else(pa.array(ok), st, _NULL_STRING), pa.float64())
                finite = _np(pc.is_finite(num))
                checks.add(ok & ~finite, column, "out_of_range")
                num = pc.if_else(pa.array(finite), num, pa.scalar(None, pa.float64()))
            arr = num.to_numpy(zero_copy_only=False).astype(float)
            low = spec.min if spec.min is not None else -np.inf
            high = spec.max if spec.max is not None else np.inf
            with np.errstate(invalid="ignore"):
                checks.add(~np.isnan(arr) & ((arr < low) | (arr > high)), column, "out_of_range")
            values[column] = num
        elif spec.type == "boolean":
            up = pc.utf8_upper(st)
            is_true, is_false = _np(pc.is_in(up, value_set=_TRUE)), _np(pc.is_in(up, value_set=_FALSE))
            checks.add(present & ~is_true & ~is_false, column, "wrong_type")
            values[column] = pa.array(np.where(is_true, True, False), mask=~(is_true | is_false), type=pa.bool_())
        elif spec.type == "category":
            checks.add(present & ~_np(pc.is_in(st, value_set=pa.array(spec.values))), column, "not_allowed_value")
            values[column] = st
        else:
            values[column] = st

    # Field-level failures follow each column's policy; then the row-level rules run on the
    # values as they will be stored (a nulled dob no longer makes "event before birth").
    flags: dict[int, list[tuple[str, str]]] = {}
    refusal = _apply_policies(definition, checks, values, flags)
    row_checks = checks
    if definition.event_date not in definition.content:
        row_checks.add(~has[definition.event_date], definition.event_date, "missing_required")
    subject = definition.roles[SUBJECT_ROLE]
    linkable = [subject[f] for f in ("first_name", "last_name", "dob", "ssn") if f in subject]
    any_id = np.zeros(n, dtype=bool)
    for column in linkable:
        any_id |= _present(values[column])
    row_checks.add(~any_id, linkable[0], "no_identifiers")
    dob_col = subject.get("dob")
    if dob_col and dob_col != definition.event_date:
        ev, dob = values[definition.event_date], values[dob_col]
        before = ~np.isnat(ev) & ~np.isnat(dob) & (ev < dob)
        if before.any():
            # Which of the two is wrong is unknown; the dob is the field the policy governs.
            policy = definition.policy_for(dob_col)
            if policy == "null_and_flag":
                _flag(flags, before, dob_col, "event_before_birth")
                values[dob_col] = np.where(before, np.datetime64("NaT"), dob)
            elif policy == "refuse_file" and refusal is None:
                refusal = (int(np.flatnonzero(before)[0]), dob_col, "event_before_birth")
            else:
                row_checks.add(before, definition.event_date, "event_before_birth")

    problems: dict[int, list[tuple[str, str]]] = {}
    bad = np.zeros(n, dtype=bool)
    for mask, column, reason in row_checks.items:
        bad |= mask
        for i in np.flatnonzero(mask):
            problems.setdefault(int(i), []).append((column, reason))
    for i in list(flags):
        if bad[i]:
            problems[i].extend(flags.pop(i))  # a quarantined row keeps every reason in one place
    return ChunkResult(ok=~bad, problems=problems, values=values, cleaned=cleaned, flags=flags, refusal=refusal)


# Reasons that make the whole row untrustworthy whatever the column's policy: hostile or
# garbled content (a formula, a control character, a line break where none belongs), or a
# row that cannot be identified or linked at all.
ROW_REASONS = frozenset({"formula_injection", "control_character", "embedded_newline", "missing_required",
                         "invalid_record_id", "no_identifiers", "duplicate_record_id"})


def _flag(flags: dict[int, list[tuple[str, str]]], mask: np.ndarray, column: str, reason: str) -> None:
    for i in np.flatnonzero(mask):
        flags.setdefault(int(i), []).append((column, reason))


def _null_where(values, mask: np.ndarray):
    """The same column with the masked rows set to null (NaT for parsed dates)."""
    if isinstance(values, np.ndarray):
        return np.where(mask, np.datetime64("NaT"), values)
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _apply_policies(definition: SourceDefinition, checks: "_Checks", values: dict, flags: dict) -> tuple[int, str, str] | None:
    """Field-level failures: null and flag, keep for row quarantine, or name the first refusal."""
    refusal = None
    keep = []
    for mask, column, reason in checks.items:
        policy = "quarantine_row" if reason in ROW_REASONS else definition.policy_for(column)
        if policy == "null_and_flag":
            _flag(flags, mask, column, reason)
            values[column] = _null_where(values[column], mask)
        elif policy == "refuse_file":
            first = int(np.flatnonzero(mask)[0])
            if refusal is None or first < refusal[0]:
                refusal = (first, column, reason)
        else:
            keep.append((mask, column, reason))
    checks.items = keep  # what is left quarantines its rows
    return refusal
