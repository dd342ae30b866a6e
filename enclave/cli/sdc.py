"""``enclave sdc``: disclosure-control checks on output folders."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from enclave.cli.common import App, safe

app = App(help="Statistical disclosure control checks on output folders.")


def folder_loader(data_dir: Path):
    """data_loader over a folder of ``<table>.parquet`` or ``<table>.csv`` files."""
    import pandas as pd

    def load(table: str) -> pd.DataFrame:
        if "/" in table or "\\" in table or table.startswith("."):
            raise ValueError(f"table name {table!r} is not a plain name")
        for ext, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
            path = data_dir / f"{table}{ext}"
            if path.exists():
                return reader(path)
        raise FileNotFoundError(f"{data_dir}: no table {table!r} (.parquet or .csv)")

    return load


@app.command("check")
def check(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder of outputs (with their .evidence.json)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", exists=True, file_okay=False,
                                        help="Folder of extract tables (<table>.parquet|csv) to recompute from."),
    rules: Optional[Path] = typer.Option(None, "--rules", "-r", exists=True, dir_okay=False, help="Rules YAML (default: packaged)."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Differencing ledger (SQLite) of released cells."),
    dataset: str = typer.Option("", "--dataset", help="Extract identity (project/version) for the ledger."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write sdc_report.json and results.json into this folder."),
) -> None:
    """Check every output in FOLDER and print the verdicts; exit 0 only if all pass."""
    from rich.console import Console
    from rich.table import Table

    from disclosure_control.differencing import Ledger
    from disclosure_control.gate import check_folder
    from disclosure_control.report import write_reports
    from disclosure_control.rules import RulesError, load_rulebook

    console = Console()
    try:
        book = load_rulebook(rules)
    except RulesError as exc:
        console.print(f"[red]{safe(exc)}[/]")
        raise typer.Exit(2)
    result = check_folder(folder, folder_loader(data) if data else None, book,
                          Ledger(ledger) if ledger else None, dataset)
    table = Table(title=f"SDC verdicts for {safe(folder)}")
    for col in ("output", "kind", "verdict", "reasons"):
        table.add_column(col)
    colour = {"pass": "green", "review": "yellow", "fail": "red"}
    for v in result.outputs:
        table.add_row(safe(v.output), safe(v.kind), f"[{colour.get(v.status, 'red')}]{safe(v.status)}[/]",
                      "\n".join(safe(r) for r in v.reasons[:4]))
    console.print(table)
    if report:
        paths = write_reports(folder, result, report)
        console.print(f"reports: {safe(paths[0])} {safe(paths[1])}")
    if not result.outputs:
        console.print("[yellow]no outputs found[/]")
    raise typer.Exit(0 if result.all_pass else 1)
