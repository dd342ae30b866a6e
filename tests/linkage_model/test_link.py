"""A real DuckDB linkage run over a small synthetic vault: accuracy, artefacts, bad input."""
from __future__ import annotations

import base64
import json
import re

import duckdb
import pandas as pd
import pytest
from splink import DuckDBAPI
from splink.clustering import cluster_pairwise_predictions_at_threshold

from linkage import link
from linkage.link import LinkageInputError, cluster_edges, run_linkage


def test_small_synthetic_vault_links_with_high_pairwise_f1(linked_run):
    run, vault, _truth = linked_run
    truth = run.quality["ground_truth"]
    assert truth["ground_truth_rows_matched"] == truth["ground_truth_rows"] == run.quality["records"]
    assert truth["precision"] >= 0.97
    assert truth["recall"] >= 0.95
    assert truth["f1"] >= 0.97
    assert truth["blocking_recall"] >= 0.97
    # Every record is in exactly one cluster; the frame handed to person-key assignment says so.
    assert list(run.clusters.columns) == ["record_key", "cluster_id"]
    assert run.clusters["record_key"].is_unique and len(run.clusters) == run.quality["records"]
    assert run.run_dir.parent == vault / "linkage" / "runs"
    assert {p.name for p in run.run_dir.iterdir()} == {"clusters.parquet", "edges.parquet", "model.json", "quality.json", "report.html"}
    assert not [p for p in run.run_dir.parent.iterdir() if p.name.startswith(".")]


def test_quality_estimates_are_plausible_and_per_source_rates_present(linked_run):
    run, _vault, _truth = linked_run
    q = run.quality
    assert 0 <= q["estimated"]["estimated_false_match_rate"] < 0.05
    assert 0 <= q["estimated"]["estimated_missed_match_rate"] < 0.2
    assert set(q["sources"]["per_source"]) == {"births", "school", "housing"}
    for a, row in q["sources"]["pair_rates"].items():
        assert set(row) == {"births", "school", "housing"}
        assert all(0 <= v <= 1 for v in row.values())
    assert sum(s["size"] * s["clusters"] for s in q["cluster_sizes"]) == q["records"]
    assert {p["comparison"] for p in q["parameters"]} >= {"first_name", "surname_residence", "dob", "ssn"}


def test_report_has_its_charts_and_no_identifier_value(linked_run):
    run, vault, _truth = linked_run
    html = (run.run_dir / "report.html").read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 4
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    for title in ("Match-weight histogram", "m and u probabilities", "Cluster-size distribution", "pair of sources",
                  "estimated false-match rate", "pairwise F1", "blocking recall"):
        assert title in html
    identifiers = pd.read_parquet(vault / "identifiers")
    values = set()
    for column in ("first_name", "last_name", "ssn", "street", "dob"):
        values |= {str(v).lower() for v in identifiers[column].dropna() if len(str(v)) >= 6}
    text = (html + (run.run_dir / "quality.json").read_text()).lower()
    leaked = sorted(v for v in values if v in text)
    assert not leaked, f"{len(leaked)} identifier values in the report"


def test_scipy_clustering_equals_splinks_connected_components(linked_run):
    run, _vault, _truth = linked_run
    edges = pd.read_parquet(run.run_dir / "edges.parquet")
    assert set(edges["source_l"]) | set(edges["source_r"]) <= {"births", "school", "housing"}
    nodes = pd.read_parquet(run.run_dir / "clusters.parquet")[["record_key", "source"]]
    con = duckdb.connect()
    con.register("edges", edges)
    con.register("nodes", nodes)
    cluster_edges(con, "nodes", 0.5)
    ours = con.execute("SELECT record_key, cluster_id FROM clusters").df()
    theirs = cluster_pairwise_predictions_at_threshold(
        nodes.rename(columns={"record_key": "unique_id"}),
        edges.rename(columns={"record_key_l": "unique_id_l", "record_key_r": "unique_id_r"}),
        DuckDBAPI(), node_id_column_name="unique_id", threshold_match_probability=0.5,
    ).as_pandas_dataframe()

    def partition(frame: pd.DataFrame, key: str) -> set[frozenset]:
        return {frozenset(g) for g in frame.groupby("cluster_id")[key].apply(list)}

    assert partition(ours, "record_key") == partition(theirs, "unique_id")
    assert len(partition(ours, "record_key")) < len(nodes)  # the comparison is not vacuous


def test_partition_missing_a_column_is_refused_naming_the_file(small_vault):
    vault, _truth = small_vault
    path = vault / "identifiers" / "school" / "d1.parquet"
    pd.read_parquet(path).drop(columns=["dob"]).to_parquet(path)
    with pytest.raises(LinkageInputError, match=r"school/d1\.parquet: missing column\(s\) dob"):
        run_linkage(vault)
    assert not (vault / "linkage" / "runs").exists() or not any((vault / "linkage" / "runs").iterdir())


def test_repeated_record_key_is_refused_naming_file_and_row(small_vault):
    vault, _truth = small_vault
    path = vault / "identifiers" / "housing" / "d2.parquet"
    first = pd.read_parquet(vault / "identifiers" / "housing" / "d1.parquet").head(3)
    first.to_parquet(path)
    (vault / "deposits" / "housing" / "d2.json").write_text('{"state": "complete"}')
    with pytest.raises(LinkageInputError, match=r"housing/d\d\.parquet: row \d+: field record_key repeats"):
        run_linkage(vault)


def test_empty_vault_is_refused(tmp_path):
    with pytest.raises(LinkageInputError, match="no identifier partitions"):
        run_linkage(tmp_path / "vault")


def test_a_run_that_fails_late_leaves_no_run_folder(small_vault, monkeypatch):
    vault, truth = small_vault

    def broken_report(quality, path):
        path.write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr("linkage.report.write_report", broken_report)
    with pytest.raises(OSError, match="disk full"):
        run_linkage(vault, ground_truth=truth, run_id="r1")
    assert list((vault / "linkage" / "runs").iterdir()) == []


def test_unknown_engine_and_bad_threshold_are_refused():
    con = duckdb.connect()
    with pytest.raises(ValueError, match="unknown linkage engine"):
        link.train_predict_cluster(con, "nothing", link.load_model(), engine="oracle")
    with pytest.raises(ValueError, match="threshold"):
        link.train_predict_cluster(con, "nothing", link.load_model(), threshold=1.5)


def test_ground_truth_file_with_missing_columns_is_refused(tmp_path, linked_run):
    from linkage.quality import recompute_for_run

    run, _vault, _truth = linked_run
    bad = tmp_path / "truth.csv"
    bad.write_text("source,record,person\nbirths,1,P1\n")
    with pytest.raises(ValueError, match=r"truth\.csv: row 1: missing column\(s\) source_record_id"):
        recompute_for_run(run.run_dir, run.quality, bad)
    again = recompute_for_run(run.run_dir, json.loads((run.run_dir / "quality.json").read_text()), _truth)
    assert again["ground_truth"]["f1"] == pytest.approx(run.quality["ground_truth"]["f1"])



def test_one_table_deduped_scores_the_same_pairs_as_splinks_link_and_dedupe(small_vault):
    """The engine runs link_and_dedupe as dedupe_only over one table (faster blocking): the
    trained model, given to Splink's own link_and_dedupe over one input per source, scores
    the same pairs with the same weights."""
    from splink import Linker

    vault, _truth = small_vault
    con = duckdb.connect()
    link.load_identifiers(con, vault)
    link.standardise_table(con, "identifiers", "standardised")
    model = link.load_model()
    outputs = link.train_predict_cluster(con, "standardised", model)
    ours = con.execute("SELECT record_key_l, record_key_r, source_l, source_r, match_weight FROM edges").df()
    assert outputs.model_json["link_type"] == "dedupe_only"

    db_api = DuckDBAPI(connection=con)
    inputs = []
    for (source,) in con.execute("SELECT DISTINCT source FROM linkage_input ORDER BY 1").fetchall():
        con.execute(f"CREATE TABLE per_{source} AS SELECT * FROM linkage_input WHERE source = ?", [source])
        inputs.append(db_api.register(f"per_{source}", dataset_display_name=source))
    settings = json.loads(json.dumps(outputs.model_json))
    settings["link_type"] = "link_and_dedupe"
    theirs = Linker(inputs, settings, log_level=None).inference.predict(
        threshold_match_probability=model.prediction.threshold_match_probability, warning_mode="never"
    ).as_pandas_dataframe()
    keys = con.execute("SELECT record_id, record_key FROM linkage_input").df().set_index("record_id")["record_key"]
    pairs = zip(keys[theirs["record_id_l"]], keys[theirs["record_id_r"]])
    theirs = pd.DataFrame([sorted(p) for p in pairs], columns=["record_key_l", "record_key_r"]).assign(
        match_weight=theirs["match_weight"].to_numpy())

    assert len(ours) > 100 and len(ours) == len(theirs)
    merged = ours.merge(theirs, on=["record_key_l", "record_key_r"], suffixes=("", "_splink"))
    assert len(merged) == len(ours)
    assert (merged["match_weight"] - merged["match_weight_splink"]).abs().max() < 1e-9
    # pairs across sources and within one source are both there
    assert (ours["source_l"] != ours["source_r"]).any() and (ours["source_l"] == ours["source_r"]).any()
