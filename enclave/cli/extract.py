"""``enclave extract``: build, show, verify and withdraw project extracts."""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from enclave.settings import get_settings

app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)

# Who may (re)build or withdraw an extract from the CLI; the board's approval calls provisioning itself.
BUILDER_ROLES = frozenset({"admin", "board_member"})


def _caller_roles(user: str | None) -> set[str]:
    from enclave.airlock import loading
    from enclave.registry.base import ensure_schema, session_scope

    with session_scope(ensure_schema(), readonly=True) as session:
        return set(loading.person(session, user).role_names)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(1)


def _require_builder(user: str | None) -> None:
    roles = _caller_roles(user)
    if not roles & BUILDER_ROLES:
        raise PermissionError(f"{user} may not build or withdraw extracts (needs one of {sorted(BUILDER_ROLES)})")


@app.command()
def build(project: str = typer.Argument(..., help="Project slug.")) -> None:
    """Build the project's extract from its current approval (no new version if nothing changed)."""
    from enclave.airlock.errors import AirlockError
    from enclave.provisioning import ProvisioningError, provision

    user = get_settings().user
    try:
        _require_builder(user)
        with console.status(f"building the extract of {project}"):
            result = provision(project, actor=user)
    except (ProvisioningError, AirlockError, PermissionError, ValueError, OSError) as exc:
        _fail(exc)
    what = "built" if result.created else ("adopted" if result.adopted else "unchanged")
    console.print(f"extract {project}/{result.version} {what}: k required {result.manifest['k_required']}, "
                  f"k reached {result.manifest['k_reached']}, at {result.path}")


@app.command()
def show(project: str, version: str = typer.Option("current", help="Version folder (v1, v2, ...) or 'current'.")) -> None:
    """Show an extract's manifest: tables, rows, people, k reached."""
    from enclave.provisioning import read_manifest

    folder = get_settings().extracts / project / version
    if not (folder / "manifest.json").is_file():
        _fail(FileNotFoundError(f"no extract at {folder}"))
    manifest = read_manifest(folder)
    table = Table(title=f"extract {project}/{manifest['version']} (k required {manifest['k_required']}, reached {manifest['k_reached']})")
    for col in ("table", "rows", "people", "k reached", "columns"):
        table.add_column(col)
    for name, meta in sorted(manifest["tables"].items()):
        table.add_row(name, str(meta["rows"]), str(meta.get("people")), str(meta["k_anonymity"]["k_reached"]),
                      ", ".join(meta["columns"]))
    console.print(table)


@app.command()
def verify(project: str, version: str = typer.Option("current")) -> None:
    """Re-hash an extract's files against its manifest; exit 1 naming any changed file."""
    from enclave.provisioning import verify_extract

    folder = get_settings().extracts / project / version
    try:
        bad = verify_extract(folder)
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        _fail(exc)
    if bad:
        _fail(ValueError(f"extract {project}/{version}: checksum mismatch in {', '.join(bad)}"))
    console.print(f"extract {project}/{version}: every file matches its manifest")


@app.command()
def withdraw(project: str, reason: str = typer.Option(..., help="Why access ends (recorded in the audit chain).")) -> None:
    """End access to every extract of a project at once (revocation)."""
    from enclave.provisioning import ProvisioningError
    from enclave.provisioning import withdraw as do_withdraw

    user = get_settings().user
    try:
        _require_builder(user)
        count = do_withdraw(project, actor=user, reason=reason)
    except (ProvisioningError, PermissionError) as exc:
        _fail(exc)
    console.print(f"{count} extract version(s) of {project} withdrawn")
