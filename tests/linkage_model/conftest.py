"""A small synthetic vault (identifier partitions in the INTERFACES layout + ground truth).

Kept independent of the full generator so these tests stay small and fast: a few hundred
people, three sources, the error kinds linkage must survive (typos, nicknames, swapped
names, dob typos, moves, missing SSNs, placeholder SSNs).
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pandas as pd
import pytest

FIRST = ["william", "elizabeth", "robert", "jennifer", "michael", "patricia", "james", "maria", "david", "susan",
         "joseph", "linda", "thomas", "karen", "daniel", "nancy", "matthew", "lisa", "anthony", "betty",
         "jose", "sandra", "andrew", "ashley", "joshua", "emily", "kevin", "donna", "brian", "michelle"]
LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
        "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin",
        "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson",
        "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores"]
NICK = {"william": "Bill", "elizabeth": "Liz", "robert": "Bob", "michael": "Mike", "james": "Jim",
        "joseph": "Joe", "thomas": "Tom", "daniel": "Dan", "matthew": "Matt", "anthony": "Tony", "andrew": "Andy"}
STREETS = ["Main Street", "Oak Avenue", "Maple Road", "Cedar Lane", "Elm Street", "Pine Drive", "Lake Boulevard",
           "Hill Court", "Park Place", "River Road", "Sunset Terrace", "Washington Avenue"]


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 3:
        return s
    i = rng.randrange(1, len(s) - 1)
    kind = rng.random()
    if kind < 0.4:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if kind < 0.7:
        return s[:i] + s[i + 1:]
    return s[:i] + rng.choice("aeioulnrst") + s[i + 1:]


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def make_vault(root: Path, people: int = 400, seed: int = 3, sources: tuple[str, ...] = ("births", "school", "housing")) -> tuple[Path, Path]:
    """Write ``root/vault/identifiers/<source>/d1.parquet`` and ``root/ground_truth.csv``."""
    rng = random.Random(seed)
    persons = []
    for pid in range(people):
        persons.append({
            "pid": f"P{pid}",
            "first": rng.choice(FIRST), "middle": rng.choice(FIRST + [None]), "last": rng.choice(LAST),
            "dob": f"{rng.randint(1950, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "sex": rng.choice("MF"), "ssn": _ssn(rng),
            "street": f"{rng.randint(1, 999)} {rng.choice(['North ', 'S. ', ''])}{rng.choice(STREETS)}",
            "zip": f"606{rng.randint(10, 40)}",
        })
    vault = root / "vault"
    truth_rows = []
    for s_index, source in enumerate(sources):
        rows = []
        for person in persons:
            copies = 1 if rng.random() < 0.6 else (0 if rng.random() < 0.5 else 2)
            for _ in range(copies):
                rid = f"{len(rows) + 1:06d}"
                first, last, dob = person["first"].title(), person["last"].upper(), person["dob"]
                r = rng.random()
                if r < 0.08:
                    first = _typo(rng, first)
                elif r < 0.14:
                    last = _typo(rng, last)
                elif r < 0.18 and person["first"] in NICK:
                    first = NICK[person["first"]]
                elif r < 0.21:
                    first, last = last, first
                if rng.random() < 0.06:
                    y, m, d = dob.split("-")
                    dob = f"{y}-{d}-{m}" if int(d) <= 12 else f"{y}-{m}-{int(d) % 28 + 1:02d}"
                street, zip_code = person["street"], person["zip"]
                if rng.random() < 0.15:  # moved
                    street, zip_code = f"{rng.randint(1, 999)} {rng.choice(STREETS)}", f"606{rng.randint(10, 40)}"
                ssn = None if (s_index == 1 or rng.random() < 0.2) else person["ssn"]
                if ssn and rng.random() < 0.03:
                    ssn = "123-45-6789"
                rows.append({
                    "record_key": f"{source}:{rid}", "source": source, "source_record_id": rid, "role": "subject",
                    "first_name": first, "middle_name": person["middle"], "last_name": last,
                    "dob": dob if rng.random() > 0.03 else None, "sex": person["sex"], "ssn": ssn,
                    "street": street, "zip": zip_code,
                })
                truth_rows.append((source, rid, "subject", person["pid"]))
        out = vault / "identifiers" / source
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(out / "d1.parquet", index=False)
        # Linkage reads only deposits whose manifest says they are complete (linkage.deposits).
        (vault / "deposits" / source).mkdir(parents=True, exist_ok=True)
        (vault / "deposits" / source / "d1.json").write_text('{"state": "complete"}')
    truth = root / "ground_truth.csv"
    with truth.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "source_record_id", "role", "person_id"])
        writer.writerows(truth_rows)
    return vault, truth


@pytest.fixture
def small_vault(tmp_path: Path) -> tuple[Path, Path]:
    return make_vault(tmp_path, people=150)


@pytest.fixture(scope="module")
def linked_run(tmp_path_factory: pytest.TempPathFactory):
    """One DuckDB linkage run over the small vault, shared by the tests that only read it."""
    from linkage.link import run_linkage

    root = tmp_path_factory.mktemp("linked")
    vault, truth = make_vault(root)
    return run_linkage(vault, ground_truth=truth), vault, truth


@pytest.fixture
def vault_builder():
    """``make_vault`` itself, for tests that need another size or other sources."""
    return make_vault
