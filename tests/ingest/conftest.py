"""A compact source definition with every column type and a related role, and helpers
that write good and bad files for it."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from linkage.sources import SourceDefinition

TODAY = dt.date(2025, 6, 30)

DEFINITION = {
    "name": "clinic",
    "domain": "health_vital_statistics",
    "agency": "Test Clinic",
    "steward": "clinic-steward",
    "format": "csv",
    "record_id": "visit_id",
    "event_date": "visit_date",
    "date_format": "%m/%d/%Y",
    "sex_codes": {"1": "M", "2": "F"},
    "identifiers": {"first_name": "first", "last_name": "last", "dob": "dob", "sex": "sex", "ssn": "ssn", "street": "street", "zip": "zip"},
    "related": {"mother": {"relation": "mother_of", "identifiers": {"first_name": "mother_first", "last_name": "mother_last", "ssn": "mother_ssn"}}},
    "content": {
        "visit_date": {"type": "date", "description": "Visit date", "required": True},
        "visits": {"type": "integer", "description": "Visits so far", "min": 0, "max": 100},
        "charge": {"type": "float", "description": "Charge in dollars", "min": 0},
        "insured": {"type": "boolean", "description": "Has insurance"},
        "kind": {"type": "category", "description": "Visit kind", "values": ["well", "sick"], "required": True},
        "note": {"type": "string", "description": "Short note", "max_length": 30},
    },
}


def good_row(i: int) -> dict[str, str]:
    return {
        "visit_id": f"V{i:05d}", "first": "Maria", "last": "Lopez", "dob": "03/04/2012", "sex": "2", "ssn": "212-45-6789",
        "street": "12 N Charles St", "zip": "21201", "mother_first": "Ana", "mother_last": "Lopez", "mother_ssn": "212456780",
        "visit_date": "05/06/2020", "visits": "3", "charge": "12.50", "insured": "Y", "kind": "well", "note": "ok",
    }


@pytest.fixture
def definition() -> SourceDefinition:
    return SourceDefinition.model_validate(DEFINITION)


@pytest.fixture
def vault(tmp_path) -> Path:
    return tmp_path / "vault"


def _write_csv(path: Path, rows: list[dict], header: list[str] | None = None, **kw) -> Path:
    header = header or list(good_row(0))
    with open(path, "w", newline="", encoding=kw.pop("encoding", "utf-8")) as fh:
        # Quote every field: a real exporter quotes a value holding CR, the minimal quoting does not.
        w = csv.writer(fh, lineterminator=kw.pop("lineterminator", "\n"), quoting=kw.pop("quoting", csv.QUOTE_ALL))
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(h, "") for h in header])
    return path


def _vault_files(vault: Path) -> list[Path]:
    """Every file in the vault except lock files and the (empty) staging folder."""
    if not vault.exists():
        return []
    return sorted(p for p in vault.rglob("*") if p.is_file() and p.name != ".lock")


def _read_part(vault: Path, kind: str, source: str = "clinic") -> pd.DataFrame:
    files = sorted((vault / kind / source).glob("*.parquet"))
    assert len(files) == 1, files
    return pd.read_parquet(files[0])


def _read_quarantine(vault: Path, source: str = "clinic") -> pd.DataFrame:
    files = sorted((vault / "quarantine" / source).glob("*.csv"))
    assert len(files) == 1
    return pd.read_csv(files[0], dtype=str, keep_default_na=False)


class Kit:
    """Helpers handed to tests as a fixture (test modules cannot import conftest under importlib mode)."""

    TODAY = TODAY
    DEFINITION = DEFINITION
    good_row = staticmethod(good_row)
    write_csv = staticmethod(_write_csv)
    vault_files = staticmethod(_vault_files)
    read_part = staticmethod(_read_part)
    read_quarantine = staticmethod(_read_quarantine)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
