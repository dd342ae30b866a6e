"""Evidence is a claim the gate checks: row ids survive pandas operations, derived values are
recomputed from the extract, and editing the evidence never relaxes a verdict."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from disclosure_control import gate


def by_id(report):
    return {v.output_id: v for v in report.outputs}


def _with_court_group(people):
    people.loc[people.index[[5, 17, 40]], "service"] = "court"   # 3 people hidden in big cells
    people.loc[people.index[[5, 17, 40]], "age"] = 5


RESHAPES = {
    "reset_index": lambda df: df[df.service != "court"].reset_index(drop=True),
    "sort_then_reset": lambda df: df[df.service != "court"].sort_values(["age", "income"]).reset_index(drop=True),
    "concat": lambda df: pd.concat([df[df.sex == "F"], df[(df.sex == "M") & (df.service != "court")]]).reset_index(drop=True),
    "merge": lambda df: df[df.service != "court"].merge(
        pd.DataFrame({"neighbourhood": ["north", "south", "east", "west"], "zone": [1, 1, 2, 2]}), on="neighbourhood"),
}


@pytest.mark.parametrize("reshape", sorted(RESHAPES))
def test_differencing_survives_reindexing(reshape, session, loader, people):
    """28 - 25 = 3: a second table over everyone but a small group, the frame re-indexed first."""
    _with_court_group(people)
    acro = session()
    df = acro.load("people")
    young = df[df.age < 20]            # the released table is itself a subset, spread over the table
    acro.crosstab(young.sex, young.neighbourhood)
    rest = RESHAPES[reshape](young)
    acro.crosstab(rest.sex, rest.neighbourhood)
    second = by_id(gate.check_folder(acro.outputs_dir, loader))["output_1"]
    assert second.status == "fail", second.reasons
    assert any("differencing" in r for r in second.reasons)


def test_differencing_survives_reindexing_through_pivot_table(session, loader, people):
    _with_court_group(people)
    acro = session()
    df = acro.load("people")
    young = df[df.age < 20]
    acro.pivot_table(young, index="sex", columns="neighbourhood", values="income", aggfunc="count")
    rest = young[young.service != "court"].reset_index(drop=True)
    acro.pivot_table(rest, index="sex", columns="neighbourhood", values="income", aggfunc="count")
    second = by_id(gate.check_folder(acro.outputs_dir, loader))["output_1"]
    assert second.status == "fail"


def test_one_persons_value_as_a_derived_variable_fails(session, loader, people):
    """sub["value"] = <one person's exact value>; its mean is that value, whatever the dominance rule says."""
    acro = session()
    df = acro.load("people")
    sub = df[df.age > 3].copy()
    sub["value"] = float(people.income.iloc[7])
    acro.pivot_table(sub, index="sex", values="value", aggfunc="mean")
    verdict = acro.results["output_0"]
    assert verdict.status == "fail"
    assert "derived" in verdict.checks
    assert by_id(gate.check_folder(acro.outputs_dir, loader))["output_0"].status == "fail"


def test_derived_variables_are_recorded_as_expressions_and_recomputed(session, loader):
    acro = session()
    df = acro.load("people")
    df["band"] = pd.cut(df.age, [-1, 9, 17, 24])
    df["girl"] = df.sex == "F"
    df["income_k"] = df.income / 1000
    acro.crosstab(df.band, df.girl)
    acro.pivot_table(df, index="sex", values="income_k", aggfunc="mean")
    for output_id in ("output_0", "output_1"):
        evidence = json.loads((acro.outputs_dir / f"{output_id}.evidence.json").read_text())
        for var in evidence["index"] + evidence["columns"] + ([evidence["values"]] if evidence["values"] else []):
            assert var["codes"] is None and var["numbers"] is None, var   # nothing researcher-supplied
            assert var["column"] or var["expression"]
    report = gate.check_folder(acro.outputs_dir, loader)
    assert report.all_pass, [v.reasons for v in report.outputs]
    # booleans stay True/False in the published table
    assert "True" in (acro.outputs_dir / "output_0.csv").read_text()


def _failing_table(session, people):
    people.loc[people.index[:3], "neighbourhood"] = "harbour"      # a cell of 3 or fewer
    acro = session()
    df = acro.load("people")
    acro.crosstab(df.sex, df.neighbourhood)
    assert acro.results["output_0"].status == "fail"
    return acro.outputs_dir


def _edit(folder, change):
    path = folder / "output_0.evidence.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


EDITS = {
    "kind_dp": lambda e: e.update(kind="dp"),
    "kind_figure": lambda e: e.update(kind="figure"),
    "kind_and_method_figure": lambda e: e.update(kind="figure", method="plot"),
    "kind_and_method_dp": lambda e: e.update(kind="dp", method="dp_count"),
    "table_null": lambda e: e.update(table=None),
    "rows_null": lambda e: e.update(rows=None),
    "row_count": lambda e: e["rows"].update(n_table_rows=e["rows"]["n_table_rows"] + 1),
    "unknown_table": lambda e: e.update(table="nothing"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_evidence_never_relaxes_a_fail(edit, session, loader, people):
    folder = _failing_table(session, people)
    _edit(folder, EDITS[edit])
    verdict = by_id(gate.check_folder(folder, loader))["output_0"]
    assert verdict.status == "fail", (edit, verdict.reasons)


def test_evidence_that_is_not_json_evidence_fails(session, loader, people):
    folder = _failing_table(session, people)
    (folder / "output_0.evidence.json").write_text("{not json")
    report = gate.check_folder(folder, loader)
    assert {v.output: v.status for v in report.outputs}["output_0.csv"] == "fail"
