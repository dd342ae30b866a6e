"""A small hand-made vault in the INTERFACES layout: identifiers, content, relationships.

About 120 people: families (mother, father, child) with a birth record each, household
spells in housing assistance, school enrolments for the children. Clusters come from the
true person ids, so the tests know exactly who is whom.
"""
from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from faker import Faker

RACES = ["black_non_hispanic", "white_non_hispanic", "hispanic", "asian_non_hispanic", "two_or_more", "unknown"]
ZIPS = ["21201", "21202", "21205", "21217", "21224", "21093"]  # 21093 is outside the city list
SCHOOLS = ["Lincoln Elementary", "Harbor Middle", "Patterson High"]
ID_COLUMNS = ["record_key", "source", "source_record_id", "role", "first_name", "middle_name", "last_name", "dob", "sex", "ssn", "street", "zip"]


def _person(fake: Faker, rng: random.Random, pid: str, born: date, sex: str) -> dict:
    return {
        "person_id": pid,
        "first_name": fake.first_name_female() if sex == "F" else fake.first_name_male(),
        "middle_name": fake.first_name(),
        "last_name": fake.last_name(),
        "dob": born,
        "sex": sex,
        "ssn": f"{rng.randint(100, 665):03d}{rng.randint(10, 99):02d}{rng.randint(1000, 9999):04d}",
        "street": fake.street_address(),
        "zip": rng.choice(ZIPS),
        "race": rng.choice(RACES),
    }


def make_population(families: int = 40, seed: int = 7) -> dict[str, list[dict]]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    people, births, housing, school = [], [], [], []
    for f in range(families):
        mother = _person(fake, rng, f"M{f}", date(1985, 1, 1) + timedelta(days=rng.randint(0, 4000)), "F")
        father = _person(fake, rng, f"F{f}", date(1983, 1, 1) + timedelta(days=rng.randint(0, 4000)), "M")
        child_born = date(2014, 1, 1) + timedelta(days=rng.randint(0, 1800))
        child = _person(fake, rng, f"C{f}", child_born, rng.choice("MF"))
        child.update(last_name=father["last_name"], street=mother["street"], zip=mother["zip"], ssn=None)
        people += [mother, father, child]
        births.append({"id": f"B{f:04d}", "child": child, "mother": mother, "father": father if f % 4 else None})
        household = f"H{f:05d}"
        start = child_born + timedelta(days=rng.randint(30, 600))
        for member, relation in ((mother, "head"), (child, "child")) + (((father, "spouse"),) if f % 3 == 0 else ()):
            housing.append({"id": f"HM{len(housing):05d}", "who": member, "household": household, "relation": relation, "start": start})
        for year in range(2):
            entry = date(child_born.year + 5 + year, 8, 28)
            school.append({"id": f"E{len(school):05d}", "who": child, "entry": entry, "school": rng.choice(SCHOOLS)})
    return {"people": people, "births": births, "housing": housing, "school": school}


def _id_row(source: str, record_id: str, role: str, p: dict, *, with_ssn: bool = True) -> dict:
    key = f"{source}:{record_id}" if role == "subject" else f"{source}:{record_id}/{role}"
    return {
        "record_key": key, "source": source, "source_record_id": record_id, "role": role,
        "first_name": p["first_name"], "middle_name": p["middle_name"], "last_name": p["last_name"],
        "dob": p["dob"].isoformat(), "sex": p["sex"], "ssn": p["ssn"] if with_ssn else None,
        "street": p["street"], "zip": p["zip"], "_person": p["person_id"],
    }


def write_vault(vault: Path, population: dict, deposit: str = "d1", only: set[str] | None = None) -> pd.DataFrame:
    """Write the partitions of one deposit; return the true clusters (record_key, cluster_id)."""
    ids: dict[str, list[dict]] = {"births": [], "housing_assistance": [], "school_enrollment": []}
    content: dict[str, list[dict]] = {k: [] for k in ids}
    rels: list[dict] = []
    for b in population["births"]:
        if only is not None and b["id"] not in only:
            continue
        ids["births"].append(_id_row("births", b["id"], "subject", b["child"], with_ssn=False))
        ids["births"].append(_id_row("births", b["id"], "mother", b["mother"]))
        rels.append({"record_key_from": f"births:{b['id']}/mother", "record_key_to": f"births:{b['id']}", "relation": "mother_of"})
        if b["father"]:
            ids["births"].append(_id_row("births", b["id"], "father", b["father"]))
            rels.append({"record_key_from": f"births:{b['id']}/father", "record_key_to": f"births:{b['id']}", "relation": "father_of"})
        content["births"].append({
            "record_key": f"births:{b['id']}", "event_date": b["child"]["dob"], "birth_weight_grams": 3000 + len(b["id"]) * 10,
            "gestational_weeks": 39, "delivery_method": "vaginal", "paternity_acknowledged": b["father"] is not None,
            "race_ethnicity": b["child"]["race"],
        })
    for h in population["housing"]:
        if only is not None and h["id"] not in only:
            continue
        ids["housing_assistance"].append(_id_row("housing_assistance", h["id"], "subject", h["who"]))
        content["housing_assistance"].append({
            "record_key": f"housing_assistance:{h['id']}", "event_date": h["start"], "program": "housing_choice_voucher",
            "household_id": h["household"], "relationship_to_head": h["relation"], "spell_start": h["start"],
            "annual_income": 18000, "race_ethnicity": h["who"]["race"],
        })
    for s in population["school"]:
        if only is not None and s["id"] not in only:
            continue
        ids["school_enrollment"].append(_id_row("school_enrollment", s["id"], "subject", s["who"], with_ssn=False))
        content["school_enrollment"].append({
            "record_key": f"school_enrollment:{s['id']}", "event_date": s["entry"], "school_year": f"{s['entry'].year}-{(s['entry'].year + 1) % 100:02d}",
            "school_name": s["school"], "grade": "K", "entry_date": s["entry"], "days_enrolled": 170, "days_attended": 160,
            "race_ethnicity": s["who"]["race"],
        })
    truth = []
    for source, rows in ids.items():
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        truth.append(frame[["record_key", "_person"]])
        for zone, table in (("identifiers", frame[ID_COLUMNS]), ("content", pd.DataFrame(content[source]))):
            folder = vault / zone / source
            folder.mkdir(parents=True, exist_ok=True)
            table.to_parquet(folder / f"{deposit}.parquet", index=False)
        (vault / "deposits" / source).mkdir(parents=True, exist_ok=True)
        (vault / "deposits" / source / f"{deposit}.json").write_text(json.dumps({"rows_accepted": len(frame)}))
    if rels:
        folder = vault / "relationships" / "births"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rels).to_parquet(folder / f"{deposit}.parquet", index=False)
    clusters = pd.concat(truth, ignore_index=True).rename(columns={"_person": "cluster_id"})
    return clusters


def all_clusters(vault: Path, truth_by_record: dict[str, str]) -> pd.DataFrame:
    """Clusters over every identifier partition in the vault, from the true person ids."""
    keys = pd.concat([pd.read_parquet(p, columns=["record_key"]) for p in sorted((vault / "identifiers").glob("*/*.parquet"))])
    return pd.DataFrame({"record_key": keys["record_key"], "cluster_id": keys["record_key"].map(truth_by_record)})


@pytest.fixture
def population() -> dict:
    return make_population()


@pytest.fixture
def linked_vault(tmp_path, population):
    """A vault with one deposit per source, linked by the true person ids."""
    from linkage.keys import assign_person_keys

    vault = tmp_path / "vault"
    clusters = write_vault(vault, population)
    assign_person_keys(clusters, vault, "run-1")
    return vault, clusters


@pytest.fixture
def vault_tools():
    """The builders above, for tests that write their own deposits (test modules cannot import conftest)."""
    import types

    return types.SimpleNamespace(make_population=make_population, write_vault=write_vault, all_clusters=all_clusters)
