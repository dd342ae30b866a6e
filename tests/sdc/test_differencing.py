"""Differencing: the classic attacks are caught across a release and against the ledger."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from disclosure_control import gate
from disclosure_control.differencing import Ledger


def statuses(report):
    return {v.output_id: v for v in report.outputs}


def test_whole_cohort_and_cohort_minus_one_group(session, loader, people):
    # a small group (3 people in the court service) hidden inside big cells
    people.loc[people.index[[5, 17, 40]], "service"] = "court"
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)                      # whole cohort
    rest = df[df.service != "court"]
    acro.crosstab(rest.sex, rest.neighbourhood)                 # cohort minus the group
    assert acro.results["output_0"].status == "pass"             # each alone is safe
    assert acro.results["output_1"].status == "pass"
    report = gate.check_folder(acro.outputs_dir, loader)
    second = statuses(report)["output_1"]
    assert second.status == "fail"
    assert any("differencing" in r and "output_0" in r for r in second.reasons)


def test_two_overlapping_age_bands(session, loader, people):
    acro = session()
    df = acro.load("people")
    band_a = df[df.age <= 17]
    band_b = df[df.age <= 18]
    # make age 18 rare so that the difference is small
    people_18 = df.index[df.age == 18]
    loader.tables["people"].loc[people_18[4:], "age"] = 24
    df = acro.load("people")
    band_a, band_b = df[df.age <= 17], df[df.age <= 18]
    acro.crosstab(band_a.sex, band_a.service, margins=True)
    acro.crosstab(band_b.sex, band_b.service, margins=True)
    report = gate.check_folder(acro.outputs_dir, loader)
    assert statuses(report)["output_1"].status == "fail"
    assert "differencing" in statuses(report)["output_1"].checks


def test_total_beside_a_table_missing_one_row(session, loader, people):
    people.loc[people.index[:4], "neighbourhood"] = "harbour"
    acro = session()
    df = acro.load("people")
    acro.describe(df, "income")                                   # the total count of everyone
    rest = df[df.neighbourhood != "harbour"]
    acro.crosstab(rest.sex, rest.neighbourhood)                  # every row but the small one
    report = gate.check_folder(acro.outputs_dir, loader)
    table = statuses(report)["output_1"]
    assert table.status == "fail"
    assert any("whole table" in r for r in table.reasons)


def test_ledger_catches_the_attack_across_releases(tmp_path, session, loader, people):
    people.loc[people.index[[5, 17, 40]], "service"] = "court"
    ledger = Ledger(tmp_path / "ledger.sqlite")
    acro = session(outputs_dir=tmp_path / "release1")
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    first = gate.check_folder(tmp_path / "release1", loader, ledger=ledger, dataset="p1/v1")
    assert first.all_pass
    assert gate.record_release(first, ledger) > 0
    later = session(outputs_dir=tmp_path / "release2")
    df = later.load("people")
    rest = df[df.service != "court"]
    later.crosstab(rest.sex, rest.neighbourhood)
    second = gate.check_folder(tmp_path / "release2", loader, ledger=Ledger(tmp_path / "ledger.sqlite"), dataset="p1/v1")
    assert second.outputs[0].status == "fail"
    assert "differencing" in second.outputs[0].checks
    # another extract version is another population: no false alarm
    other = gate.check_folder(tmp_path / "release2", loader, ledger=ledger, dataset="p1/v2")
    assert other.all_pass


def test_unrelated_tables_do_not_alarm(session, loader):
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    acro.crosstab(df.service, df.sex)
    young = df[df.age < 12]
    acro.crosstab(young.sex, young.neighbourhood)
    report = gate.check_folder(acro.outputs_dir, loader)
    assert report.all_pass, [v.reasons for v in report.outputs]


def test_cohort_minus_one_group_is_caught_when_the_grouping_column_has_missing_values(session, loader, people):
    """Rows with a missing grouping value fall out of a table; the cells' rows must still be
    counted as rows of the whole table, or two outputs over different subsets never line up."""
    people.loc[people.index[:25], "sex"] = None
    acro = session()
    df = acro.load("people")
    acro.pivot_table(df, values="age", index="sex", aggfunc="count")
    acro.pivot_table(df.iloc[30:], values="age", index="sex", aggfunc="count")  # all but 5 people with a sex
    assert acro.results["output_0"].status == "pass" and acro.results["output_1"].status == "pass"
    second = statuses(gate.check_folder(acro.outputs_dir, loader))["output_1"]
    assert second.status == "fail"
    assert any("differencing" in r and "output_0" in r for r in second.reasons)
