"""Extract build time at N people (default 100k), with issue 10's checks and, in the same run,
today's build without them (per-table k and the joined-tables check only, store order kept).

The store: young mothers and their children (``persons``, ``births``, ``school_enrollment``
with one row per child per school year, ``relationships`` mother_of edges), in the research
store's layout and order. Target: ``extract_100k_seconds`` <= 2 x ``extract_100k_per_table_only_seconds``.

Usage: ``python benchmarks/extract.py [--people 100000]``. Ends with one ``name=value`` line per figure.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NEIGHBOURHOODS = ["Hampden", "Canton", "Fells Point", "Sandtown", "Roland Park", "Remington", "Waverly", "Druid Heights"]
RACES = np.array(["black_non_hispanic", "white_non_hispanic", "hispanic", "asian_non_hispanic"])
FACILITIES = np.array(["Johns Hopkins Hospital", "Mercy Medical Center", "Sinai Hospital", "University of Maryland Medical Center",
                       "Home or other"])
QIS = ["birth_year", "sex", "race_ethnicity", "neighbourhood"]


def store(research: Path, people: int, seed: int = 5) -> Path:
    """``people`` people: about 45 % mothers, the rest their children, all vectorised."""
    rng = np.random.default_rng(seed)
    mothers = int(people * 0.45)
    children = people - mothers
    mother_of = np.sort(rng.integers(0, mothers, children))
    m_nb = rng.choice(NEIGHBOURHOODS, mothers)
    m_race = rng.choice(RACES, mothers, p=[0.6, 0.25, 0.1, 0.05])
    persons = pd.DataFrame({
        "person_key": [f"P{i:07d}" for i in range(people)],
        "birth_year": np.concatenate([rng.integers(1990, 2004, mothers), rng.integers(2008, 2018, children)]),
        "sex": np.concatenate([np.full(mothers, "F"), rng.choice(["F", "M"], children)]),
        "race_ethnicity": np.concatenate([m_race, m_race[mother_of]]),
        "neighbourhood": np.concatenate([m_nb, m_nb[mother_of]]),
    })
    kids = persons.iloc[mothers:].reset_index(drop=True)
    births = kids.assign(event_date=kids.birth_year.astype(str) + "-" + pd.Series(rng.integers(1, 13, children)).map("{:02d}".format),
                         age_at_event=0, birth_facility=rng.choice(FACILITIES, children, p=[0.35, 0.25, 0.2, 0.15, 0.05]),
                         plurality=rng.choice([1, 2], children, p=[0.97, 0.03]), birth_weight_grams=rng.integers(1500, 4500, children))
    years = np.clip(2022 - (kids.birth_year.to_numpy() + 5), 0, 13)
    idx = np.repeat(np.arange(children), years)
    grade = np.concatenate([np.arange(n) for n in years])
    rows = kids.iloc[idx].reset_index(drop=True)
    year = rows.birth_year.to_numpy() + 5 + grade
    level = np.where(grade <= 5, "Elementary", np.where(grade <= 8, "Middle", "High"))
    own = rng.random(len(rows)) < 0.8
    area = np.where(own, rows.neighbourhood.to_numpy(), rng.choice(NEIGHBOURHOODS, len(rows)))
    school = rows.assign(event_date=pd.Series(year).astype(str) + "-09", age_at_event=year - rows.birth_year.to_numpy(),
                         school_year=pd.Series(year).astype(str) + "-" + pd.Series((year + 1) % 100).map("{:02d}".format),
                         school_name=pd.Series(area).str.cat(pd.Series(level), sep=" ") + " School",
                         grade=np.where(grade == 0, "K", grade.astype(str)), days_attended=rng.integers(100, 181, len(rows)))
    edges = pd.DataFrame({"person_key_from": persons.person_key.to_numpy()[mother_of],
                          "person_key_to": kids.person_key.to_numpy(), "relation": "mother_of"})
    research.mkdir(parents=True, exist_ok=True)
    infos = {}
    for name, frame in {"persons": persons, "births": births, "school_enrollment": school, "relationships": edges}.items():
        path = research / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        infos[name] = {"file": path.name, "rows": len(frame), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                       "columns": {c: {"type": str(frame[c].dtype), "description": c} for c in frame.columns}}
    (research / "manifest.json").write_text(json.dumps({"tables": infos}))
    return research


VARIABLES = {
    "births": ["event_date", "age_at_event", *QIS, "birth_facility", "plurality", "birth_weight_grams"],
    "school_enrollment": ["event_date", "age_at_event", *QIS, "school_year", "school_name", "grade", "days_attended"],
    "relationships": ["relation"],
}


def build(tmp: Path, research: Path, project: str, *, new_checks: bool):
    from enclave.extract import remedy, shuffle
    from enclave.provisioning import ExtractSpec, build_extract

    spec = ExtractSpec(project=project, approval_id="1", variables=VARIABLES, k=5)
    saved = (remedy.protect_attacker_knowledge, shuffle.shuffle)
    if not new_checks:  # today's build: per-table k and the joined-tables check, store order kept
        remedy.protect_attacker_knowledge = lambda frames, qis, spec, joined: (frames, {"attacker_model": {}, "measured": {}}, joined)
        shuffle.shuffle = lambda frames: frames
    try:
        start = time.perf_counter()
        result = build_extract(spec, research, tmp / "keys", tmp / ("extracts" if new_checks else "extracts-old"))
        return result, time.perf_counter() - start
    finally:
        remedy.protect_attacker_knowledge, shuffle.shuffle = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    args = parser.parse_args()
    label = f"{args.people // 1000}k" if args.people % 1000 == 0 else str(args.people)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        research = store(tmp / "research", args.people)
        old, old_s = build(tmp, research, "bench-old", new_checks=False)
        new, new_s = build(tmp, research, "bench", new_checks=True)
        print(f"rows "
              f"{ {t: m['rows'] for t, m in new.manifest['tables'].items()} } (before the new checks: "
              f"{ {t: m['rows'] for t, m in old.manifest['tables'].items()} })")
        print(f"measured: {new.manifest['privacy']['measured']}; rounds {new.manifest['privacy']['rounds']}")
        print(f"extract_{label}_seconds={new_s:.1f}")
        print(f"extract_{label}_per_table_only_seconds={old_s:.1f}")
        print(f"extract_{label}_ratio={new_s / old_s:.2f}")


if __name__ == "__main__":
    main()
