"""The same model file runs on Splink's Spark backend (pyspark local mode, Java 17)."""
from __future__ import annotations


import duckdb
import pytest

from linkage.link import load_identifiers, train_predict_cluster
from linkage.model import load_model
from linkage.quality import _truth_table, truth_metrics
from linkage.standardise import standardise_table

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
]


def test_spark_engine_runs_the_same_settings_and_links_well(tmp_path, vault_builder):
    vault, truth = vault_builder(tmp_path, people=120, sources=("births", "school"))
    con = duckdb.connect()
    load_identifiers(con, vault)
    standardise_table(con, "identifiers", "standardised")
    model = load_model()
    # Same Splink settings (comparisons, blocking rules); training with fewer Spark jobs on a
    # dataset this small: one u chunk, EM on every blocked pair (no sampling probe).
    model.training.u.num_chunks = 1
    for session in model.training.em:
        session.max_pairs = None
    outputs = train_predict_cluster(con, "standardised", model, engine="spark")

    duck_names = [c.output_column_name for c in model.settings_creator("duckdb").get_settings("duckdb").comparisons]
    assert [c["output_column_name"] for c in outputs.model_json["comparisons"]] == duck_names
    assert outputs.model_json["sql_dialect"] == "spark"
    _truth_table(con, truth, "identifiers")
    metrics = truth_metrics(con)
    assert metrics["f1"] >= 0.9, metrics
    assert con.execute("SELECT count(*) FROM clusters").fetchone()[0] == con.execute("SELECT count(*) FROM identifiers").fetchone()[0]
