"""Link and de-duplicate the identifier partitions of every source with Splink 5.

Pipeline: load ``vault/identifiers/**.parquet`` -> standardise (DuckDB SQL) -> train
(prior from deterministic rules, u by random sampling, m by EM on capped pairs) -> predict ->
cluster at a threshold -> write ``vault/linkage/runs/<run_id>/`` atomically.
The model is the YAML in ``linkage/model``; the engine (DuckDB or Spark) only executes it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from splink import DuckDBAPI, Linker

from linkage.model import LinkageModel, load_model
from linkage.standardise import IDENTIFIER_FIELDS, standardise_table

ENGINES = ("duckdb", "spark")
IDENTIFIER_COLUMNS = ("record_key", "source", "source_record_id", "role", *IDENTIFIER_FIELDS)
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

Progress = Callable[[str], None]


class LinkageInputError(ValueError):
    """Identifier partitions that cannot be linked; the message names file, row and field."""


@dataclass
class LinkRun:
    run_id: str
    run_dir: Path
    clusters: pd.DataFrame  # record_key, cluster_id
    quality: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# ---------------------------------------------------------------- loading and validation
def load_identifiers(con: duckdb.DuckDBPyConnection, vault_dir: Path, table: str = "identifiers") -> int:
    """Create ``table`` from every identifier partition; refuse bad input before any work."""
    from linkage.deposits import live_partitions

    root = Path(vault_dir) / "identifiers"
    # Only partitions of live deposits: a partition without a manifest is an ingest that was
    # killed or is still running, and a withdrawn or superseded deposit is not data any more.
    files = live_partitions(vault_dir, "identifiers")
    if not files:
        raise LinkageInputError(f"{root}: no identifier partitions of a completed deposit to link")
    for path in files:
        try:
            names = [r[0] for r in con.execute("SELECT name FROM parquet_schema(?)", [str(path)]).fetchall()]
        except duckdb.Error as exc:
            raise LinkageInputError(f"{path}: not a readable parquet file ({type(exc).__name__})") from exc
        missing = [c for c in IDENTIFIER_COLUMNS if c not in names]
        if missing:
            raise LinkageInputError(f"{path}: missing column(s) {', '.join(missing)}")
    file_list = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"
    columns = ", ".join(IDENTIFIER_COLUMNS)
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT {columns}, filename AS _file, file_row_number AS _row "
        f"FROM read_parquet({file_list}, union_by_name = true, filename = true, file_row_number = true)"
    )
    # Rows are numbered from 1 in messages, like a spreadsheet without its header.
    bad = con.execute(
        f"SELECT _file, _row + 1, CASE WHEN record_key IS NULL OR record_key = '' THEN 'record_key' ELSE 'source' END "
        f"FROM {table} WHERE record_key IS NULL OR record_key = '' OR source IS NULL "
        f"OR NOT regexp_full_match(source, '{_SOURCE_NAME.pattern[1:-1]}') LIMIT 1"
    ).fetchone()
    if bad:
        raise LinkageInputError(f"{bad[0]}: row {bad[1]}: field {bad[2]} is empty or not a valid source name")
    duplicate = con.execute(
        f"SELECT _file, _row + 1 FROM (SELECT _file, _row, count(*) OVER (PARTITION BY record_key) AS n, "
        f"row_number() OVER (PARTITION BY record_key ORDER BY _file, _row) AS k FROM {table}) "
        f"WHERE n > 1 AND k = 2 LIMIT 1"
    ).fetchone()
    if duplicate:
        raise LinkageInputError(f"{duplicate[0]}: row {duplicate[1]}: field record_key repeats a record key already deposited")
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# ---------------------------------------------------------------- engines
def _spark_session() -> Any:
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    session = (
        SparkSession.builder.master("local[2]")
        .appName("ids-linkage")
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.pyspark.python", sys.executable)  # workers use this venv, not whatever python3 is on PATH
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    # Splink breaks Spark's lineage with checkpoints, which need a directory.
    session.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="ids-linkage-spark-"))
    return session


# Splink identifies records by an integer the engine assigns here, not by ``record_key``:
# joining and ordering 14M candidate pairs on integers instead of strings like
# "school_enrollment:SCH0000123456" took the 1M-record prediction from 66 s to 46 s.
# ``record_key`` (and ``source``) are put back on the edges afterwards.
RECORD_ID = "record_id"


def _register_inputs(con: duckdb.DuckDBPyConnection, std_table: str, engine: str, link_type: str,
                     spark: Any = None) -> tuple[Any, list[Any]]:
    """Table ``linkage_input`` (``std_table`` plus an integer record id) registered with Splink.

    ``link_and_dedupe`` is run as ``dedupe_only`` over all sources in one table: Splink's own
    definition of link_and_dedupe (every pair across and within inputs) is exactly that, and one
    input spares the per-pair string concatenation Splink uses to tell inputs apart (blocking
    took 26 s instead of 14 s at 1M records). A test checks both give the same predictions.
    ``link_only`` needs to know the inputs, so it keeps one input per source.
    """
    con.execute(
        f"CREATE OR REPLACE TABLE linkage_input AS "
        f"SELECT row_number() OVER (ORDER BY record_key) AS {RECORD_ID}, * FROM {std_table}"
    )
    per_source = link_type == "link_only"
    sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM linkage_input ORDER BY 1").fetchall()] if per_source else []
    if engine == "duckdb":
        db_api = DuckDBAPI(connection=con)
        if not per_source:
            return db_api, [db_api.register("linkage_input", dataset_display_name="linkage_input")]
        inputs = []
        for source in sources:
            con.execute(f"CREATE OR REPLACE TABLE input_{source} AS SELECT * FROM linkage_input WHERE source = ?", [source])
            inputs.append(db_api.register(f"input_{source}", dataset_display_name=source))
        return db_api, inputs
    from splink import SparkAPI

    # "persist" keeps intermediate tables in executor memory: a local session has no cluster
    # storage to checkpoint to, and disk checkpoints made each step several times slower.
    db_api = SparkAPI(spark_session=spark, break_lineage_method="persist", num_partitions_on_repartition=2)
    if not per_source:
        frame = con.execute("SELECT * FROM linkage_input").df()
        return db_api, [db_api.register(spark.createDataFrame(frame).coalesce(2), dataset_display_name="linkage_input")]
    inputs = []
    for source in sources:
        frame = con.execute("SELECT * FROM linkage_input WHERE source = ?", [source]).df()
        inputs.append(db_api.register(spark.createDataFrame(frame).coalesce(1), dataset_display_name=source))
    return db_api, inputs


def _to_duckdb(con: duckdb.DuckDBPyConnection, sdf: Any, engine: str, table: str, select: str) -> None:
    """Bring a Splink result into ``con`` as ``table`` (DuckDB results never leave the database)."""
    if engine == "duckdb":
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM {sdf.physical_name}")
    else:
        frame = sdf.as_spark_dataframe().toPandas()
        con.register(f"{table}_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM {table}_frame")
        con.unregister(f"{table}_frame")


@dataclass
class SplinkOutputs:
    model_json: dict[str, Any]
    gamma_columns: list[str]
    training_warnings: list[str] = field(default_factory=list)


def train_predict_cluster(
    con: duckdb.DuckDBPyConnection,
    std_table: str,
    model: LinkageModel,
    *,
    engine: str = "duckdb",
    threshold: float | None = None,
    settings_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> SplinkOutputs:
    """Run the model over ``std_table``; leaves tables ``edges`` and ``clusters`` in ``con``."""
    if engine not in ENGINES:
        raise ValueError(f"unknown linkage engine {engine!r}; choose one of {', '.join(ENGINES)}")
    step = progress or (lambda _name: None)
    threshold = model.clustering.threshold_match_probability if threshold is None else threshold
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a match probability in (0, 1], got {threshold}")
    logging.getLogger("splink").setLevel(logging.WARNING)
    spark = _spark_session() if engine == "spark" else None
    overrides = dict(settings_overrides or {})
    link_type = overrides.get("link_type", model.splink.get("link_type", "link_and_dedupe"))
    db_api, inputs = _register_inputs(con, std_table, engine, link_type, spark)
    overrides["unique_id_column_name"] = RECORD_ID
    if link_type != "link_only":
        overrides["link_type"] = "dedupe_only"
    linker = Linker(inputs if len(inputs) > 1 else inputs[0], model.settings_creator(engine, **overrides), log_level=None)
    training = model.training

    step("train: prior")
    if training.probability_two_random_records_match:
        prior = training.probability_two_random_records_match
        linker.training.estimate_probability_two_random_records_match(
            [r.creator() for r in prior.deterministic_rules], recall=prior.recall
        )
    step("train: u by random sampling")
    linker.training.estimate_u_using_random_sampling(
        max_pairs=training.u.max_pairs, seed=training.seed, num_chunks=training.u.num_chunks
    )
    warnings: list[str] = []
    for session in training.em:
        step(f"train: m by EM on {session.block_on or 'rule'}")
        if session.block_on and not _any_pair_agrees(con, session.block_on, link_type):
            # Checked before, not caught after: Splink raises only once the session has
            # already changed the model's prior (seen: 1e-4 became 0.99 on data without SSNs).
            warnings.append(f"EM session blocked on {session.block_on} skipped: no two records agree on it")
            continue
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                session.creator(), max_pairs=session.max_pairs,
                estimate_without_term_frequencies=session.estimate_without_term_frequencies,
            )
        except ValueError as exc:
            # Splink 5 refuses an m that EM drove to exactly 0 (a level seen only in non-matches):
            # the session is skipped and said so in the report, the other sessions still train.
            if "m_probability" not in str(exc):
                raise
            warnings.append(f"EM session blocked on {session.block_on or session.sql} skipped: {exc}")

    step("predict")
    predictions = linker.inference.predict(
        threshold_match_probability=model.prediction.threshold_match_probability, warning_mode="never"
    )
    names = [c.name.strip('"`') for c in predictions.columns]  # Splink returns names quoted for SQL
    gamma_columns = [n for n in names if n.startswith("gamma_")]
    _to_duckdb(con, predictions, engine, "__predictions",
               ", ".join([f"{RECORD_ID}_l", f"{RECORD_ID}_r", "match_weight", "match_probability", *gamma_columns]))
    gammas = "".join(f", p.{g}" for g in gamma_columns)
    # Record ids follow record_key order, so record_key_l < record_key_r as before.
    con.execute(
        "CREATE OR REPLACE TABLE edges AS SELECT l.record_key AS record_key_l, r.record_key AS record_key_r, "
        f"l.source AS source_l, r.source AS source_r, p.match_weight, p.match_probability{gammas} FROM __predictions p "
        f"JOIN linkage_input l ON l.{RECORD_ID} = p.{RECORD_ID}_l JOIN linkage_input r ON r.{RECORD_ID} = p.{RECORD_ID}_r"
    )
    con.execute("DROP TABLE __predictions")

    step("cluster")
    cluster_stats = cluster_edges(con, std_table, threshold, break_chains_below=model.clustering.break_dob_chains_below)
    if cluster_stats.get("components_split"):
        warnings.append(f"clustering: {cluster_stats['components_split']:,} of {cluster_stats['components_examined']:,} "
                        "components whose dates of birth disagree were split at a weak bridge")
    model_json = linker.misc.save_model_to_json()
    if spark is not None:
        spark.catalog.clearCache()
    return SplinkOutputs(model_json=model_json, gamma_columns=gamma_columns, training_warnings=warnings)


def _any_pair_agrees(con: duckdb.DuckDBPyConnection, columns: list[str], link_type: str) -> bool:
    """Whether two records of ``linkage_input`` (of two sources, for link_only) agree on ``columns``."""
    cols = ", ".join(f'"{c}"' for c in columns)
    present = " AND ".join(f'"{c}" IS NOT NULL' for c in columns)
    enough = "count(DISTINCT source) > 1" if link_type == "link_only" else "count(*) > 1"
    return con.execute(f"SELECT 1 FROM linkage_input WHERE {present} GROUP BY {cols} HAVING {enough} LIMIT 1").fetchall() != []


def cluster_edges(con: duckdb.DuckDBPyConnection, nodes_table: str, threshold: float, edges: str = "edges",
                  break_chains_below: float | None = None) -> dict[str, int]:
    """Table ``clusters(record_key, cluster_id, source)``: connected components of the edges at or
    above ``threshold``; a cluster is named by its smallest record key.

    Same result as Splink's ``cluster_pairwise_predictions_at_threshold`` (a test compares them),
    but Splink iterates SQL joins until labels settle (about 9 s for 100k records on 2 cores)
    where SciPy's compiled connected_components takes well under a second for a million.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    con.execute(f"CREATE OR REPLACE TEMP TABLE __nodes AS SELECT record_key, source, (row_number() OVER (ORDER BY record_key)) - 1 AS i FROM {nodes_table}")
    n = con.execute("SELECT count(*) FROM __nodes").fetchone()[0]
    pairs = con.execute(
        f"SELECT a.i, b.i, e.match_probability FROM {edges} e JOIN __nodes a ON a.record_key = e.record_key_l "
        f"JOIN __nodes b ON b.record_key = e.record_key_r WHERE e.match_probability >= ?",
        [threshold],
    ).fetchnumpy()
    left, right, probability = (np.asarray(pairs[k]) for k in pairs)
    left, right = left.astype(np.int64), right.astype(np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    stats: dict[str, int] = {}
    if break_chains_below is not None:
        from linkage.clustering import break_chains

        dob = con.execute(f"SELECT t.dob FROM __nodes n JOIN {nodes_table} t USING (record_key) ORDER BY n.i").fetchnumpy()["dob"]
        dob = [d if isinstance(d, str) else None for d in dob.tolist()]
        labels, stats = break_chains(labels, left, right, probability.astype(float), dob, strong=break_chains_below)
    con.register("__labels", pd.DataFrame({"i": np.arange(n, dtype=np.int64), "component": labels.astype(np.int64)}))
    con.execute(
        "CREATE OR REPLACE TABLE clusters AS SELECT n.record_key, min(n.record_key) OVER (PARTITION BY l.component) AS cluster_id, "
        "n.source FROM __nodes n JOIN __labels l USING (i)"
    )
    con.unregister("__labels")
    con.execute("DROP TABLE __nodes")
    return stats


# ---------------------------------------------------------------- the run
def run_linkage(
    vault_dir: Path | str,
    *,
    engine: str = "duckdb",
    threshold: float | None = None,
    ground_truth: Path | str | None = None,
    model_path: Path | str | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    memory_limit: str = "3GB",
) -> LinkRun:
    """Link every identifier partition in the vault; write the run folder; return the clusters.

    Person keys are not assigned here (``linkage.keys`` does that from ``LinkRun.clusters``).
    """
    from linkage.quality import compute_quality
    from linkage.report import write_report

    vault_dir = Path(vault_dir)
    step = progress or (lambda _name: None)
    model = load_model(model_path)
    if ground_truth is not None:
        _check_ground_truth_header(Path(ground_truth))
    run_id = run_id or new_run_id()
    runs_dir = vault_dir / "linkage" / "runs"
    final_dir = runs_dir / run_id
    if final_dir.exists():
        raise FileExistsError(f"{final_dir}: run already exists")
    timings: dict[str, float] = {}
    started = last = time.perf_counter()

    def timed(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        timings[name] = round(now - last, 3)
        last = now

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    # Bounded memory: DuckDB spills joins and sorts to disk rather than take the machine
    # (its default is 80% of RAM, on a host shared with the enclave's other services).
    con.execute(f"SET memory_limit = '{memory_limit}'")
    # Spilled pages hold identifiers: they stay in the vault and are removed after the run.
    spill_dir = vault_dir / "linkage" / f".spill-{run_id}"
    spill_dir.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{str(spill_dir).replace(chr(39), chr(39) * 2)}'")
    work_dir = runs_dir / f".{run_id}.partial"
    try:
        step("load identifier partitions")
        n_records = load_identifiers(con, vault_dir)
        timed("load")
        step("standardise")
        standardise_table(con, "identifiers", "standardised")
        timed("standardise")
        outputs = train_predict_cluster(
            con, "standardised", model, engine=engine, threshold=threshold, progress=step
        )
        timed("train_predict_cluster")
        threshold = model.clustering.threshold_match_probability if threshold is None else threshold

        step("quality")
        quality = compute_quality(
            con,
            model_json=outputs.model_json,
            threshold=threshold,
            blocking_rules_sql=[r.sql_condition() for r in model.blocking_rules],
            std_table="standardised",
            ids_table="identifiers",
            ground_truth=Path(ground_truth) if ground_truth else None,
        )
        from linkage.quality import intake_summary

        quality["intake"] = intake_summary(vault_dir)
        quality["run"] = {"run_id": run_id, "engine": engine, "model": model.name, "records": n_records,
                          "threshold_match_probability": threshold, "training_warnings": outputs.training_warnings}
        timed("quality")

        step("write run artefacts")
        work_dir.mkdir(parents=True, exist_ok=False)
        con.execute(
            "COPY (SELECT c.record_key, c.cluster_id, c.source, i.source_record_id, i.role FROM clusters c "
            f"JOIN identifiers i USING (record_key) ORDER BY c.cluster_id, c.record_key) TO '{work_dir / 'clusters.parquet'}' (FORMAT parquet)"
        )
        con.execute(f"COPY edges TO '{work_dir / 'edges.parquet'}' (FORMAT parquet)")
        (work_dir / "model.json").write_text(json.dumps(outputs.model_json, indent=1))
        quality["run"]["timings_seconds"] = {**timings, "total": round(time.perf_counter() - started, 3)}
        (work_dir / "quality.json").write_text(json.dumps(quality, indent=1))
        write_report(quality, work_dir / "report.html")
        clusters = con.execute("SELECT record_key, cluster_id FROM clusters ORDER BY record_key").df()
        os.replace(work_dir, final_dir)
        timed("write")
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    finally:
        con.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
    timings["total"] = round(time.perf_counter() - started, 3)
    return LinkRun(run_id=run_id, run_dir=final_dir, clusters=clusters, quality=quality, timings=timings)


def _check_ground_truth_header(path: Path) -> None:
    """Refuse a bad ground-truth file before minutes of training, not after."""
    from linkage.quality import GROUND_TRUTH_COLUMNS

    if not path.is_file():
        raise LinkageInputError(f"{path}: ground-truth file not found")
    with path.open(newline="") as fh:
        header = fh.readline().strip().split(",")
    missing = [c for c in GROUND_TRUTH_COLUMNS if c not in header]
    if missing:
        raise LinkageInputError(f"{path}: row 1: missing column(s) {', '.join(missing)}")


def latest_run(vault_dir: Path | str) -> Path:
    runs = sorted(p for p in (Path(vault_dir) / "linkage" / "runs").glob("*") if p.is_dir() and not p.name.startswith("."))
    if not runs:
        raise FileNotFoundError(f"{Path(vault_dir) / 'linkage' / 'runs'}: no linkage run yet")
    return runs[-1]
