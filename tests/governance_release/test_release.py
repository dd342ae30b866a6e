"""What the gate and the release add beyond the attack list: files without evidence, row-level
dumps, differencing between two requests released one after the other."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import select

from enclave.airlock import publishing, requests, reviews, views
from enclave.airlock.errors import Refused
from enclave.airlock.states import RequestState
from enclave.registry.base import session_scope


def _approve(rid):
    reviews.review("rev1", rid, "approve")
    assert reviews.review("rev2", rid, "approve") == RequestState.approved


def _acro(approved_project, folder):
    from disclosure_control.safe import ACRO

    from enclave.airlock.checking import extract_loader
    from enclave.settings import get_settings

    extract = (get_settings().extracts / approved_project / "current").resolve()
    manifest = json.loads((extract / "manifest.json").read_text())
    return ACRO(suppress=False, outputs_dir=folder, data_loader=extract_loader(extract, manifest),
                dataset=f"{approved_project}@{extract.name}", quiet=True), extract


def test_files_without_evidence_get_review_at_best_and_row_level_dumps_fail(approved_project, outputs):
    from enclave.settings import get_settings

    folder = outputs("alice")
    (folder / "notes.md").write_text("# Method\nCounts come from the school records of the cohort.\n")
    extract = get_settings().extracts / approved_project / "current"
    rows = pd.read_parquet(extract / "school_enrollment.parquet")
    rows.head(50).to_csv(folder / "rows.csv", index=False)  # pseudonyms and all: a row-level dump
    rid = requests.create("alice", approved_project, {"notes.md": "method note", "rows.csv": "some records"})
    requests.submit("alice", rid)
    verdicts = {f["name"]: f for f in views.describe("rev1", rid)["files"]}
    assert verdicts["notes.md"]["verdict"] == "review"
    assert verdicts["rows.csv"]["verdict"] == "fail"
    assert any("pseudonym" in r or "identifier" in r for r in verdicts["rows.csv"]["reasons"])


def test_differencing_between_two_requests_is_caught_at_release(approved_project, outputs):
    folder = outputs("alice")
    acro, _ = _acro(approved_project, folder)
    df = acro.load("school_enrollment")
    acro.pivot_table(df, values="days_attended", index="sex", aggfunc="count")  # output_0: everyone
    acro.pivot_table(df.iloc[4:], values="days_attended", index="sex", aggfunc="count")  # output_1: all but 4 rows
    first = requests.create("alice", approved_project, {"output_0.csv": "pupils by sex"})
    second = requests.create("alice", approved_project, {"output_1.csv": "pupils by sex, later entrants"})
    requests.submit("alice", first)
    requests.submit("alice", second)
    # Checked side by side, each passes alone.
    assert views.describe("rev1", first)["files"][0]["verdict"] == "pass"
    assert views.describe("rev1", second)["files"][0]["verdict"] == "pass"
    _approve(first)
    _approve(second)
    publishing.release("rev1", first)
    with pytest.raises(Refused) as refused:
        publishing.release("rev1", second)
    assert refused.value.rule == "no_differencing_at_release"
    assert "differ by" in refused.value.reason
    assert views.describe("rev1", second)["state"] == "approved"  # nothing moved


# DP outputs (charged by the DP service, released with its receipt): test_dp_release.py.


def test_the_gate_reads_only_tables_of_the_extract(approved_project):
    """A table name in the evidence is researcher-written text: it never becomes a path."""
    from enclave.airlock.checking import extract_loader
    from enclave.settings import get_settings

    extract = (get_settings().extracts / approved_project / "current").resolve()
    load = extract_loader(extract, json.loads((extract / "manifest.json").read_text()))
    assert len(load("school_enrollment")) > 0
    for name in ("../../research/persons", "persons", "manifest", "/etc/passwd"):
        with pytest.raises(KeyError):
            load(name)
