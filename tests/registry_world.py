"""The one seeded test registry every test group shares (governance, release, console): its people,
their roles, the agencies and sources, built once per session and copied per test.

The registry is marked as a *test* registry (``people.mark_registry_mode``): only such a registry
honours ``ENCLAVE_USER`` (with ``ENCLAVE_MODE=test``, which ``tests/conftest.py`` sets).
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from enclave.registry.base import dispose_engines, session_scope, upgrade

# username, full name, roles. Usernames say the role; board5 and revres hold two roles on purpose.
PEOPLE: list[tuple[str, str, list[str]]] = [
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
    ("rev2", "Rex Reviewer", ["reviewer"]),
    ("rev3", "Roo Reviewer", ["reviewer"]),
    ("revres", "Remy Reviewer-Researcher", ["reviewer", "researcher"]),
    ("stew", "Stu Steward", ["steward"]),
]
# source, agency, stewards
SOURCES: list[tuple[str, str, list[str]]] = [
    ("births", "Vital Records", ["stew"]),
    ("school_enrollment", "Schools", []),
    ("foster_care", "Child Welfare", ["stew"]),
]
# The governance tests' fixed date (applications start 2026-05-01).
TODAY = dt.date(2026, 6, 1)
# Board and airlock rules every test group assumes.
ENVIRONMENT = {"ENCLAVE_BOARD_QUORUM": "3", "ENCLAVE_BOARD_MAJORITY": "0.5", "ENCLAVE_REVIEWERS_REQUIRED": "2"}


def seed(url: str) -> None:
    """Migrate an empty registry at ``url`` and fill it with the world's people and sources."""
    from enclave import people

    upgrade(url)
    with session_scope(url) as session:
        people.bootstrap_admin(session, "admin", "Ada Admin")
        for username, name, roles in PEOPLE[1:]:
            people.add_person(session, "admin", username, name, roles)
        for source, agency, stewards in SOURCES:
            people.register_source(session, "admin", source, agency, stewards=stewards)
        people.mark_registry_mode(session, "admin", "test")
    dispose_engines()  # checkpoints the WAL into the file


def build_template(folder: Path) -> Path:
    """A seeded registry file in ``folder`` (made once per session; tests copy it)."""
    path = folder / "registry.db"
    seed(f"sqlite:///{path}")
    return path


def install(template: Path, home: Path) -> None:
    """Copy the template registry into a data root."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, home / "registry.db")
