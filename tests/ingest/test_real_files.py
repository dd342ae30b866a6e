"""Definitions that fit real agency files: split addresses, year-only dates."""
from __future__ import annotations

import csv

import pytest

from linkage.ingest import ingest_file
from linkage.sources import SourceDefinition

CENSUS = {
    "name": "census", "domain": "health_vital_statistics", "agency": "Census bureau", "steward": "census-steward",
    "format": "csv", "record_id": "ID", "event_date": "YEAR", "date_format": "%Y",
    "identifiers": {"first_name": "FIRST", "last_name": "LAST", "street": "ADDRESS", "zip": "ZIP"},
    "composite": {"ADDRESS": ["HOUSE_NO", "STREET", "UNIT", "PO_BOX"]},
    "content": {"YEAR": {"type": "date", "description": "Census year", "required": True}},
}


def _write(path, rows):
    header = ["ID", "FIRST", "LAST", "HOUSE_NO", "STREET", "UNIT", "PO_BOX", "ZIP", "YEAR"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_street_from_number_name_unit_and_po_box_and_year_only_dates(tmp_path, kit):
    d = SourceDefinition.model_validate(CENSUS)
    assert d.columns == ["ID", "FIRST", "LAST", "HOUSE_NO", "STREET", "UNIT", "PO_BOX", "ZIP", "YEAR"]
    p = _write(tmp_path / "census.csv", [
        ["C1", "Ana", "Lee", "3444", "N Charles St", "Apt 2", "", "21201", "2020"],
        ["C2", "Bo", "Kim", "", "", "", "PO Box 17", "21202", "2020"],
        ["C3", "Cy", "Ray", "12", "Main St;DROP", "", "", "21203", "2020"],
    ])
    result = ingest_file(d, p, tmp_path / "vault", today=kit.TODAY)
    assert result.rows_accepted == 3 and result.flags == {"ADDRESS": {"invalid_characters": 1}}
    ids = kit.read_part(tmp_path / "vault", "identifiers", "census").set_index("source_record_id")
    assert ids.loc["C1", "street"] == "3444 N Charles St Apt 2"
    assert ids.loc["C2", "street"] == "PO Box 17"
    assert ids.loc["C3", "street"] is None
    content = kit.read_part(tmp_path / "vault", "content", "census")
    assert str(content["event_date"][0]) == "2020-01-01"


@pytest.mark.parametrize("composite,message", [
    ({"ADDRESS": []}, "non-empty"),
    ({"ADDRESS": ["HOUSE_NO", "HOUSE_NO"]}, "repeats"),
    ({"ADDRESS": ["FIRST", "STREET"]}, "declared elsewhere"),
    ({"ADDRESS": ["HOUSE_NO"], "OTHER": ["X"]}, "not used in identifiers"),
])
def test_bad_composite_is_refused(composite, message):
    with pytest.raises(ValueError, match=message):
        SourceDefinition.model_validate(dict(CENSUS, composite=composite))
