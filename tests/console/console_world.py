"""The enclave the console tests sign in to: people in every role, two sources (one whose agency
asks for steward approval), a small research store, an approved project with an extract built by
provisioning, another project of another researcher with a request, and an application waiting
for the board. Everything goes through the real services (people, board, provisioning, airlock).
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

PEOPLE = [
    ("board1", "Bea Board", ["board_member"]),
    ("board2", "Ben Board", ["board_member"]),
    ("board3", "Bo Board", ["board_member"]),
    ("boardres", "Bill Board-Researcher", ["board_member", "researcher"]),
    ("alice", "Alice Researcher", ["researcher"]),
    ("bob", "Bob Researcher", ["researcher"]),
    ("carol", "Carol Researcher", ["researcher"]),
    ("rev1", "Rae Reviewer", ["reviewer"]),
    ("rev2", "Rex Reviewer", ["reviewer"]),
    ("revres", "Remy Reviewer-Researcher", ["reviewer", "researcher"]),
    ("revgone", "Ria Reviewer-Formerly-Member", ["reviewer", "researcher"]),
    ("stew", "Stu Steward", ["steward"]),
]
SOURCES = [("school_enrollment", "Schools", []), ("foster_care", "Child Welfare", ["stew"])]
PASSWORDS = {u: f"pw-{u}-{os.getpid()}" for u, _, _ in PEOPLE}
TODAY = dt.datetime.now(dt.UTC).date()
VARIABLES = {
    "school_enrollment": ["event_date", "birth_year", "sex", "neighbourhood", "grade", "days_attended", "homeless_flag"],
    "foster_care": ["birth_year", "sex", "placement_type"],
}


def _release_conftest():
    """The research-store writer of the release tests (one fixture, shared rather than copied)."""
    path = Path(__file__).resolve().parents[1] / "governance_release" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_release_fixtures_for_console", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def application(project: str, lead_researchers: list[str], title: str = "", purpose: str = "", **overrides):
    from enclave.board.requests import ApplicationRequest

    data = {
        "project": project, "title": title or f"Study {project}",
        "purpose": purpose or "Do foster placements change school stability?",
        "use_case": "child welfare and education", "researchers": lead_researchers, "sources": list(VARIABLES),
        "variables": VARIABLES, "cohort": {"birth_year_min": 2006, "birth_year_max": 2013}, "k": 5, "dp_epsilon": 2.0,
        "start_date": TODAY.isoformat(), "end_date": (TODAY + dt.timedelta(days=365)).isoformat(),
    }
    data.update(overrides)
    return ApplicationRequest.model_validate(data)


def approve(url: str, lead: str, request) -> str:
    """The board's real path (apply, open, three votes, decide), then provisioning builds the extract."""
    from enclave.board import service
    from enclave.provisioning import provision
    from enclave.registry.base import session_scope

    with session_scope(url) as session:
        app_id = service.apply(session, lead, request).id
    with session_scope(url) as session:
        service.open_review(session, "board1", app_id)
        for voter in ("board1", "board2", "board3"):
            service.vote(session, voter, app_id, "approve")
        service.decide(session, "board1", app_id)
    provision(request.project, actor="board1", url=url)
    return request.project


def make_output(home: Path, project: str, user: str, kind: str) -> str:
    """An output made the researcher's way (the safe API over the extract) in their outputs folder."""
    from disclosure_control.safe import ACRO

    from enclave.airlock.checking import extract_loader

    folder = home / "workspaces" / project / user / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    extract = (home / "extracts" / project / "current").resolve()
    manifest = json.loads((extract / "manifest.json").read_text())
    acro = ACRO(suppress=(kind == "safe"), outputs_dir=folder, data_loader=extract_loader(extract, manifest),
                dataset=f"{project}@{extract.name}", quiet=True)
    df = acro.load("school_enrollment")
    before = {p.name for p in folder.iterdir()}
    if kind == "safe":
        acro.crosstab(df.sex, df.homeless_flag)
    else:
        acro.crosstab(df.neighbourhood, df.days_attended)  # days attended stays exact in the extract: small cells
    made = [n for n in {p.name for p in folder.iterdir()} - before if not n.endswith(".evidence.json")]
    assert len(made) == 1, made
    return made[0]


def _deposit_manifest(home: Path, source: str, deposit_id: str, xss: str) -> None:
    """A deposit as ``linkage.ingest`` records it in the vault (counts and reason codes, never values)."""
    folder = home / "vault" / "deposits" / source
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{deposit_id}.json").write_text(json.dumps({
        "source": source, "deposit_id": deposit_id, "file_name": f"placements{xss}.csv", "sha256": "0" * 64,
        "bytes": 1000, "bom_stripped": False, "rows_read": 120, "rows_accepted": 117, "rows_quarantined": 3,
        "quarantine_reasons": {"birth_date:not_a_date": 2, "sex:not_allowed": 1}, "cleaned": {}, "blank_lines": 0,
        "ingested_at": "2026-11-30T10:00:00+00:00",
    }))


@dataclass
class World:
    home: Path
    url: str
    other_request: int  # carol's request on her own project (alice, a stranger to it, must never see it)
    pending_application: int  # alice's application for "new-study", waiting for the board
    amendment: int = 0  # carol's amendment of other-proj (adds bob, extends the end date)


def build(home: Path, url: str, *, xss: str = "") -> World:
    """Registry, people, sources, research store, projects and requests under ``home``."""
    from sqlalchemy import select

    from enclave import people
    from enclave.airlock import requests as airlock
    from enclave.board import service
    from enclave.registry.base import session_scope, upgrade
    from enclave.registry.models import Agency

    upgrade(url)
    with session_scope(url) as session:
        people.bootstrap_admin(session, "admin", "Ada Admin")
        for username, name, roles in PEOPLE:
            people.add_person(session, "admin", username, name, roles)
        for source, agency, stewards in SOURCES:
            people.register_source(session, "admin", source, agency, stewards=stewards)
        # Child Welfare asks to approve every release that uses its data (ARCHITECTURE: stricter rules).
        session.scalars(select(Agency).where(Agency.name == "Child Welfare")).one().steward_release_approval = True
    _release_conftest().write_research_store(home / "research")
    _deposit_manifest(home, "foster_care", "dep-0001", xss)
    approve(url, "alice", application("school-moves", ["alice", "bob", "revres", "revgone"]))
    approve(url, "carol", application("other-proj", ["carol"], title=f"Carol's study {xss}".strip()))
    with session_scope(url) as session:
        service.remove_member(session, "alice", "school-moves", "revgone", "left the project")
    name = make_output(home, "other-proj", "carol", "safe")
    other = airlock.create("carol", "other-proj", {name: "sex by homelessness"}, "Carol's table", url=url)
    airlock.submit("carol", other, url=url)
    with session_scope(url) as session:
        pending = service.apply(session, "alice", application(
            "new-study", ["alice"], title=f"New study {xss}".strip(), purpose=f"School stability {xss}".strip())).id
        from enclave.board.requests import AmendmentRequest

        amendment = service.amend(session, "carol", "other-proj", AmendmentRequest(
            reason="Bob joins to run the school models", add_researchers=["bob"],
            end_date=TODAY + dt.timedelta(days=500))).id
    return World(home=home, url=url, other_request=other, pending_application=pending, amendment=amendment)
