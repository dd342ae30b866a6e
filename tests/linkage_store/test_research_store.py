"""The research store: keyed by person key, quasi-identifiers derived, no direct identifier left."""
from __future__ import annotations

import json
import re
from datetime import date

import pandas as pd
import pytest

from linkage import research_store
from linkage.keys import assign_person_keys, load_crosswalk
from linkage.research_store import ResearchStoreError, build, read_manifest


def vault_identifier_values(vault) -> dict[str, set[str]]:
    ids = pd.concat([pd.read_parquet(p) for p in (vault / "identifiers").glob("*/*.parquet")], ignore_index=True)
    dobs = pd.to_datetime(ids["dob"].dropna())
    low = lambda s: set(s.dropna().astype(str).str.strip().str.lower())  # noqa: E731
    return {
        "name": low(ids["first_name"]) | low(ids["middle_name"]) | low(ids["last_name"]),
        "ssn": set(ids["ssn"].dropna().astype(str).str.replace(r"\D", "", regex=True)),
        "dob": set(dobs.dt.strftime("%Y-%m-%d")) | set(dobs.dt.strftime("%m/%d/%Y")) | set(dobs.dt.strftime("%Y%m%d")),
        "street": low(ids["street"]),
        "record id": low(ids["record_key"]) | low(ids["source_record_id"]),
    }


def all_cells(research) -> dict[str, pd.Series]:
    cells = {}
    for path in sorted(research.glob("*.parquet")):
        frame = pd.read_parquet(path)
        for column in frame.columns:
            cells[f"{path.stem}.{column}"] = frame[column].dropna().map(lambda v: v.isoformat() if isinstance(v, date) else str(v))
    return cells


def test_no_vault_identifier_survives_in_any_research_column(tmp_path, linked_vault):
    vault, _ = linked_vault
    research = tmp_path / "research"
    build(vault, research)
    banned = vault_identifier_values(vault)
    assert all(banned.values()), "the fixture must hold every kind of identifier"
    ssn_pattern = re.compile("|".join(sorted(banned["ssn"])))
    cells = all_cells(research)
    assert len(cells) > 20
    for column, values in cells.items():
        lowered = values.str.strip().str.lower()
        for kind, bad in banned.items():
            assert not lowered.isin(bad).any(), f"{column} holds a {kind}"
        digits = values.str.replace(r"\D", "", regex=True)
        assert not digits.str.contains(ssn_pattern).any(), f"{column} holds an SSN inside a cell"
        # No full date anywhere: every date in the store is a month.
        assert not values.str.fullmatch(r"\d{4}-\d{2}-\d{2}.*").any(), f"{column} holds a full date"
    forbidden_columns = {"first_name", "middle_name", "last_name", "dob", "ssn", "street", "zip", "record_key",
                         "source_record_id", "household_id", "HouseholdID"}
    assert not forbidden_columns & {c.split(".", 1)[1] for c in cells}


def test_tables_keys_and_derived_quasi_identifiers(tmp_path, linked_vault, population):
    vault, clusters = linked_vault
    research = tmp_path / "research"
    manifest = build(vault, research)
    assert set(manifest.tables) == {"births", "housing_assistance", "school_enrollment", "persons", "relationships"}
    crosswalk = load_crosswalk(vault)
    key_of_person = crosswalk.assign(person=crosswalk["record_key"].map(dict(zip(clusters["record_key"], clusters["cluster_id"])))).groupby("person")["person_key"].first()

    school = pd.read_parquet(research / "school_enrollment.parquet")
    first = population["school"][0]
    child = first["who"]
    rows = school[school["person_key"] == key_of_person[child["person_id"]]]
    assert len(rows) == 2
    row = rows.iloc[0]
    entry = first["entry"]
    expected_age = entry.year - child["dob"].year - ((entry.month, entry.day) < (child["dob"].month, child["dob"].day))
    assert row["age_at_event"] == expected_age and row["birth_year"] == child["dob"].year
    assert row["event_date"] == entry.strftime("%Y-%m") and row["entry_date"] == entry.strftime("%Y-%m")
    zips = dict(pd.read_csv(research_store.DEFAULT_NEIGHBOURHOODS, dtype=str)[["zip", "neighbourhood"]].values)
    assert row["neighbourhood"] == zips.get(child["zip"])  # None outside the city's list, as ingest does
    assert row["sex"] == child["sex"] and row["school_name"] == first["school"]

    births = pd.read_parquet(research / "births.parquet")
    assert (births["age_at_event"] == 0).all() and births["event_date"].str.fullmatch(r"\d{4}-\d{2}").all()
    persons = pd.read_parquet(research / "persons.parquet")
    assert persons["person_key"].is_unique and set(persons["person_key"]) == set(crosswalk["person_key"])
    assert list(persons.columns) == ["person_key", "birth_year", "sex", "race_ethnicity", "neighbourhood"]

    for name, info in manifest.tables.items():
        frame = pd.read_parquet(research / info.file)
        assert info.rows == len(frame) and list(info.columns) == list(frame.columns), name
        assert all(c["description"] and c["type"] for c in info.columns.values())
    on_disk = json.loads((research / "manifest.json").read_text())
    assert read_manifest(research) == manifest and on_disk["tables"]["births"]["columns"]["event_date"]["type"] == "month"
    assert manifest.excluded["dropped_columns"]["housing_assistance"] == ["household_id", "race_ethnicity"]


def test_parent_and_household_relationships_survive_as_person_key_pairs(tmp_path, linked_vault, population):
    vault, clusters = linked_vault
    research = tmp_path / "research"
    build(vault, research)
    crosswalk = load_crosswalk(vault)
    person_to_key = crosswalk.assign(person=crosswalk["record_key"].map(dict(zip(clusters["record_key"], clusters["cluster_id"])))).groupby("person")["person_key"].first()
    rel = pd.read_parquet(research / "relationships.parquet")
    pairs = set(map(tuple, rel[["person_key_from", "person_key_to", "relation"]].values))
    for b in population["births"]:
        child = person_to_key[b["child"]["person_id"]]
        assert (person_to_key[b["mother"]["person_id"]], child, "mother_of") in pairs
        if b["father"]:
            assert (person_to_key[b["father"]["person_id"]], child, "father_of") in pairs
    households = rel[rel["relation"] == "same_household"]
    expected = 0
    for members in pd.DataFrame(population["housing"]).groupby("household")["who"]:
        keys = sorted({person_to_key[m["person_id"]] for m in members[1]})
        expected += len(keys) * (len(keys) - 1) // 2
        for i, a in enumerate(keys):
            for b_ in keys[i + 1:]:
                assert (a, b_, "same_household") in pairs
    assert len(households) == expected
    assert rel["relation"].value_counts().to_dict() == {
        "mother_of": len(population["births"]),
        "father_of": sum(1 for b in population["births"] if b["father"]),
        "same_household": expected,
    }


def test_an_identifier_smuggled_into_content_stops_the_build_and_keeps_the_old_store(tmp_path, linked_vault):
    vault, _ = linked_vault
    research = tmp_path / "research"
    old = build(vault, research)
    ids = pd.read_parquet(next((vault / "identifiers" / "school_enrollment").glob("*.parquet")))
    path = next((vault / "content" / "school_enrollment").glob("*.parquet"))
    content = pd.read_parquet(path)
    # The school name of one record is replaced by that pupil's own first name.
    content.loc[0, "school_name"] = ids.set_index("record_key").loc[content.loc[0, "record_key"], "first_name"]
    content.to_parquet(path, index=False)
    with pytest.raises(ResearchStoreError, match=r"school_enrollment\.school_name: person's own name") as err:
        build(vault, research)
    assert ids["first_name"].iloc[0] not in str(err.value)
    assert read_manifest(research) == old

    # And an SSN (from another source) typed into a text cell.
    ssn = pd.read_parquet(next((vault / "identifiers" / "housing_assistance").glob("*.parquet")))["ssn"].dropna().iloc[0]
    content.loc[0, "school_name"] = f"Academy {ssn[:3]}-{ssn[3:5]}-{ssn[5:]} annex"
    content.to_parquet(path, index=False)
    with pytest.raises(ResearchStoreError, match=r"school_name: SSN in 1 cell"):
        build(vault, research)
    assert read_manifest(research) == old
    # And as a number in a numeric column.
    content.loc[0, "school_name"] = "Harbor Middle"
    content["days_enrolled"] = content["days_enrolled"].astype("int64")
    content.loc[1, "days_enrolled"] = int(ssn)
    content.to_parquet(path, index=False)
    with pytest.raises(ResearchStoreError, match=r"days_enrolled: SSN in 1 cell"):
        build(vault, research)
    assert read_manifest(research) == old


def test_unlinked_records_are_refused(tmp_path, linked_vault, vault_tools, population):
    vault, clusters = linked_vault
    extra = vault_tools.make_population(families=2, seed=99)
    for part in ("births", "housing", "school"):
        for record in extra[part]:
            record["id"] = "NEW" + record["id"]
    vault_tools.write_vault(vault, extra, "d-new")
    with pytest.raises(ResearchStoreError, match="no person key"):
        build(vault, tmp_path / "research")
    assert not (tmp_path / "research").exists()
    # A deposit whose ingest never finished (no deposit manifest) is not read at all.
    for manifest in (vault / "deposits").glob("*/d-new.json"):
        manifest.unlink()
    built = build(vault, tmp_path / "research")
    assert built.tables["births"].rows == len(population["births"])


def test_the_store_follows_the_current_crosswalk(tmp_path, linked_vault):
    vault, clusters = linked_vault
    research = tmp_path / "research"
    build(vault, research)
    people = sorted(clusters["cluster_id"].unique())
    merged = clusters.assign(cluster_id=clusters["cluster_id"].replace({people[1]: people[0]}))
    assign_person_keys(merged, vault, "run-2")
    manifest = build(vault, research)
    assert manifest.crosswalk_generation == 2 and manifest.linkage_run_id == "run-2"
    persons = pd.read_parquet(research / "persons.parquet")
    assert set(persons["person_key"]) == set(load_crosswalk(vault)["person_key"])


def test_no_store_before_linkage(tmp_path, population, vault_tools):
    vault = tmp_path / "vault"
    vault_tools.write_vault(vault, population)
    with pytest.raises(ResearchStoreError, match="run linkage first"):
        build(vault, tmp_path / "research")
    assert not (tmp_path / "research").exists()


def test_scan_counts_every_cell_holding_an_identifier_as_a_cell_by_cell_scan_does():
    """The scan checks each distinct value once and weights it by its cells: same counts."""
    import re

    from linkage.research_store import ResearchStorePolicy, scan_for_identifiers

    identifiers = pd.DataFrame({
        "person_key": ["p1", "p2"], "first_name": ["Ada", "Grace"], "middle_name": [None, None],
        "last_name": ["Lovelace", "Hopper"], "ssn": ["123-45-6789", "987-65-4321"],
        "street": ["12 Analytical Engine Rd", "3 Compiler Ct"], "dob": ["1815-12-10", "1906-12-09"],
    })
    cells = (["Harbor Middle"] * 40 + ["ssn 123-45-6789 and 987654321"] * 3 + [" 12 analytical engine rd"] * 2
             + ["1815-12-10", "12/10/1815", "18151210"] + ["Ada"] * 2 + [None] * 5)
    keys = ["p1"] * len(cells)
    keys[-7] = "p2"  # one "Ada" cell belongs to someone else: not that person's own name
    table = pd.DataFrame({"person_key": keys, "note": cells})
    found = scan_for_identifiers({"t": table}, {"t": {"note": ("string", "")}}, identifiers, ResearchStorePolicy())

    def norm(v):
        return str(v).strip().lower()

    ssns = {"123456789", "987654321"}
    expected = {
        "SSN": sum(re.sub(r"\D", "", m) in ssns for c in cells if c for m in re.findall(r"(?<!\d)(\d{3}[- ]?\d{2}[- ]?\d{4})(?!\d)", norm(c))),
        "street address": sum(norm(c) in {"12 analytical engine rd", "3 compiler ct"} for c in cells if c),
        "full date of birth": sum(norm(c) in {"1815-12-10", "12/10/1815", "18151210", "1906-12-09", "12/09/1906", "19061209"} for c in cells if c),
        "person's own name": sum(norm(c) == "ada" and k == "p1" for c, k in zip(cells, keys) if c),
    }
    assert expected == {"SSN": 6, "street address": 2, "full date of birth": 3, "person's own name": 1}
    assert sorted(found) == sorted(f"t.note: {what} in {n} cell(s)" for what, n in expected.items())
