"""The pages everyone has: the start page (what the caller can do, by role), the researcher's
projects, the audit chain's state and the caller's own actions, and the stewards' page."""
from __future__ import annotations

import json

from sqlalchemy import select

from enclave import audit
from enclave.airlock import views
from enclave.console.web import Page, PageError
from enclave.entitlements import projects_for
from enclave.registry.base import session_scope
from enclave.registry.models import Person, Source, SourceSteward
from enclave.settings import get_settings


class HomePage(Page):
    def get(self) -> None:
        projects = projects_for(self.username, url=self.ctx.url) if "researcher" in self.roles else []
        self.render_page("home.html", projects=projects)


class ProjectsPage(Page):
    """My projects: state, expiry, extract version and the link that opens the workspace."""

    def get(self) -> None:
        self.render_page("projects.html", projects=projects_for(self.username, url=self.ctx.url))


class AuditPage(Page):
    """The audit chain's state (verified now) and the caller's own actions."""

    def get(self) -> None:
        with session_scope(self.ctx.url, readonly=True) as session:
            verification = audit.verify(session)
            seq, digest = audit.head(session)
            mine = [{"seq": e.seq, "at": e.at, "action": e.action, "project": e.project or "", "subject": e.subject or ""}
                    for e in audit.show(session, audit.Filters(person=self.username, limit=200))]
        self.render_page("audit.html", ok=verification.ok, events=verification.events,
                         problems=[p.message for p in verification.problems[:50]], head=f"{seq}:{digest}", mine=mine[::-1])


def _read_json(path) -> dict:  # noqa: ANN001
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class StewardPage(Page):
    """A steward's sources: deposits with quarantine counts and reasons, the linkage quality report
    for them, and the release requests waiting for the steward's decision."""

    def get(self) -> None:
        if "steward" not in self.roles:
            raise PageError(403, "this page is for agency data stewards")
        settings = get_settings()
        with session_scope(self.ctx.url, readonly=True) as session:
            me = session.scalars(select(Person).where(Person.username == self.username)).one()
            sources = session.scalars(select(Source).join(SourceSteward, SourceSteward.source_id == Source.id)
                                      .where(SourceSteward.person_id == me.id).order_by(Source.name)).all()
            mine = [{"name": s.name, "agency": s.agency.name, "release_approval": s.agency.steward_release_approval}
                    for s in sources]
        quality = _read_json(settings.research / "manifest.json").get("linkage_quality") or {}
        for source in mine:
            deposits = []
            folder = settings.vault / "deposits" / source["name"]
            if folder.is_dir():
                for path in sorted(folder.glob("*.json"))[-100:]:
                    d = _read_json(path)
                    deposits.append({"id": str(d.get("deposit_id", path.stem)), "file": str(d.get("file_name", "")),
                                     "at": str(d.get("ingested_at", "")), "read": d.get("rows_read"),
                                     "accepted": d.get("rows_accepted"), "quarantined": d.get("rows_quarantined"),
                                     "reasons": d.get("quarantine_reasons") or {}})
            source["deposits"] = deposits
            source["quality"] = quality.get(source["name"]) if isinstance(quality, dict) else None
        pending = [r for r in views.listing(self.username, queue=True, url=self.ctx.url)]
        self.render_page("steward.html", sources=mine, pending=pending)
