"""Row-level data, identifiers, file types and sizes are blocked before review."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from disclosure_control import gate
from disclosure_control.rules import RuleSet


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out


def verdicts(folder, loader=None, rules=None):
    return {v.output: v for v in gate.check_folder(folder, loader, rules).outputs}


def test_hidden_row_level_files_are_blocked(folder, people):
    pd.concat([people, people]).to_csv(folder / "notes.txt", index=False)   # 6,000 rows in a text file
    (folder / "chart.png").write_text(people.head(50).to_csv())             # a CSV posing as an image
    (folder / "records.json").write_text(json.dumps(pd.concat([people, people]).to_dict(orient="records")))
    (folder / ".cache.csv").write_text("a,b\n1,2\n")                        # a hidden file
    v = verdicts(folder)
    assert v["notes.txt"].status == "fail" and "row_level" in v["notes.txt"].checks
    assert v["chart.png"].status == "fail" and v["chart.png"].checks["file_type"] == "fail"
    assert v["records.json"].status == "fail" and "row_level" in v["records.json"].checks
    assert v[".cache.csv"].status == "fail"
    assert all(r.reasons[0] == "blocked before review" for r in v.values())


def test_identifier_columns_and_pseudonyms_are_blocked(folder):
    pd.DataFrame({"person_id": [1, 2], "n": [100, 200]}).to_csv(folder / "a.csv", index=False)
    rng = np.random.default_rng(0)
    pseudo = ["".join(rng.choice(list("0123456789abcdef"), 32)) for _ in range(20)]
    pd.DataFrame({"who": pseudo, "score": range(20)}).to_csv(folder / "b.csv", index=False)
    v = verdicts(folder)
    assert v["a.csv"].checks["identifiers"] == "fail"
    assert v["b.csv"].checks["identifiers"] == "fail"


def test_types_and_sizes(folder):
    (folder / "model.pkl").write_bytes(b"\x80\x04data")
    (folder / "big.csv").write_text("x\n" + "1\n" * 200)
    v = verdicts(folder, rules=RuleSet(max_file_bytes=100))
    assert v["model.pkl"].checks["file_type"] == "fail"
    assert v["big.csv"].checks["file_size"] == "fail"


def test_a_clean_aggregate_file_without_evidence_goes_to_review(folder):
    pd.DataFrame({"year": [2020, 2021], "rate": [0.31, 0.35]}).to_csv(folder / "rates.csv", index=False)
    (folder / "readme.md").write_text("# Findings\nRates rose.\n")
    v = verdicts(folder)
    assert v["rates.csv"].status == "review"
    assert v["readme.md"].status == "review"
