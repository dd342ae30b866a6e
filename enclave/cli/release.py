"""``enclave release``: researchers' release requests through the airlock."""
from __future__ import annotations

import typer
from rich.table import Table

from enclave.cli.common import App, RecordId, caller, out, safe

app = App()
console = out  # kept for callers that printed through this module's console


def _pairs(files: list[str], contexts: list[str]) -> dict[str, str]:
    if len(files) != len(contexts):
        raise ValueError(f"give one --context per --file ({len(files)} files, {len(contexts)} contexts)")
    return dict(zip(files, contexts, strict=True))


@app.command()
def create(
    project: str,
    file: list[str] = typer.Option(..., "--file", "-f", help="Output file name in your outputs folder (repeat)."),
    context: list[str] = typer.Option(..., "--context", "-c", help="What the output shows, one per --file, same order."),
    title: str = typer.Option("", help="A title for the request."),
) -> None:
    """Create a draft request from files in workspaces/<project>/<you>/outputs/."""
    from enclave.airlock import requests

    pairs = _pairs(file, context)
    rid = requests.create(caller(), project, pairs, title)
    out.print(f"request {rid} created (draft); submit it with: enclave release submit {rid}")


@app.command()
def add(
    request: RecordId,
    file: list[str] = typer.Option(..., "--file", "-f"),
    context: list[str] = typer.Option(..., "--context", "-c"),
) -> None:
    """Add outputs to a draft or returned request (or change their context)."""
    from enclave.airlock import requests

    pairs = _pairs(file, context)
    requests.add_outputs(caller(), request, pairs)
    out.print(f"request {request}: outputs added")


@app.command()
def remove(request: RecordId, name: str) -> None:
    """Take an output out of a draft or returned request."""
    from enclave.airlock import requests

    requests.remove_output(caller(), request, name)
    out.print(f"request {request}: {safe(name)} removed")


@app.command()
def exception(request: RecordId, name: str, text: str) -> None:
    """Justify releasing an output the gate failed (a reviewer must still override it)."""
    from enclave.airlock import requests

    requests.add_exception(caller(), request, name, text)
    out.print(f"request {request}: exception recorded for {safe(name)}")


@app.command()
def submit(request: RecordId) -> None:
    """Snapshot the files into the airlock, submit, and run the automated check."""
    from enclave.airlock import checking, requests

    round_ = requests.submit(caller(), request, check=False)
    out.print(f"request {request}: submitted (round {round_}); checking")
    _print_verdicts(checking.run_gate(request))


@app.command()
def check(request: RecordId) -> None:
    """Run the automated check again on a submitted request (after an interrupted check)."""
    from enclave.airlock import checking, views

    user = caller()
    views.describe(user, request)  # only someone who may read the request may re-run its check
    _print_verdicts(checking.run_gate(request, actor=user))


def _print_verdicts(verdicts: dict[str, str]) -> None:
    colour = {"pass": "green", "review": "yellow", "fail": "red"}
    for name, status in sorted(verdicts.items()):
        out.print(f"  [{colour.get(status, 'red')}]{safe(f'{status:6}')}[/] {safe(name)}")


@app.command()
def withdraw(request: RecordId) -> None:
    """Withdraw your request."""
    from enclave.airlock import requests

    requests.withdraw(caller(), request)
    out.print(f"request {request}: withdrawn")


@app.command()
def status(request: RecordId) -> None:
    """Show a request: outputs, context, verdicts, reviews."""
    from enclave.airlock import views

    print_request(views.describe(caller(), request))


def print_request(info: dict) -> None:
    out.print(f"request {info['id']} of {safe(info['project'])} by {safe(info['author'])}: [bold]{safe(info['state'])}[/bold] "
              f"(round {info['round']})")
    if info.get("title"):
        out.print(f"  title: {safe(info['title'])}")
    table = Table()
    for col in ("output", "verdict", "reasons", "context", "exception"):
        table.add_column(col)
    for f in info["files"]:
        table.add_row(*(safe(v) for v in (f["name"], f["verdict"], "; ".join(map(str, f["reasons"]))[:200],
                                           f["context"], f["exception"] or "")))
    out.print(table)
    for f in info["files"]:
        cells = (f.get("details") or {}).get("cells") or []
        for cell in cells[:20]:
            label = ", ".join(f"{k}={v}" for k, v in (cell.get("cell") or {}).items())
            out.print(safe(f"  {f['name']} [{label}]: {cell.get('status')} {'; '.join(map(str, cell.get('reasons') or []))}"))
        if len(cells) > 20:
            out.print(f"  {safe(f['name'])}: {len(cells) - 20} more cell verdict(s)")
    for r in info["reviews"]:
        out.print(safe(f"  review by {r['reviewer']} (round {r['round']}): {r['decision']} {r['comments']}"))
    if info["stewards_required"]:
        out.print(safe(f"  steward approval required from {info['stewards_required']}; given by {info['stewards_approved']}"))


@app.command("list")
def list_(project: str = typer.Option(None, help="Only this project.")) -> None:
    """Requests you may see."""
    from enclave.airlock import views

    rows = views.listing(caller(), project=project)
    table = Table()
    columns = ("id", "project", "author", "state", "outputs", "reviews", "title")
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(*(safe(r[c]) for c in columns))
    out.print(table)


@app.command()
def recover() -> None:
    """After a crash: remove unrecorded airlock snapshots and release staging, publish committed releases."""
    from enclave.airlock import publishing, requests
    from enclave.board import permissions as who
    from enclave.cli.common import run
    from enclave.people import get_person

    run(lambda s: who.check_can_manage_people(get_person(s, caller())), readonly=True)
    removed = requests.recover()
    released = publishing.recover()
    out.print(f"removed {sum(len(v) for v in removed.values())} orphaned snapshot folder(s); "
              f"published {len(released['published'])} committed release(s); "
              f"removed {len(released['removed'])} unrecorded release staging folder(s)")
