"""Tables through the researcher API and the gate: planted risks are caught, clean tables pass."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from disclosure_control import gate
from disclosure_control.evidence import Evidence
from disclosure_control.rules import RuleBook, RuleSet


def verdict_of(acro, output_id):
    return acro.results[output_id]


def test_clean_table_passes(session, loader):
    acro = session()
    df = acro.load("people")
    table = acro.crosstab(df.sex, df.neighbourhood, margins=True)
    v = verdict_of(acro, "output_0")
    assert v.status == "pass", v.reasons
    assert table.loc["All", "All"] == len(df)
    again = gate.check_folder(acro.outputs_dir, loader)
    assert again.all_pass


def test_small_cell_fails_and_names_the_cell(session, people, loader):
    people.loc[people.index[:3], "neighbourhood"] = "harbour"   # three people in a new place
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    v = verdict_of(acro, "output_0")
    assert v.status == "fail"
    cells = [c.cell for c in v.cells]
    assert any(c.get("neighbourhood") == "harbour" for c in cells)
    assert any("threshold" in r for c in v.cells for r in c.reasons)


def test_zero_cell_fails(session, people):
    people.loc[(people.sex == "M") & (people.service == "school"), "service"] = "health"
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.service)
    v = verdict_of(acro, "output_0")
    assert v.status == "fail"
    assert any("zero" in r for c in v.cells for r in c.reasons)
    # the rule is data: with zeros declared safe the same table passes
    acro2 = session(rules=RuleSet(zeros_disclosive=False))
    df2 = acro2.load("people")
    acro2.crosstab(df2.sex, df2.service)
    assert acro2.results["output_1"].status == "pass"


def test_dominance_fails(session, people):
    people.loc[people.index[0], "income"] = 50_000_000.0  # one household dominates its cell
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood, values=df.income, aggfunc="sum")
    v = verdict_of(acro, "output_0")
    assert v.status == "fail"
    assert any("dominance" in r for c in v.cells for r in c.reasons)


def test_p_percent_fails_without_nk(session, people):
    # two large contributors hold 89 % (passes (2, 0.9)), the largest is 15x the rest: p% catches it
    mask = (people.sex == "F") & (people.neighbourhood == "west")
    idx = people.index[mask]
    people.loc[idx, "income"] = 1.0
    rest = len(idx) - 2
    people.loc[idx[0], "income"] = 15.0 * rest * 1.0 + 0.0
    people.loc[idx[1], "income"] = 0.0 + 15.0 * rest * 0.5
    acro = session(rules=RuleSet(nk_rules=((3, 0.99),)))
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood, values=df.income, aggfunc="sum")
    v = verdict_of(acro, "output_0")
    assert v.status == "fail"
    reasons = [r for c in v.cells for r in c.reasons]
    assert any("p% rule" in r for r in reasons)
    assert not any("dominance" in r for r in reasons)


def test_negative_values_count_by_absolute_value(session, people):
    idx = people.index[(people.sex == "M") & (people.neighbourhood == "east")]
    people.loc[idx[0], "income"] = -10_000_000.0
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood, values=df.income, aggfunc="sum")
    assert any("dominance" in r for c in acro.results["output_0"].cells for r in c.reasons)


def test_max_fails_unless_coded(session):
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood, values=df.income, aggfunc="max")
    assert acro.results["output_0"].status == "fail"


def test_suppress_mode_makes_the_table_pass(session, people, loader):
    people.loc[people.index[:3], "neighbourhood"] = "harbour"
    acro = session(suppress=True)
    df = acro.load("people")
    table = acro.crosstab(df.sex, df.neighbourhood, margins=True)
    v = verdict_of(acro, "output_0")
    assert v.status == "pass", v.reasons
    assert table["harbour"].isna().any()
    assert v.checks["secondary"] == "pass"
    # a blank cell is not a hole: its evidence says it is suppressed, the file agrees
    assert gate.check_folder(acro.outputs_dir, loader).all_pass


def test_tampered_output_fails(session, loader):
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    path = acro.outputs_dir / "output_0.csv"
    path.write_text(path.read_text().replace(",", ",1", 1))
    v = gate.check_file(path, acro.outputs_dir / "output_0.evidence.json", loader)
    assert v.status == "fail" and "integrity" in v.checks


def test_evidence_that_does_not_reproduce_fails(session, loader):
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    path = acro.outputs_dir / "output_0.csv"
    # forge both the file and its checksum: the recomputation still disagrees
    text = path.read_text().splitlines()
    cells = text[1].split(",")
    cells[1] = str(int(cells[1].split(".")[0]) + 1)
    text[1] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    ev = Evidence.read(acro.outputs_dir / "output_0.evidence.json")
    ev.output_sha256 = ""
    ev.options["sha256"] = {}
    v = gate.check_file(path, ev, loader)
    assert v.status == "fail" and v.checks["reproducible"] == "fail"


def test_output_without_evidence_is_at_best_review(tmp_path, loader):
    out = tmp_path / "out"
    out.mkdir()
    pd.DataFrame({"group": ["a", "b"], "n": [120, 340]}).to_csv(out / "table.csv", index=False)
    pd.DataFrame({"group": ["a", "b"], "n": [3, 340]}).to_csv(out / "small.csv", index=False)
    report = gate.check_folder(out, loader)
    by_name = {v.output: v for v in report.outputs}
    assert by_name["table.csv"].status == "review"
    assert by_name["small.csv"].status == "fail"


def test_derived_variable_is_recounted_from_records(session, loader):
    acro = session()
    df = acro.load("people")
    older = df[df.age >= 5]
    band = pd.cut(older.age, [4, 12, 18, 25]).rename("age_band")
    acro.crosstab(older.sex, band)
    assert acro.results["output_0"].status == "pass"
    assert gate.check_folder(acro.outputs_dir, loader).all_pass


def test_redact_then_round(session, people):
    people.loc[people.index[:3], "neighbourhood"] = "harbour"
    acro = session(rounding="redact_round")
    df = acro.load("people")
    table = acro.crosstab(df.sex, df.neighbourhood, margins=True)
    inner = table.drop(index="All", columns="All")
    assert inner["harbour"].isna().all()
    shown = inner.to_numpy()[~np.isnan(inner.to_numpy())]
    assert (shown % 5 == 0).all()
    # totals come from the rounded cells, never from the true totals
    assert table.loc["F", "All"] == inner.loc["F"].sum()
    assert acro.results["output_0"].status == "pass", acro.results["output_0"].reasons


def test_agency_rules_strictest_apply(tmp_path, session, people):
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults: {threshold: 10}\nagencies:\n  child_welfare: {threshold: 1000}\n  schools: {threshold: 5}\n")
    book = RuleBook(**__import__("yaml").safe_load(rules.read_text()))
    acro = session(rules=book, agencies=["schools", "child_welfare"])
    assert acro.rules.threshold == 1000
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    assert acro.results["output_0"].status == "fail"
    loose = session(rules=book, agencies=["schools"])
    assert loose.rules.threshold == 10   # an agency can tighten, never loosen


def test_pivot_table_one_column(session, loader):
    acro = session()
    df = acro.load("people")
    table = acro.pivot_table(df, values="income", index="neighbourhood", aggfunc="mean")
    assert list(table.columns) == ["income"]
    assert table.loc["north", "income"] == pytest.approx(df[df.neighbourhood == "north"].income.mean())
    assert acro.results["output_0"].status == "pass", acro.results["output_0"].reasons
    assert gate.check_folder(acro.outputs_dir, loader).all_pass


def test_strictest_rules_field_by_field():
    a = RuleSet(threshold=10, nk_rules=((2, 0.9),), allowed_extensions=("csv", "png"), max_rows=5000)
    b = RuleSet(threshold=20, nk_rules=((1, 0.5),), allowed_extensions=("csv",), rounding="redact_round", max_rows=100)
    s = RuleSet.strictest(a, b)
    assert s.threshold == 20 and s.max_rows == 100 and s.rounding == "redact_round"
    assert set(s.nk_rules) == {(2, 0.9), (1, 0.5)} and s.allowed_extensions == ("csv",)
