"""``enclave findings``: publish released requests to the public catalogue, list, withdraw, serve."""
from __future__ import annotations

import functools
import http.server
from pathlib import Path

import typer

from enclave.cli.common import App, RecordId, caller, fail, out, safe

app = App()


@app.command()
def publish(
    request: RecordId,
    spec: Path = typer.Option(..., "--spec", help="YAML: title, question, use_case, domains, cohort, summary, comparisons, files."),
) -> None:
    """Publish a released request as a public finding (only files the release recorded)."""
    from enclave.findings import publish as publishing
    from enclave.findings.spec import load_spec

    record = publishing.publish(caller(), request, load_spec(spec))
    out.print(f"published {safe(record['slug'])}: {safe(publishing.findings_dir() / record['slug'] / 'index.html')}")


@app.command("list")
def list_() -> None:
    """Every finding in the catalogue, withdrawn ones marked."""
    from enclave.findings import publish as publishing

    for request_id, record in sorted(publishing.published().items()):
        state = "withdrawn" if record.get("withdrawn") else "live"
        out.print(f"{request_id:6} {state:9} {safe(record['slug'])}  {safe(record['title'])}")


@app.command()
def withdraw(slug: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Withdraw a finding (board members): files removed, a notice stays at its address."""
    from enclave.findings import publish as publishing

    publishing.withdraw(caller(), slug, reason)
    out.print(f"withdrawn {safe(slug)}")


@app.command()
def serve(port: int = typer.Option(8090, min=1, max=65535), host: str = typer.Option("127.0.0.1")) -> None:
    """Serve the public catalogue without sign-in (a plain static file server)."""
    from enclave.findings import publish as publishing

    root = publishing.public_dir()
    if not (root / "index.html").is_file():
        fail(f"no catalogue at {root}: publish a finding first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        out.print(f"catalogue at http://{host}:{port}/index.html (Ctrl-C stops)")
        server.serve_forever()
