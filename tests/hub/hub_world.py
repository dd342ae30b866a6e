"""A small enclave for the hub tests and the spawn benchmark: people, projects in every standing, extracts.

People and projects go through the real registry services (``enclave.people``,
``enclave.board.service``: apply, review, three votes, decide, then suspend / revoke / expire).
The extract of each approved project is written as provisioning leaves it (a version directory
with Parquet and a manifest, a ``current`` symlink, an ``extracts`` row): building it from a
research store is provisioning's own test, and would cost a linkage run per test session.
The other zones get one sentinel file each, which the sandbox probes try to read.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ADMIN = "admin"
BOARD = ["board1", "board2", "board3"]
PEOPLE = [
    ("board1", "Bea Board", ["board_member"]),
    ("board2", "Ben Board", ["board_member"]),
    ("board3", "Bo Board", ["board_member"]),
    ("alice", "Alice Researcher", ["researcher"]),
    ("bob", "Bob Researcher", ["researcher"]),
    ("carol", "Carol Outsider", ["researcher"]),
    ("rev1", "Rae Reviewer", ["reviewer"]),
    ("stew", "Stu Steward", ["steward"]),
    ("linker", "Lin Operator", ["linkage_operator"]),
]
SOURCES = [("births", "Vital Records")]
# project -> (members, standing after approval)
PROJECTS = {
    "alpha": (["alice", "bob"], "approved"),
    "beta": (["bob"], "approved"),
    "gamma": (["alice"], "suspended"),
    "delta": (["alice"], "revoked"),
    "epsilon": (["alice"], "expired"),
}
START, END = dt.date(2026, 1, 1), dt.date(2030, 12, 31)
SENTINEL = "enclave-sentinel-4f1c"
PASSWORDS = {username: f"pw-{username}-{os.getpid()}" for username, _, _ in PEOPLE}  # development sign-ins of the tests  # written into every zone a workspace must not read


@dataclass(frozen=True)
class World:
    home: Path
    projects: dict[str, tuple[list[str], str]]

    def extract_dir(self, project: str) -> Path:
        return (self.home / "extracts" / project / "current").resolve()


def _application(project: str, members: list[str]):  # noqa: ANN202
    from enclave.board.requests import ApplicationRequest

    return ApplicationRequest.model_validate({
        "project": project, "title": f"Project {project}", "purpose": "Hub isolation tests of the enclave.",
        "use_case": "education", "researchers": members[1:], "sources": ["births"],
        "variables": {"births": ["birth_weight"]}, "cohort": {}, "k": 5, "dp_epsilon": 1.0,
        "start_date": START.isoformat(), "end_date": END.isoformat(),
    })


def _write_extract(home: Path, project: str, version: int) -> str:
    project_dir = home / "extracts" / project
    version_dir = project_dir / str(version)
    version_dir.mkdir(parents=True)
    frame = pd.DataFrame({"pseudonym": [f"{project}-{i:04d}" for i in range(50)],
                          "birth_weight": [2500 + 10 * i for i in range(50)]})
    frame.to_parquet(version_dir / "births.parquet", index=False)
    (version_dir / "manifest.json").write_text(json.dumps({"project": project, "version": version,
                                                          "tables": {"births": {"rows": 50}}, "marker": SENTINEL}))
    for path in version_dir.iterdir():
        os.chmod(path, 0o444)
    os.chmod(version_dir, 0o555)
    (project_dir / "current").symlink_to(str(version))
    return f"{project}/{version}"


def add_approved_project(home: Path, url: str | None, project: str, members: list[str]) -> None:
    """Add researchers (created if new) and approve ``project`` for them, with an extract version 1."""
    from sqlalchemy import select

    from enclave import people
    from enclave.board import service
    from enclave.registry.base import session_scope
    from enclave.registry.models import Extract, Person

    with session_scope(url) as session:
        known = set(session.scalars(select(Person.username)).all())
        for username in members:
            if username not in known:
                people.add_person(session, ADMIN, username, f"Researcher {username}", ["researcher"])
    with session_scope(url) as session:
        application = service.apply(session, members[0], _application(project, members), today=START)
        service.open_review(session, BOARD[0], application.id)
        for member in BOARD:
            service.vote(session, member, application.id, "approve")
        decision = service.decide(session, BOARD[0], application.id, today=START)
        path = _write_extract(home, project, 1)
        session.add(Extract(project_id=application.project.id, approval_id=decision.approval.id, version=1,
                            path=path, state="ready", rows=50))


def build(home: Path, url: str | None = None) -> World:
    """Create the registry, the people, the projects in their standings and the zones under ``home``."""
    from enclave import people
    from enclave.board import service
    from enclave.registry.base import session_scope, upgrade

    upgrade(url)
    with session_scope(url) as session:
        people.bootstrap_admin(session, ADMIN, "Ada Admin")
        for username, name, roles in PEOPLE:
            people.add_person(session, ADMIN, username, name, roles)
        for source, agency in SOURCES:
            people.register_source(session, ADMIN, source, agency)
    for project, (members, standing) in PROJECTS.items():
        add_approved_project(home, url, project, members)
        with session_scope(url) as session:
            if standing == "suspended":
                service.suspend(session, BOARD[0], project, "hub test: suspended")
            elif standing == "revoked":
                service.revoke(session, BOARD[0], project, "hub test: revoked")
            elif standing == "expired":
                service.expire(session, BOARD[0], project, today=END + dt.timedelta(days=1))
    for zone in ("vault", "research", "airlock", "releases"):
        (home / zone / "inner").mkdir(parents=True, exist_ok=True)
        (home / zone / "inner" / "secret.txt").write_text(SENTINEL)
    return World(home=home, projects=PROJECTS)


def set_workspace_conditions(url: str | None, project: str, **workspace) -> None:
    """Set the board's workspace conditions (``enclave.conditions.WorkspaceLimits``) of ``project``'s approval."""
    from sqlalchemy import select

    from enclave.registry.base import session_scope
    from enclave.registry.models import Project

    with session_scope(url) as session:
        approval = session.scalars(select(Project).where(Project.slug == project)).one().current_approval
        current = dict(approval.settings or {})
        current["workspace"] = {**current.get("workspace", {}), **workspace}
        approval.settings = current
