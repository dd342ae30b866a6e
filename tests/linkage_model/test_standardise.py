"""Standardisation rules: each rule on the value that exercises it, through the real DuckDB SQL."""
from __future__ import annotations

import pandas as pd
import pytest
from doublemetaphone import doublemetaphone

from linkage.standardise import STANDARDISED_COLUMNS, load_nicknames, standardise_frame

BLANK = {"middle_name": None, "dob": None, "sex": None, "ssn": None, "street": None, "zip": None}


def one(**fields) -> dict:
    row = {"record_key": "s:1", "source": "s", "first_name": "Ann", "last_name": "Lee", **BLANK, **fields}
    return standardise_frame(pd.DataFrame([row])).iloc[0].to_dict()


def many(field: str, values: list, output: str | None = None) -> list:
    rows = [{"record_key": f"s:{i:03d}", "source": "s", "first_name": "Ann", "last_name": "Lee", **BLANK, field: v}
            for i, v in enumerate(values)]
    out = standardise_frame(pd.DataFrame(rows))
    return [None if pd.isna(v) else v for v in out[output or field]]


def test_output_columns_are_the_declared_ones():
    assert tuple(standardise_frame(pd.DataFrame([{"record_key": "s:1", "source": "s", "first_name": "A",
                                                   "last_name": "B", **BLANK}])).columns) == STANDARDISED_COLUMNS


def test_names_lose_case_accents_punctuation_titles_and_suffixes():
    row = one(first_name="  JOSÉ ", last_name="O'Brien-Smith, Jr.", middle_name="Q.")
    assert row["first_name"] == "jose"
    assert row["last_name"] == "obrien smith"
    assert row["middle_name"] == "q"
    assert one(first_name="Dr. María")["first_name"] == "maria"


@pytest.mark.parametrize("placeholder", ["UNKNOWN", "Baby Girl", "babyboy", "FNU", "jr"])
def test_placeholder_names_become_missing(placeholder):
    assert one(first_name=placeholder)["first_name"] is None


def test_nicknames_map_to_the_formal_name_and_names_get_double_metaphone_keys():
    nicknames = load_nicknames()
    assert nicknames["bill"] == "william"
    row = one(first_name="Bill", last_name="Schmidt")
    assert row["first_name_canonical"] == "william"
    assert one(first_name="William")["first_name_canonical"] == "william"
    # Keys are the library's own (doublemetaphone C++), primary first.
    primary, secondary = doublemetaphone("schmidt")
    assert list(row["last_name_dm"]) == [k for k in dict.fromkeys((primary, secondary)) if k]
    assert row["last_name_dm1"] == primary
    assert one(last_name="Smith")["last_name_dm1"] == doublemetaphone("smith")[0]


def test_a_nickname_file_with_a_bad_row_is_refused_naming_file_and_row(tmp_path):
    bad = tmp_path / "nick.csv"
    bad.write_text("name,nickname\nWilliam,Bill\nRobert,\n")
    with pytest.raises(ValueError, match=r"nick\.csv: row 3"):
        load_nicknames(bad)


def test_dates_parse_known_layouts_and_drop_impossible_or_placeholder_dates():
    assert many("dob", ["2001-03-04", "03/04/2001", "20010304", "2001-02-30", "1900-01-01", "2999-01-01", "soon", None]) == [
        "2001-03-04", "2001-03-04", "2001-03-04", None, None, None, None, None]
    assert one(dob="2001-03-04")["birth_year"] == "2001"


def test_ssn_validity_rules():
    values = ["267-76-4980",  # valid
              "000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456",  # never-issued areas
              "267-00-4980", "267-76-0000",  # group 00, serial 0000
              "123-45-6789", "078-05-1120", "111-11-1111",  # known placeholders
              "26776498", "4980"]  # too short; last four only
    assert many("ssn", values) == ["267764980"] + [None] * 11
    assert many("ssn", values, output="ssn_last4") == ["4980", None, None, None, None, None, None, None, None, None, None, "4980"]


def test_streets_are_abbreviated_and_lose_the_unit_and_zip_keeps_five_digits():
    row = one(street="123 North Main Street, Apt. 4", zip="60614-1234")
    assert row["street"] == "123 n main st"
    assert (row["street_number"], row["street_name"]) == ("123", "n main st")
    assert one(street="45B W. Elm Avenue #2")["street"] == "45b w elm ave"
    assert one(street="Homeless")["street"] is None
    assert many("zip", ["60614", "60614-1234", "6061", "00000", "abc"]) == ["60614", "60614", None, None, None]


def test_sex_codes():
    assert many("sex", ["M", "female", "2", "U", "x", None]) == ["M", "F", "F", None, None, None]


def test_missing_identifier_column_is_named():
    frame = pd.DataFrame([{"record_key": "s:1", "source": "s", "first_name": "A", "last_name": "B"}])
    with pytest.raises(ValueError, match="middle_name"):
        standardise_frame(frame)
