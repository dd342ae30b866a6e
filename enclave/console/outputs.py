"""How an output is shown to the person judging it: a table with its failing cells marked and the
reason beside each, an image, a model's summary, the evidence and the checksum.

Everything here reads a file of the airlock snapshot (or of a fresh check) and returns plain data
for an autoescaping template: researcher-written text is never trusted as markup or as a path.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

MAX_ROWS = 200
MAX_COLUMNS = 40
MAX_READ = 2 * 1024 * 1024
IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def image_type(head: bytes) -> str | None:
    """The image type from the file's first bytes (never its name): PNG or JPEG only (no SVG: it can script)."""
    for magic, kind in IMAGE_MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def _failing_cells(details: dict[str, Any]) -> list[dict[str, Any]]:
    cells = details.get("cells") if isinstance(details, dict) else None
    out = []
    for cell in cells or []:
        if isinstance(cell, dict) and cell.get("status") in ("fail", "review"):
            labels = cell.get("cell") if isinstance(cell.get("cell"), dict) else {}
            out.append({"labels": {str(k): str(v) for k, v in labels.items()}, "status": cell["status"],
                        "reasons": [str(r) for r in cell.get("reasons") or []]})
    return out


def _mark(rows: list[list[str]], failing: list[dict[str, Any]]) -> dict[tuple[int, int], list[str]]:
    """(row, column) of the table cells a failing cell verdict names: the row whose first column and
    the column whose header are the verdict's grouping labels (crosstabs as the safe API writes them)."""
    if not rows:
        return {}
    header = rows[0]
    marks: dict[tuple[int, int], list[str]] = {}
    for cell in failing:
        values = set(cell["labels"].values())
        for r, row in enumerate(rows[1:], start=1):
            if not row or row[0] not in values:
                continue
            rest = values - {row[0]}
            for c in range(1, len(row)):
                if (rest and c < len(header) and header[c] in rest) or (not rest and c == 1):
                    marks.setdefault((r, c), []).extend(cell["reasons"] or [cell["status"]])
    return marks


def describe_output(folder: Path | None, name: str, details: dict[str, Any]) -> dict[str, Any]:
    """What the reviewer sees of one output (read from ``folder``, the snapshot of its round)."""
    view: dict[str, Any] = {"kind": "other", "rows": [], "marks": {}, "failing": _failing_cells(details),
                            "summary": details.get("summary") if isinstance(details, dict) else None,
                            "checks": details.get("checks") if isinstance(details, dict) else None,
                            "evidence": None, "truncated": False, "text": ""}
    if folder is None:
        return view
    path = folder / name
    if not path.is_file() or path.is_symlink():
        view["kind"] = "missing"
        return view
    with open(path, "rb") as fh:
        head = fh.read(MAX_READ + 1)
    view["truncated"] = len(head) > MAX_READ
    kind = image_type(head)
    lower = name.lower()
    if kind:
        view["kind"] = "image"
    elif lower.endswith((".csv", ".tsv")):
        text = head[:MAX_READ].decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text), delimiter="\t" if lower.endswith(".tsv") else ",")
        rows = []
        for i, row in enumerate(reader):
            if i > MAX_ROWS:
                view["truncated"] = True
                break
            rows.append(row[:MAX_COLUMNS])
        view["kind"], view["rows"] = "table", rows
        view["marks"] = {f"{r}:{c}": reasons for (r, c), reasons in _mark(rows, view["failing"]).items()}
    elif lower.endswith((".json", ".txt", ".md")):
        view["kind"] = "model" if "model" in str(details.get("kind", "")) or lower.endswith(".json") else "text"
        view["text"] = head[:20000].decode("utf-8", errors="replace")
    from enclave.airlock import snapshot as snap

    evidence = folder / snap.evidence_name(name)
    if evidence.is_file() and not evidence.is_symlink() and evidence.stat().st_size < MAX_READ:
        try:
            data = json.loads(evidence.read_text(encoding="utf-8", errors="replace"))
        except ValueError:
            data = {"unreadable": "the evidence file is not valid JSON"}
        view["evidence"] = _evidence_summary(data)
    return view


EVIDENCE_KEYS = ("method", "kind", "table", "rows", "n_rows", "derived", "derived_variables", "epsilon", "options",
                 "variables", "formula", "dataset")


def _evidence_summary(data: Any) -> list[tuple[str, str]]:
    """The evidence's key facts first (method, table, rows, derived variables, epsilon), then the rest."""
    if not isinstance(data, dict):
        return [("evidence", json.dumps(data)[:2000])]
    keys = [k for k in EVIDENCE_KEYS if k in data] + [k for k in data if k not in EVIDENCE_KEYS]
    return [(str(k), json.dumps(data[k], default=str)[:2000]) for k in keys[:40]]
