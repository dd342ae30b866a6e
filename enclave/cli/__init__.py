"""The one console command, ``enclave``, with subcommands grouped by role."""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="IDS research enclave: ingest, link, govern, analyse, release.", no_args_is_help=True,
                  pretty_exceptions_enable=False)



@app.callback()
def _root() -> None:
    """IDS research enclave: ingest, link, govern, analyse, release."""


# group name -> (module under enclave.cli, help). Each module defines ``app``.
GROUPS: dict[str, tuple[str, str]] = {
    "data": ("data", "Agency data stewards: synthetic data, source definitions, ingest."),
    "link": ("link", "Linkage operator: run record linkage, quality reports, research store."),
    "sdc": ("sdc", "Statistical disclosure control checks on output folders."),
    "board": ("board", "Governing board: applications, votes, approvals, suspension, revocation."),
    "project": ("project", "Projects and memberships: apply, amend, status."),
    "extract": ("extract", "Extract provisioning for approved projects."),
    "release": ("release", "Researchers: output release requests through the airlock."),
    "review": ("review", "Disclosure reviewers: review and decide release requests."),
    "audit": ("audit", "Audit chain: show and verify."),
    "findings": ("findings", "Public findings: publish released requests to the public catalogue."),
    "people": ("people", "Admins: accounts, roles and linked operating-system accounts (same as `board people`)."),
    "hub": ("hub", "Workspaces: JupyterHub, the OIDC provider, the demo."),
}

for _name, (_module, _help) in GROUPS.items():
    try:
        _mod = importlib.import_module(f"enclave.cli.{_module}")
    except ModuleNotFoundError as exc:  # a group not built yet is simply absent
        if exc.name != f"enclave.cli.{_module}":
            raise
        continue
    app.add_typer(_mod.app, name=_name, help=_help)


@app.command()
def version() -> None:
    """Print the enclave version."""
    from enclave import __version__

    typer.echo(__version__)


def main() -> None:
    from enclave.cli.common import refusals

    with refusals():  # the last guard: no traceback reaches a user, whatever a command lets through
        app()
