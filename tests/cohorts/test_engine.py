"""The cohort engine's semantics on hand-made tables: time order, gaps, windows, parents, bands.
Each case is a person built to sit just inside or just outside a rule."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from enclave.cohorts import CohortDefinition, CohortError, describe, evaluate, load_definition, load_definitions, summarise
from enclave.cohorts.evaluate import month_index, wilson


def _persons(*rows):
    return pd.DataFrame(rows, columns=["pseudonym", "birth_year", "sex", "race_ethnicity", "neighbourhood"])


CROSSOVER = load_definitions()["crossover_youth"]


def test_crossover_timing_both_orders_and_the_12_month_gap():
    persons = _persons(("a", 2005, "F", "x", "n1"), ("b", 2005, "M", "x", "n1"), ("c", 2005, "F", "y", "n2"),
                       ("d", 2005, "M", "y", "n2"), ("e", 2005, "F", "x", "n1"))
    foster = pd.DataFrame({
        "pseudonym": ["a", "b", "c", "e"],
        "event_date": ["2017-01", "2017-01", "2019-06", "2018-01"],
        "placement_start": ["2017-01", "2017-01", "2019-06", "2018-01"],
        "placement_end": ["2018-01", "2018-01", None, "2018-03"],
    })
    juvenile = pd.DataFrame({
        "pseudonym": ["a", "b", "c", "d", "e"],
        "referral_date": ["2019-01", "2019-02", "2018-02", "2020-01", "2018-03"],
        "event_date": ["2019-01", "2019-02", "2018-02", "2020-01", "2018-03"],
        "age_at_event": [13, 13, 12, 14, 9],  # e is 9: below the window, so not a referral that counts
    })
    cohort = evaluate(CROSSOVER, {"persons": persons, "foster_care": foster, "juvenile_justice": juvenile})
    flags = cohort.units.set_index("pseudonym")
    # a: referral 12 months after leaving care -> dual; b: 13 months after -> not dual, but foster first.
    assert flags.loc["a", "dually_involved"] == 1 and flags.loc["b", "dually_involved"] == 0
    assert flags.loc["b", "foster_care_first"] == 1 and flags.loc["b", "juvenile_services_first"] == 0
    # c: referral before the placement; e: the referral at 9 does not count at all; d was never in care.
    assert flags.loc["c", "juvenile_services_first"] == 1 and flags.loc["c", "foster_care_first"] == 0
    assert flags.loc["e", ["juvenile_services", "dually_involved"]].tolist() == [0, 0]
    assert "d" not in flags.index and cohort.counts["cohort"] == 4


def test_opportunity_youth_window_and_birth_year_bands():
    d = load_definitions()["opportunity_youth"]
    persons = _persons(("in_school", 2004, "F", "x", "n"), ("idle", 2004, "M", "x", "n"), ("old", 1990, "M", "x", "n"),
                       ("band", "2000-2019", "F", "x", "n"), ("worked_long_ago", 2003, "F", "x", "n"), ("left", 2003, "M", "x", "n"))
    school = pd.DataFrame({"pseudonym": ["in_school", "idle", "band", "left"], "entry_date": ["2024-09", "2022-09", "2024-09", "2019-09"],
                           "exit_date": [None, "2023-06", None, "2021-06"]})
    wages = pd.DataFrame({"pseudonym": ["old", "left"], "QUARTER_START": ["2024-10", "2023-10"]})
    workforce = pd.DataFrame({"pseudonym": [], "enrollment_date": [], "exit_date": [], "event_date": []})
    empty = pd.DataFrame({"pseudonym": [], "placement_start": [], "placement_end": [], "referral_date": [],
                          "EntryDate": [], "ExitDate": [], "event_date": []})
    cohort = evaluate(d, {"persons": persons, "school_enrollment": school, "wages": wages, "workforce": workforce,
                          "foster_care": empty, "juvenile_justice": empty, "shelter_stays": empty})
    flags = cohort.units.set_index("pseudonym")["disconnected"].to_dict()
    # Former students only ("old", "worked_long_ago" never enrolled); "left" last worked 14 months before.
    assert flags == {"in_school": 0, "idle": 1, "left": 1}
    assert cohort.counts["age_undecided_by_birth_year_band"] == 1  # "band" may be 5 or 24: not guessed


def test_young_parents_by_parent_age_at_birth_and_services_in_five_years():
    d = load_definitions()["young_parents"]
    persons = _persons(("kid1", 2016, "F", "x", "n"), ("kid2", 2016, "M", "x", "n"), ("mum1", 1993, "F", "x", "n"),
                       ("mum2", 1990, "F", "x", "n"))
    births = pd.DataFrame({"pseudonym": ["kid1", "kid2"], "event_date": ["2016-03", "2016-05"]})
    rel = pd.DataFrame({"pseudonym_from": ["mum1", "mum2"], "pseudonym_to": ["kid1", "kid2"], "relation": ["mother_of"] * 2})
    prek = pd.DataFrame({"pseudonym": ["kid1", "kid2"], "enrollment_date": ["2020-09", "2021-09"]})  # kid2 at 64 months
    visits = pd.DataFrame({"pseudonym": ["kid1", "kid2", "kid2"], "visit_date": ["2017-01", "2017-02", "2018-01"],
                           "visit_type": ["well_child", "dental", "vision"]})
    housing = pd.DataFrame({"pseudonym": [], "spell_start": [], "spell_end": [], "event_date": []})
    cohort = evaluate(d, {"persons": persons, "births": births, "relationships": rel, "prek": prek,
                          "health_visits": visits, "housing_assistance": housing})
    f = cohort.units.set_index("pseudonym")
    assert f.loc["kid1", "young_mother"] == 1 and f.loc["kid2", "young_mother"] == 0  # 23 vs 26 at the birth
    assert f.loc["kid1", "prek"] == 1 and f.loc["kid2", "prek"] == 0
    assert f.loc["kid2", ["dental_visit", "vision_visit", "well_child_visit"]].tolist() == [1, 1, 0]


def test_homeless_students_are_counted_per_school_and_year():
    d = load_definitions()["homeless_students"]
    persons = _persons(("s1", 2010, "F", "x", "n"), ("s2", 2010, "M", "x", "n"))
    school = pd.DataFrame({
        "pseudonym": ["s1", "s1", "s1", "s2"], "entry_date": ["2019-09", "2020-01", "2020-09", "2019-09"],
        "school_name": ["A", "A", "B", "A"], "school_year": ["2019-20", "2019-20", "2020-21", "2019-20"],
        "homeless_flag": [False, True, False, pd.NA],
    })
    empty = pd.DataFrame({"pseudonym": [], "placement_start": [], "placement_end": [], "EntryDate": [], "ExitDate": []})
    cohort = evaluate(d, {"persons": persons, "school_enrollment": school, "foster_care": empty, "shelter_stays": empty})
    units = cohort.units.set_index(["pseudonym", "school_name", "school_year"])["homeless"].to_dict()
    assert units == {("s1", "A", "2019-20"): 1, ("s1", "B", "2020-21"): 0, ("s2", "A", "2019-20"): 0}
    table = summarise(cohort, "homeless", ["school_name"])
    assert table.set_index("school_name")[["n", "k"]].to_dict("index") == {"A": {"n": 2, "k": 1}, "B": {"n": 1, "k": 0}}


def test_month_parsing_counts_coarse_dates_and_wilson_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    months, coarse = month_index(pd.Series(["2020-01", "2020-Q3", "2021", None, "bad"]))
    assert months.tolist()[:3] == [2020 * 12, 2020 * 12 + 6, 2021 * 12] and months.isna().tolist()[3:] == [True, True]
    assert coarse == 2
    for k, n in ((0, 10), (3, 40), (97, 100), (500, 1000)):
        assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-9)


def test_definitions_are_data_with_clear_errors(tmp_path):
    for d in load_definitions().values():
        text = describe(d)
        assert d.question in text and "Compared by" in text
    raw = yaml.safe_load((load_definitions.__globals__["DEFAULT_DIR"] / "crossover_youth.yaml").read_text())
    copy = tmp_path / "mine.yaml"
    raw["measures"]["dually_involved"][0]["during_or_within_months_after"]["event"] = "placemnt"
    copy.write_text(yaml.safe_dump(raw))
    with pytest.raises(CohortError, match=r"mine.yaml: field .*unknown event 'placemnt'"):
        load_definition(copy)
    raw = yaml.safe_load((load_definitions.__globals__["DEFAULT_DIR"] / "crossover_youth.yaml").read_text())
    raw["reference_month"] = "2024-13"
    copy.write_text(yaml.safe_dump(raw))
    with pytest.raises(CohortError, match="reference_month"):
        load_definition(copy)
    with pytest.raises(CohortError, match="no table"):
        evaluate(CROSSOVER, {"persons": _persons()})
    assert isinstance(CROSSOVER, CohortDefinition)
