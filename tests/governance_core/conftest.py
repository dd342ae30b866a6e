"""Governance fixtures over the shared seeded registry (``registry`` in tests/conftest.py)."""
from __future__ import annotations

import pytest

from registry_world import PEOPLE, SOURCES, TODAY  # noqa: F401 - the shared world (tests/registry_world.py)

from enclave.registry.base import session_scope


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
