"""Person keys: persistence across re-runs and deposits, split/merge events, deterministic ties."""
from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from linkage import keys
from linkage.keys import KeyAssignmentError, assign_person_keys, load_crosswalk, load_events, load_state


def clusters_of(groups: list[list[str]], labels: list | None = None) -> pd.DataFrame:
    labels = labels or list(range(len(groups)))
    rows = [(record, labels[i]) for i, group in enumerate(groups) for record in group]
    return pd.DataFrame(rows, columns=["record_key", "cluster_id"])


def key_of(vault, record: str) -> str:
    cw = load_crosswalk(vault)
    return cw.loc[cw["record_key"] == record, "person_key"].item()


def test_first_run_gives_one_random_key_per_cluster(tmp_path):
    result = assign_person_keys(clusters_of([["a:1", "b:1"], ["a:2"], ["a:3", "b:3", "c:3"]]), tmp_path, "r1")
    cw = load_crosswalk(tmp_path)
    assert (result.records, result.persons, result.created, result.kept) == (6, 3, 3, 0)
    assert list(cw.columns) == ["record_key", "person_key"]
    assert all(re.fullmatch(r"P[0-9a-f]{20}", k) for k in cw["person_key"])
    assert key_of(tmp_path, "a:1") == key_of(tmp_path, "b:1") != key_of(tmp_path, "a:2")
    assert (tmp_path / "linkage" / "crosswalk.parquet").is_file()


def test_rerun_with_new_labels_and_order_keeps_every_key_and_records_no_event(tmp_path, linked_vault):
    vault, clusters = linked_vault
    before = load_crosswalk(vault)
    people = clusters["cluster_id"].unique()
    new_label = dict(zip(people, [f"x{i}" for i in reversed(range(len(people)))]))
    relabelled = clusters.assign(cluster_id=clusters["cluster_id"].map(new_label))
    relabelled = relabelled.sample(frac=1.0, random_state=3)
    result = assign_person_keys(relabelled, vault, "run-2")
    assert result.kept == before["person_key"].nunique() and result.created == result.retired == 0
    pd.testing.assert_frame_equal(load_crosswalk(vault), before)
    assert load_events(vault).empty
    assert load_state(vault)["generation"] == 2


def test_incremental_deposit_keeps_existing_keys_and_adds_new_people(tmp_path, population, vault_tools):
    vault = tmp_path / "vault"
    first_births = {b["id"] for b in population["births"][:25]}
    first = vault_tools.write_vault(vault, population, "d1", only=first_births)
    assign_person_keys(first, vault, "run-1")
    before = load_crosswalk(vault)
    person_of = dict(zip(first["record_key"], first["cluster_id"]))
    key_of_person = before.assign(person=before["record_key"].map(person_of)).groupby("person")["person_key"].first()

    every_record = {r["id"] for part in ("births", "housing", "school") for r in population[part]}
    second = vault_tools.write_vault(vault, population, "d2", only=every_record - first_births)
    truth = {**person_of, **dict(zip(second["record_key"], second["cluster_id"]))}
    result = assign_person_keys(vault_tools.all_clusters(vault, truth), vault, "run-2")

    after = load_crosswalk(vault)
    after["person"] = after["record_key"].map(truth)
    # Every person known after the first deposit keeps their key, also on their new records.
    assert (after["person"].map(key_of_person).dropna() == after.loc[after["person"].isin(key_of_person.index), "person_key"]).all()
    assert result.kept == len(key_of_person) and result.retired == 0
    # People first seen in the second deposit get keys never used before, one per person.
    newcomers = after[~after["person"].isin(key_of_person.index)]
    assert newcomers.groupby("person")["person_key"].nunique().eq(1).all()
    assert not set(newcomers["person_key"]) & set(before["person_key"])
    assert result.created == newcomers["person"].nunique()
    assert load_events(vault).empty


def test_split_keeps_key_with_the_majority_and_records_the_split(tmp_path):
    assign_person_keys(clusters_of([["a:1", "a:2", "a:3", "b:1"], ["c:1"]]), tmp_path, "r1")
    old = key_of(tmp_path, "a:1")
    result = assign_person_keys(clusters_of([["a:1", "a:2", "a:3"], ["b:1"], ["c:1"]]), tmp_path, "r2")
    assert key_of(tmp_path, "a:2") == old and key_of(tmp_path, "b:1") != old
    events = load_events(tmp_path)
    assert events[["run_id", "event", "from_person_key", "to_person_key", "records"]].values.tolist() == [
        ["r2", "split", old, key_of(tmp_path, "b:1"), 1]
    ]
    assert (result.splits, result.merges, result.kept, result.created) == (1, 0, 2, 1)


def test_merge_keeps_the_key_with_the_larger_history_and_records_the_merge(tmp_path):
    assign_person_keys(clusters_of([["a:1", "a:2"], ["b:1", "b:2", "b:3"]]), tmp_path, "r1")
    small, large = key_of(tmp_path, "a:1"), key_of(tmp_path, "b:1")
    result = assign_person_keys(clusters_of([["a:1", "a:2", "b:1", "b:2", "b:3"]]), tmp_path, "r2")
    assert set(load_crosswalk(tmp_path)["person_key"]) == {large}
    events = load_events(tmp_path)
    assert events[["event", "from_person_key", "to_person_key", "records"]].values.tolist() == [["merge", small, large, 2]]
    assert (result.merges, result.retired, result.created) == (1, 1, 0)


def test_merge_of_equal_keys_goes_to_the_smaller_key(tmp_path):
    assign_person_keys(clusters_of([["a:1", "a:2"], ["b:1", "b:2"]]), tmp_path, "r1")
    winner = min(key_of(tmp_path, "a:1"), key_of(tmp_path, "b:1"))
    assign_person_keys(clusters_of([["b:2", "a:1", "b:1", "a:2"]]), tmp_path, "r2")
    assert set(load_crosswalk(tmp_path)["person_key"]) == {winner}


def test_exact_half_split_is_decided_by_smallest_record_whatever_the_labels_or_order(tmp_path):
    base = tmp_path / "base"
    assign_person_keys(clusters_of([["a:1", "a:2", "b:1", "b:2"]]), base, "r1")
    old = key_of(base, "a:1")
    outcomes = set()
    for trial, (groups, labels) in enumerate(
        [
            ([["a:1", "b:2"], ["a:2", "b:1"]], [0, 1]),
            ([["a:2", "b:1"], ["b:2", "a:1"]], ["z", "a"]),
            ([["b:1", "a:2"], ["a:1", "b:2"]], [99, -5]),
        ]
    ):
        vault = tmp_path / f"t{trial}"
        shutil.copytree(base, vault)
        frame = clusters_of(groups, labels).sample(frac=1.0, random_state=trial)
        assign_person_keys(frame, vault, "r2")
        cw = load_crosswalk(vault)
        outcomes.add(tuple(sorted(cw.loc[cw["person_key"] == old, "record_key"])))
        assert load_events(vault)["event"].tolist() == ["split"]
    assert outcomes == {("a:1", "b:2")}  # the half holding a:1, the key's smallest record


def test_three_way_split_retires_the_key_and_never_reuses_it(tmp_path, monkeypatch):
    assign_person_keys(clusters_of([["a:1", "a:2", "a:3"]]), tmp_path, "r1")
    old = key_of(tmp_path, "a:1")
    assign_person_keys(clusters_of([["a:1"], ["a:2"], ["a:3"]]), tmp_path, "r2")
    cw = load_crosswalk(tmp_path)
    assert old not in set(cw["person_key"]) and cw["person_key"].nunique() == 3
    assert sorted(load_events(tmp_path)["event"]) == ["split"] * 3
    # A retired key must never come back, even if the random source offers it again.
    offered = iter([old[1:], old[1:], "ab" * 5])
    monkeypatch.setattr(keys.secrets, "token_hex", lambda n: next(offered))
    assign_person_keys(clusters_of([["a:1"], ["a:2"], ["a:3"], ["new:1"]]), tmp_path, "r3")
    assert key_of(tmp_path, "new:1") == "P" + "ab" * 5


def test_removed_records_are_refused_unless_allowed_then_key_retired(tmp_path):
    assign_person_keys(clusters_of([["a:1"], ["b:1", "b:2"]]), tmp_path, "r1")
    gone = key_of(tmp_path, "a:1")
    with pytest.raises(KeyAssignmentError, match="1 record") as err:
        assign_person_keys(clusters_of([["b:1", "b:2"]]), tmp_path, "r2")
    assert "a:1" not in str(err.value)
    assert load_state(tmp_path)["generation"] == 1
    result = assign_person_keys(clusters_of([["b:1", "b:2"]]), tmp_path, "r2", allow_removed_records=True)
    assert result.records_removed == 1 and result.retired == 1
    assert load_events(tmp_path)[["event", "from_person_key"]].values.tolist() == [["retired", gone]]


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"record_key": ["s:1", None], "cluster_id": [1, 2]}), "row 1, field record_key: missing"),
        (pd.DataFrame({"record_key": ["s:1", "s:2"], "cluster_id": [1, None]}), "row 1, field cluster_id: missing"),
        (pd.DataFrame({"record_key": ["s:1", "s:9", "s:9"], "cluster_id": [1, 2, 3]}), "row 2, field record_key: record appears"),
        (pd.DataFrame({"record_key": ["s:1"]}), "missing column"),
    ],
)
def test_bad_clusters_are_refused_naming_row_and_field_but_no_value(tmp_path, frame, message):
    with pytest.raises(KeyAssignmentError, match=message) as err:
        assign_person_keys(frame, tmp_path, "r1")
    assert "s:9" not in str(err.value)
    assert not (tmp_path / "linkage" / "crosswalk.parquet").exists()


def test_a_tampered_crosswalk_is_refused(tmp_path):
    assign_person_keys(clusters_of([["a:1"], ["b:1"]]), tmp_path, "r1")
    path = tmp_path / "linkage" / "crosswalk.parquet"
    cw = pd.read_parquet(path)
    cw.loc[0, "person_key"] = cw.loc[1, "person_key"]
    cw.to_parquet(path, index=False)
    with pytest.raises(KeyAssignmentError, match="checksum"):
        load_crosswalk(tmp_path)
    with pytest.raises(KeyAssignmentError, match="checksum"):
        assign_person_keys(clusters_of([["a:1"], ["b:1"]]), tmp_path, "r2")
