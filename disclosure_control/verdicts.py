"""Verdicts: pass / fail / review, with reasons per output and per cell."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "review"]
_RANK = {"pass": 0, "review": 1, "fail": 2}


def worst(*statuses: Status) -> Status:
    return max(statuses, key=_RANK.__getitem__) if statuses else "pass"


@dataclass
class CellVerdict:
    cell: dict[str, Any]      # grouping labels of the cell (never record values)
    status: Status
    reasons: list[str]

    def to_dict(self) -> dict:
        return {"cell": self.cell, "status": self.status, "reasons": self.reasons}


@dataclass
class OutputVerdict:
    output: str               # file name
    output_id: str
    kind: str
    status: Status = "pass"
    reasons: list[str] = field(default_factory=list)
    cells: list[CellVerdict] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)   # check name -> status
    summary: dict[str, Any] = field(default_factory=dict)
    populations: dict = field(default_factory=dict, repr=False)  # for the ledger; not serialised
    table: str | None = None

    def flag(self, check: str, status: Status, reason: str | None = None) -> None:
        self.checks[check] = worst(self.checks.get(check, "pass"), status)
        self.status = worst(self.status, status)
        if reason and reason not in self.reasons:
            self.reasons.append(reason)

    def to_dict(self) -> dict:
        return {"output": self.output, "output_id": self.output_id, "kind": self.kind, "status": self.status,
                "reasons": self.reasons, "checks": self.checks, "summary": self.summary,
                "cells": [c.to_dict() for c in self.cells]}


@dataclass
class Report:
    outputs: list[OutputVerdict]
    rules: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst(*[o.status for o in self.outputs]) if self.outputs else "pass"

    @property
    def all_pass(self) -> bool:
        return bool(self.outputs) and all(o.status == "pass" for o in self.outputs)

    def to_dict(self) -> dict:
        return {"status": self.status, "outputs": [o.to_dict() for o in self.outputs], "rules": self.rules}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)
