"""``enclave project``: researchers apply, amend and follow their projects.

The caller is the person linked to the operating-system account (``enclave.cli.common.caller``);
every change is one audited transaction.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from enclave import people
from enclave.board import permissions as who
from enclave.board import service
from enclave.cli.common import App, RecordId, caller, checked, fail, out, run, safe
from enclave.board.requests import AmendmentRequest, ApplicationRequest, load_yaml, parse
from enclave.entitlements import Refused, check_workspace, current_extract, projects_for
from enclave.registry.models import DPBudget

app = App()

TEMPLATE = """\
# Project application: fill in, then `enclave project apply <this file>`.
project: my-project            # lower-case name: letters, digits, dashes
title: A short title
purpose: What question the project answers and why it needs linked data.
use_case: child welfare and education
researchers: []                # other researchers' usernames (you are the lead)
sources: [foster_care, school_enrollment]
variables:                     # per source, the content columns needed
  foster_care: [placement_type]
  school_enrollment: [grade]
cohort: {birth_year_min: 2005, birth_year_max: 2015, sources_present: [foster_care]}
k: 10                          # k-anonymity level the extract must meet
dp_epsilon: 1.0                # differential-privacy budget
start_date: %(start)s
end_date: %(end)s
"""


@app.command()
def template() -> None:
    """Print an application template."""
    today = dt.datetime.now(dt.UTC).date()
    typer.echo(TEMPLATE % {"start": today, "end": today + dt.timedelta(days=365)}, nl=False)


@app.command()
def apply(application: Path = typer.Argument(..., help="Application YAML (see `enclave project template`).")) -> None:
    """Apply for a new project (you become its lead)."""
    request = checked(lambda: load_yaml(ApplicationRequest, application))
    result = run(lambda s: service.apply(s, caller(), request))
    out.print(f"application {result.id} submitted for project [bold]{safe(request.project)}[/]")


@app.command()
def resubmit(application_id: RecordId, application: Path) -> None:
    """Answer the board's request for changes with a revised application."""
    request = checked(lambda: load_yaml(ApplicationRequest, application))
    result = run(lambda s: service.resubmit(s, caller(), application_id, request))
    out.print(f"application {result.id} submitted (revision of {application_id})")


@app.command()
def withdraw(application_id: RecordId) -> None:
    """Withdraw an application not decided yet."""
    run(lambda s: service.withdraw(s, caller(), application_id))
    out.print(f"application {application_id} withdrawn")


@app.command()
def amend(project: str,
          reason: str = typer.Option(..., help="Why the change is needed (goes to the board)."),
          add_researcher: list[str] = typer.Option([], help="Username; repeat for several."),
          add_source: list[str] = typer.Option([], help="Source name; repeat for several."),
          add_variable: list[str] = typer.Option([], help="source.variable; repeat for several."),
          end_date: str = typer.Option(None, help="New end date (an extension), YYYY-MM-DD."),
          dp_epsilon: float = typer.Option(None, help="New total DP budget.")) -> None:
    """Ask the board to change an approved project; nothing changes until it approves."""
    variables: dict[str, list[str]] = {}
    for item in add_variable:
        source, _, name = item.partition(".")
        if not source or not name:
            fail(f"--add-variable {item!r}: write it as source.variable")
        variables.setdefault(source, []).append(name)
    amendment = checked(lambda: parse(AmendmentRequest, {
        "reason": reason, "add_researchers": add_researcher, "add_sources": add_source, "add_variables": variables,
        "end_date": end_date, "dp_epsilon": dp_epsilon}, "amendment"))
    result = run(lambda s: service.amend(s, caller(), project, amendment))
    out.print(f"amendment {result.id} submitted for project [bold]{safe(project)}[/]; it needs the board's approval")


@app.command("remove-member")
def remove_member(project: str, username: str, reason: str = typer.Option(...)) -> None:
    """Remove a researcher from a project at once (lead or admin)."""
    run(lambda s: service.remove_member(s, caller(), project, username, reason))
    out.print(f"{safe(username)} removed from {safe(project)}; their open release requests are withdrawn")


@app.command("list")
def list_projects() -> None:
    """Your projects, and whether each workspace can be opened now."""
    summaries = projects_for(caller())
    table = Table("project", "title", "state", "role", "membership", "expires", "extract", "workspace")
    for p in summaries:
        table.add_row(*map(safe, (p.project, p.title, p.state, p.role, p.membership, p.expires_on or "",
                                  p.extract_version or "", "open" if p.can_open else f"closed: {p.reason}")))
    out.print(table if summaries else "you belong to no project")


@app.command()
def status(project: str) -> None:
    """A project's state, current conditions, members, extract and DP budget."""
    def _status(session):
        proj = service.get_project(session, project)
        who.check_can_view_project(people.get_person(session, caller()), proj)
        out.print(f"[bold]{safe(proj.slug)}[/] — {safe(proj.title)}: [bold]{safe(proj.state)}[/] "
                  f"(lead {safe(proj.lead.username)}, gid {proj.posix_gid})")
        approval = proj.current_approval
        if approval is not None:
            out.print(f"  approved {approval.approved_at.date()} until {approval.expires_on}; k {approval.k}; "
                      f"sources {safe(', '.join(approval.sources))}", highlight=False)
            for source, names in approval.variables.items():
                out.print(f"    {safe(source)}: {safe(', '.join(names))}", highlight=False)
            out.print(f"  cohort: {safe(approval.cohort)}", highlight=False)
            if approval.notes:
                out.print(f"  notes: {safe(approval.notes)}", highlight=False)
        for m in proj.memberships:
            out.print(f"  member {safe(m.person.username)}: {safe(m.role)}, {safe(m.state)}", highlight=False)
        extract = current_extract(session, proj)
        out.print(f"  extract: {safe(f'version {extract.version} ({extract.path})' if extract else 'not built')}", highlight=False)
        budget = session.get(DPBudget, proj.id)
        if budget is not None:
            out.print(f"  DP budget: {budget.epsilon_spent:g} of {budget.epsilon_total:g} spent", highlight=False)
        for a in service.project_applications(session, proj):
            out.print(f"  application {a.id} ({safe(a.kind)}): {safe(a.state)}", highlight=False)
    run(_status, readonly=True)


@app.command()
def check(project: str) -> None:
    """Would your workspace for PROJECT open now? (the hub's check, not recorded)"""
    try:
        grant = check_workspace(caller(), project, record=False)
    except Refused as refused:
        fail(refused.reason)
    out.print(safe(f"workspace opens: extract version {grant.extract_version} at {grant.extract_path}, home {grant.home_path}, "
                   f"uid {grant.uid}, gid {grant.gid}, until {grant.expires_on}"), highlight=False)


