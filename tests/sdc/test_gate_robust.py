"""The gate never crashes and never passes silently: every file is judged, identifiers fail."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from disclosure_control import gate
from disclosure_control.rules import load_rules


def statuses(report):
    return {v.output: v for v in report.outputs}


def test_crosstab_of_a_boolean_with_margins(session, loader, people):
    people["enrolled"] = people["enrolled"].astype(bool)
    acro = session()
    df = acro.load("people")
    table = acro.crosstab(df.enrolled, df.neighbourhood, margins=True)
    assert table is not None and list(table.index) == [False, True, "All"]
    assert acro.results["output_0"].status == "pass", acro.results["output_0"].reasons
    report = gate.check_folder(acro.outputs_dir, loader)
    assert statuses(report)["output_0.csv"].status == "pass"


def test_any_exception_while_checking_fails_that_output(session, loader, tmp_path):
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)

    def broken(name):
        raise RuntimeError("disk on fire")

    verdict = gate.check_file(acro.outputs_dir / "output_0.csv", acro.outputs_dir / "output_0.evidence.json", broken)
    assert verdict.status == "fail" and "RuntimeError" in " ".join(verdict.reasons)
    report = gate.check_folder(acro.outputs_dir, broken)   # never raises
    assert statuses(report)["output_0.csv"].status == "fail"


def test_a_file_named_like_evidence_holding_raw_rows_is_judged(tmp_path, loader, people):
    folder = tmp_path / "outputs"
    folder.mkdir()
    rows = people.head(300).to_dict(orient="records")
    (folder / "rows.evidence.json").write_text(json.dumps(rows))
    report = gate.check_folder(folder, loader)
    assert [v.status for v in report.outputs] == ["fail"]


def test_evidence_smuggling_rows_in_its_options_is_judged(session, loader, people):
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    path = acro.outputs_dir / "output_0.evidence.json"
    record = json.loads(path.read_text())
    record["options"]["extra"] = people.head(300).to_dict(orient="records")
    path.write_text(json.dumps(record))
    report = gate.check_folder(acro.outputs_dir, loader)
    assert "fail" in {v.status for v in report.outputs}


IDENTIFIER_FILES = {
    "upper_hex_pseudonyms": "pseudo,n\n" + "".join(f"{(i + 1) * 0xABCDEF1234567:024X},12\n" for i in range(30)),
    "upper_hex_any_column": "who,n\n" + "".join(f"{(i * 7919 + 4096) ** 3:024X},12\n" for i in range(30)),
    "birth_date_column": "Birth_Date,n\n" + "".join(f"group{i},{20 + i}\n" for i in range(30)),
    "date_of_birth_values": "when,n\n" + "".join(f"2011-{1 + i % 12:02d}-{1 + i % 28:02d},{20 + i}\n" for i in range(30)),
    "formula": "area,n\nnorth,25\n\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",30\n",
    "formula_at": "area,n\nnorth,25\n@SUM(A1:A9),30\n",
}


@pytest.mark.parametrize("name", sorted(IDENTIFIER_FILES))
def test_identifiers_dates_of_birth_and_formulas_fail(name, tmp_path, loader):
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / f"{name}.csv").write_text(IDENTIFIER_FILES[name])
    verdict = gate.check_folder(folder, loader, load_rules()).outputs[0]
    assert verdict.status == "fail", verdict.reasons


def test_numbers_in_labels_are_flagged(session, loader, people):
    people.loc[people.index[:40], "neighbourhood"] = "harbour"
    acro = session()
    df = acro.load("people")
    df["area"] = df.neighbourhood.map({"north": "north", "south": "south", "east": "east", "west": "west",
                                       "harbour": "top earner 5000000 at S03"})
    acro.crosstab(df.area, df.sex)
    assert acro.results["output_0"].status == "review", acro.results["output_0"].reasons
    assert "labels" in acro.results["output_0"].checks


def test_ordinary_labels_are_not_flagged(session, loader):
    acro = session()
    df = acro.load("people")
    df["band"] = pd.cut(df.income, [0, 10000, 100000, 1000000])
    acro.crosstab(df.band, df.sex)
    acro.crosstab(df.age, df.sex)
    assert "labels" not in acro.results["output_0"].checks, acro.results["output_0"].reasons
    assert "labels" not in acro.results["output_1"].checks
