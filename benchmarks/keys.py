"""Person keys and pseudonyms at scale: 1M records (about 500k people).

Figures, each beside its baseline measured in the same run:
  * pseudonymise 1M person keys (keyed HMAC object copied per key) against the one-shot
    ``hmac.digest`` loop and the naive ``hmac.new(...).hexdigest()`` loop;
  * assign_person_keys on 1M records: the first run, a re-run after an incremental deposit
    (5% new records, 1% of people split or merged), against the baseline of merely drawing
    fresh random keys for every cluster (what persistence costs on top).
Ends with one ``name=value`` line per figure.

    .venv/bin/python benchmarks/keys.py [--records 1000000]
"""
from __future__ import annotations

import argparse
import hmac
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and its linkage.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from linkage.keys import assign_person_keys, load_crosswalk  # noqa: E402
from linkage.pseudonyms import pseudonymise  # noqa: E402


CPU: dict[str, float] = {}


def timed(fn, name: str = ""):
    """Wall seconds; CPU seconds go to CPU[name] too (the machine is shared: CPU time is the fairer comparison)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if name:
        CPU[name] = time.process_time() - cpu
    return out, time.perf_counter() - start


def clusters(records: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    people = rng.integers(0, records // 2, records)
    return pd.DataFrame({"record_key": [f"src{i % 10}:{i:09d}" for i in range(records)], "cluster_id": people})


def changed(base: pd.DataFrame, seed: int) -> pd.DataFrame:
    """An incremental deposit (5% new records) plus 1% of clusters split or merged."""
    rng = np.random.default_rng(seed)
    n = len(base)
    extra = n // 20
    new = pd.DataFrame({
        "record_key": [f"new:{i:09d}" for i in range(extra)],
        "cluster_id": np.where(rng.random(extra) < 0.5, rng.integers(0, n // 2, extra), rng.integers(n, 2 * n, extra)),
    })
    frame = pd.concat([base, new], ignore_index=True)
    touched = rng.choice(frame.index, size=n // 100, replace=False)
    frame.loc[touched, "cluster_id"] = frame.loc[touched, "cluster_id"] + 3 * n  # split off into new clusters
    merge_from = rng.integers(0, n // 2, n // 200)
    frame.loc[frame["cluster_id"].isin(merge_from), "cluster_id"] = 0  # a handful of people merge
    return frame


def research_store_figures(people: int, figures: dict[str, float]) -> None:
    """Build the research store from synthetic data run through ingest, linked by the ground truth;
    baseline: merely reading every vault partition into pandas (the I/O floor of any build)."""
    from linkage.ingest import ingest_file
    from linkage.research_store import build
    from linkage.sources import load_definitions
    from linkage.synth import GROUND_TRUTH, SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        root, definitions = Path(tmp), load_definitions()
        generate(SynthConfig(people=people, seed=5), root / "synth", definitions)
        for name, definition in definitions.items():
            ingest_file(definition, root / "synth" / f"{name}.{definition.format}", root / "vault")
        truth = pd.read_csv(root / "synth" / GROUND_TRUTH, dtype=str)
        roles = truth["role"].map(lambda r: "" if r == "subject" else f"/{r}")
        person_of = dict(zip(truth["source"] + ":" + truth["source_record_id"] + roles, truth["person_id"]))
        ids = pd.concat([pd.read_parquet(p, columns=["record_key"]) for p in sorted((root / "vault" / "identifiers").glob("*/*.parquet"))])
        assign_person_keys(ids.assign(cluster_id=ids["record_key"].map(person_of)), root / "vault", "truth")
        figures["store_records"] = len(ids)
        _, figures["research_store_build_seconds"] = timed(lambda: build(root / "vault", root / "research"), "research_store_build_seconds")
        _, figures["baseline_read_vault_seconds"] = timed(
            lambda: [pd.read_parquet(p) for zone in ("identifiers", "content", "relationships") for p in (root / "vault" / zone).glob("*/*.parquet")],
            "baseline_read_vault_seconds",
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--store-people", type=int, default=20_000, help="Synthetic people for the research-store figure (0: skip).")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    if args.store_people:
        research_store_figures(args.store_people, figures)

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "keys"
        person_keys = ["P" + secrets.token_hex(10) for _ in range(args.records)]
        _, figures["pseudonymise_seconds"] = timed(lambda: pseudonymise(person_keys, "bench", store), "pseudonymise_seconds")
        secret = bytes.fromhex((store / "bench.key").read_text().strip())
        _, figures["baseline_hmac_digest_seconds"] = timed(
            lambda: [hmac.digest(secret, k.encode(), "sha256")[:12].hex() for k in person_keys], "baseline_hmac_digest_seconds")
        _, figures["baseline_hmac_new_seconds"] = timed(
            lambda: [hmac.new(secret, k.encode(), "sha256").hexdigest()[:24] for k in person_keys], "baseline_hmac_new_seconds")
        del secret

        vault = Path(tmp) / "vault"
        first = clusters(args.records, 1)
        result, figures["keys_first_run_seconds"] = timed(lambda: assign_person_keys(first, vault, "bench-1"), "keys_first_run_seconds")
        before = load_crosswalk(vault)
        second = changed(first, 2)
        result2, figures["keys_incremental_rerun_seconds"] = timed(lambda: assign_person_keys(second, vault, "bench-2"), "keys_incremental_rerun_seconds")
        after = load_crosswalk(vault).merge(before, on="record_key", suffixes=("", "_before"))
        figures["keys_rerun_records_keeping_key_fraction"] = round(float((after["person_key"] == after["person_key_before"]).mean()), 4)
        figures["keys_rerun_split_events"] = result2.splits
        figures["keys_rerun_merge_events"] = result2.merges

        def fresh_keys_only() -> None:
            anchors = second.assign(rank=pd.factorize(second["record_key"], sort=True)[0]).groupby("cluster_id")["rank"].transform("min")
            uniques = anchors.unique()
            mapping = dict(zip(uniques, ("P" + secrets.token_hex(10) for _ in uniques)))
            pd.DataFrame({"record_key": second["record_key"], "person_key": anchors.map(mapping)}).to_parquet(Path(tmp) / "fresh.parquet")

        _, figures["baseline_fresh_keys_no_persistence_seconds"] = timed(fresh_keys_only, "baseline_fresh_keys_no_persistence_seconds")
        del result
    figures.update({f"{name}_cpu": value for name, value in CPU.items()})
    figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)

    print(f"records={args.records} persons_about={args.records // 2}")
    for name, value in figures.items():
        print(f"{name}={round(value, 3) if isinstance(value, float) else value}")


if __name__ == "__main__":
    main()
