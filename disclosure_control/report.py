"""Reports: the JSON verdict report and an export in ACRO's ``results.json`` layout.

The ``results.json`` layout is the one ACRO's ``finalise()`` writes (version, tool, results
keyed by output id with uid, status, type, properties, files with their sdc summary,
outcome, command, summary, timestamp, comments, exception), so the SACRO viewer opens
the outputs. Cell values are never copied into the reports, only cell labels and reasons.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .evidence import atomic_write_text
from .rules import RuleSet
from .verdicts import OutputVerdict, Report

__all__ = ["write_reports", "acro_results", "REPORT_NAME", "ACRO_RESULTS_NAME"]

REPORT_NAME = "sdc_report.json"
ACRO_RESULTS_NAME = "results.json"
ACRO_LAYOUT_VERSION = "1.0.2"
_ACRO_TYPE = {"table": "table", "model": "regression", "histogram": "histogram", "survival": "survival",
              "summary": "table", "figure": "custom", "file": "custom", "unknown": "custom"}


def _sdc_summary(verdict: OutputVerdict) -> dict:
    checks = verdict.checks
    return {
        "summary": {
            "suppressed": bool(verdict.summary.get("suppressed", 0)),
            "negative": 0, "missing": 0,
            "threshold": sum(1 for c in verdict.cells if any("threshold" in r or "contributors" in r for r in c.reasons)),
            "p-ratio": sum(1 for c in verdict.cells if any("p% rule" in r for r in c.reasons)),
            "nk-rule": sum(1 for c in verdict.cells if any("dominance" in r for r in c.reasons)),
            "all-values-are-same": 0,
        },
        "cells": {name: [c.cell for c in verdict.cells if any(key in r for r in c.reasons)]
                  for name, key in (("threshold", "threshold"), ("p-ratio", "p% rule"), ("nk-rule", "dominance"))},
        "checks": checks,
    }


def acro_results(verdicts: list[OutputVerdict]) -> dict:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    results = {}
    for v in verdicts:
        results[v.output_id] = {
            "uid": v.output_id,
            "status": v.status,
            "type": _ACRO_TYPE.get(v.kind, "custom"),
            "properties": {"method": v.kind},
            "files": [{"name": v.output, "sdc": _sdc_summary(v)}],
            "outcome": {},
            "command": v.kind,
            "summary": "; ".join(v.reasons) if v.reasons else v.status,
            "timestamp": now,
            "comments": [],
            "exception": "",
        }
    return {"version": ACRO_LAYOUT_VERSION,
            "tool": {"@type": "SoftwareApplication", "name": "ids-enclave disclosure_control", "version": "1"},
            "results": results}


def write_reports(outputs_dir: Path, verdicts: list[OutputVerdict] | Report, folder: Path, rules: RuleSet | None = None) -> tuple[Path, Path]:
    """Write ``sdc_report.json`` and ``results.json`` into ``folder``; returns both paths."""
    report = verdicts if isinstance(verdicts, Report) else Report(outputs=list(verdicts), rules=rules.model_dump() if rules else {})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report_path = folder / REPORT_NAME
    acro_path = folder / ACRO_RESULTS_NAME
    atomic_write_text(report_path, report.to_json())
    atomic_write_text(acro_path, json.dumps(acro_results(report.outputs), indent=4, default=str))
    return report_path, acro_path
