"""Each cohort computed from the linked, de-identified store against the same cohort computed with
perfect linkage (the synthetic generator's true person ids): counts within 3% overall and in every
comparison group of at least 100, or a gap no larger than the cohort members that linkage errors
touched (split or merged records), which the test reports beside."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from enclave.cohorts import evaluate, load_definitions

PEOPLE, SEED = 3000, 5


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The research store as linked, and the same deposits keyed by the true person ids."""
    from linkage.ingest import ingest_file
    from linkage.keys import assign_person_keys, load_crosswalk, load_state
    from linkage.link import run_linkage
    from linkage.research_store import build
    from linkage.sources import load_definitions as source_definitions
    from linkage.synth.config import SynthConfig
    from linkage.synth.generate import generate

    home = tmp_path_factory.mktemp("truth")
    definitions = source_definitions()
    synth = home / "synth"
    for name in generate(SynthConfig(people=PEOPLE, seed=SEED, chunk_people=PEOPLE), synth, definitions):
        if name.split(".")[0] in definitions:
            ingest_file(definitions[name.split(".")[0]], synth / name, home / "vault")
    run = run_linkage(home / "vault")
    assign_person_keys(run.clusters, home / "vault", run.run_id)
    build(home / "vault", home / "linked")

    truth = pd.read_csv(synth / "ground_truth.csv", dtype=str)
    suffix = truth["role"].where(truth["role"] == "subject", "/" + truth["role"]).replace("subject", "")
    truth["record_key"] = truth["source"] + ":" + truth["source_record_id"] + suffix
    linked_keys = load_crosswalk(home / "vault")
    shutil.copytree(home / "vault", home / "truth_vault")
    perfect = truth[truth["record_key"].isin(linked_keys["record_key"])][["record_key", "person_id"]]
    assign_person_keys(perfect.rename(columns={"person_id": "cluster_id"}), home / "truth_vault",
                       load_state(home / "vault")["run_id"])
    build(home / "truth_vault", home / "truth")

    # Which true people did linkage get wrong (records split over keys, or a key shared with others)?
    both = linked_keys.merge(truth[["record_key", "person_id"]], on="record_key")
    split = both.groupby("person_id")["person_key"].nunique() > 1
    merged_keys = both.groupby("person_key")["person_id"].nunique() > 1
    merged = both[both["person_key"].isin(merged_keys[merged_keys].index)]["person_id"].unique()
    wrong = set(split[split].index) | set(merged)
    truth_keys = load_crosswalk(home / "truth_vault").merge(truth[["record_key", "person_id"]], on="record_key")
    true_id = dict(zip(truth_keys["person_key"], truth_keys["person_id"]))
    return _tables(home / "linked"), _tables(home / "truth"), wrong, true_id


def _counts(units: pd.DataFrame, flags: list[str], by: str | None) -> pd.DataFrame:
    groups = units.groupby(by, dropna=False, observed=True) if by else units.groupby(lambda _: "all")
    return groups[flags].sum().assign(units=groups.size())


@pytest.mark.parametrize("name", sorted(load_definitions()))
def test_cohort_counts_match_perfect_linkage(stores, name):
    linked, truth, wrong, true_id = stores
    definition = load_definitions()[name]
    got = evaluate(definition, linked, "person_key")
    want = evaluate(definition, truth, "person_key")
    touched = sum(true_id.get(k) in wrong for k in want.units["person_key"].unique())
    report = []
    for by in [None, *definition.compare_by]:
        a = _counts(got.units, got.flags, by)
        b = _counts(want.units, want.flags, by)
        for group in b.index:
            for column in b.columns:
                expected = int(b.loc[group, column])
                actual = int(a.loc[group, column]) if group in a.index else 0
                if by is not None and int(b.loc[group, "units"]) < 100:
                    continue
                gap = abs(actual - expected)
                report.append((by or "overall", group, column, actual, expected, gap))
                allowed = max(0.03 * expected, 1.0 if by is None else 0.0)
                assert gap <= allowed or gap <= touched, (
                    f"{name} {by or 'overall'}={group} {column}: linked {actual} vs true {expected} "
                    f"(gap {gap}, {touched} cohort members touched by linkage errors)")
    print(f"\n{name}: {touched} cohort members touched by linkage errors; largest gaps:")
    for row in sorted(report, key=lambda r: -r[-1])[:5]:
        print("   ", row)
    assert want.counts["cohort"] > 0 and any(want.units[f].sum() > 0 for f in want.flags)
