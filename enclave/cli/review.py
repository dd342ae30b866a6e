"""``enclave review``: disclosure reviewers and agency stewards decide release requests."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from enclave.settings import get_settings

app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


def _errors():
    from enclave.airlock.errors import AirlockError

    return (AirlockError, ValueError)


@app.command()
def queue() -> None:
    """Requests waiting for your review."""
    from enclave.airlock import views

    try:
        rows = views.listing(get_settings().user, queue=True)
    except _errors() as exc:
        _fail(exc)
    if not rows:
        console.print("nothing to review")
    for r in rows:
        console.print(f"  {r['id']:>5}  {r['project']:20} {r['state']:20} {r['outputs']} output(s), {r['reviews']} review(s)")


@app.command()
def show(request: int) -> None:
    """A request with the automated verdict beside each output."""
    from enclave.airlock import views
    from enclave.cli.release import print_request

    try:
        info = views.describe(get_settings().user, request)
    except _errors() as exc:
        _fail(exc)
    print_request(info)


def _decide(request: int, decision: str, comment: str, overrides: list[str]) -> None:
    from enclave.airlock import reviews

    try:
        state = reviews.review(get_settings().user, request, decision, comment, overrides=overrides)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request}: your review '{decision}' recorded; request is now {state.value}")


@app.command()
def approve(
    request: int,
    comment: str = typer.Option("", "--comment"),
    override: list[str] = typer.Option([], "--override", help="A failed output you let pass (it needs the researcher's exception)."),
) -> None:
    """Approve every output of the request."""
    _decide(request, "approve", comment, override)


@app.command("return")
def return_(request: int, comment: str = typer.Option(..., "--comment", help="What the researcher must change.")) -> None:
    """Send the request back to the researcher with comments."""
    _decide(request, "return", comment, [])


@app.command()
def reject(request: int, comment: str = typer.Option(..., "--comment")) -> None:
    """Reject the request."""
    _decide(request, "reject", comment, [])


@app.command()
def steward(
    request: int,
    agency: str = typer.Option(..., help="The agency you decide for."),
    decision: str = typer.Option("approve", help="approve | return | reject"),
    comment: str = typer.Option("", "--comment"),
) -> None:
    """An agency steward's decision on outputs that use the agency's data."""
    from enclave.airlock import reviews

    try:
        state = reviews.steward_decision(get_settings().user, request, agency, decision, comment)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request}: steward decision for {agency} recorded; request is now {state.value}")


@app.command()
def release(request: int) -> None:
    """Release an approved request: copy its outputs to releases/ with checksums, update the ledger."""
    from enclave.airlock import publishing

    try:
        dest = publishing.release(get_settings().user, request)
    except _errors() as exc:
        _fail(exc)
    console.print(f"request {request} released to {dest}")
