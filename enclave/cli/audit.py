"""``enclave audit``: read and verify the hash-chained audit log (admins and board members)."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from enclave import audit, people
from enclave.board import permissions as who
from enclave.cli.common import MAX_ID, App, caller, err, fail, out, parse_moment, run, safe

app = App()


@app.command()
def show(project: str = typer.Option(None, help="Only this project."),
         person: str = typer.Option(None, help="Only events by or about this username."),
         action: str = typer.Option(None, help="Only actions starting with this (e.g. 'project.')."),
         since: str = typer.Option(None, help="From this UTC date or date-time (inclusive)."),
         until: str = typer.Option(None, help="Up to this UTC date or date-time (inclusive)."),
         limit: int = typer.Option(None, min=1, max=MAX_ID, help="Only the newest N matching events."),
         as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")) -> None:
    """Audit events, oldest first, filtered."""
    filters = audit.Filters(project=project, person=person, action=action, since=parse_moment(since),
                            until=parse_moment(until, end_of_day=True), limit=limit)

    def _show(session):
        who.check_can_read_audit(people.get_person(session, caller()))
        return [(e.seq, e.at, e.actor, e.action, e.project, e.subject, e.details, e.hash) for e in audit.show(session, filters)]

    rows = run(_show, readonly=True)
    if as_json:
        for seq, at, actor, act, proj, subject, details, digest in rows:
            typer.echo(json.dumps({"seq": seq, "at": at, "actor": actor, "action": act, "project": proj,
                                   "subject": subject, "details": json.loads(details), "hash": digest}, sort_keys=True))
        return
    table = Table("seq", "at (UTC)", "actor", "action", "project", "subject", "details")
    for seq, at, actor, act, proj, subject, details, _ in rows:
        table.add_row(*map(safe, (seq, at[:19], actor, act, proj or "", subject or "", details if details != "{}" else "")))
    out.print(table)
    out.print(f"{len(rows)} event(s)")


@app.command()
def head() -> None:
    """Print the chain's head as an anchor (``seq:hash``) to keep outside the registry."""
    def _head(session):
        who.check_can_read_audit(people.get_person(session, caller()))
        return audit.head(session)

    seq, digest = run(_head, readonly=True)
    typer.echo(f"{seq}:{digest}")


@app.command()
def verify(anchor: list[str] = typer.Option([], help="seq:hash printed earlier by `enclave audit head`; repeatable.")) -> None:
    """Recompute the whole chain; exit 1 naming every edited, deleted or reordered event."""
    try:
        anchors = [audit.parse_anchor(a) for a in anchor]
    except ValueError as error:
        fail(str(error))

    def _verify(session):
        who.check_can_read_audit(people.get_person(session, caller()))
        return audit.verify(session, anchors)

    result = run(_verify, readonly=True)
    if result.ok:
        out.print(f"audit chain intact: {result.events} event(s) verified")
        return
    for problem in result.problems:
        err.print(f"[bold red]tampered:[/] {safe(problem.message)}", highlight=False)
    fail(f"audit chain broken: {len(result.problems)} problem(s) in {result.events} event(s)")
