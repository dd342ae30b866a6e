"""``enclave findings``: publish released requests to the public catalogue, list, withdraw, serve."""
from __future__ import annotations

import functools
import http.server
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from enclave.settings import get_settings

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


def _errors():
    from enclave.airlock.errors import AirlockError
    from enclave.findings.spec import FindingSpecError

    return (AirlockError, FindingSpecError, ValueError, OSError)


@app.command()
def publish(
    request: int = typer.Argument(..., min=1, max=2**31 - 1, help="A released request."),
    spec: Path = typer.Option(..., "--spec", help="YAML: title, question, use_case, domains, cohort, summary, comparisons, files."),
) -> None:
    """Publish a released request as a public finding (only files the release recorded)."""
    from enclave.findings import publish as publishing
    from enclave.findings.spec import load_spec

    try:
        record = publishing.publish(get_settings().user, request, load_spec(spec))
    except _errors() as exc:
        _fail(exc)
    console.print(f"published {escape(record['slug'])}: {publishing.public_dir() / 'findings' / record['slug'] / 'index.html'}")


@app.command("list")
def list_() -> None:
    """Every finding in the catalogue, withdrawn ones marked."""
    from enclave.findings import publish as publishing

    for request_id, record in sorted(publishing.published().items()):
        state = "withdrawn" if record.get("withdrawn") else "live"
        console.print(f"{request_id:6} {state:9} {escape(record['slug'])}  {escape(record['title'])}", markup=True)


@app.command()
def withdraw(slug: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Withdraw a finding (board members): files removed, a notice stays at its address."""
    from enclave.findings import publish as publishing

    try:
        publishing.withdraw(get_settings().user, slug, reason)
    except _errors() as exc:
        _fail(exc)
    console.print(f"withdrawn {escape(slug)}")


@app.command()
def serve(port: int = typer.Option(8090, min=1, max=65535), host: str = typer.Option("127.0.0.1")) -> None:
    """Serve the public catalogue without sign-in (a plain static file server)."""
    from enclave.findings import publish as publishing

    root = publishing.public_dir()
    if not (root / "index.html").is_file():
        _fail(ValueError(f"no catalogue at {root}: publish a finding first"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        console.print(f"catalogue at http://{host}:{port}/index.html (Ctrl-C stops)")
        server.serve_forever()
