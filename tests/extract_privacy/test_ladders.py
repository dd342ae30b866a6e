"""Generalisation ladders as data: each rung maps a value to a coarser one, missing stays missing."""
from __future__ import annotations

import pandas as pd

from enclave.extract.ladders import load_ladders


def _up(column: str, values: list, level: int = 0) -> list:
    series = pd.Series(values, dtype=object)
    ladder = load_ladders().for_column(column, series)
    return [None if pd.isna(v) else v for v in ladder[level].apply(series.astype("string"))]


def test_month_to_quarter_to_year():
    assert _up("removal_date", ["2019-02", "2019-12", None]) == ["2019-Q1", "2019-Q4", None]
    assert _up("removal_date", ["2019-02", "2019-12"], 1) == ["2019", "2019"]


def test_school_grade_facility_placement_rungs():
    assert _up("school_name", ["Canton Elementary School", "Hampden High School", "Unnamed"]) == [
        "elementary school", "high school", "other"]
    assert _up("grade", ["K", "4", "7", "11"]) == ["K-2", "3-5", "6-8", "9-12"]
    assert _up("birth_facility", ["Sinai Hospital", "Home or other"]) == ["hospital", "home or other"]
    assert _up("placement_type", ["kinship", "group_home"]) == ["family setting", "congregate care"]
    assert _up("age_at_event", [7, 13.0, None]) == ["5-9", "10-14", None]
    assert _up("school_year", ["2019-20", "2020-21"]) == ["2018-2020", "2020-2022"]


def test_a_column_without_a_ladder_has_none():
    assert load_ladders().for_column("days_attended", pd.Series([1, 2])) == []
