"""``enclave review``: disclosure reviewers and agency stewards decide release requests."""
from __future__ import annotations

import typer

from enclave.cli.common import App, RecordId, caller, out, safe

app = App()
console = out


@app.command()
def queue() -> None:
    """Requests waiting for your review."""
    from enclave.airlock import views

    rows = views.listing(caller(), queue=True)
    if not rows:
        out.print("nothing to review")
    for r in rows:
        out.print(safe(f"  {r['id']:>5}  {r['project']:20} {r['state']:20} {r['outputs']} output(s), {r['reviews']} review(s)  "
                       f"{r['title']}"))


@app.command()
def show(request: RecordId) -> None:
    """A request with the automated verdict beside each output."""
    from enclave.airlock import views
    from enclave.cli.release import print_request

    print_request(views.describe(caller(), request))


def _decide(request: int, decision: str, comment: str, overrides: list[str]) -> None:
    from enclave.airlock import reviews

    state = reviews.review(caller(), request, decision, comment, overrides=overrides)
    out.print(f"request {request}: your review '{safe(decision)}' recorded; request is now {safe(state.value)}")


@app.command()
def approve(
    request: RecordId,
    comment: str = typer.Option("", "--comment"),
    override: list[str] = typer.Option([], "--override", help="A failed output you let pass (it needs the researcher's exception)."),
) -> None:
    """Approve every output of the request."""
    _decide(request, "approve", comment, override)


@app.command("return")
def return_(request: RecordId, comment: str = typer.Option(..., "--comment", help="What the researcher must change.")) -> None:
    """Send the request back to the researcher with comments."""
    _decide(request, "return", comment, [])


@app.command()
def reject(request: RecordId, comment: str = typer.Option(..., "--comment")) -> None:
    """Reject the request."""
    _decide(request, "reject", comment, [])


@app.command()
def steward(
    request: RecordId,
    agency: str = typer.Option(..., help="The agency you decide for."),
    decision: str = typer.Option("approve", help="approve | return | reject"),
    comment: str = typer.Option("", "--comment"),
) -> None:
    """An agency steward's decision on outputs that use the agency's data."""
    from enclave.airlock import reviews

    state = reviews.steward_decision(caller(), request, agency, decision, comment)
    out.print(f"request {request}: steward decision for {safe(agency)} recorded; request is now {safe(state.value)}")


@app.command()
def release(request: RecordId) -> None:
    """Release an approved request: copy its outputs to releases/ with checksums, update the ledger."""
    from enclave.airlock import publishing

    dest = publishing.release(caller(), request)
    out.print(f"request {request} released to {safe(dest)}")
