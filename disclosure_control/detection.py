"""Checks any file can get, with or without evidence: type, size, row-level data, identifiers.

A hit here blocks the file before any reviewer sees it (OpenSAFELY's job runner drops a
file with a patient id column, more than 5,000 rows, over 16 MB or of a disallowed type).
The content of the file decides, not its name: a CSV renamed ``.png`` is caught by its
magic bytes, a table inside a ``.txt`` or ``.json`` is parsed and counted.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd

from .rules import RuleSet

__all__ = ["detect", "identifier_columns"]

_MAGIC = {"png": b"\x89PNG\r\n\x1a\n"}
_TEXT = {"csv", "json", "txt", "md", "html", "svg"}


# Always applied, whatever the rules file says: pseudonyms and dates of birth are identifiers.
_BUILTIN_COLUMN_PATTERNS = (
    r"(?i)pseudonym",
    r"(?i)(^|[_ ])(dob|d\.o\.b\.?|birth_?date|date_?of_?birth|birth_?day|birth_?dt|born(_on)?)$",
    r"(?i)^(birth|dob)[_ ]",
)
_HEX_ID = r"^(?:[0-9a-f]{16,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
_DAY_DATE = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4})([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*$")
_FORMULA = re.compile(r"^\s*(=|[+\-@]\s*[A-Za-z(]|[\t\r])")
_LONG_NUMBER = re.compile(r"\d[\d,.]{4,}\d|\d{5,}")
_INTERVAL = re.compile(r"^\s*[\[(]\s*-?[\d.,eE+-]+\s*,\s*-?[\d.,eE+-]+\s*[\])]\s*$")   # pd.cut bands


def identifier_columns(columns, rules: RuleSet) -> list[str]:
    patterns = [re.compile(p, re.IGNORECASE) for p in tuple(rules.identifier_column_patterns) + _BUILTIN_COLUMN_PATTERNS]
    return [str(c) for c in columns if any(p.search(str(c)) for p in patterns)]


def _text_values(frame: pd.DataFrame, column) -> pd.Series:
    values = frame[column]
    if isinstance(values, pd.DataFrame):
        values = values.iloc[:, 0]
    return values.dropna().astype(str)


def _identifier_values(frame: pd.DataFrame, rules: RuleSet) -> list[str]:
    patterns = [re.compile(rules.identifier_value_pattern, re.IGNORECASE), re.compile(_HEX_ID, re.IGNORECASE)]
    hits = []
    for column in frame.columns:
        values = _text_values(frame, column).str.strip().head(200)
        if len(values) and values.map(lambda v: any(p.match(v) for p in patterns)).mean() > 0.5:
            hits.append(str(column))
    return hits


def _date_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of day-precision dates (dates of birth, admission days: record-level detail)."""
    hits = []
    for column in frame.columns:
        values = _text_values(frame, column).head(200)
        if len(values) and values.map(lambda v: bool(_DAY_DATE.match(v))).mean() > 0.5:
            hits.append(str(column))
    return hits


def _cells(frame: pd.DataFrame) -> list[str]:
    cells = [str(c) for c in frame.columns]
    for column in frame.columns:
        values = frame[column]
        if isinstance(values, pd.DataFrame):
            values = values.iloc[:, 0]
        if values.dtype == object:
            cells += [v for v in values.head(5000).tolist() if isinstance(v, str)]
    return cells


def _tabular_findings(frame: pd.DataFrame, rules: RuleSet, what: str) -> list[tuple[str, str, str]]:
    out = []
    if len(frame) > rules.max_rows:
        out.append(("row_level", "fail", f"{what} has {len(frame)} rows, more than the limit {rules.max_rows}: looks like row-level data"))
    ids = identifier_columns(frame.columns, rules)
    if ids:
        out.append(("identifiers", "fail", f"{what} has identifier-like columns: {', '.join(ids)}"))
    values = _identifier_values(frame, rules)
    if values:
        out.append(("identifiers", "fail", f"{what} has columns holding pseudonym- or hash-like values: {', '.join(values)}"))
    dates = _date_columns(frame)
    if dates:
        out.append(("identifiers", "fail", f"{what} has columns of day-precision dates (dates of birth are identifiers): {', '.join(dates)}"))
    cells = _cells(frame)
    formulas = sum(1 for c in cells if _FORMULA.match(c) and not _is_number(c))
    if formulas:
        out.append(("formula", "fail", f"{what} has {formulas} cell(s) a spreadsheet would run as a formula"))
    numbered = sum(1 for c in cells if not _is_number(c) and not _INTERVAL.match(c) and _LONG_NUMBER.search(c))
    if numbered:
        out.append(("labels", "review", f"{what} has {numbered} label(s) with numbers in them: a value from the data may be "
                                         "written into a label; a reviewer must check them"))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def _read_table_text(text: str) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(io.StringIO(text), sep=None, engine="python", nrows=200_000)
    except Exception:
        return None
    return frame if frame.shape[1] >= 2 or len(frame) > 1 else None


def detect(path: Path, rules: RuleSet) -> list[tuple[str, str, str]]:
    """(check, status, reason) for every problem found; empty when the file is clean."""
    path = Path(path)
    name = path.name
    out: list[tuple[str, str, str]] = []
    if name.startswith("."):
        out.append(("file_type", "fail", f"{name}: hidden file"))
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in {e.lower().lstrip(".") for e in rules.allowed_extensions}:
        out.append(("file_type", "fail", f"{name}: file type .{ext or '(none)'} is not allowed"))
    size = path.stat().st_size
    if size > rules.max_file_bytes:
        out.append(("file_size", "fail", f"{name}: {size} bytes, over the limit {rules.max_file_bytes}"))
        return out  # do not parse oversized content
    head = path.read_bytes()
    if ext in _MAGIC and not head.startswith(_MAGIC[ext]):
        out.append(("file_type", "fail", f"{name}: content is not {ext.upper()} (wrong magic bytes)"))
    if ext in _TEXT or (ext in _MAGIC and not head.startswith(_MAGIC[ext])):
        if b"\x00" in head:
            out.append(("file_type", "fail", f"{name}: binary content in a text file type"))
            return out
        text = head.decode("utf-8", errors="replace")
        if ext == "json":
            try:
                obj = json.loads(text)
            except ValueError:
                out.append(("file_type", "fail", f"{name}: not valid JSON"))
                return out
            frame = None
            if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
                frame = pd.DataFrame(obj)
            elif isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
                try:
                    frame = pd.DataFrame(obj)
                except ValueError:
                    frame = None
            if frame is not None:
                out += _tabular_findings(frame, rules, name)
        elif ext in ("html", "svg"):
            rows = text.lower().count("<tr")
            if rows > rules.max_rows:
                out.append(("row_level", "fail", f"{name}: an HTML table of {rows} rows: looks like row-level data"))
        else:
            frame = _read_table_text(text)
            if frame is not None:
                out += _tabular_findings(frame, rules, name)
            elif text.count("\n") > rules.max_rows:
                out.append(("row_level", "fail", f"{name}: {text.count(chr(10))} lines: looks like row-level data"))
    return out
