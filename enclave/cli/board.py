"""``enclave board``: the governing board and the registry's admins.

The caller is the person linked to the operating-system account (``enclave.cli.common.caller``);
every command is one audited transaction.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from enclave import people
from enclave.board import demo, service
from enclave.board import permissions as who
from enclave.board.errors import GovernanceError, InvalidInput
from enclave.cli.common import App, RecordId, caller, checked, fail, os_account, out, run, safe
from enclave.settings import get_settings
from enclave.board.requests import Conditions, load_yaml, setting_assignments
from enclave.board.states import ApplicationState
from enclave.registry.base import ensure_schema, session_scope
from enclave.registry.models import Application, Person, Source

app = App()
people_app = App(help="Admins: accounts, roles and the operating-system accounts linked to them.")
sources_app = App(help="Admins: agencies, sources and their stewards.")
app.add_typer(people_app, name="people")
app.add_typer(sources_app, name="sources")


# ---------------------------------------------------------------- set-up
@app.command()
def init(admin: str = typer.Option(..., help="Username of the first admin."),
         name: str = typer.Option(..., help="Full name of the first admin."),
         account: str = typer.Option(None, "--os-account",
                                     help="Operating-system account of the admin [default: the account running this].")) -> None:
    """Create (or upgrade) the registry and its first admin, linked to an operating-system account."""
    url = ensure_schema()
    account = account or os_account()
    try:
        with session_scope(url) as session:
            people.bootstrap_admin(session, admin, name)
            people.link_account(session, admin, admin, account)
    except GovernanceError as error:
        fail(str(error))
    out.print(f"registry ready; admin [bold]{safe(admin)}[/] created, acting from account {safe(account)}")


@app.command("demo")
def demo_command(definitions: Path = typer.Option(None, help="Source definitions folder (default: linkage's)."),
                 projects: bool = typer.Option(True, help="Also take the two demo projects through the board.")) -> None:
    """Seed the demo accounts and sources, and approve the two demo projects (idempotent)."""
    seeded = run(lambda s: demo.seed(s, definitions))
    out.print(f"people created: {safe(', '.join(seeded['people']) or 'none')}; sources registered: {len(seeded['sources'])}")
    if projects:
        approved = run(demo.approve_demo_projects)
        out.print(f"demo projects approved: {safe(', '.join(approved) or 'already approved')}")


# ---------------------------------------------------------------- people and sources
@people_app.command("add")
def people_add(username: str, name: str = typer.Option(...), role: list[str] = typer.Option(..., help="Repeat for several roles."),
               email: str = typer.Option(None)) -> None:
    """Add a person with one or more roles."""
    person = run(lambda s: people.add_person(s, caller(), username, name, role, email))
    out.print(f"added {safe(person.username)} (uid {person.posix_uid}) with roles {safe(', '.join(sorted(person.role_names)))}")


@people_app.command("grant")
def people_grant(username: str, role: str) -> None:
    """Grant a role."""
    run(lambda s: people.grant_role(s, caller(), username, role))
    out.print(f"{safe(username)} now holds {safe(role)}")


@people_app.command("revoke-role")
def people_revoke_role(username: str, role: str) -> None:
    """Remove a role."""
    run(lambda s: people.revoke_role(s, caller(), username, role))
    out.print(f"{safe(username)} no longer holds {safe(role)}")


@people_app.command("disable")
def people_disable(username: str) -> None:
    """Disable an account (it keeps its uid; all access ends)."""
    run(lambda s: people.set_active(s, caller(), username, False))
    out.print(f"{safe(username)} disabled")


@people_app.command("enable")
def people_enable(username: str) -> None:
    """Re-enable an account."""
    run(lambda s: people.set_active(s, caller(), username, True))
    out.print(f"{safe(username)} enabled")


@people_app.command("list")
def people_list() -> None:
    """Everyone in the registry with their roles."""
    def _rows(session):
        who.check_can_list_registry(people.get_person(session, caller()))
        return [(p.username, p.name, ", ".join(sorted(p.role_names)), str(p.posix_uid), "yes" if p.active else "no",
                 p.os_account or "") for p in session.scalars(select(Person).order_by(Person.username))]
    table = Table("username", "name", "roles", "uid", "active", "os account")
    for row in run(_rows, readonly=True):
        table.add_row(*map(safe, row))
    out.print(table)


@people_app.command("link-account")
def people_link_account(username: str, account: str = typer.Argument(..., help="Operating-system account name.")) -> None:
    """Link an operating-system account to a person: the CLI run by that account acts as them."""
    run(lambda s: people.link_account(s, caller(), username, account))
    out.print(f"account {safe(account)} now acts as {safe(username)}")


@people_app.command("unlink-account")
def people_unlink_account(username: str) -> None:
    """Remove a person's operating-system account link."""
    run(lambda s: people.unlink_account(s, caller(), username))
    out.print(f"{safe(username)} has no operating-system account linked")


@sources_app.command("add")
def sources_add(name: str, agency: str = typer.Option(...), domain: str = typer.Option(""),
                steward: list[str] = typer.Option([], help="Steward username; repeat for several.")) -> None:
    """Register or update a source, its agency and its stewards."""
    run(lambda s: people.register_source(s, caller(), name, agency, domain=domain, stewards=steward))
    out.print(f"source {safe(name)} registered")


@sources_app.command("sync")
def sources_sync(definitions: Path = typer.Option(None, help="Folder of source definition YAML files."),
                 steward: str = typer.Option(None, help="Username to make steward of every source.")) -> None:
    """Register every source described by the source definitions."""
    directory = definitions or demo.default_definitions_dir()
    if not directory.is_dir():
        fail(f"{directory}: no such folder")
    def _sync(session):
        mapping = None
        if steward:
            mapping = {}
            for path in directory.glob("*.yaml"):
                import yaml
                try:
                    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                except (UnicodeDecodeError, yaml.YAMLError) as error:
                    raise InvalidInput(f"{path}: not a readable UTF-8 YAML source definition ({type(error).__name__})") from None
                name = data.get("steward") if isinstance(data, dict) else None
                if name:
                    mapping[name] = steward
        return people.register_sources_from_definitions(session, caller(), directory, mapping)
    names = run(_sync)
    out.print(f"{len(names)} sources registered: {safe(', '.join(names))}")


@sources_app.command("list")
def sources_list() -> None:
    """Registered sources with their agency and stewards."""
    def _rows(session):
        who.check_can_list_registry(people.get_person(session, caller()))
        return [(s.name, s.agency.name, s.domain, ", ".join(st.person.username for st in s.stewards),
                 "required" if s.agency.steward_release_approval else "")
                for s in session.scalars(select(Source).order_by(Source.name))]
    table = Table("source", "agency", "domain", "stewards", "steward approval of releases")
    for row in run(_rows, readonly=True):
        table.add_row(*map(safe, row))
    out.print(table)


@sources_app.command("steward-approval")
def sources_steward_approval(agency: str, required: bool = typer.Option(..., "--on/--off",
                             help="Whether the agency's steward must also approve every release using its data.")) -> None:
    """Turn an agency's steward approval of releases on or off (admins, or a steward of that agency)."""
    run(lambda s: people.set_steward_release_approval(s, caller(), agency, required))
    out.print(f"agency {safe(agency)}: steward approval of releases {'required' if required else 'not required'}")


# ---------------------------------------------------------------- applications and votes
@app.command("list")
def list_applications(state: str = typer.Option(None, help="Only applications in this state (default: open ones).")) -> None:
    """Applications before the board."""
    states = [state] if state else [ApplicationState.submitted.value, ApplicationState.under_review.value]
    def _rows(session):
        who.check_is_board_member(people.get_person(session, caller()))
        rows = []
        for a in session.scalars(select(Application).where(Application.state.in_(states)).order_by(Application.id)):
            t = service.tally(session, a)
            rows.append((str(a.id), a.project.slug, a.kind, a.state, a.submitted_by.username,
                         f"{t.approve}/{t.reject}/{t.changes}", str(t.counted), a.submitted_at.date().isoformat()))
        return rows
    table = Table("id", "project", "kind", "state", "applicant", "approve/reject/changes", "counted", "submitted")
    for row in run(_rows, readonly=True):
        table.add_row(*map(safe, row))
    out.print(table)


@app.command("show")
def show_application(application_id: RecordId) -> None:
    """One application: the request, votes and the tally under the current quorum."""
    def _show(session):
        application = service.get_application(session, application_id)
        who.check_can_view_project(people.get_person(session, caller()), application.project)
        t = service.tally(session, application)
        out.print(f"[bold]application {application.id}[/] ({safe(application.kind)}) for project "
                  f"[bold]{safe(application.project.slug)}[/]: {safe(application.state)}")
        for label, value in (("title", application.project.title), ("purpose", application.purpose),
                             ("use case", application.use_case), ("researchers", ", ".join(application.researchers)),
                             ("sources", ", ".join(application.sources)), ("variables", application.variables),
                             ("cohort", application.cohort), ("k", application.k), ("DP epsilon", application.dp_epsilon),
                             ("dates", f"{application.start_date} to {application.end_date}")):
            out.print(f"  {label}: {safe(value)}", highlight=False)
        for key, value in _condition_lines(application):
            out.print(f"  condition {key}: {safe(value)}", highlight=False)
        for v in application.votes:
            out.print(f"  vote: {safe(v.voter.username)} {safe(v.choice)} {safe(v.comment)}", highlight=False)
        out.print(f"  tally: {t.approve} approve, {t.reject} reject, {t.changes} changes; {t.counted} counted "
                  f"({t.not_counted} recused), quorum {t.quorum}, majority > {t.majority}: "
                  f"{t.outcome.value if t.outcome else 'no quorum yet'}", highlight=False)
    run(_show, readonly=True)


def _condition_lines(holder) -> list[tuple[str, object]]:
    """Every further condition (enclave.conditions), defaults filled in, as dotted keys."""
    from enclave.conditions import conditions_of

    def walk(prefix: str, node) -> list[tuple[str, object]]:
        if isinstance(node, dict):
            return [line for key, value in node.items() for line in walk(f"{prefix}.{key}" if prefix else key, value)]
        return [(prefix, node)]

    return walk("", conditions_of(holder).model_dump(mode="json"))


@app.command("open")
def open_review(application_id: RecordId) -> None:
    """Put a submitted application before the board."""
    run(lambda s: service.open_review(s, caller(), application_id))
    out.print(f"application {application_id} is under review")


@app.command()
def vote(application_id: RecordId, choice: str = typer.Argument(..., help="approve, reject or changes"),
         comment: str = typer.Option("", help="Reason, kept with the vote.")) -> None:
    """Cast your vote (once) on an application under review."""
    run(lambda s: service.vote(s, caller(), application_id, choice, comment))
    out.print(f"vote recorded: {safe(choice)} on application {application_id}")


@app.command()
def conflict(project: str, reason: str = typer.Option(...), member: str = typer.Option(None, help="Admins: on behalf of this member.")) -> None:
    """Declare a conflict of interest on a project (you are recused from it)."""
    run(lambda s: service.declare_conflict(s, caller(), project, reason, member))
    out.print(f"conflict of interest on {safe(project)} recorded; {safe(member or caller())} is recused")


@app.command()
def decide(application_id: RecordId, conditions: Path = typer.Option(None, help="YAML of approval conditions (narrowing only)."),
           note: str = typer.Option("", help="Decision note kept with the application."),
           setting: list[str] = typer.Option([], help="dotted.key=value, e.g. attacker_model.events_known=2; repeatable.")) -> None:
    """Close the vote: approve with conditions, reject or request changes, as the counted votes carry."""
    parsed = checked(lambda: load_yaml(Conditions, conditions)) if conditions else None
    if setting:
        from enclave.board.requests import merged_settings

        given = checked(lambda: setting_assignments(setting))
        base = parsed or Conditions()
        parsed = base.model_copy(update={"settings": checked(lambda: merged_settings(base.settings, given))})
    decision = run(lambda s: service.decide(s, caller(), application_id, parsed, note))
    t = decision.tally
    out.print(f"application {application_id}: [bold]{decision.outcome.value}[/] "
              f"({t.approve} approve, {t.reject} reject, {t.changes} changes of {t.counted} counted)")
    if decision.approval is not None:
        a = decision.approval
        out.print(f"  conditions: sources {safe(a.sources)}; k {a.k}; DP epsilon {a.dp_epsilon}; expires {a.expires_on}", highlight=False)
        for key, value in _condition_lines({**(a.settings or {})}):
            out.print(f"  condition {key}: {safe(value)}", highlight=False)
        _provision_after_approval(a.project_id)


def _provision_after_approval(project_id: int) -> None:
    """Approval builds the extract (ARCHITECTURE step 5), once the decision has committed."""
    from enclave.provisioning import ProvisioningError, provision
    from enclave.registry.models import Project

    slug = run(lambda s: s.get(Project, project_id).slug)
    if not (get_settings().research / "manifest.json").exists():
        out.print(f"  extract of {safe(slug)} not built yet: no research store (run `enclave link run`, then `enclave extract build {slug}`)")
        return
    try:
        out.print(f"  extract {safe(provision(slug, actor=caller()))}")
    except ProvisioningError as exc:
        out.print(f"  [red]extract of {safe(slug)} not built[/]: {safe(exc)} (fix, then `enclave extract build {safe(slug)}`)")
        raise typer.Exit(1) from exc


# ---------------------------------------------------------------- project standing
@app.command()
def suspend(project: str, reason: str = typer.Option(...)) -> None:
    """Suspend an approved project: its workspaces close at once."""
    run(lambda s: service.suspend(s, caller(), project, reason))
    out.print(f"project {safe(project)} suspended")


@app.command()
def reinstate(project: str, reason: str = typer.Option(...)) -> None:
    """Lift a suspension."""
    run(lambda s: service.reinstate(s, caller(), project, reason))
    out.print(f"project {safe(project)} reinstated")


@app.command()
def revoke(project: str, reason: str = typer.Option(...)) -> None:
    """Revoke a project for good."""
    run(lambda s: service.revoke(s, caller(), project, reason))
    from enclave.provisioning import withdraw

    closed = withdraw(project, actor=caller(), reason=reason)
    out.print(f"project {safe(project)} revoked; {closed} extract version(s) withdrawn")


@app.command()
def expire(project: str = typer.Argument(None, help="One project; default: every project past its end date.")) -> None:
    """Expire projects past their end date (access already ends on that date; this records it)."""
    if project:
        run(lambda s: service.expire(s, caller(), project))
        out.print(f"project {safe(project)} expired")
        return
    expired = run(lambda s: service.expire_due(s, caller()))
    out.print(f"expired: {safe(', '.join(expired) or 'none due')}")


