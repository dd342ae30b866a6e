"""``enclave data``: synthetic agency data, source definitions, ingest into the vault."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from enclave.cli.common import App, safe

app = App()
sources_app = App(help="List and validate source definitions.")
app.add_typer(sources_app, name="sources")
console = Console()
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=False)


@app.command()
def synth(
    people: int | None = typer.Option(None, "--people", "-n", help="Size of the synthetic population [default: 10000]."),
    seed: int | None = typer.Option(None, "--seed", "-s", help="Random seed; the same seed gives the same files [default: 0]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (one file per source + ground_truth.csv)."),
    config: Path | None = typer.Option(None, "--config", help="YAML with SynthConfig fields (error rates, participation, ...)."),
    chunk_people: int | None = typer.Option(None, "--chunk-people", help="People per chunk (bounds memory)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes rendering chunks (output is the same)."),
) -> None:
    """Generate synthetic agency files for all ten domains, with a ground-truth file."""
    from pydantic import ValidationError

    from linkage.synth import SynthConfig, generate

    try:
        overrides = {"people": people, "seed": seed, "chunk_people": chunk_people}
        cfg = SynthConfig.from_yaml(config, **overrides) if config else SynthConfig(**{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, OSError) as exc:
        err.print(f"[red]bad synth configuration[/red]: {safe(exc)}")
        raise typer.Exit(2) from None
    with _progress() as progress:
        task = progress.add_task(f"synth {cfg.people:,} people", total=-(-cfg.people // cfg.chunk_people))
        counts = generate(cfg, out, progress=lambda done, total: progress.update(task, completed=done), workers=workers)
    table = Table("file", "rows", title=f"synthetic IDS in {safe(out)}")
    for name, rows in counts.items():
        table.add_row(safe(name), f"{rows:,}")
    console.print(table)


@sources_app.command("list")
def sources_list(directory: Path | None = typer.Option(None, "--dir", help="Definitions directory (default: shipped ones).")) -> None:
    """List the declared agency sources."""
    from linkage.sources import SourceDefinitionError, load_definitions

    try:
        defs = load_definitions(directory)
    except SourceDefinitionError as exc:
        err.print(f"[red]{safe(exc)}[/red]")
        raise typer.Exit(2) from None
    table = Table("source", "domain", "agency", "format", "roles", "content columns")
    for d in defs.values():
        table.add_row(*map(safe, (d.name, d.domain, d.agency, d.format, ", ".join(d.roles), len(d.content))))
    console.print(table)


@sources_app.command("validate")
def sources_validate(paths: list[Path] = typer.Argument(None, help="YAML files or directories (default: shipped definitions).")) -> None:
    """Validate definitions; each error names the file and the key."""
    from linkage.sources import DEFAULT_DEFINITIONS_DIR, SourceDefinitionError, load_definition

    files: list[Path] = []
    for p in paths or [DEFAULT_DEFINITIONS_DIR]:
        files += sorted(f for f in p.glob("*.yaml") if f.name != "domains.yaml") if p.is_dir() else [p]
    failed = 0
    for f in files:
        try:
            d = load_definition(f)
            console.print(f"[green]ok[/green] {safe(f.name)} ({safe(d.domain)})")
        except SourceDefinitionError as exc:
            failed += 1
            err.print(f"[red]invalid[/red] {safe(exc)}")
    if failed:
        raise typer.Exit(1)


def _print_result(result, console_: Console) -> None:
    from linkage.ingest import IngestResult

    assert isinstance(result, IngestResult)
    if result.already_deposited:
        console_.print(f"[yellow]{safe(result.file)}[/yellow]: already deposited as {safe(result.source)}/{safe(result.deposit_id)} "
                       "(same sha256): nothing to do")
        return
    table = Table("outcome", "rows", title=safe(f"{result.source} <- {result.file} (deposit {result.deposit_id})"))
    table.add_row("read", f"{result.rows_read:,}")
    table.add_row("[green]accepted[/green]", f"{result.rows_accepted:,}")
    table.add_row("[red]quarantined[/red]", f"{result.rows_quarantined:,}")
    for reason, count in sorted(result.reasons.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  quarantined: {safe(reason)}", f"{count:,}")
    for what, count in sorted(result.cleaned.items()):
        table.add_row(f"  cleaned: {safe(what)}", f"{count:,}")
    console_.print(table)
    for row, line, fields, reasons in result.examples:
        where = f"field '{fields}'" if fields else "whole row"
        console_.print(safe(f"  {result.file} row {row} (line {line}), {where}: {reasons}"))
    if result.rows_quarantined > len(result.examples):
        console_.print(safe(f"  ... all {result.rows_quarantined:,} in vault quarantine/{result.source}/{result.deposit_id}.csv"))


def _ingest_one(source: str, file: Path, chunk_rows: int, definitions_dir: Path | None):
    from enclave.settings import get_settings
    from linkage.ingest import ingest_file
    from linkage.sources import get_definition

    definition = get_definition(source, definitions_dir)
    return ingest_file(definition, file, get_settings().vault, chunk_rows=chunk_rows)


@app.command()
def ingest(
    source: str = typer.Argument(..., help="Source name (see `enclave data sources list`)."),
    file: Path = typer.Argument(..., help="The deposited file (CSV or Parquet as the definition says)."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", help="Rows validated per chunk (bounds memory)."),
    definitions_dir: Path | None = typer.Option(None, "--definitions", envvar="ENCLAVE_SOURCE_DEFINITIONS",
                                                help="Definitions directory (default: shipped ones)."),
) -> None:
    """Validate FILE against SOURCE's definition and deposit it into the vault."""
    from linkage.ingest_read import FileRejected
    from linkage.sources import SourceDefinitionError, UnknownSource

    try:
        result = _ingest_one(source, file, chunk_rows, definitions_dir)
    except (FileRejected, UnknownSource, SourceDefinitionError) as exc:
        err.print(f"[red]rejected[/red]: {safe(exc)}")
        raise typer.Exit(1) from None
    _print_result(result, console)


@app.command("ingest-dir")
def ingest_dir(
    directory: Path = typer.Argument(..., help="A folder of agency files named <source>.csv|.parquet (e.g. synth output)."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows"),
    definitions_dir: Path | None = typer.Option(None, "--definitions", envvar="ENCLAVE_SOURCE_DEFINITIONS"),
) -> None:
    """Ingest every file of DIR whose name is a declared source; stops at the first rejected file."""
    from linkage.ingest_read import FileRejected
    from linkage.sources import SourceDefinitionError, load_definitions

    try:
        defs = load_definitions(definitions_dir)
    except SourceDefinitionError as exc:
        err.print(f"[red]{safe(exc)}[/red]")
        raise typer.Exit(2) from None
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and p.stem in defs and p.suffix == f".{defs[p.stem].format}"]
    ignored = [p.name for p in sorted(directory.iterdir()) if p.is_file() and p not in files and not p.name.startswith(".")]
    if not files:
        err.print(f"[red]no source files in {safe(directory)}[/red] (expected names like births.csv)")
        raise typer.Exit(1)
    if ignored:
        err.print(f"not a declared source, skipped: {safe(', '.join(ignored))}")
    failed = 0
    summary = Table("source", "accepted", "quarantined", "top reasons", "deposit", title=f"ingest of {safe(directory)}")
    with _progress() as progress:
        task = progress.add_task("ingest", total=len(files))
        for f in files:
            progress.update(task, description=f"ingest {safe(f.name)}")
            try:
                result = _ingest_one(f.stem, f, chunk_rows, definitions_dir)
            except FileRejected as exc:
                failed += 1
                err.print(f"[red]rejected[/red]: {safe(exc)}")
                summary.add_row(safe(f.stem), "-", "-", "[red]file rejected[/red]", "-")
            else:
                reasons = safe(", ".join(f"{k} {v:,}" for k, v in result.reasons.most_common(3)))
                if result.already_deposited:
                    reasons = "[yellow]already deposited: no-op[/yellow]"
                summary.add_row(safe(result.source), f"{result.rows_accepted:,}", f"{result.rows_quarantined:,}", reasons,
                                safe(result.deposit_id[:8]))
            progress.advance(task)
    console.print(summary)
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- deposit lifecycle
# One definitions folder for every command: --definitions, else ENCLAVE_SOURCE_DEFINITIONS.
DEFINITIONS_ENV = "ENCLAVE_SOURCE_DEFINITIONS"


def _actor() -> str:
    """The registry person this command acts as (enclave.cli.common.caller)."""
    from enclave.cli.common import caller

    return caller()


def _require_deposit_manager(source: str) -> str:
    """Refuse unless the caller may withdraw or supersede ``source``'s deposits; returns the caller."""
    from sqlalchemy import select

    from enclave.board import permissions as who
    from enclave.board.console import run
    from enclave.people import get_person
    from enclave.registry.models import Source, SourceSteward

    actor = _actor()

    def check(session) -> None:  # noqa: ANN001
        stewards = session.scalars(select(SourceSteward.person_id).join(Source, Source.id == SourceSteward.source_id)
                                   .where(Source.name == source)).all()
        who.check_can_manage_deposits(get_person(session, actor), stewards)

    run(check, readonly=True)
    return actor


def _audit(action: str, subject: str, details: dict) -> None:
    """Lifecycle changes go on the audit chain (counts and ids only, never values)."""
    from enclave import audit
    from enclave.board.console import run

    run(lambda session: audit.append(session, actor=_actor(), action=action, subject=subject, details=details))


@app.command("withdraw")
def withdraw(
    source: str = typer.Argument(..., help="Source name."),
    deposit_id: str = typer.Argument(..., help="Deposit id (see `enclave data deposits SOURCE`)."),
    reason: str = typer.Option(..., "--reason", help="Why the deposit is withdrawn (kept in its tombstone and the audit log)."),
) -> None:
    """Withdraw a deposit: linkage and the research store stop reading it, its data files are deleted."""
    from enclave.settings import get_settings
    from linkage.deposits import DepositError, withdraw as withdraw_deposit

    actor = _require_deposit_manager(source)
    try:
        manifest = withdraw_deposit(get_settings().vault, source, deposit_id, reason, actor)
    except DepositError as exc:
        err.print(f"[red]refused[/red]: {exc}")
        raise typer.Exit(1) from None
    _audit("data.deposit.withdrawn", f"{source}/{deposit_id}",
           {"reason": reason, "rows_accepted": manifest.get("rows_accepted"), "file_name": manifest.get("file_name")})
    console.print(f"withdrew {source}/{deposit_id} ({manifest.get('rows_accepted', 0):,} records); "
                  "run `enclave link run` to relink without it")


@app.command("supersede")
def supersede(
    source: str = typer.Argument(..., help="Source name."),
    deposit_id: str = typer.Argument(..., help="The live deposit the corrected file replaces."),
    file: Path = typer.Argument(..., help="The corrected file."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows"),
    definitions_dir: Path | None = typer.Option(None, "--definitions", envvar=DEFINITIONS_ENV,
                                                help="Definitions directory (default: shipped ones)."),
) -> None:
    """Deposit a corrected FILE in place of DEPOSIT_ID, in one step (linkage never sees both)."""
    from enclave.settings import get_settings
    from linkage.ingest import ingest_file
    from linkage.ingest_read import FileRejected
    from linkage.sources import SourceDefinitionError, UnknownSource, get_definition

    _require_deposit_manager(source)
    try:
        definition = get_definition(source, definitions_dir)
        result = ingest_file(definition, file, get_settings().vault, chunk_rows=chunk_rows, supersedes=deposit_id)
    except (FileRejected, UnknownSource, SourceDefinitionError) as exc:
        err.print(f"[red]rejected[/red]: {exc}")
        raise typer.Exit(1) from None
    if result.already_deposited:
        err.print(f"[red]rejected[/red]: {file.name} is already deposit {source}/{result.deposit_id}; nothing superseded")
        raise typer.Exit(1)
    _audit("data.deposit.superseded", f"{source}/{deposit_id}",
           {"superseded_by": result.deposit_id, "file_name": file.name, "rows_accepted": result.rows_accepted,
            "rows_quarantined": result.rows_quarantined, "rows_flagged": result.rows_flagged})
    _print_result(result, console)
    console.print(f"{source}/{deposit_id} superseded by {result.deposit_id}")


@app.command("deposits")
def deposits_list(source: str = typer.Argument(..., help="Source name.")) -> None:
    """Deposits of SOURCE with their state (complete, withdrawn, superseded) and counts."""
    from enclave.settings import get_settings
    from linkage.deposits import live_deposits, read_manifests, state_of

    vault = get_settings().vault
    live = set(live_deposits(vault, source))
    table = Table("deposit", "state", "file", "accepted", "quarant.", "flagged", title=f"deposits of {source}")
    table.columns[1].no_wrap = True
    for deposit_id, m in read_manifests(vault, source).items():
        state = state_of(m).value if deposit_id in live or state_of(m).value != "complete" else "superseded"
        table.add_row(deposit_id, state, str(m.get("file_name", "")), f"{m.get('rows_accepted', 0):,}",
                      f"{m.get('rows_quarantined', 0):,}", f"{m.get('rows_flagged', 0):,}")
    console.print(table)
