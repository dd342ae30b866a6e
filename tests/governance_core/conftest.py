"""A migrated registry per test (copied from one migrated template), with people and sources."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest

from enclave.registry.base import dispose_engines, session_scope, upgrade

TODAY = dt.date(2026, 6, 1)

PEOPLE = [
    ("admin", "Ada Admin", ["admin"]),
    ("board1", "Bea Board", ["board_member"]),
    ("board2", "Ben Board", ["board_member"]),
    ("board3", "Bo Board", ["board_member"]),
    ("board4", "Bri Board", ["board_member"]),
    ("board5", "Bel Board", ["board_member", "researcher"]),
    ("alice", "Alice Researcher", ["researcher"]),
    ("bob", "Bob Researcher", ["researcher"]),
    ("carol", "Carol Researcher", ["researcher"]),
    ("rev1", "Rae Reviewer", ["reviewer"]),
    ("stew", "Stu Steward", ["steward"]),
]
SOURCES = [("births", "Vital Records"), ("school_enrollment", "Schools"), ("foster_care", "Child Welfare")]


@pytest.fixture(scope="session")
def _template(tmp_path_factory):
    """One migrated and seeded registry file; each test gets a copy (migrating per test is slow)."""
    from enclave import people

    path = tmp_path_factory.mktemp("template") / "registry.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    with session_scope(url) as session:
        people.bootstrap_admin(session, "admin", "Ada Admin")
        for username, name, roles in PEOPLE[1:]:
            people.add_person(session, "admin", username, name, roles)
        for source, agency in SOURCES:
            people.register_source(session, "admin", source, agency, stewards=["stew"] if source == "births" else [])
    dispose_engines()  # checkpoints the WAL into the file
    return path


@pytest.fixture
def registry(enclave_home, _template, monkeypatch):
    """The URL of a fresh seeded registry inside this test's ENCLAVE_HOME (quorum 3, majority 0.5)."""
    from enclave.settings import get_settings

    enclave_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(_template, enclave_home / "registry.db")
    monkeypatch.setenv("ENCLAVE_BOARD_QUORUM", "3")
    monkeypatch.setenv("ENCLAVE_BOARD_MAJORITY", "0.5")
    get_settings.cache_clear()
    url = get_settings().registry_url
    yield url
    dispose_engines()


def _request(**overrides):
    from enclave.board.requests import ApplicationRequest

    data = {
        "project": "school-moves",
        "title": "School moves and foster care",
        "purpose": "Do foster placements change school stability?",
        "use_case": "child welfare and education",
        "researchers": ["bob"],
        "sources": ["births", "school_enrollment", "foster_care"],
        "variables": {"school_enrollment": ["school_id", "grade"], "foster_care": ["placement_type"]},
        "cohort": {"birth_year_min": 2005, "birth_year_max": 2015, "sources_present": ["foster_care"]},
        "k": 10,
        "dp_epsilon": 2.0,
        "start_date": "2026-05-01",
        "end_date": "2027-04-30",
    }
    data.update(overrides)
    return ApplicationRequest.model_validate(data)


@pytest.fixture
def request_for():
    """Build a valid application request, with fields overridden."""
    return _request


@pytest.fixture
def submit(registry):
    """Submit an application as ``actor`` (alice by default); returns its id."""
    from enclave.board import service

    def _submit(actor="alice", **overrides):
        with session_scope(registry) as session:
            return service.apply(session, actor, _request(**overrides), today=TODAY).id

    return _submit


@pytest.fixture
def approve(registry):
    """Open review, three approving votes, decide; returns the Decision."""
    from enclave.board import service

    def _approve(application_id, voters=("board1", "board2", "board3"), conditions=None):
        with session_scope(registry) as session:
            application = service.get_application(session, application_id)
            if application.state == "submitted":
                service.open_review(session, voters[0], application_id)
            for voter in voters:
                service.vote(session, voter, application_id, "approve")
            return service.decide(session, voters[0], application_id, conditions, today=TODAY)

    return _approve


@pytest.fixture
def add_extract(registry, enclave_home):
    """Register a built extract (as provisioning would) and create its folder."""
    from enclave.board import service
    from enclave.registry.models import Extract

    def _add(project="school-moves", version=1, on_disk=True):
        with session_scope(registry) as session:
            proj = service.get_project(session, project)
            session.add(Extract(project_id=proj.id, approval_id=proj.current_approval_id, version=version,
                                path=f"{project}/{version}", state="ready"))
        if on_disk:
            (enclave_home / "extracts" / project / str(version)).mkdir(parents=True)

    return _add
