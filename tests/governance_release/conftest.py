"""Fixtures for provisioning and the release airlock: a seeded registry (migrated once, copied per
test), a small research store in the linkage layout, and an approved project built through the
board's real service."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from enclave.registry.base import dispose_engines, session_scope, upgrade

PEOPLE = [
    ("admin", "Ada Admin", ["admin"]),
    ("board1", "Bea Board", ["board_member"]),
    ("board2", "Ben Board", ["board_member"]),
    ("board3", "Bo Board", ["board_member"]),
    ("alice", "Alice Researcher", ["researcher"]),
    ("bob", "Bob Researcher", ["researcher"]),
    ("rev1", "Rae Reviewer", ["reviewer"]),
    ("rev2", "Rex Reviewer", ["reviewer"]),
    ("rev3", "Roo Reviewer", ["reviewer"]),
    ("revres", "Remy Reviewer-Researcher", ["reviewer", "researcher"]),
    ("stew", "Stu Steward", ["steward"]),
]
SOURCES = [("school_enrollment", "Schools", []), ("foster_care", "Child Welfare", ["stew"])]
NEIGHBOURHOODS = ["Hampden", "Canton", "Fells Point", "Roland Park", "Sandtown"]
RACES = ["black_non_hispanic", "white_non_hispanic", "hispanic", "asian_non_hispanic"]


@pytest.fixture(scope="session")
def _registry_template(tmp_path_factory):
    """One migrated, seeded registry file; each test gets a copy (migrating per test is slow)."""
    from enclave import people

    path = tmp_path_factory.mktemp("release-template") / "registry.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    with session_scope(url) as session:
        people.bootstrap_admin(session, "admin", "Ada Admin")
        for username, name, roles in PEOPLE[1:]:
            people.add_person(session, "admin", username, name, roles)
        for source, agency, stewards in SOURCES:
            people.register_source(session, "admin", source, agency, stewards=stewards)
    dispose_engines()
    return path


@pytest.fixture
def registry(enclave_home, _registry_template, monkeypatch):
    """URL of a fresh seeded registry in this test's ENCLAVE_HOME; two reviews required, quorum 3."""
    from enclave.settings import get_settings

    enclave_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(_registry_template, enclave_home / "registry.db")
    monkeypatch.setenv("ENCLAVE_BOARD_QUORUM", "3")
    monkeypatch.setenv("ENCLAVE_REVIEWERS_REQUIRED", "2")
    get_settings.cache_clear()
    yield get_settings().registry_url
    dispose_engines()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_research_store(research: Path, people: int = 300, seed: int = 7) -> Path:
    """A small research store in ``linkage.research_store``'s layout (persons, two sources,
    relationships, manifest), for tests that need provisioning but not a linkage run."""
    rng = np.random.default_rng(seed)
    research.mkdir(parents=True, exist_ok=True)
    keys = [f"P{rng.integers(0, 2**63):016x}{i:04x}" for i in range(people)]
    persons = pd.DataFrame({
        "person_key": keys,
        "birth_year": rng.integers(2004, 2016, people).astype("int64"),
        "sex": rng.choice(["M", "F"], people),
        "race_ethnicity": rng.choice(RACES, people, p=[0.55, 0.25, 0.15, 0.05]),
        "neighbourhood": rng.choice(NEIGHBOURHOODS, people),
    })
    school_rows = []
    for _, p in persons.iterrows():
        for year in range(2019, 2019 + int(rng.integers(1, 4))):
            school_rows.append({
                "person_key": p.person_key, "source": "school_enrollment", "event_date": f"{year}-09",
                "age_at_event": int(year - p.birth_year), "birth_year": int(p.birth_year), "sex": p.sex,
                "race_ethnicity": p.race_ethnicity, "neighbourhood": p.neighbourhood,
                "school_year": f"{year}-{(year + 1) % 100:02d}", "grade": str(min(12, max(1, year - p.birth_year - 5))),
                "days_attended": int(rng.integers(100, 181)), "homeless_flag": bool(rng.random() < 0.1),
            })
    school = pd.DataFrame(school_rows)
    foster_people = persons.sample(frac=0.4, random_state=seed)
    foster = pd.DataFrame({
        "person_key": foster_people.person_key.values, "source": "foster_care",
        "event_date": [f"{2018 + int(rng.integers(0, 4))}-{int(rng.integers(1, 13)):02d}" for _ in range(len(foster_people))],
        "age_at_event": (2019 - foster_people.birth_year.values).astype("int64"),
        "birth_year": foster_people.birth_year.values, "sex": foster_people.sex.values,
        "race_ethnicity": foster_people.race_ethnicity.values, "neighbourhood": foster_people.neighbourhood.values,
        "placement_type": rng.choice(["kinship", "foster_family", "group_home"], len(foster_people)),
    })
    rel = pd.DataFrame({"person_key_from": keys[:20], "person_key_to": keys[20:40], "relation": "mother_of"})
    tables = {"persons": persons, "school_enrollment": school, "foster_care": foster, "relationships": rel}
    descriptions = {
        "person_key": "Internal person key", "source": "Source", "event_date": "Month of the event",
        "age_at_event": "Age at the event", "birth_year": "Year of birth", "sex": "Sex",
        "race_ethnicity": "Race and ethnicity", "neighbourhood": "Neighbourhood", "school_year": "School year",
        "grade": "Grade level", "days_attended": "Days attended in the year", "homeless_flag": "Identified as homeless",
        "placement_type": "Type of placement", "person_key_from": "Parent", "person_key_to": "Child", "relation": "Relation",
    }
    agencies = {"school_enrollment": "Schools", "foster_care": "Child Welfare"}
    infos = {}
    for name, frame in tables.items():
        path = research / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        infos[name] = {
            "file": path.name, "rows": len(frame), "persons": int(frame.iloc[:, 0].nunique()), "sha256": _sha(path),
            "columns": {c: {"type": str(frame[c].dtype), "description": descriptions[c]} for c in frame.columns},
            "source": {"domain": "x", "agency": agencies[name], "steward": "s"} if name in agencies else None,
        }
    manifest = {
        "built_at": "2026-11-01T00:00:00+00:00", "crosswalk_generation": 1, "linkage_run_id": "test",
        "tables": infos,
        "linkage_quality": {"school_enrollment": {"match_rate": 0.97}, "foster_care": {"match_rate": 0.95}},
        "linkage_quality_overall": {"f1": 0.98},
    }
    (research / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return research


@pytest.fixture
def research_store(enclave_home):
    """A small research store in ENCLAVE_HOME/research (the same one the approved project was built from)."""
    from enclave.settings import get_settings

    research = get_settings().research
    if (research / "manifest.json").exists():
        return research
    return write_research_store(research)


TODAY = dt.datetime.now(dt.UTC).date()


def application(project: str = "school-moves", **overrides):
    from enclave.board.requests import ApplicationRequest

    data = {
        "project": project,
        "title": "School moves and foster care",
        "purpose": "Do foster placements change school stability?",
        "use_case": "child welfare and education",
        "researchers": ["bob", "revres"],
        "sources": ["school_enrollment", "foster_care"],
        "variables": {
            "school_enrollment": ["event_date", "birth_year", "sex", "neighbourhood", "grade", "days_attended", "homeless_flag"],
            "foster_care": ["birth_year", "sex", "placement_type"],
        },
        "cohort": {"birth_year_min": 2006, "birth_year_max": 2013},
        "k": 5,
        "dp_epsilon": 2.0,
        "start_date": TODAY.isoformat(),
        "end_date": (TODAY + dt.timedelta(days=365)).isoformat(),
    }
    data.update(overrides)
    return ApplicationRequest.model_validate(data)


def board_approves(url: str, request, lead: str = "alice", conditions=None) -> int:
    """The board's real path: apply, open review, three votes, decide. Returns the approval id."""
    from enclave.board import service

    with session_scope(url) as session:
        app_id = service.apply(session, lead, request).id
    with session_scope(url) as session:
        service.open_review(session, "board1", app_id)
        for voter in ("board1", "board2", "board3"):
            service.vote(session, voter, app_id, "approve")
        decision = service.decide(session, "board1", app_id, conditions)
        return decision.approval.id


@pytest.fixture(scope="session")
def _approved_template(_registry_template, tmp_path_factory):
    """A data root where the board approved ``school-moves`` and its extract was built, made once;
    each test gets a copy (the approval and the build themselves are tested in test_provisioning)."""
    from enclave.provisioning import provision
    from enclave.settings import get_settings

    home = tmp_path_factory.mktemp("approved") / "var"
    home.mkdir(parents=True)
    shutil.copy(_registry_template, home / "registry.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENCLAVE_HOME", str(home))
        mp.delenv("ENCLAVE_DATABASE_URL", raising=False)
        mp.setenv("ENCLAVE_BOARD_QUORUM", "3")
        get_settings.cache_clear()
        try:
            write_research_store(home / "research")
            board_approves(get_settings().registry_url, application())
            provision("school-moves", actor="admin")
        finally:
            dispose_engines()
            get_settings.cache_clear()
    return home


@pytest.fixture
def approved_project(registry, enclave_home, _approved_template):
    """An approved project (alice lead; bob and revres members) with its extract built."""
    dispose_engines()
    for child in _approved_template.iterdir():
        if child.is_dir():
            shutil.copytree(child, enclave_home / child.name, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(child, enclave_home / child.name)
    return "school-moves"


@pytest.fixture
def outputs(enclave_home):
    """The outputs folder of a (project, user) workspace, created as the hub would."""
    from enclave.settings import get_settings

    def _outputs(user: str = "alice", project: str = "school-moves") -> Path:
        folder = get_settings().workspaces / project / user / "outputs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    return _outputs


@pytest.fixture
def make_application():
    """Build a valid application (callable with overrides)."""
    return application


@pytest.fixture
def approve_application(registry):
    """Run an application through the board (callable: request -> approval id)."""
    return lambda request, **kw: board_approves(registry, request, **kw)


@pytest.fixture
def make_outputs(approved_project, outputs):
    """Outputs made the researcher's way: ``disclosure_control.safe`` (ACRO names) over the extract.

    ``kind='safe'`` gives a table that passes; ``kind='disclosive'`` an unsuppressed table with
    small cells, which the gate fails. Returns the output file name.
    """
    from disclosure_control.safe import ACRO

    from enclave.airlock.checking import extract_loader
    from enclave.settings import get_settings

    def _make(kind: str = "safe", user: str = "alice", project: str = approved_project) -> str:
        folder = outputs(user, project)
        extract = (get_settings().extracts / project / "current").resolve()
        manifest = json.loads((extract / "manifest.json").read_text())
        acro = ACRO(suppress=(kind == "safe"), outputs_dir=folder, data_loader=extract_loader(extract, manifest),
                    dataset=f"{project}@{extract.name}", quiet=True)
        df = acro.load("school_enrollment")
        before = set(p.name for p in folder.iterdir())
        if kind == "safe":
            acro.crosstab(df.sex, df.homeless_flag)
        else:
            # days attended is not an attacker's quasi-identifier, so the extract keeps it exact: small cells
            acro.crosstab(df.neighbourhood, df.days_attended)
        made = [n for n in set(p.name for p in folder.iterdir()) - before if not n.endswith(".evidence.json")]
        assert len(made) == 1
        return made[0]

    return _make
