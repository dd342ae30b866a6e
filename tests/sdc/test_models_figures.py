"""Models, histograms, summaries and survival tables: planted risks caught, clean ones pass."""
from __future__ import annotations

import numpy as np
import pandas as pd

from disclosure_control import gate


def test_clean_models_pass_and_only_coefficients_leave(session, loader):
    acro = session()
    df = acro.load("people")
    result = acro.ols(df.income, df[["age", "enrolled"]].assign(const=1.0))
    acro.logit(df.enrolled, df[["age"]].assign(const=1.0))
    acro.probit(df.enrolled, df[["age"]].assign(const=1.0))
    acro.olsr("income ~ age + enrolled", data=df)
    assert all(v.status == "pass" for v in acro.results.values()), [v.reasons for v in acro.results.values()]
    published = pd.read_csv(acro.outputs_dir / "output_0.csv", index_col=0)
    assert list(published.index) == ["const", "age", "enrolled"]
    assert len(published) == 3 and "resid" not in " ".join(published.columns)
    assert np.allclose(published["coef"], result.params.to_numpy())
    assert gate.check_folder(acro.outputs_dir, loader).all_pass


def test_low_dof_fails(session):
    acro = session()
    df = acro.load("people")
    few = df.head(12)
    acro.ols(few.income, few[["age", "enrolled", "sex"]].assign(sex=(few.sex == "F").astype(float), const=1.0))
    v = acro.results["output_0"]
    assert v.status == "fail" and v.checks["dof"] == "fail"


def test_sparse_level_is_flagged(session, people):
    people["rare"] = 0.0
    people.loc[people.index[:4], "rare"] = 1.0
    acro = session()
    df = acro.load("people")
    acro.ols(df.income, df[["age", "rare"]].assign(const=1.0))
    assert acro.results["output_0"].checks["levels"] == "fail"


def test_histogram_checks_its_table(session, people):
    acro = session()
    df = acro.load("people")
    acro.hist(df, "income", bins=10)                                  # edges from the data
    acro.hist(df, "income", bins=[0, 1000, 2000, 3000, 4000, 100000])   # explicit, top-coded edges
    people.loc[people.index[:2], "income"] = 250000.0
    df = acro.load("people")
    acro.hist(df, "income", bins=[0, 1000, 2000, 3000, 4000, 100000, 300000])   # a bin of two people
    first, second, third = (acro.results[f"output_{i}"] for i in range(3))
    assert first.status == "fail" and first.checks["extreme_bins"] == "fail"
    assert second.status == "pass", second.reasons
    assert third.status == "fail" and third.checks["primary"] == "fail"
    assert (acro.outputs_dir / "output_1.png").read_bytes()[:4] == b"\x89PNG"
    assert (acro.outputs_dir / "output_1.csv").exists()   # the figure's table travels with it


def test_suppressed_histogram_passes(session, people):
    people.loc[people.index[:2], "income"] = 250000.0
    acro = session(suppress=True)
    df = acro.load("people")
    table = acro.hist(df, "income", bins=[0, 1000, 2000, 3000, 4000, 100000, 300000])
    assert np.isnan(table["count"].iloc[-1])
    assert acro.results["output_0"].status == "pass"


def test_describe_min_max_and_suppression(session):
    acro = session()
    df = acro.load("people")
    acro.describe(df, "income")
    assert acro.results["output_0"].status == "fail"
    assert any(c.cell["statistic"] == "max" for c in acro.results["output_0"].cells)
    safe = session(suppress=True)
    df = safe.load("people")
    summary = safe.describe(df, "income")
    assert np.isnan(summary.loc["max"]).all() and not np.isnan(summary.loc["mean"]).any()
    assert safe.results["output_1"].status == "pass"


def test_survival_table(session):
    acro = session()
    df = acro.load("people")
    acro.surv_func(df.age, df.enrolled, "table")
    assert acro.results["output_0"].status == "pass"
    small = df.head(40)
    acro.surv_func(small.age, small.enrolled, "table")
    assert acro.results["output_1"].status == "fail"
