"""Stage 3, measure: how many people an attacker holding the attacker model's knowledge is left
with, counted on the extract's tables as a researcher gets them. Nothing here changes a table.

* **profile**: per person, per person-level column, the set of values they show across every
  table joined on the pseudonym (missing is a value of its own; a person seen only in the
  relationships table is missing everywhere);
* **events**: the profile plus any ``m`` of the person's events (``m`` = events known), an event
  being one row's event-level values in one table; every such combination is counted in distinct
  people who hold it, and each row gets the smallest count of any combination it takes part in;
* **edges**: a relationship edge is known by its relation and the two profiles; counted in
  distinct people on each end;
* **family**: a person known by their profile and their relatives (relation, direction and the
  relative's profile, as a multiset), as an attacker matching the relationship graph of two
  extracts would know them.

Hand-written with pandas group-bys rather than pycanon: pycanon counts rows, not distinct people,
takes one row per record (these combinations span tables and sets of events), loops in Python
(FIELD_NOTES: 10x slower) and drops records with a missing quasi-identifier on pandas 3.
``tests/extract_privacy/test_measure.py`` shows it equals pycanon's k where both apply.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from enclave.extract.attacker import PAIR_KEYS, PSEUDONYM, RELATION, Knowledge
from enclave.extract.ladders import text_values

MISSING = "\x00missing"  # no value in the store starts with NUL


def people(tables: dict[str, pd.DataFrame]) -> pd.Index:
    """Everyone in the extract, whichever table (or end of an edge) they appear in."""
    found = [df[c].astype(str) for df in tables.values() for c in (PSEUDONYM, *PAIR_KEYS) if c in df.columns]
    if not found:
        return pd.Index([], dtype=object)
    return pd.Index(pd.concat(found, ignore_index=True).unique())


def _sets(long: pd.DataFrame) -> pd.Series:
    """(p, v) pairs -> per p the sorted set of its v joined into one string."""
    long = long.drop_duplicates()
    size = long.groupby("p", sort=False)["v"].transform("size")
    single = long.loc[size == 1].set_index("p")["v"]
    multi = long.loc[size > 1].sort_values(["p", "v"])
    joined = multi.groupby("p", sort=False)["v"].agg("\x1f".join) if len(multi) else pd.Series(dtype=object)
    return pd.concat([single, joined])


def profiles(tables: dict[str, pd.DataFrame], person_columns: tuple[str, ...] | list[str]) -> pd.Series:
    """Profile id per person (index: pseudonym); equal ids are equal profiles."""
    population = people(tables)
    columns = {}
    for col in person_columns:
        parts = [pd.DataFrame({"p": df[PSEUDONYM].astype(str).to_numpy(), "v": text_values(df[col]).fillna(MISSING).to_numpy()})
                 for df in tables.values() if PSEUDONYM in df.columns and col in df.columns]
        if not parts:
            continue
        columns[col] = _sets(pd.concat(parts, ignore_index=True)).reindex(population).fillna(MISSING).to_numpy()
    if not columns:
        return pd.Series(0, index=population, dtype="int64")
    ids = combine([pd.factorize(v)[0].astype(np.int64) for v in columns.values()])
    return pd.Series(ids, index=population, dtype="int64")


def combine(codes: list[np.ndarray]) -> np.ndarray:
    """Row ids over several integer code columns: equal tuples, equal id (exact, no hashing)."""
    out = np.zeros(len(codes[0]) if codes else 0, dtype=np.int64)
    for c in codes:
        width = int(c.max()) + 1 if len(c) else 1
        out, _ = pd.factorize(out * width + c)
        out = out.astype(np.int64)
    return out


def event_ids(df: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """One id per row for its event-level values (equal values, equal id; missing is a value)."""
    if not len(df):
        return np.zeros(0, dtype=np.int64)
    if not columns:
        return np.zeros(len(df), dtype=np.int64)
    return combine([pd.factorize(text_values(df[c]).fillna(MISSING))[0].astype(np.int64) for c in columns])


def event_class_sizes(tables: dict[str, pd.DataFrame], knowledge: Knowledge, profile: pd.Series,
                      only: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per table, per row: the fewest people sharing the person's profile plus any set of up to
    ``events_known`` of their events that includes this row's event."""
    m = knowledge.model.events_known
    names = [t for t in sorted(knowledge.event_columns) if t in tables and (only is None or t in only)]
    if m < 1 or not names:
        return {t: np.full(len(tables[t]), np.iinfo(np.int64).max) for t in names}
    rows, offset = [], 0
    for t in names:
        df = tables[t]
        ev = event_ids(df, knowledge.event_columns[t]) + offset
        offset = int(ev.max()) + 1 if len(ev) else offset
        rows.append(pd.DataFrame({"t": t, "row": np.arange(len(df)), "p": df[PSEUDONYM].astype(str).to_numpy(), "e": ev}))
    allrows = pd.concat(rows, ignore_index=True)
    pairs = allrows[["p", "e"]].drop_duplicates()
    pairs = pairs.assign(prof=profile.reindex(pairs["p"]).to_numpy())
    pairs["min"] = pairs.groupby(["prof", "e"], sort=False)["p"].transform("size")
    combos = pairs[["p", "prof", "e"]].rename(columns={"e": "e1"})
    for j in range(2, m + 1):  # combinations of j distinct events, ascending ids, per person
        combos = combos.merge(pairs[["p", "e"]].rename(columns={"e": f"e{j}"}), on="p")
        combos = combos.loc[combos[f"e{j}"] > combos[f"e{j - 1}"]]
        if combos.empty:
            break
        keys = ["prof"] + [f"e{i}" for i in range(1, j + 1)]
        size = combos.groupby(keys, sort=False)["p"].transform("size")
        for i in range(1, j + 1):
            worst = pd.DataFrame({"p": combos["p"].to_numpy(), "e": combos[f"e{i}"].to_numpy(), "s": size.to_numpy()})
            worst = worst.groupby(["p", "e"], sort=False)["s"].min()
            have = pd.MultiIndex.from_frame(pairs[["p", "e"]])
            pairs["min"] = np.minimum(pairs["min"].to_numpy(), worst.reindex(have).fillna(np.iinfo(np.int64).max).to_numpy())
    per_row = allrows.merge(pairs[["p", "e", "min"]], on=["p", "e"], how="left")
    return {t: per_row.loc[per_row["t"] == t].sort_values("row")["min"].to_numpy().astype(np.int64) for t in names}


def edge_class_sizes(edges: pd.DataFrame, profile: pd.Series) -> np.ndarray:
    """Per edge: the fewer of the distinct people on each end among edges with the same relation
    and the same two profiles."""
    if not len(edges):
        return np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame({
        "a": edges[PAIR_KEYS[0]].astype(str).to_numpy(), "b": edges[PAIR_KEYS[1]].astype(str).to_numpy(),
        "r": text_values(edges[RELATION]).fillna(MISSING).to_numpy() if RELATION in edges.columns else "",
    })
    frame["pa"] = profile.reindex(frame["a"]).to_numpy()
    frame["pb"] = profile.reindex(frame["b"]).to_numpy()
    grouped = frame.groupby(["r", "pa", "pb"], sort=False)
    return np.minimum(grouped["a"].transform("nunique").to_numpy(), grouped["b"].transform("nunique").to_numpy()).astype(np.int64)


def family_class_sizes(edges: pd.DataFrame, profile: pd.Series) -> pd.Series:
    """Per person: people sharing their profile and their relatives' profiles (as a multiset of
    relation, direction, relative's profile)."""
    if not len(profile):
        return pd.Series(dtype="int64")
    if len(edges):
        a = edges[PAIR_KEYS[0]].astype(str).to_numpy()
        b = edges[PAIR_KEYS[1]].astype(str).to_numpy()
        rel = text_values(edges[RELATION]).fillna(MISSING).to_numpy() if RELATION in edges.columns else np.full(len(edges), "")
        pa, pb = profile.reindex(a).to_numpy(), profile.reindex(b).to_numpy()
        long = pd.DataFrame({
            "p": np.concatenate([a, b]),
            "v": np.concatenate([np.char.add(np.char.add("out|", rel.astype(str)), "|" + pb.astype(str)),
                                 np.char.add(np.char.add("in|", rel.astype(str)), "|" + pa.astype(str))]),
        })
        # a multiset: the same relative profile twice (twins) counts twice
        long["v"] = long["v"] + "#" + long.groupby(["p", "v"], sort=False).cumcount().astype(str)
        relatives = _sets(long).reindex(profile.index).fillna("")
    else:
        relatives = pd.Series("", index=profile.index)
    frame = pd.DataFrame({"prof": profile.to_numpy(), "rel": relatives.to_numpy()}, index=profile.index)
    return frame.groupby(["prof", "rel"], sort=False)["prof"].transform("size").astype("int64")


@dataclass
class Risk:
    """Smallest counts found, and what falls below k (row masks per table, edges, people)."""

    k: int
    profile_k: int | None = None
    event_k: int | None = None
    edge_k: int | None = None
    family_k: int | None = None
    risky_rows: dict[str, np.ndarray] = field(default_factory=dict)
    risky_edges: dict[str, np.ndarray] = field(default_factory=dict)
    risky_people: pd.Index = field(default_factory=lambda: pd.Index([]))
    risky_family: pd.Index = field(default_factory=lambda: pd.Index([]))

    @property
    def clean(self) -> bool:
        return (not any(m.any() for m in self.risky_rows.values()) and not any(m.any() for m in self.risky_edges.values())
                and not len(self.risky_people) and not len(self.risky_family))

    def figures(self) -> dict[str, int | None]:
        return {"profile_k": self.profile_k, "event_k": self.event_k, "edge_k": self.edge_k, "family_k": self.family_k}


def _min(values) -> int | None:
    values = [int(v) for v in values if v is not None]
    return min(values) if values else None


def edge_tables(tables: dict[str, pd.DataFrame]) -> list[str]:
    return sorted(t for t, df in tables.items() if all(c in df.columns for c in PAIR_KEYS))


def assess(tables: dict[str, pd.DataFrame], knowledge: Knowledge) -> Risk:
    """Everything the attacker model allows, measured on ``tables``."""
    k = knowledge.k
    profile = profiles(tables, knowledge.person_columns)
    risk = Risk(k=k)
    if len(profile):
        sizes = profile.groupby(profile, sort=False).transform("size")
        risk.profile_k = int(sizes.min())
        risk.risky_people = profile.index[(sizes < k).to_numpy()]
    events = event_class_sizes(tables, knowledge, profile) if knowledge.model.events_known else {}
    risk.risky_rows = {t: s < k for t, s in events.items()}
    risk.event_k = _min(s.min() for s in events.values() if len(s))
    if knowledge.model.family_edges_known:
        pair_names = edge_tables(tables)
        edges = {t: edge_class_sizes(tables[t], profile) for t in pair_names}
        risk.risky_edges = {t: s < k for t, s in edges.items()}
        risk.edge_k = _min(s.min() for s in edges.values() if len(s))
        if pair_names:
            family = family_class_sizes(pd.concat([tables[t] for t in pair_names], ignore_index=True), profile)
            risk.family_k = int(family.min()) if len(family) else None
            risk.risky_family = family.index[(family < k).to_numpy()]
    return risk
