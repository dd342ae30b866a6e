"""The hand-written measure (``enclave.extract.measure``) equals pycanon's k-anonymity where both
apply (one row per person, no missing values: pycanon counts rows and drops missing keys)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from pycanon import anonymity

from enclave.conditions import AttackerModel
from enclave.extract import measure
from enclave.extract.attacker import Knowledge


def _frame(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"pseudonym": [f"x{i}" for i in range(n)], "birth_year": rng.choice([2001, 2002, 2003], n),
                         "sex": rng.choice(["F", "M"], n), "school_name": rng.choice(["a", "b", "c", "d"], n),
                         "grade": rng.choice(["1", "2", "3", "4", "5"], n)})


def test_profile_and_event_k_equal_pycanon():
    for seed in range(5):
        df = _frame(seed)
        tables = {"school_enrollment": df}
        knowledge = Knowledge(k=5, model=AttackerModel(events_known=1, family_edges_known=False),
                              person_columns=("birth_year", "sex"), event_columns={"school_enrollment": ("school_name", "grade")})
        risk = measure.assess(tables, knowledge)
        assert risk.profile_k == anonymity.k_anonymity(df, ["birth_year", "sex"])
        assert risk.event_k == anonymity.k_anonymity(df, ["birth_year", "sex", "school_name", "grade"])
        sizes = measure.event_class_sizes(tables, knowledge, measure.profiles(tables, knowledge.person_columns))
        expected = df.groupby(["birth_year", "sex", "school_name", "grade"])["pseudonym"].transform("size").to_numpy()
        assert (sizes["school_enrollment"] == expected).all()


def test_two_known_events_count_people_holding_both():
    """m = 2: a person is hidden among those holding both known events (and the profile)."""
    rows = pd.DataFrame({"pseudonym": ["p", "p", "q", "q", "r"], "school_name": ["a", "b", "a", "b", "a"], "sex": "F"})
    one = Knowledge(k=2, model=AttackerModel(events_known=1), person_columns=("sex",),
                    event_columns={"school_enrollment": ("school_name",)})
    two = Knowledge(k=2, model=AttackerModel(events_known=2), person_columns=("sex",),
                    event_columns={"school_enrollment": ("school_name",)})
    tables = {"school_enrollment": rows}
    prof = measure.profiles(tables, ("sex",))
    assert list(measure.event_class_sizes(tables, one, prof)["school_enrollment"]) == [3, 2, 3, 2, 3]
    assert list(measure.event_class_sizes(tables, two, prof)["school_enrollment"]) == [2, 2, 2, 2, 3]
    rows3 = pd.concat([rows, pd.DataFrame({"pseudonym": ["r"], "school_name": ["c"], "sex": "F"})], ignore_index=True)
    sizes = measure.event_class_sizes({"school_enrollment": rows3}, two, measure.profiles({"s": rows3}, ("sex",)))
    assert list(sizes["school_enrollment"]) == [2, 2, 2, 2, 1, 1]  # r's pair (a, c) is r's alone


def test_missing_is_a_value_of_its_own():
    df = pd.DataFrame({"pseudonym": list("abcdef"), "school_name": ["x", "x", "x", None, None, "x"], "sex": "F"})
    knowledge = Knowledge(k=3, model=AttackerModel(events_known=1, family_edges_known=False), person_columns=("sex",),
                          event_columns={"t": ("school_name",)})
    assert measure.assess({"t": df}, knowledge).event_k == 2
