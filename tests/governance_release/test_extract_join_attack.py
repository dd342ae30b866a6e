"""The join attack on a built extract: every table k-anonymous on its own, yet joined on the
pseudonym they single people out. Each attack is tried on the files as a researcher gets them,
first without the joined-tables check (it must succeed, or the test proves nothing), then with it."""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

PERSON_QIS = ["birth_year", "sex", "race_ethnicity", "neighbourhood"]
MISSING = "<missing>"
K = 5


# --------------------------------------------------------------------------- the attack


def _norm(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def join_attack(folder: Path) -> Counter:
    """Read every table, join on the pseudonym, and count people per combination of the
    person-level columns (each the set of values a person shows across the tables)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    values: dict[str, dict[str, set[str]]] = {}
    for meta in manifest["tables"].values():
        df = pd.read_parquet(folder / meta["file"])
        for key in ("pseudonym_from", "pseudonym_to"):  # people known only as a relative
            for p in df.get(key, []):
                values.setdefault(p, {})
        if "pseudonym" not in df.columns:
            continue
        cols = [c for c in PERSON_QIS if c in df.columns]
        for row in df[["pseudonym", *cols]].itertuples(index=False):
            person = values.setdefault(row[0], {})
            for col, v in zip(cols, row[1:]):
                person.setdefault(col, set()).add(_norm(v))
    classes: Counter = Counter()
    for person in values.values():
        classes[tuple(frozenset(person.get(c) or {MISSING}) for c in PERSON_QIS)] += 1
    return classes


def smallest_class(folder: Path) -> int:
    return min(join_attack(folder).values())


# --------------------------------------------------------------------------- building extracts


def _write_store(research: Path, tables: dict[str, pd.DataFrame]) -> Path:
    research.mkdir(parents=True, exist_ok=True)
    infos = {}
    for name, frame in tables.items():
        path = research / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        infos[name] = {"file": path.name, "rows": len(frame), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                       "columns": {c: {"type": str(frame[c].dtype), "description": c} for c in frame.columns},
                       "source": {"domain": "x", "agency": name, "steward": "s"}}
    (research / "manifest.json").write_text(json.dumps({"tables": infos}))
    return research


def _build(tmp_path: Path, tables: dict[str, pd.DataFrame], project: str, *, protect: bool = True, k: int = K,
           out: str = "extracts", conditions: dict | None = None):
    from enclave.conditions import ProjectConditions
    from enclave.provisioning import ExtractSpec, build_extract

    research = _write_store(tmp_path / "research", tables)
    variables = {name: [c for c in frame.columns if c not in ("person_key", "person_key_from", "person_key_to")]
                 for name, frame in tables.items() if name != "persons"}
    spec = ExtractSpec(project=project, approval_id="1", variables=variables, k=k,
                       conditions=ProjectConditions.model_validate(conditions or {}),
                       **({} if protect else {"person_quasi_identifiers": []}))
    return build_extract(spec, research, tmp_path / "keys", tmp_path / out)


def _both(tmp_path, tables, conditions=None):
    """The same store built without the joined-tables check (the attack must succeed) and with it."""
    # One project and key store, two extract zones: the pseudonyms agree, so rows can be compared.
    unprotected = _build(tmp_path, tables, "join", protect=False, out="extracts-unprotected", conditions=conditions)
    protected = _build(tmp_path, tables, "join", conditions=conditions)
    return unprotected, protected


def _keys(n: int) -> list[str]:
    return [f"K{i:04d}" for i in range(n)]


# --------------------------------------------------------------------------- the three attacks


def test_neighbourhood_in_one_table_race_in_another(tmp_path):
    keys = _keys(40)
    school = pd.DataFrame({"person_key": keys, "neighbourhood": ["Canton"] * 20 + ["Hampden"] * 20})
    rare = {0, 1, 2, 3, 20}  # five people of a rare race: four in Canton, one alone in Hampden
    foster = pd.DataFrame({"person_key": keys,
                           "race_ethnicity": ["asian" if i in rare else "black" for i in range(40)]})
    unprotected, protected = _both(tmp_path, {"school_enrollment": school, "foster_care": foster})

    # Each table is 5-anonymous and left as it was by the per-table step ...
    for result in (unprotected, protected):
        assert all(t["k_anonymity"]["k_reached"] >= K for t in result.manifest["tables"].values())
    assert unprotected.manifest["tables"]["foster_care"]["k_anonymity"]["k_reached"] == 5
    # ... but (Hampden, asian) is one person once the tables are joined.
    assert smallest_class(unprotected.path) == 1
    assert smallest_class(protected.path) >= K
    joined = protected.manifest["joined_tables"]
    assert joined["people_suppressed"] == {"race_ethnicity": 5, "neighbourhood": 5}
    assert joined["people_dropped"] == 0 and joined["k_reached"] >= K
    # Suppressed, not dropped: nobody's rows were lost.
    for name in ("school_enrollment", "foster_care"):
        assert len(pd.read_parquet(protected.path / f"{name}.parquet")) == 40


def test_two_birth_years_of_one_person(tmp_path):
    keys = _keys(64)
    years = [2004 + i % 4 for i in range(64)]
    sex = ["F" if i < 32 else "M" for i in range(64)]
    school = pd.DataFrame({"person_key": keys, "birth_year": years, "sex": sex})
    typo = {0: 2005, 1: 2006, 2: 2007, 3: 2006, 5: 2004}  # each source derives its own birth year
    foster = pd.DataFrame({"person_key": keys, "birth_year": [typo.get(i, y) for i, y in enumerate(years)], "sex": sex})
    unprotected, protected = _both(tmp_path, {"school_enrollment": school, "foster_care": foster})

    assert all(t["k_anonymity"]["k_reached"] >= K for t in unprotected.manifest["tables"].values())
    classes = join_attack(unprotected.path)
    assert min(classes.values()) < K
    assert any(len(key[0]) == 2 for key, n in classes.items() if n < K)  # the pair of years is the give-away
    assert smallest_class(protected.path) >= K
    joined = protected.manifest["joined_tables"]
    # Harmonising the five discrepant years was enough: no one suppressed or dropped.
    assert joined["people_harmonised"]["birth_year"] == 5
    assert joined["people_suppressed_total"] == 0 and joined["people_dropped"] == 0
    school_out = pd.read_parquet(protected.path / "school_enrollment.parquet")
    assert len(school_out) == 64 and school_out.birth_year.isna().sum() == 5
    assert str(school_out.birth_year.dtype) == "Int64"  # a blanked year does not turn 2005 into 2005.0


def test_exact_year_in_one_table_band_in_another(tmp_path):
    keys = _keys(40)
    years = [2005 + i % 5 for i in range(40)]
    neighbourhood = [["Canton", "Hampden", "Sandtown", "Roland Park"][i // 10] for i in range(40)]
    foster = pd.DataFrame({"person_key": keys, "birth_year": years})
    school = pd.DataFrame({"person_key": keys, "birth_year": years, "neighbourhood": neighbourhood})
    unprotected, protected = _both(tmp_path, {"school_enrollment": school, "foster_care": foster})

    levels = unprotected.manifest["tables"]["school_enrollment"]["k_anonymity"]["actions"]["levels"]
    assert levels["birth_year"] > 0  # the school table had to band the year beside neighbourhood
    assert unprotected.manifest["tables"]["foster_care"]["k_anonymity"]["actions"]["levels"]["birth_year"] == 0
    # The join puts the exact year back beside the neighbourhood: two people per class.
    assert smallest_class(unprotected.path) == 2
    assert smallest_class(protected.path) >= K
    # Foster care is brought to the school table's band before the join check, so the two tables
    # agree and nobody's year is blanked (it used to be blanked for all 40).
    joined = protected.manifest["joined_tables"]
    band = unprotected.manifest["tables"]["school_enrollment"]["k_anonymity"]["actions"]["level_names"]["birth_year"]
    assert joined["common_levels"] == {"birth_year": {"level": band, "tables_coarsened": ["foster_care"]}}
    assert joined["people_harmonised"]["birth_year"] == 0 and joined["people_suppressed_total"] == 0
    assert joined["people_dropped"] == 0
    school_out = pd.read_parquet(protected.path / "school_enrollment.parquet")
    foster_out = pd.read_parquet(protected.path / "foster_care.parquet")
    assert len(foster_out) == 40 and foster_out.birth_year.notna().all() and school_out.birth_year.notna().all()
    by_person = school_out.set_index("pseudonym").birth_year
    assert (foster_out.birth_year.to_numpy() == by_person.loc[foster_out.pseudonym].to_numpy()).all()
    assert set(foster_out.birth_year) <= set(pd.read_parquet(unprotected.path / "school_enrollment.parquet").birth_year)
    assert protected.manifest["tables"]["foster_care"]["k_anonymity"]["people_k_reached"] >= K


def test_a_person_who_cannot_be_hidden_leaves_every_table_with_their_edges(tmp_path):
    keys = _keys(30)
    years = [2005 + i % 2 for i in range(30)]
    school = pd.DataFrame({"person_key": keys, "birth_year": years, "sex": "F"})
    foster = pd.DataFrame({"person_key": keys, "birth_year": [2006] + years[1:], "sex": "F"})
    relationships = pd.DataFrame({"person_key_from": keys[0:10:2], "person_key_to": keys[1:11:2], "relation": "mother_of"})
    # Family edges are tests/extract_privacy's matter; here only the person-level join is attacked.
    unprotected, protected = _both(tmp_path, {"school_enrollment": school, "foster_care": foster,
                                              "relationships": relationships},
                                   conditions={"attacker_model": {"family_edges_known": False}})

    assert smallest_class(unprotected.path) == 1
    assert smallest_class(protected.path) >= K
    joined = protected.manifest["joined_tables"]
    assert joined["people_dropped"] == 1 and joined["people"] == 29
    for name, rows in (("school_enrollment", 29), ("foster_care", 29), ("relationships", 4)):
        assert len(pd.read_parquet(protected.path / f"{name}.parquet")) == rows
        assert protected.manifest["tables"][name]["rows"] == rows


# --------------------------------------------------------------------------- no false alarm, fail closed


def test_a_clean_extract_is_not_changed(tmp_path):
    keys = _keys(40)
    years = [2005 + i % 2 for i in range(40)]
    sex = ["F" if (i // 2) % 2 else "M" for i in range(40)]
    school = pd.DataFrame({"person_key": keys, "birth_year": years, "sex": sex, "neighbourhood": "Canton",
                           "grade": [str(i % 3) for i in range(40)]})
    foster = pd.DataFrame({"person_key": keys[:20], "birth_year": years[:20], "sex": sex[:20], "placement": "kinship"})
    unprotected, protected = _both(tmp_path, {"school_enrollment": school, "foster_care": foster})

    for name in ("school_enrollment", "foster_care"):  # the same rows, each build in its own random order
        pd.testing.assert_frame_equal(
            pd.read_parquet(protected.path / f"{name}.parquet").sort_values("pseudonym").reset_index(drop=True),
            pd.read_parquet(unprotected.path / f"{name}.parquet").sort_values("pseudonym").reset_index(drop=True))
        assert protected.manifest["tables"][name]["rows"] == unprotected.manifest["tables"][name]["rows"]
    joined = protected.manifest["joined_tables"]
    assert joined["common_levels"] == {}  # both tables keep exact years: nothing to bring to a common level
    assert joined["rounds"] == 1 and joined["people"] == 40 and joined["k_reached"] == 10
    assert not any(joined["people_harmonised"].values()) and not any(joined["people_suppressed"].values())
    assert joined["people_dropped"] == 0 and not any(joined["rows_dropped_per_table"].values())


def test_unsafe_remedy_is_refused_by_the_independent_measure(tmp_path, monkeypatch):
    """Should the remedy ever return an unsafe join, the re-measure refuses the build, writing nothing."""
    from enclave.extract import joined
    from enclave.provisioning import ProvisioningError

    monkeypatch.setattr(joined, "protect", lambda tables, qis, k, rule, **kw: (dict(tables), {}))
    keys = _keys(40)
    school = pd.DataFrame({"person_key": keys, "neighbourhood": ["Canton"] * 20 + ["Hampden"] * 20})
    foster = pd.DataFrame({"person_key": keys, "race_ethnicity": ["asian" if i in {0, 1, 2, 3, 20} else "black"
                                                                  for i in range(40)]})
    with pytest.raises(ProvisioningError, match=r"race_ethnicity.*neighbourhood.*person-level k=1, below the approved k=5"):
        _build(tmp_path, {"school_enrollment": school, "foster_care": foster}, "refused")
    assert [p.name for p in (tmp_path / "extracts" / "refused").iterdir() if p.name != ".build.lock"] == []


def test_fingerprint_follows_the_person_quasi_identifiers(research_store, tmp_path):
    from enclave.provisioning import ExtractSpec, build_extract

    research = research_store
    spec = ExtractSpec(project="fp", approval_id="1", k=5,
                       variables={"school_enrollment": ["birth_year", "sex"], "foster_care": ["birth_year", "sex"]})
    first = build_extract(spec, research, tmp_path / "keys", tmp_path / "extracts")
    assert not build_extract(spec, research, tmp_path / "keys", tmp_path / "extracts").created
    changed = spec.model_copy(update={"person_quasi_identifiers": ["birth_year"]})
    second = build_extract(changed, research, tmp_path / "keys", tmp_path / "extracts")
    assert second.created and second.version == "v2"
    assert first.manifest["fingerprint"] != second.manifest["fingerprint"]


# --------------------------------------------------------------------------- the approved project


def test_approved_extract_resists_the_join_and_reports_in_aggregate(approved_project):
    from enclave.settings import get_settings

    folder = (get_settings().extracts / approved_project / "current").resolve()
    assert smallest_class(folder) >= K
    text = (folder / "manifest.json").read_text()
    manifest = json.loads(text)
    joined = manifest["joined_tables"]
    assert joined["k_reached"] >= K and manifest["k_reached"] == min(
        [joined["k_reached"]] + [t["k_anonymity"]["k_reached"] for t in manifest["tables"].values()])
    # The fixture's school table bands birth year more coarsely than foster care: foster care is
    # brought to the school band, so no birth year needs blanking.
    assert joined["common_levels"]["birth_year"]["tables_coarsened"] == ["foster_care"]
    assert joined["common_levels"]["birth_year"]["level"] == (
        manifest["tables"]["school_enrollment"]["k_anonymity"]["actions"]["level_names"]["birth_year"])
    assert joined["people_harmonised"]["birth_year"] == 0
    assert set(joined["people_harmonised"]) == set(joined["people_suppressed"]) == {"birth_year", "sex", "neighbourhood"}
    # Counts only: no pseudonym anywhere in the manifest, no cell value in the joined section.
    pseudonyms = set()
    for meta in manifest["tables"].values():
        pseudonyms |= set(pd.read_parquet(folder / meta["file"]).pseudonym)
    assert pseudonyms and not any(p in text for p in pseudonyms)

    def leaves(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from leaves(value)
        elif isinstance(node, list):
            for value in node:
                yield from leaves(value)
        else:
            yield node

    # Level names ("bands of 20") describe a ladder, not anyone's value.
    level_names = {n for t in manifest["tables"].values() for n in t["k_anonymity"]["actions"].get("level_names", {}).values()}
    allowed = set(PERSON_QIS) | set(manifest["tables"]) | set(joined) | {"level", "tables_coarsened"} | level_names
    for leaf in leaves(joined):
        assert isinstance(leaf, int) or leaf is None or leaf in allowed, leaf
