"""Linkage quality figures for a run: model-estimated when no truth is known, measured when it is.

Everything is aggregated (counts, rates, parameters): no identifier value reaches quality.json
or the report. Pairwise metrics count record pairs implied by the clusters (all pairs within a
cluster), the usual definition in the linkage literature and in Splink's own accuracy charts.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb

GROUND_TRUTH_COLUMNS = ("source", "source_record_id", "role", "person_id")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def parameters(model_json: dict[str, Any]) -> list[dict[str, Any]]:
    """m and u per comparison level from a trained Splink model (null levels have none)."""
    out = []
    for comparison in model_json.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            if level.get("is_null_level"):
                continue
            out.append({
                "comparison": comparison.get("output_column_name"),
                "level": level.get("label_for_charts") or level.get("sql_condition"),
                "m": level.get("m_probability"),
                "u": level.get("u_probability"),
            })
    return out


def match_weight_histogram(con: duckdb.DuckDBPyConnection, edges: str = "edges") -> list[dict[str, float]]:
    rows = _rows(con, f"SELECT floor(match_weight) AS b, count(*) FROM {edges} GROUP BY b ORDER BY b")
    return [{"bin_start": float(b), "bin_end": float(b) + 1, "pairs": int(n)} for b, n in rows]


def estimated_rates(con: duckdb.DuckDBPyConnection, threshold: float, edges: str = "edges") -> dict[str, Any]:
    """Model-estimated error rates among scored pairs: each pair's probability taken at its word."""
    accepted, expected_false, expected_true_accepted, expected_true_all = _rows(
        con,
        f"SELECT count(*) FILTER (WHERE match_probability >= ?), "
        f"coalesce(sum(1 - match_probability) FILTER (WHERE match_probability >= ?), 0), "
        f"coalesce(sum(match_probability) FILTER (WHERE match_probability >= ?), 0), "
        f"coalesce(sum(match_probability), 0) FROM {edges}",
        [threshold, threshold, threshold],
    )[0]
    return {
        "scored_pairs": int(_rows(con, f"SELECT count(*) FROM {edges}")[0][0]),
        "accepted_pairs": int(accepted),
        "estimated_false_match_rate": (expected_false / accepted) if accepted else 0.0,
        "estimated_missed_match_rate": (1 - expected_true_accepted / expected_true_all) if expected_true_all else 0.0,
        "estimated_precision": (expected_true_accepted / accepted) if accepted else 1.0,
        "estimated_recall": (expected_true_accepted / expected_true_all) if expected_true_all else 1.0,
    }


def cluster_sizes(con: duckdb.DuckDBPyConnection, clusters: str = "clusters") -> list[dict[str, int]]:
    rows = _rows(
        con,
        f"SELECT n, count(*) FROM (SELECT cluster_id, count(*) AS n FROM {clusters} GROUP BY cluster_id) GROUP BY n ORDER BY n",
    )
    return [{"size": int(n), "clusters": int(c)} for n, c in rows]


def source_match_rates(con: duckdb.DuckDBPyConnection, clusters: str = "clusters") -> dict[str, Any]:
    """Per source: share of records linked to any other record. Per pair (a, b): share of a's
    records whose cluster holds a record of b (a = b: a duplicate within the same source)."""
    per_source = {
        s: {"records": int(n), "linked_rate": float(r)}
        for s, n, r in _rows(
            con,
            f"SELECT source, count(*), avg(CASE WHEN size > 1 THEN 1.0 ELSE 0.0 END) FROM "
            f"(SELECT source, count(*) OVER (PARTITION BY cluster_id) AS size FROM {clusters}) GROUP BY source ORDER BY source",
        )
    }
    pairs = _rows(
        con,
        f"""
        WITH per_cluster AS (SELECT cluster_id, source, count(*) AS n FROM {clusters} GROUP BY ALL)
        SELECT a.source, b.source,
               sum(CASE WHEN a.source = b.source THEN (CASE WHEN a.n > 1 THEN a.n ELSE 0 END) ELSE a.n END)
        FROM per_cluster a JOIN per_cluster b USING (cluster_id)
        GROUP BY ALL ORDER BY 1, 2
        """,
    )
    matrix = {s: {t: 0.0 for t in per_source} for s in per_source}
    for a, b, n in pairs:
        matrix[a][b] = float(n) / per_source[a]["records"]
    return {"per_source": per_source, "pair_rates": matrix}


def _truth_table(con: duckdb.DuckDBPyConnection, ground_truth: Path, ids_table: str) -> dict[str, int]:
    """Table ``truth(record_key, person_id)`` from the synthetic generator's ground truth."""
    header = _rows(con, "SELECT * FROM read_csv(?, all_varchar = true, header = true) LIMIT 0", [str(ground_truth)])
    columns = [d[0] for d in con.description]
    missing = [c for c in GROUND_TRUTH_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{ground_truth}: row 1: missing column(s) {', '.join(missing)}")
    del header
    con.execute(
        "CREATE OR REPLACE TEMP TABLE truth_raw AS SELECT source, source_record_id, coalesce(role, '') AS role, person_id, "
        "row_number() OVER () + 1 AS _row FROM read_csv(?, all_varchar = true, header = true)",
        [str(ground_truth)],
    )
    bad = _rows(con, "SELECT _row FROM truth_raw WHERE person_id IS NULL OR source IS NULL OR source_record_id IS NULL LIMIT 1")
    if bad:
        raise ValueError(f"{ground_truth}: row {bad[0][0]}: source, source_record_id and person_id are required")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE truth AS SELECT i.record_key, t.person_id FROM truth_raw t "
        f"JOIN {ids_table} i ON i.source = t.source AND CAST(i.source_record_id AS VARCHAR) = t.source_record_id "
        f"AND coalesce(CAST(i.role AS VARCHAR), '') = t.role"
    )
    matched, total = _rows(con, "SELECT (SELECT count(*) FROM truth), (SELECT count(*) FROM truth_raw)")[0]
    return {"ground_truth_rows": int(total), "ground_truth_rows_matched": int(matched)}


def _pairs(n: str) -> str:
    return f"sum({n} * ({n} - 1) / 2)"


def truth_metrics(con: duckdb.DuckDBPyConnection, clusters: str = "clusters") -> dict[str, Any]:
    """Pairwise precision, recall and F1 of the clusters against table ``truth``."""
    tp, predicted, actual = _rows(
        con,
        f"""
        WITH j AS (SELECT c.cluster_id, t.person_id FROM {clusters} c JOIN truth t USING (record_key))
        SELECT (SELECT coalesce({_pairs('n')}, 0) FROM (SELECT count(*) AS n FROM j GROUP BY cluster_id, person_id)),
               (SELECT coalesce({_pairs('n')}, 0) FROM (SELECT count(*) AS n FROM j GROUP BY cluster_id)),
               (SELECT coalesce({_pairs('n')}, 0) FROM (SELECT count(*) AS n FROM j GROUP BY person_id))
        """,
    )[0]
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"true_pairs": int(actual), "predicted_pairs": int(predicted), "true_positive_pairs": int(tp),
            "precision": precision, "recall": recall, "f1": f1}


def blocking_recall(con: duckdb.DuckDBPyConnection, std_table: str, blocking_rules_sql: list[str]) -> float:
    """Share of true pairs that at least one blocking rule brings into comparison (the recall ceiling)."""
    condition = " OR ".join(f"({rule})" for rule in blocking_rules_sql)
    total, blocked = _rows(
        con,
        f"""
        WITH tp AS (SELECT a.record_key AS kl, b.record_key AS kr FROM truth a JOIN truth b
                    ON a.person_id = b.person_id AND a.record_key < b.record_key)
        SELECT count(*), count(*) FILTER (WHERE coalesce({condition}, false))
        FROM tp JOIN {std_table} l ON l.record_key = tp.kl JOIN {std_table} r ON r.record_key = tp.kr
        """,
    )[0]
    return blocked / total if total else 1.0


def compute_quality(
    con: duckdb.DuckDBPyConnection,
    *,
    model_json: dict[str, Any],
    threshold: float,
    blocking_rules_sql: list[str] | None = None,
    std_table: str | None = None,
    ids_table: str = "identifiers",
    ground_truth: Path | None = None,
    edges: str = "edges",
    clusters: str = "clusters",
) -> dict[str, Any]:
    """All figures of the report, from tables ``edges`` and ``clusters`` in ``con``."""
    n_records, n_clusters = _rows(con, f"SELECT count(*), count(DISTINCT cluster_id) FROM {clusters}")[0]
    quality: dict[str, Any] = {
        "records": int(n_records),
        "clusters": int(n_clusters),
        "threshold_match_probability": threshold,
        "probability_two_random_records_match": model_json.get("probability_two_random_records_match"),
        "match_weight_histogram": match_weight_histogram(con, edges),
        "parameters": parameters(model_json),
        "cluster_sizes": cluster_sizes(con, clusters),
        "estimated": estimated_rates(con, threshold, edges),
        "sources": source_match_rates(con, clusters),
    }
    if ground_truth is not None:
        truth = _truth_table(con, Path(ground_truth), ids_table)
        truth.update(truth_metrics(con, clusters))
        if std_table and blocking_rules_sql:
            truth["blocking_recall"] = blocking_recall(con, std_table, blocking_rules_sql)
        quality["ground_truth"] = truth
    for key, value in quality["estimated"].items():
        if isinstance(value, float) and math.isnan(value):
            quality["estimated"][key] = None
    return quality


def intake_summary(vault_dir: Path) -> dict[str, Any]:
    """Per source, from the manifests of its live deposits: rows read, accepted, quarantined
    (per reason) and kept with nulled fields (flags per column and reason). Counts only."""
    from linkage.deposits import live_deposits, read_manifests

    out: dict[str, Any] = {}
    for folder in sorted(p for p in (Path(vault_dir) / "deposits").glob("*") if p.is_dir()):
        manifests = read_manifests(vault_dir, folder.name)
        live = live_deposits(vault_dir, folder.name)
        if not live:
            continue
        entry = {"deposits": len(live), "rows_read": 0, "rows_accepted": 0, "rows_quarantined": 0, "rows_flagged": 0,
                 "quarantine_reasons": {}, "flags": {}}
        for deposit in live:
            m = manifests[deposit]
            for key in ("rows_read", "rows_accepted", "rows_quarantined", "rows_flagged"):
                entry[key] += int(m.get(key, 0))
            for reason, n in m.get("quarantine_reasons", {}).items():
                entry["quarantine_reasons"][reason] = entry["quarantine_reasons"].get(reason, 0) + n
            for column, reasons in m.get("flags", {}).items():
                per = entry["flags"].setdefault(column, {})
                for reason, n in reasons.items():
                    per[reason] = per.get(reason, 0) + n
        out[folder.name] = entry
    return out


def recompute_for_run(run_dir: Path, quality: dict[str, Any], ground_truth: Path) -> dict[str, Any]:
    """Measure a finished run against a ground-truth file (for ``enclave link report``).

    Blocking recall needs the standardised identifiers, which a run does not keep: it is
    reported only by the run itself (``enclave link run --ground-truth``).
    """
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE clusters AS SELECT * FROM read_parquet(?)", [str(Path(run_dir) / "clusters.parquet")])
        truth = _truth_table(con, Path(ground_truth), "clusters")
        truth.update(truth_metrics(con, "clusters"))
    finally:
        con.close()
    return {**quality, "ground_truth": truth}
