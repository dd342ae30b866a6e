"""The board's pages: applications (with conditions and attacker model), amendments as a diff,
conflicts, votes and quorum; decide (which provisions the extract), suspend, reinstate, revoke,
expire; each project's audit trail. Every read and write goes through ``enclave.board``."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from enclave import audit
from enclave.board import permissions as who
from enclave.board import service
from enclave.board.states import ApplicationKind, ApplicationState, MembershipState, ProjectState
from enclave.conditions import conditions_of
from enclave.console.web import Page, PageError, parse_id
from enclave.people import get_person
from enclave.registry.base import session_scope
from enclave.registry.models import Application, ConflictOfInterest, Project

SLUG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_slug(text: str) -> str:
    if not text or len(text) > 64 or not set(text) <= SLUG_CHARS:
        raise PageError(404, "no such project")
    return text


def _diff(before: dict, after: dict) -> list[dict]:
    """What an amendment changes against the current approval, field by field (added / removed)."""
    rows = []
    for key in ("sources", "researchers"):
        old, new = list(before.get(key) or []), list(after.get(key) or [])
        rows.append({"field": key, "added": [x for x in new if x not in old], "removed": [x for x in old if x not in new],
                     "before": ", ".join(old), "after": ", ".join(new)})
    old_vars, new_vars = before.get("variables") or {}, after.get("variables") or {}
    for source in sorted(set(old_vars) | set(new_vars)):
        old, new = list(old_vars.get(source, [])), list(new_vars.get(source, []))
        rows.append({"field": f"variables of {source}", "added": [x for x in new if x not in old],
                     "removed": [x for x in old if x not in new], "before": ", ".join(old), "after": ", ".join(new)})
    for key in ("k", "dp_epsilon", "end_date", "cohort"):
        old, new = before.get(key), after.get(key)
        changed = old != new
        rows.append({"field": key, "added": [str(new)] if changed else [], "removed": [str(old)] if changed else [],
                     "before": str(old), "after": str(new)})
    return [r for r in rows if r["added"] or r["removed"]]


class BoardHome(Page):
    """Applications before the board and every project's standing."""

    def get(self) -> None:
        with session_scope(self.ctx.url, readonly=True) as session:
            who.check_can_read_board_business(get_person(session, self.username))
            applications = [
                {"id": a.id, "project": a.project.slug, "title": a.project.title, "kind": a.kind, "state": a.state,
                 "by": a.submitted_by.username, "submitted": a.submitted_at, "votes": len(a.votes)}
                for a in session.scalars(select(Application).options(
                    selectinload(Application.project), selectinload(Application.submitted_by),
                    selectinload(Application.votes)).order_by(Application.id.desc()).limit(500))
            ]
            projects = [
                {"slug": p.slug, "title": p.title, "state": p.state,
                 "expires": p.current_approval.expires_on if p.current_approval else None}
                for p in session.scalars(select(Project).options(selectinload(Project.current_approval)).order_by(Project.slug))
            ]
        open_states = {ApplicationState.submitted.value, ApplicationState.under_review.value}
        self.render_page("board.html", open=[a for a in applications if a["state"] in open_states],
                         closed=[a for a in applications if a["state"] not in open_states], projects=projects)


class ApplicationPage(Page):
    """One application: what is asked, the diff of an amendment, conflicts, votes, quorum, actions."""

    def get(self, raw_id: str) -> None:
        application_id = parse_id(raw_id, "application")
        with session_scope(self.ctx.url, readonly=True) as session:
            me = get_person(session, self.username)
            who.check_can_read_board_business(me)
            a = service.get_application(session, application_id)
            project = a.project
            tally = service.tally(session, a)
            try:
                service._check_may_sit(session, me, a)
                recusal = ""
            except who.NotPermitted as refusal:
                recusal = str(refusal)
            approval = project.current_approval
            diff = []
            if a.kind == ApplicationKind.amendment.value and approval is not None:
                diff = _diff(
                    {"sources": approval.sources, "researchers": approval.researchers, "variables": approval.variables,
                     "k": approval.k, "dp_epsilon": approval.dp_epsilon, "end_date": approval.expires_on,
                     "cohort": approval.cohort},
                    {"sources": a.sources, "researchers": a.researchers, "variables": a.variables, "k": a.k,
                     "dp_epsilon": a.dp_epsilon, "end_date": a.end_date, "cohort": a.cohort})
            view = {
                "id": a.id, "kind": a.kind, "state": a.state, "project": project.slug, "title": project.title,
                "project_state": project.state, "by": a.submitted_by.username, "purpose": a.purpose,
                "use_case": a.use_case, "sources": a.sources, "variables": a.variables, "cohort": a.cohort, "k": a.k,
                "dp_epsilon": a.dp_epsilon, "start": a.start_date, "end": a.end_date, "researchers": a.researchers,
                "attacker": conditions_of(a).attacker_model, "workspace": conditions_of(a).workspace,
                "submitted": a.submitted_at, "decided": a.decided_at, "note": a.decision_note,
                "votes": [{"voter": v.voter.username, "choice": v.choice, "comment": v.comment, "at": v.cast_at}
                          for v in a.votes],
                "voted": any(v.voter_id == me.id for v in a.votes),
            }
            view["conflicts"] = [{"person": c.person.username, "reason": c.reason, "at": c.declared_at}
                                 for c in session.scalars(select(ConflictOfInterest).where(ConflictOfInterest.project_id == project.id))]
        self.render_page("application.html", a=view, tally=tally, diff=diff, recusal=recusal,
                         is_member="board_member" in self.roles)

    def post(self, raw_id: str) -> None:
        application_id = parse_id(raw_id, "application")
        action = self.form("action", limit=20)
        if action == "open":
            with session_scope(self.ctx.url) as session:
                service.open_review(session, self.username, application_id)
            return self.done(f"board/applications/{application_id}", "Review opened: the board may vote.")
        if action == "vote":
            choice = self.form("choice", limit=20)
            comment = self.form("comment", "", limit=4000)
            with session_scope(self.ctx.url) as session:
                service.vote(session, self.username, application_id, choice, comment)
            return self.done(f"board/applications/{application_id}", f"Your vote ({choice}) is recorded.")
        if action == "decide":
            note = self.form("note", "", limit=4000)
            with session_scope(self.ctx.url) as session:
                decision = service.decide(session, self.username, application_id, None, note)
                outcome, slug = decision.outcome.value, decision.application.project.slug
                approved = decision.approval is not None
            notice = f"Decided: {outcome}."
            if approved:
                notice += " " + _provision(slug, self.username, self.ctx.url)
            return self.done(f"board/applications/{application_id}", notice)
        if action == "conflict":
            reason = self.form("reason", limit=2000)
            with session_scope(self.ctx.url) as session:
                slug = service.get_application(session, application_id).project.slug
                service.declare_conflict(session, self.username, slug, reason)
            return self.done(f"board/applications/{application_id}", "Your conflict of interest is recorded: you are recused.")
        raise PageError(400, "unknown action")


def _provision(slug: str, actor: str, url: str) -> str:
    """Approval builds the extract (ARCHITECTURE step 5) once the decision has committed, as the CLI does."""
    from enclave.provisioning import ProvisioningError, provision
    from enclave.settings import get_settings

    if not (get_settings().research / "manifest.json").exists():
        return "The extract is not built yet: there is no research store."
    try:
        result = provision(slug, actor=actor, url=url)
    except ProvisioningError as error:
        return f"The extract was not built: {error}"
    return f"Extract built: {getattr(result, 'version', result)}."


class ProjectPage(Page):
    """A project's standing, members and approval, its audit trail, and the board's actions on it."""

    def get(self, raw_slug: str) -> None:
        slug = parse_slug(raw_slug)
        with session_scope(self.ctx.url, readonly=True) as session:
            me = get_person(session, self.username)
            who.check_can_read_board_business(me)
            project = service.get_project(session, slug)
            who.check_can_view_project(me, project)
            approval = project.current_approval
            view = {
                "slug": project.slug, "title": project.title, "state": project.state, "lead": project.lead.username,
                "members": [{"person": m.person.username, "role": m.role, "state": m.state} for m in project.memberships],
                "approval": None if approval is None else {
                    "sources": approval.sources, "variables": approval.variables, "cohort": approval.cohort,
                    "k": approval.k, "dp_epsilon": approval.dp_epsilon, "expires": approval.expires_on,
                    "attacker": conditions_of(approval).attacker_model, "notes": approval.notes},
                "applications": [{"id": a.id, "kind": a.kind, "state": a.state} for a in service.project_applications(session, project)],
            }
            who.check_can_read_audit(me)
            trail = [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject or "",
                      "details": e.details} for e in audit.show(session, audit.Filters(project=slug, limit=300))]
        self.render_page("project.html", p=view, trail=trail, states=ProjectState, member_states=MembershipState)

    def post(self, raw_slug: str) -> None:
        slug = parse_slug(raw_slug)
        action = self.form("action", limit=20)
        reason = self.form("reason", "", limit=2000)
        with session_scope(self.ctx.url) as session:
            if action == "suspend":
                service.suspend(session, self.username, slug, reason)
            elif action == "reinstate":
                service.reinstate(session, self.username, slug, reason)
            elif action == "revoke":
                service.revoke(session, self.username, slug, reason)
            elif action == "expire":
                service.expire(session, self.username, slug)
            else:
                raise PageError(400, "unknown action")
        if action == "revoke":
            from enclave.provisioning import withdraw

            withdraw(slug, actor=self.username, reason=reason, url=self.ctx.url)
        self.done(f"board/projects/{slug}", f"Project {slug}: {action} recorded.")
