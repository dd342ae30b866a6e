"""``enclave extract``: build, show, verify and withdraw project extracts."""
from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.table import Table

from enclave.cli.common import App, caller, fail, out, run, safe
from enclave.settings import get_settings

app = App()
console = out

# Who may (re)build or withdraw an extract from the CLI; the board's approval calls provisioning itself.
BUILDER_ROLES = frozenset({"admin", "board_member"})
VERSION_PATTERN = re.compile(r"^(current|v[1-9][0-9]{0,8})$")


def _caller_roles(user: str) -> set[str]:
    from enclave.airlock import loading

    return run(lambda s: set(loading.person(s, user).role_names), readonly=True)


def _require_builder(user: str) -> None:
    roles = _caller_roles(user)
    if not roles & BUILDER_ROLES:
        raise PermissionError(f"{user} may not build or withdraw extracts (needs one of {sorted(BUILDER_ROLES)})")


def _readable_extract(project: str, version: str) -> Path:
    """The folder of a project's extract version, after checking the names and the caller's right to read it.

    Names are checked before any path is built, and the resolved folder must still lie inside the
    project's own extracts folder, so ``../research`` or another project's name reaches nothing.
    """
    from enclave import people
    from enclave.board import permissions as who
    from enclave.board import service
    from enclave.board.requests import SLUG_PATTERN

    if not re.match(SLUG_PATTERN, project):
        fail(f"{project!r} is not a project name")
    if not VERSION_PATTERN.match(version):
        fail(f"{version!r} is not an extract version (current, v1, v2, ...)")
    run(lambda s: who.check_can_read_extract(people.get_person(s, caller()), service.get_project(s, project)), readonly=True)
    base = (get_settings().extracts / project).resolve()
    folder = (base / version).resolve()
    if not folder.is_relative_to(base) or folder == base:
        fail(f"extract {project}/{version} points outside the project's extracts")
    return folder


@app.command()
def build(project: str = typer.Argument(..., help="Project slug.")) -> None:
    """Build the project's extract from its current approval (no new version if nothing changed)."""
    from enclave.provisioning import provision

    user = caller()
    _require_builder(user)
    with out.status(f"building the extract of {safe(project)}"):
        result = provision(project, actor=user)
    what = "built" if result.created else ("adopted" if result.adopted else "unchanged")
    out.print(safe(f"extract {project}/{result.version} {what}: k required {result.manifest['k_required']}, "
                   f"k reached {result.manifest['k_reached']}, at {result.path}"))


@app.command()
def show(project: str, version: str = typer.Option("current", help="Version folder (v1, v2, ...) or 'current'.")) -> None:
    """Show an extract's manifest: tables, rows, people, k reached."""
    from enclave.provisioning import read_manifest

    folder = _readable_extract(project, version)
    if not (folder / "manifest.json").is_file():
        fail(f"no extract {project}/{version}")
    manifest = read_manifest(folder)
    table = Table(title=safe(f"extract {project}/{manifest['version']} (k required {manifest['k_required']}, "
                             f"reached {manifest['k_reached']})"))
    for col in ("table", "rows", "people", "k reached", "columns"):
        table.add_column(col)
    for name, meta in sorted(manifest["tables"].items()):
        table.add_row(*map(safe, (name, meta["rows"], meta.get("people"), meta["k_anonymity"]["k_reached"],
                                  ", ".join(meta["columns"]))))
    out.print(table)


@app.command()
def verify(project: str, version: str = typer.Option("current")) -> None:
    """Re-hash an extract's files against its manifest; exit 1 naming any changed file."""
    from enclave.provisioning import verify_extract

    folder = _readable_extract(project, version)
    if not (folder / "manifest.json").is_file():
        fail(f"no extract {project}/{version}")
    bad = verify_extract(folder)
    if bad:
        fail(f"extract {project}/{version}: checksum mismatch in {', '.join(bad)}")
    out.print(f"extract {safe(project)}/{safe(version)}: every file matches its manifest")


@app.command()
def withdraw(project: str, reason: str = typer.Option(..., help="Why access ends (recorded in the audit chain).")) -> None:
    """End access to every extract of a project at once (revocation)."""
    from enclave.provisioning import withdraw as do_withdraw

    user = caller()
    _require_builder(user)
    count = do_withdraw(project, actor=user, reason=reason)
    out.print(f"{count} extract version(s) of {safe(project)} withdrawn")
