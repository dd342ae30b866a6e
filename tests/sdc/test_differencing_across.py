"""Differencing across outputs: row, column and grand sums of published cells enter the comparison,
within one request and against everything released from the same extract version."""
from __future__ import annotations

import pytest

from disclosure_control import gate
from disclosure_control.differencing import Ledger


def _harbour(people):
    """A small 'school': 3 enrolled (the secret) and 20 not enrolled, so whole tables differ by 23."""
    people.loc[people.index[:23], "neighbourhood"] = "harbour"
    people.loc[people.index[:3], "enrolled"] = 1
    people.loc[people.index[3:23], "enrolled"] = 0


def _first_table(acro, variant):
    df = acro.load("people")
    if variant == "filtered":
        rest = df[df.neighbourhood != "harbour"]
        acro.crosstab(rest.neighbourhood, rest.enrolled)        # no margins, the school left out
    else:
        acro.crosstab(df.neighbourhood, df.enrolled)            # the school's 3 suppressed
    return df


def test_separate_margins_table_differences_a_missing_school(session, loader, people):
    """333 - 330 = 3: the column sum of one table against the margin of another.
    (With suppress=True the secondary suppression hides a second row of the column: no attack.)"""
    _harbour(people)
    acro = session()
    df = _first_table(acro, "filtered")
    acro.crosstab(df.enrolled, df.sex, margins=True)
    assert acro.results["output_0"].status == "pass", acro.results["output_0"].reasons
    report = gate.check_folder(acro.outputs_dir, loader)
    assert report.status == "fail"
    assert any("differencing" in v.checks for v in report.outputs)


def test_the_margins_table_released_first_is_caught_by_the_ledger(tmp_path, session, loader, people):
    _harbour(people)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    first = session(outputs_dir=tmp_path / "r1")
    df = first.load("people")
    first.crosstab(df.enrolled, df.sex, margins=True)
    released = gate.check_folder(tmp_path / "r1", loader, ledger=ledger, dataset="p@v1")
    assert released.all_pass
    gate.record_release(released, ledger)
    second = session(outputs_dir=tmp_path / "r2")
    _first_table(second, "filtered")
    report = gate.check_folder(tmp_path / "r2", loader, ledger=ledger, dataset="p@v1")
    assert report.outputs[0].status == "fail" and "differencing" in report.outputs[0].checks


def test_outputs_of_one_request_are_compared_with_each_other(session, loader, people):
    """What the airlock runs per file: check_file each, then cross_check the request's verdicts."""
    _harbour(people)
    acro = session()
    df = _first_table(acro, "filtered")
    acro.crosstab(df.enrolled, df.sex, margins=True)
    verdicts = [gate.check_file(acro.outputs_dir / f"output_{i}.csv", acro.outputs_dir / f"output_{i}.evidence.json",
                                loader, None, None, "p@v1") for i in (0, 1)]
    assert [v.status for v in verdicts] == ["pass", "pass"]
    assert gate.cross_check(verdicts, 10) >= 1
    assert verdicts[1].status == "fail"
