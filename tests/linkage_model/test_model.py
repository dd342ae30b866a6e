"""The declarative model file: it loads, builds for both engines, and bad files are refused."""
from __future__ import annotations

import pytest
import yaml

from linkage.model import DEFAULT_MODEL, load_model
from linkage.standardise import STANDARDISED_COLUMNS


def test_default_model_builds_for_duckdb_and_spark_and_uses_standardised_columns():
    model = load_model()
    assert model.splink["link_type"] == "link_and_dedupe"
    assert model.columns_used() <= set(STANDARDISED_COLUMNS)
    duck = model.settings_creator("duckdb").get_settings("duckdb")
    spark = model.settings_creator("spark").get_settings("spark")
    names = [c.output_column_name for c in duck.comparisons]
    assert names == [c.output_column_name for c in spark.comparisons]
    assert {"first_name", "surname_residence", "dob", "ssn", "sex"} <= set(names)


def test_custom_sql_gets_each_engines_fuzzy_function():
    model = load_model()

    def swap_sql(dialect: str) -> str:
        settings = model.settings_creator(dialect).get_settings(dialect)
        first = next(c for c in settings.comparisons if c.output_column_name == "first_name")
        return next(level.sql_condition for level in first.comparison_levels if "swapped" in level.label_for_charts)

    assert "jaro_winkler_similarity" in swap_sql("duckdb")
    assert "jaro_winkler(" in swap_sql("spark") and "similarity" not in swap_sql("spark")


def test_term_frequency_adjustment_is_off_for_ssn():
    """An SSN repeats once per record of the same person: its frequency is no evidence of chance agreement."""
    settings = load_model().settings_creator().get_settings("duckdb")
    ssn = next(c for c in settings.comparisons if c.output_column_name == "ssn")
    assert not any(level._tf_adjustment_input_column for level in ssn.comparison_levels)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["comparisons"][0]["levels"].append({"level": "NoSuchLevel"}), r"comparisons\[0\].*NoSuchLevel"),
        (lambda m: m["blocking_rules"].append({"block_on": ["dob"], "sql": "l.a = r.a"}), "exactly one of"),
        (lambda m: m["training"].pop("em"), "em"),
        (lambda m: m["comparisons"].append({"comparison": "ExactMatch", "args": {"nope": 1}}), r"comparisons\[\d+\]: bad arguments"),
    ],
)
def test_bad_model_files_are_refused_naming_the_file_and_entry(tmp_path, change, message):
    raw = yaml.safe_load(DEFAULT_MODEL.read_text())
    change(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message) as info:
        load_model(path)
    assert "broken.yaml" in str(info.value)
