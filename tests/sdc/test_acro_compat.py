"""ACRO compatibility: lists of aggfuncs and label types, compared with ACRO 1.0.2 itself."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest



@pytest.fixture
def real_acro(tmp_path, monkeypatch):
    from acro import ACRO as RealACRO

    monkeypatch.chdir(tmp_path)
    logging.disable(logging.CRITICAL)
    yield RealACRO(suppress=False)
    logging.disable(logging.NOTSET)


def test_pivot_table_with_a_list_of_aggfuncs_matches_acro(session, people, real_acro):
    acro = session()
    df = acro.load("people")
    ours = acro.pivot_table(df, index="neighbourhood", values="income", aggfunc=["mean", "count"])
    theirs = real_acro.pivot_table(people, index="neighbourhood", values="income", aggfunc=["mean", "count"])
    assert list(ours.columns) == list(theirs.columns)
    assert list(ours.index) == list(theirs.index)
    np.testing.assert_allclose(ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float))
    assert {v.status for v in acro.results.values()} == {"pass"}


def test_crosstab_with_a_list_of_aggfuncs_matches_acro(session, people, real_acro):
    acro = session()
    df = acro.load("people")
    ours = acro.crosstab(df.sex, df.service, values=df.income, aggfunc=["mean", "sum"])
    theirs = real_acro.crosstab(people.sex, people.service, values=people.income, aggfunc=["mean", "sum"])
    assert list(ours.columns) == list(theirs.columns)
    np.testing.assert_allclose(ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float))


def test_boolean_labels_stay_booleans_like_acro(session, people, real_acro):
    people["enrolled"] = people["enrolled"].astype(bool)
    acro = session()
    df = acro.load("people")
    df["older"] = df.age > 12                                   # a derived boolean
    ours = acro.crosstab(df.enrolled, df.older)
    theirs = real_acro.crosstab(people.enrolled, people.age > 12)
    assert list(ours.index) == list(theirs.index) == [False, True]
    assert list(ours.columns) == list(theirs.columns) == [False, True]
    assert all(isinstance(v, (bool, np.bool_)) for v in ours.index)
    np.testing.assert_allclose(ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float))
    assert acro.results["output_0"].status == "pass"
