"""A small research store of young parents and their children (births, school enrolment,
mother_of edges) and the attacks of issue 10, written here and not with the library's measure:
each reads the extract's files as a researcher gets them and counts candidates itself."""
from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

K = 5
PERSON_QIS = ["birth_year", "sex", "race_ethnicity", "neighbourhood"]
NEIGHBOURHOODS = ["Hampden", "Canton", "Fells Point", "Sandtown"]
RACES = ["black_non_hispanic", "white_non_hispanic", "hispanic"]
FACILITIES = ["Johns Hopkins Hospital", "Mercy Medical Center", "Sinai Hospital", "Home or other"]
SCHOOL_VARS = ["school_year", "school_name", "grade", "days_attended"]
BIRTH_VARS = ["birth_facility", "plurality", "birth_weight_grams"]
MISSING = "<missing>"


def family_store(research: Path, mothers: int = 160, seed: int = 11) -> Path:
    """Young mothers (born 1995-2002) and their children (born 2011-2016): one birth record per
    child, one school enrolment per child per year from age 5, one mother_of edge per child."""
    rng = np.random.default_rng(seed)
    research.mkdir(parents=True, exist_ok=True)
    m_keys = [f"M{i:05d}" for i in range(mothers)]
    m_nb = rng.choice(NEIGHBOURHOODS, mothers)
    m_race = rng.choice(RACES, mothers, p=[0.6, 0.25, 0.15])
    persons, births, schools, edges = [], [], [], []
    for i, key in enumerate(m_keys):
        persons.append((key, int(rng.integers(1995, 2003)), "F", m_race[i], m_nb[i]))
        for c in range(int(rng.choice([1, 1, 2, 3]))):
            ck = f"C{i:05d}{c}"
            by = int(rng.integers(2011, 2017))
            sex = str(rng.choice(["F", "M"]))
            persons.append((ck, by, sex, m_race[i], m_nb[i]))
            edges.append((key, ck, "mother_of"))
            births.append((ck, f"{by}-{int(rng.integers(1, 13)):02d}", 0, by, sex, m_race[i], m_nb[i],
                           str(rng.choice(FACILITIES, p=[0.4, 0.3, 0.25, 0.05])), int(rng.choice([1, 1, 1, 1, 1, 1, 1, 2])),
                           int(rng.integers(1500, 4500))))
            for year in range(by + 5, 2022):
                grade = year - by - 5
                level = "Elementary" if grade <= 5 else "Middle"
                schools.append((ck, f"{year}-09", year - by, by, sex, m_race[i], m_nb[i], f"{year}-{(year + 1) % 100:02d}",
                                f"{m_nb[i]} {level} School" if rng.random() < 0.8 else f"{str(rng.choice(NEIGHBOURHOODS))} {level} School",
                                "K" if grade == 0 else str(grade), int(rng.integers(120, 181))))
    person_cols = ["person_key", *PERSON_QIS]
    event_cols = ["person_key", "event_date", "age_at_event", *PERSON_QIS]
    tables = {
        "persons": pd.DataFrame(persons, columns=person_cols),
        "births": pd.DataFrame(births, columns=event_cols + BIRTH_VARS),
        "school_enrollment": pd.DataFrame(schools, columns=event_cols + SCHOOL_VARS),
        "relationships": pd.DataFrame(edges, columns=["person_key_from", "person_key_to", "relation"]),
    }
    return write_store(research, tables)


def write_store(research: Path, tables: dict[str, pd.DataFrame]) -> Path:
    research.mkdir(parents=True, exist_ok=True)
    infos = {}
    for name, frame in tables.items():
        # the research store's order: sorted by person key (what the row-order attack exploits)
        keys = [c for c in ("person_key", "person_key_from") if c in frame.columns]
        frame = frame.sort_values(keys, kind="mergesort").reset_index(drop=True)
        path = research / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        infos[name] = {"file": path.name, "rows": len(frame), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                       "columns": {c: {"type": str(frame[c].dtype), "description": c} for c in frame.columns},
                       "source": {"domain": "x", "agency": name, "steward": "s"}}
    (research / "manifest.json").write_text(json.dumps({"tables": infos}))
    return research


FAMILY_VARIABLES = {
    "births": ["event_date", "age_at_event", *PERSON_QIS, *BIRTH_VARS],
    "school_enrollment": ["event_date", "age_at_event", *PERSON_QIS, *SCHOOL_VARS],
    "relationships": ["relation"],
}


def build(tmp_path: Path, research: Path, project: str, *, protect: bool = True, k: int = K,
          variables: dict | None = None, conditions: dict | None = None, monkeypatch=None):
    """Build an extract; ``protect=False`` is the build without issue 10's steps (the attacks
    must succeed on it): no attacker-model remedy and the store's row order kept."""
    from enclave import provisioning
    from enclave.conditions import ProjectConditions
    from enclave.extract import remedy, shuffle

    spec = provisioning.ExtractSpec(project=project, approval_id="1", variables=variables or FAMILY_VARIABLES, k=k,
                                    conditions=ProjectConditions.model_validate(conditions or {}))
    out = tmp_path / ("extracts" if protect else "extracts-unprotected")
    if protect:
        return provisioning.build_extract(spec, research, tmp_path / "keys", out)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(remedy, "protect_attacker_knowledge",
                   lambda frames, qis, spec, joined: (frames, {"attacker_model": {}, "measured": {}}, joined))
        mp.setattr(shuffle, "shuffle", lambda frames: frames)
        return provisioning.build_extract(spec, research, tmp_path / "keys", out)


# --------------------------------------------------------------------------- reading an extract


def norm(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read(folder: Path) -> dict[str, pd.DataFrame]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {t: pd.read_parquet(folder / m["file"]) for t, m in manifest["tables"].items()}


def profiles(tables: dict[str, pd.DataFrame]) -> dict[str, tuple]:
    """Per pseudonym, per person-level column, the set of values it shows across tables."""
    seen: dict[str, dict[str, set]] = defaultdict(dict)
    for df in tables.values():
        for key in ("pseudonym_from", "pseudonym_to"):
            for p in df.get(key, []):
                seen[p]
        if "pseudonym" not in df.columns:
            continue
        cols = [c for c in PERSON_QIS if c in df.columns]
        for row in df[["pseudonym", *cols]].itertuples(index=False):
            for col, v in zip(cols, row[1:]):
                seen[row[0]].setdefault(col, set()).add(norm(v))
    return {p: tuple(frozenset(v.get(c) or {MISSING}) for c in PERSON_QIS) for p, v in seen.items()}


def event_attack(tables: dict[str, pd.DataFrame], table: str, known: list[str], with_profile: bool = True) -> Counter:
    """The attacker knows one event of the target (its ``known`` values in ``table``), and the
    profile: per (profile, event), how many distinct people in the extract are candidates."""
    prof = profiles(tables)
    df = tables[table]
    cols = [c for c in known if c in df.columns]
    holders: dict[tuple, set] = defaultdict(set)
    for row in df[["pseudonym", *cols]].itertuples(index=False):
        key = tuple(norm(v) for v in row[1:])
        holders[(prof[row[0]] if with_profile else None, key)].add(row[0])
    return Counter({key: len(who) for key, who in holders.items()})


def singled_out_by_event(tables, table, known, with_profile=True) -> int:
    """How many people a known event (plus profile) narrows to a class below k... of size 1."""
    return sum(1 for n in event_attack(tables, table, known, with_profile).values() if n == 1)


def smallest_event_class(tables, table, known, with_profile=True) -> int:
    counts = event_attack(tables, table, known, with_profile)
    return min(counts.values()) if counts else K


def edge_attack(tables: dict[str, pd.DataFrame]) -> list[int]:
    """The attacker knows a mother's and her child's profiles: per edge, candidate pairs' fewer end."""
    prof = profiles(tables)
    rel = tables["relationships"]
    froms, tos = defaultdict(set), defaultdict(set)
    for a, b, r in rel[["pseudonym_from", "pseudonym_to", "relation"]].itertuples(index=False):
        froms[(r, prof[a], prof[b])].add(a)
        tos[(r, prof[a], prof[b])].add(b)
    return [min(len(froms[key]), len(tos[key])) for key in froms]


def signatures(tables: dict[str, pd.DataFrame]) -> dict[str, tuple]:
    """Graph matching: a person by their profile and the multiset of (direction, relation, relative's profile)."""
    prof = profiles(tables)
    rel = tables["relationships"]
    around: dict[str, list] = defaultdict(list)
    for a, b, r in rel[["pseudonym_from", "pseudonym_to", "relation"]].itertuples(index=False):
        around[a].append(("out", r, prof[b]))
        around[b].append(("in", r, prof[a]))
    return {p: (prof[p], tuple(sorted(around.get(p, []), key=repr))) for p in prof}


def truth(keystore: Path, project_a: str, project_b: str, keys: list[str]) -> dict[str, str]:
    """The true pseudonym map between two projects (the test knows the person keys)."""
    from linkage.pseudonyms import pseudonymise

    a = pseudonymise(keys, project_a, keystore)
    b = pseudonymise(keys, project_b, keystore)
    return dict(zip(a, b))


def row_order_relink(folder_a: Path, folder_b: Path) -> dict[str, str]:
    """Align the two projects' tables row by row: row i is taken to be the same record."""
    a, b = read(folder_a), read(folder_b)
    guess: dict[str, str] = {}
    for table in set(a) & set(b):
        for col in ("pseudonym", "pseudonym_from", "pseudonym_to"):
            if col in a[table].columns and col in b[table].columns:
                n = min(len(a[table]), len(b[table]))
                for x, y in zip(a[table][col][:n], b[table][col][:n]):
                    guess.setdefault(x, y)
    return guess


def graph_relink(folder_a: Path, folder_b: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Match people by graph signature; returns the unique matches and, per person of A, its candidates in B."""
    sa, sb = signatures(read(folder_a)), signatures(read(folder_b))
    by_sig: dict[tuple, list] = defaultdict(list)
    for p, s in sb.items():
        by_sig[s].append(p)
    unique = {p: by_sig[s][0] for p, s in sa.items() if len(by_sig.get(s, [])) == 1}
    candidates = {p: len(by_sig.get(s, [])) for p, s in sa.items()}
    return unique, candidates


@pytest.fixture
def attack():
    return SimpleNamespace(**{n: getattr(sys.modules[__name__], n) for n in (
        "family_store", "write_store", "build", "read", "profiles", "event_attack", "singled_out_by_event",
        "smallest_event_class", "edge_attack", "signatures", "truth", "row_order_relink", "graph_relink",
        "FAMILY_VARIABLES", "K", "PERSON_QIS")})
