"""``enclave release``: researchers' release requests through the airlock."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from enclave.settings import get_settings

app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


def _pairs(files: list[str], contexts: list[str]) -> dict[str, str]:
    if len(files) != len(contexts):
        raise ValueError(f"give one --context per --file ({len(files)} files, {len(contexts)} contexts)")
    return dict(zip(files, contexts, strict=True))


def _errors():
    from enclave.airlock.errors import AirlockError

    return (AirlockError, ValueError)


@app.command()
def create(
    project: str,
    file: list[str] = typer.Option(..., "--file", "-f", help="Output file name in your outputs folder (repeat)."),
    context: list[str] = typer.Option(..., "--context", "-c", help="What the output shows, one per --file, same order."),
    title: str = typer.Option("", help="A title for the request."),
) -> None:
    """Create a draft request from files in workspaces/<project>/<you>/outputs/."""
    from enclave.airlock import requests

    try:
        rid = requests.create(get_settings().user, project, _pairs(file, context), title)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {rid} created (draft); submit it with: enclave release submit {rid}")


@app.command()
def add(
    request: int,
    file: list[str] = typer.Option(..., "--file", "-f"),
    context: list[str] = typer.Option(..., "--context", "-c"),
) -> None:
    """Add outputs to a draft or returned request (or change their context)."""
    from enclave.airlock import requests

    try:
        requests.add_outputs(get_settings().user, request, _pairs(file, context))
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request}: outputs added")


@app.command()
def remove(request: int, name: str) -> None:
    """Take an output out of a draft or returned request."""
    from enclave.airlock import requests

    try:
        requests.remove_output(get_settings().user, request, name)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request}: {name} removed")


@app.command()
def exception(request: int, name: str, text: str) -> None:
    """Justify releasing an output the gate failed (a reviewer must still override it)."""
    from enclave.airlock import requests

    try:
        requests.add_exception(get_settings().user, request, name, text)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request}: exception recorded for {name}")


@app.command()
def submit(request: int) -> None:
    """Snapshot the files into the airlock, submit, and run the automated check."""
    from enclave.airlock import checking, requests

    user = get_settings().user
    try:
        round_ = requests.submit(user, request, check=False)
        console.print(f"request {request}: submitted (round {round_}); checking")
        verdicts = checking.run_gate(request)
    except _errors() as exc:
        _fail(exc)
    _print_verdicts(verdicts)


@app.command()
def check(request: int) -> None:
    """Run the automated check again on a submitted request (after an interrupted check)."""
    from enclave.airlock import checking

    try:
        verdicts = checking.run_gate(request, actor=get_settings().user or "gate")
    except _errors() as exc:
        _fail(exc)
    _print_verdicts(verdicts)


def _print_verdicts(verdicts: dict[str, str]) -> None:
    colour = {"pass": "green", "review": "yellow", "fail": "red"}
    for name, status in sorted(verdicts.items()):
        console.print(f"  [{colour.get(status, 'red')}]{status:6}[/] {name}")


@app.command()
def withdraw(request: int) -> None:
    """Withdraw your request."""
    from enclave.airlock import requests

    try:
        requests.withdraw(get_settings().user, request)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request}: withdrawn")


@app.command()
def status(request: int) -> None:
    """Show a request: outputs, context, verdicts, reviews."""
    from enclave.airlock import views

    try:
        info = views.describe(get_settings().user, request)
    except _errors() as exc:
        _fail(exc)
    print_request(info)


def print_request(info: dict) -> None:
    console.print(f"request {info['id']} of {info['project']} by {info['author']}: [bold]{info['state']}[/bold] "
                  f"(round {info['round']})")
    table = Table()
    for col in ("output", "verdict", "reasons", "context", "exception"):
        table.add_column(col)
    for f in info["files"]:
        table.add_row(*(escape(str(v)) for v in (f["name"], f["verdict"], "; ".join(map(str, f["reasons"]))[:200],
                                                  f["context"], f["exception"] or "")))
    console.print(table)
    for f in info["files"]:
        cells = (f.get("details") or {}).get("cells") or []
        for cell in cells[:20]:
            label = ", ".join(f"{k}={v}" for k, v in (cell.get("cell") or {}).items())
            console.print(escape(f"  {f['name']} [{label}]: {cell.get('status')} {'; '.join(cell.get('reasons') or [])}"))
        if len(cells) > 20:
            console.print(f"  {f['name']}: {len(cells) - 20} more cell verdict(s)")
    for r in info["reviews"]:
        console.print(escape(f"  review by {r['reviewer']} (round {r['round']}): {r['decision']} {r['comments']}"))
    if info["stewards_required"]:
        console.print(f"  steward approval required from {info['stewards_required']}; given by {info['stewards_approved']}")


@app.command("list")
def list_(project: str = typer.Option(None, help="Only this project.")) -> None:
    """Requests you may see."""
    from enclave.airlock import views

    try:
        rows = views.listing(get_settings().user, project=project)
    except _errors() as exc:
        _fail(exc)
    table = Table()
    for col in ("id", "project", "author", "state", "outputs", "reviews", "title"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[c]) for c in ("id", "project", "author", "state", "outputs", "reviews", "title")))
    console.print(table)


@app.command()
def recover() -> None:
    """After a crash: remove unrecorded airlock snapshots and release staging, publish committed releases."""
    from enclave.airlock import publishing, requests

    removed = requests.recover()
    released = publishing.recover()
    console.print(f"removed {sum(len(v) for v in removed.values())} orphaned snapshot folder(s); "
                  f"published {len(released['published'])} committed release(s); "
                  f"removed {len(released['removed'])} unrecorded release staging folder(s)")
