"""The demo's governance: its people, its sources, and three projects taken through the board.

Everything goes through the same services as real use (permissions, policies, audit), and
every step is idempotent, so ``make demo`` can run it again on an existing registry.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from enclave import people
from enclave.board import service
from enclave.board.requests import ApplicationRequest, parse
from enclave.board.states import ApplicationState
from enclave.registry.models import Project, Source

DEMO_FILE = Path(__file__).with_name("demo_projects.yaml")
DEMO_BOARD = ("board1", "board2", "board3")
RELATIONSHIPS = "relationships"


def default_definitions_dir() -> Path:
    import linkage

    return Path(linkage.__file__).parent / "source_definitions"


def demo_projects(today: dt.date, file: Path = DEMO_FILE) -> list[ApplicationRequest]:
    """The demo applications from ``demo_projects.yaml``, dated from ``today``."""
    raw: list[dict[str, Any]] = yaml.safe_load(file.read_text(encoding="utf-8"))["projects"]
    requests = []
    for item in raw:
        data = dict(item)
        months = int(data.pop("months"))
        data["start_date"] = today
        data["end_date"] = today + dt.timedelta(days=30 * months)
        requests.append(parse(ApplicationRequest, data, f"{file} project {item.get('project')}"))
    return requests


def seed(session: Session, definitions_dir: Path | None = None) -> dict[str, list[str]]:
    """Demo accounts and every source of the source definitions (stewards mapped to ``steward1``)."""
    created = people.seed_demo_people(session)
    directory = definitions_dir or default_definitions_dir()
    known = set(session.scalars(select(Source.name)))
    definitions = {p.stem for p in directory.glob("*.yaml")}
    sources: list[str] = []
    if definitions - known:
        stewards = {}
        for path in directory.glob("*.yaml"):
            steward = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("steward")
            if steward:
                stewards[steward] = "steward1"
        sources = people.register_sources_from_definitions(session, "admin", directory, stewards)
    if RELATIONSHIPS not in known:  # not an agency file: the family edges linkage derives (research store)
        people.register_source(session, "admin", RELATIONSHIPS, "IDS linkage", domain="derived",
                               description="Family relationships (mother_of, father_of) between linked people")
        sources.append(RELATIONSHIPS)
    return {"people": created, "sources": sources}


def approve_demo_projects(session: Session, today: dt.date | None = None, file: Path = DEMO_FILE) -> list[str]:
    """Apply for and approve the demo projects that are not approved yet; returns their names."""
    today = today or dt.datetime.now(dt.UTC).date()
    approved = []
    for request in demo_projects(today, file):
        project = session.scalars(select(Project).where(Project.slug == request.project)).first()
        if project is not None and project.current_approval_id is not None:
            continue
        if project is None:
            application = service.apply(session, request.researchers[0], request.model_copy(
                update={"researchers": request.researchers[1:]}), today=today)
        else:
            application = service.project_applications(session, project)[-1]
        if application.state == ApplicationState.submitted:
            service.open_review(session, DEMO_BOARD[0], application.id)
        voted = {v.voter.username for v in application.votes}
        for member in DEMO_BOARD:
            if member not in voted:
                service.vote(session, member, application.id, "approve", "demo")
        service.decide(session, DEMO_BOARD[0], application.id, note="demo approval", today=today)
        approved.append(request.project)
    return approved
