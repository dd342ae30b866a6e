"""The store on real output of the synthetic generator and ingest (about 300 people), linked by
the generator's ground truth so the check does not depend on the linkage model's accuracy."""
from __future__ import annotations

import re

import pandas as pd

from linkage.ingest import ingest_file
from linkage.keys import assign_person_keys, load_crosswalk
from linkage.pseudonyms import pseudonymise
from linkage.research_store import build
from linkage.sources import load_definitions
from linkage.synth import GROUND_TRUTH, SynthConfig, generate


def test_research_store_from_synthetic_ingest_has_no_identifier_and_keeps_families(tmp_path):
    definitions = load_definitions()
    synth, vault, research = tmp_path / "synth", tmp_path / "vault", tmp_path / "research"
    generate(SynthConfig(people=300, seed=11), synth, definitions)
    for name, definition in definitions.items():
        ingest_file(definition, synth / f"{name}.{definition.format}", vault)
    truth = pd.read_csv(synth / GROUND_TRUTH, dtype=str)
    truth["record_key"] = truth["source"] + ":" + truth["source_record_id"] + truth["role"].map(lambda r: "" if r == "subject" else f"/{r}")
    ids = pd.concat([pd.read_parquet(p) for p in sorted((vault / "identifiers").glob("*/*.parquet"))], ignore_index=True)
    clusters = ids[["record_key"]].assign(cluster_id=ids["record_key"].map(dict(zip(truth["record_key"], truth["person_id"]))))
    assert clusters["cluster_id"].notna().all()
    assign_person_keys(clusters, vault, "synthetic-truth")

    manifest = build(vault, research)
    assert {"persons", "relationships", "births", "school_enrollment", "wages"} <= set(manifest.tables)

    # Scan every cell of every table for the vault's names, SSNs, full dates of birth and streets.
    dobs = pd.to_datetime(ids["dob"].dropna())
    low = lambda s: set(s.dropna().astype(str).str.strip().str.lower()) - {""}  # noqa: E731
    banned = {
        # Initials (one letter) are not names to look for: "m" is also the sex code.
        "name": {n for n in low(ids["first_name"]) | low(ids["middle_name"]) | low(ids["last_name"]) if len(n) > 1},
        "ssn": {s for s in low(ids["ssn"]) if len(s) == 9},
        "dob": set(dobs.dt.strftime("%Y-%m-%d")) | set(dobs.dt.strftime("%m/%d/%Y")),
        "street": low(ids["street"]),
        "record key": low(ids["record_key"]) | low(ids["source_record_id"]),
    }
    assert all(banned.values())
    ssn_anywhere = re.compile("|".join(sorted(banned["ssn"])))
    for path in sorted(research.glob("*.parquet")):
        frame = pd.read_parquet(path)
        for column in frame.columns:
            cells = frame[column].dropna().astype(str).str.strip().str.lower()
            for kind, values in banned.items():
                assert not cells.isin(values).any(), f"{path.stem}.{column} holds a {kind}"
            assert not cells.str.replace(r"\D", "", regex=True).str.contains(ssn_anywhere).any(), f"{path.stem}.{column}"
            assert not cells.str.fullmatch(r"\d{4}-\d{2}-\d{2}.*").any(), f"{path.stem}.{column} holds a full date"

    # Families survive: every mother on a birth record is a mother_of pair of person keys.
    relationships = pd.read_parquet(research / "relationships.parquet")
    crosswalk = load_crosswalk(vault).set_index("record_key")["person_key"]
    mothers = ids[ids["role"] == "mother"]
    expected = set(zip(mothers["record_key"].map(crosswalk), mothers["record_key"].str.replace("/mother", "", regex=False).map(crosswalk)))
    got = set(map(tuple, relationships.loc[relationships["relation"] == "mother_of", ["person_key_from", "person_key_to"]].values))
    assert expected and expected <= got

    # Extract-side: the persons table pseudonymises cleanly, one pseudonym per person.
    persons = pd.read_parquet(research / "persons.parquet")
    assert len(set(pseudonymise(persons["person_key"], "synthetic-project", vault / "keys"))) == len(persons)
