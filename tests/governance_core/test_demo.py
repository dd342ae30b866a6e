"""The demo governance: accounts, every defined source, two projects approved; idempotent."""
from __future__ import annotations

from sqlalchemy import select

from enclave import audit
from enclave.board import demo
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Approval, Project, Source


def test_demo_seeds_and_approves_the_demo_projects_once(enclave_home):
    url = ensure_schema()
    for _ in range(2):
        with session_scope(url) as session:
            demo.seed(session)
        with session_scope(url) as session:
            demo.approve_demo_projects(session)
    with session_scope(url, readonly=True) as session:
        sources = set(session.scalars(select(Source.name)))
        assert {p.stem for p in demo.default_definitions_dir().glob("*.yaml")} | {demo.RELATIONSHIPS} == sources
        projects = {p.slug: p.state for p in session.scalars(select(Project))}
        assert projects == {"school-stability": "approved", "youth-justice-health": "approved", "young-families": "approved"}
        approvals = session.scalars(select(Approval)).all()
        assert len(approvals) == 3
        # the third project's attacker model is stated in its application and carried by the approval
        family = session.scalars(select(Project).where(Project.slug == "young-families")).one().current_approval
        assert family.settings == {"attacker_model": {"events_known": 1, "family_edges_known": True}}
        assert audit.verify(session).ok
    # Every approved variable is a content column of its source definition or a quasi-identifier
    # the research store derives for every table (docs/INTERFACES.md).
    import yaml

    derived = {"event_date", "age_at_event", "birth_year", "sex", "race_ethnicity", "neighbourhood"}

    for request in demo.demo_projects(__import__("datetime").date(2026, 1, 1)):
        for source, names in request.variables.items():
            if source == demo.RELATIONSHIPS:  # derived by linkage, no agency definition
                assert set(names) <= {"relation"}
                continue
            definition = yaml.safe_load((demo.default_definitions_dir() / f"{source}.yaml").read_text())
            assert set(names) <= set(definition["content"]) | derived, (source, names)
