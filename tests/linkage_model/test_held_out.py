"""Held-out style acceptance: a noised set built here (not by linkage.synth, which the model was
tuned on): four agency files in the style of census, social-security, tax and nutrition-program
extracts, with typos, nicknames, swapped and missing fields, impossible and future dates, OCR
letters in zips and SSNs, digits in names, zip 00000 placeholders and household members' SSNs
on tax records. Every delivered record counts: a quarantined record is a missed one.

Compared on the same delivered records: our pipeline with the default intake policy, the same
with every identifier column set to quarantine_row (what intake did before), and a plain Splink
model (Splink's out-of-the-box comparisons) on the raw delivered identifiers.
"""
from __future__ import annotations

import csv
import datetime as dt
import random
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
import yaml

from linkage.ingest import ingest_file
from linkage.link import run_linkage
from linkage.sources import SourceDefinition, load_definition

FIRST = ["james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "william", "elizabeth", "david",
         "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "charles", "karen", "daniel", "nancy",
         "matthew", "lisa", "anthony", "betty", "mark", "margaret", "donald", "sandra", "steven", "ashley", "paul",
         "kimberly", "andrew", "emily", "joshua", "donna", "kenneth", "michelle", "kevin", "carol", "brian", "amanda",
         "george", "melissa", "timothy", "deborah", "ronald", "stephanie", "jason", "rebecca", "edward", "laura"]
NICK = {"james": "jim", "robert": "bob", "john": "jack", "michael": "mike", "william": "bill", "elizabeth": "liz",
        "richard": "dick", "joseph": "joe", "thomas": "tom", "charles": "chuck", "daniel": "dan", "matthew": "matt",
        "anthony": "tony", "margaret": "peggy", "donald": "don", "steven": "steve", "andrew": "andy", "kenneth": "ken",
        "timothy": "tim", "ronald": "ron", "edward": "ed", "patricia": "pat", "jennifer": "jen", "deborah": "deb"}
LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
        "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin", "lee",
        "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson", "walker", "young",
        "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker"]
STREETS = ["oak st", "maple ave", "charles st", "harford rd", "york rd", "liberty hts ave", "greenmount ave", "eastern ave"]
TODAY = dt.date(2025, 6, 30)
OCR = str.maketrans({"0": "O", "1": "l", "5": "S", "8": "B"})

DEFINITIONS = {
    "census": {"date_format": "%m/%d/%Y", "sex_codes": {"1": "M", "2": "F"},
               "identifiers": {"first_name": "FNAME", "last_name": "LNAME", "dob": "BDATE", "sex": "SEX", "street": "ADDR", "zip": "ZIP"}},
    "ssa": {"date_format": "%Y-%m-%d", "sex_codes": {"M": "M", "F": "F"},
            "identifiers": {"first_name": "first", "last_name": "last", "dob": "dob", "sex": "sex", "ssn": "ssn"}},
    "tax": {"date_format": "%Y-%m-%d", "identifiers": {"first_name": "first", "last_name": "last", "ssn": "tin", "street": "street", "zip": "zip"}},
    "snap": {"date_format": "%m/%d/%Y", "placeholders": {"zip": ["00000"]},
             "identifiers": {"first_name": "first", "last_name": "last", "dob": "dob", "street": "street", "zip": "zip"}},
}


def _population(rng: random.Random, households: int = 110) -> list[dict]:
    people = []
    for h in range(households):
        last, street, zip_code = rng.choice(LAST), f"{rng.randint(1, 3999)} {rng.choice(STREETS)}", f"212{rng.randint(1, 40):02d}"
        for _ in range(rng.choice([1, 2, 2, 3, 4])):
            people.append({"pid": f"P{len(people)}", "hh": h, "first": rng.choice(FIRST), "last": last,
                           "dob": dt.date(rng.randint(1950, 2015), rng.randint(1, 12), rng.randint(1, 28)),
                           "sex": rng.choice("MF"), "ssn": f"{rng.randint(1, 665):03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}",
                           "street": street, "zip": zip_code})
    return people


def _typo(rng: random.Random, s: str) -> str:
    i = rng.randrange(len(s))
    return s[:i] + rng.choice("aeiourstln") + s[i + 1:]


def _noised(rng: random.Random, p: dict, source: str, people: list[dict]) -> tuple[dict, str | None]:
    """One record of person ``p`` as ``source`` would send it; returns it and the error injected."""
    first, last, dob, ssn, zip_code, street = p["first"], p["last"], p["dob"], p["ssn"], p["zip"], p["street"]
    if rng.random() < 0.08:
        first = _typo(rng, first)
    if rng.random() < 0.06:
        last = _typo(rng, last)
    if rng.random() < 0.08:
        first = NICK.get(first, first)
    if rng.random() < 0.02:
        first, last = last, first
    fmt = DEFINITIONS[source]["date_format"]
    dob_text = dob.strftime(fmt)
    if rng.random() < 0.04:
        dob_text = dob.replace(day=min(28, dob.day % 28 + 1)).strftime(fmt)  # a wrong day
    error = None
    roll = rng.random()
    if roll < 0.015:
        dob_text, error = (dt.date(2031, dob.month, dob.day).strftime(fmt), "future dob")
    elif roll < 0.03:
        dob_text, error = (fmt.replace("%Y", str(dob.year)).replace("%m", "02").replace("%d", "30"), "impossible dob")
    elif roll < 0.045:
        zip_code, error = zip_code.translate(OCR), "OCR zip"
    elif roll < 0.06:
        ssn, error = ssn[:4] + ssn[4:].translate(OCR), "OCR ssn"
    elif roll < 0.075:
        first, error = first[:2] + "1" + first[3:], "digit in name"
    if source == "tax" and rng.random() < 0.12:
        others = [q for q in people if q["hh"] == p["hh"] and q is not p]
        if others:
            ssn, error = rng.choice(others)["ssn"], "household member's SSN"
    if source == "snap" and rng.random() < 0.1:
        zip_code = "00000"
    if rng.random() < 0.05:
        street = ""
    values = {"first_name": first.upper() if source == "tax" else first.title(), "last_name": last.title(), "dob": dob_text,
              "sex": {"census": {"M": "1", "F": "2"}, "ssa": {"M": "M", "F": "F"}}.get(source, {}).get(p["sex"], ""),
              "ssn": f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}" if source == "ssa" else ssn, "street": street, "zip": zip_code}
    return values, error


def _definition(source: str, policy: str | None) -> dict:
    spec = DEFINITIONS[source]
    raw = {"name": source, "domain": "health_vital_statistics", "agency": f"{source} agency", "steward": f"{source}-steward",
           "format": "csv", "record_id": "REC", "event_date": "EVENT", **{k: v for k, v in spec.items() if k != "identifiers"},
           "identifiers": spec["identifiers"],
           "content": {"EVENT": {"type": "date", "description": "Date of the record", "required": True}}}
    if policy:
        raw["on_invalid"] = {column: policy for column in spec["identifiers"].values()}
    return raw


def _write_sources(root: Path, rng: random.Random, people: list[dict]) -> tuple[Path, pd.DataFrame]:
    files = root / "files"
    files.mkdir()
    truth, errors = [], []
    for source, spec in DEFINITIONS.items():
        with open(files / f"{source}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            columns = ["REC", *spec["identifiers"].values(), "EVENT"]
            writer.writerow(columns)
            n = 0
            for p in people:
                if rng.random() > 0.7:
                    continue
                values, error = _noised(rng, p, source, people)
                rec = f"{source[:2].upper()}{n:05d}"
                n += 1
                writer.writerow([rec, *(values[f] for f in spec["identifiers"]), dt.date(2024, 1, 15).strftime(spec["date_format"])])
                truth.append({"record_key": f"{source}:{rec}", "person_id": p["pid"], "error": error})
    return files, pd.DataFrame(truth)


def _pairwise(clusters: dict[str, str], truth: pd.DataFrame) -> tuple[float, float, float]:
    """Precision, recall, F1 over every delivered record; one not in ``clusters`` links to nothing."""
    label = {k: clusters.get(k, f"alone:{k}") for k in truth["record_key"]}
    true_pairs = {tuple(sorted(pair)) for _, g in truth.groupby("person_id") for pair in combinations(g["record_key"], 2)}
    by_cluster: dict[str, list[str]] = {}
    for k, c in label.items():
        by_cluster.setdefault(c, []).append(k)
    predicted = {tuple(sorted(pair)) for members in by_cluster.values() for pair in combinations(members, 2)}
    tp = len(true_pairs & predicted)
    precision, recall = tp / len(predicted) if predicted else 1.0, tp / len(true_pairs)
    return precision, recall, 2 * precision * recall / (precision + recall)


def _our_pipeline(root: Path, files: Path, policy: str | None) -> tuple[dict[str, str], int]:
    defs = root / f"defs-{policy}"
    defs.mkdir()
    vault = root / f"vault-{policy}"
    quarantined = 0
    for source in DEFINITIONS:
        (defs / f"{source}.yaml").write_text(yaml.safe_dump(_definition(source, policy)))
        result = ingest_file(load_definition(defs / f"{source}.yaml"), files / f"{source}.csv", vault, today=TODAY)
        quarantined += result.rows_quarantined
    run = run_linkage(vault)
    clusters = run.clusters.set_index("record_key")["cluster_id"].to_dict()
    return clusters, quarantined


def _plain_splink(files: Path) -> dict[str, str]:
    """Splink's out-of-the-box comparisons on the delivered values (dates to ISO, SSN digits only)."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frames = []
    for source, spec in DEFINITIONS.items():
        raw = pd.read_csv(files / f"{source}.csv", dtype=str, keep_default_na=False)
        frame = pd.DataFrame({"unique_id": source + ":" + raw["REC"]})
        for field in ("first_name", "last_name", "dob", "ssn", "zip", "street"):
            col = spec["identifiers"].get(field)
            frame[field] = raw[col].str.lower().replace("", None) if col else None
        if "dob" in spec["identifiers"]:
            frame["dob"] = pd.to_datetime(raw[spec["identifiers"]["dob"]], format=spec["date_format"], errors="coerce").dt.strftime("%Y-%m-%d")
        if "ssn" in spec["identifiers"]:
            frame["ssn"] = frame["ssn"].str.replace("-", "")
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    settings = SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="unique_id",
        comparisons=[cl.NameComparison("first_name"), cl.NameComparison("last_name"),
                     cl.DateOfBirthComparison("dob", input_is_string=True), cl.ExactMatch("ssn"),
                     cl.JaroWinklerAtThresholds("street", [0.9, 0.7]), cl.ExactMatch("zip")],
        blocking_rules_to_generate_predictions=[block_on("first_name"), block_on("last_name"), block_on("dob"), block_on("ssn")],
    )
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(data, dataset_display_name="delivered"), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match([block_on("first_name", "last_name", "dob")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("last_name"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.9).as_pandas_dataframe()
    return dict(zip(clusters["unique_id"], clusters["cluster_id"].astype(str)))


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    rng = random.Random(2026)
    people = _population(rng)
    files, truth = _write_sources(root, rng, people)
    ours, quarantined = _our_pipeline(root, files, None)
    old, old_quarantined = _our_pipeline(root, files, "quarantine_row")
    plain = _plain_splink(files)
    return truth, {"ours": (ours, quarantined), "quarantine_row": (old, old_quarantined), "plain_splink": (plain, 0)}


def test_held_out_f1_over_all_delivered_records(held_out):
    truth, runs = held_out
    scores = {name: _pairwise(clusters, truth) for name, (clusters, _q) in runs.items()}
    for name, (p, r, f1) in scores.items():
        print(f"held_out_{name}: precision {p:.4f} recall {r:.4f} F1 {f1:.4f} quarantined {runs[name][1]}")
    assert truth["error"].notna().mean() > 0.05  # the set really is noised
    assert runs["ours"][1] == 0  # every record kept (its bad fields nulled and flagged)
    assert runs["quarantine_row"][1] >= 0.03 * len(truth)
    assert scores["ours"][2] > scores["quarantine_row"][2] + 0.01
    assert scores["ours"][2] > scores["plain_splink"][2]
    # Measured 0.870 (P 0.994, R 0.773): recall is lost between tax records (no dob) and the sources
    # without SSN, where EM on this small, household-heavy set under-estimates the address level.
    assert scores["ours"][2] >= 0.84


def test_household_ssn_on_a_tax_record_does_not_link_the_wrong_person(held_out):
    truth, runs = held_out
    ours = runs["ours"][0]
    person = truth.set_index("record_key")["person_id"]
    borrowed = truth[truth["error"] == "household member's SSN"]["record_key"]
    assert len(borrowed) >= 5
    wrong = 0
    for key in borrowed:
        mates = [k for k, c in ours.items() if c == ours[key] and k != key]
        wrong += any(person[m] != person[key] for m in mates)
    assert wrong <= len(borrowed) // 5, (wrong, len(borrowed))
