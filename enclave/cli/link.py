"""``enclave link``: the linkage operator's commands (run linkage, write its quality report)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from enclave.cli.common import App, safe
from enclave.settings import get_settings

app = App(help="Record linkage inside the vault zone.")
console = Console(stderr=True)

# Steps linkage.link reports besides one per EM session: load, standardise, prior, u,
# predict, cluster, quality, write. The CLI adds two: person keys, research store.
_STEPS_WITHOUT_EM = 8


@app.command("run")
def run(
    engine: Optional[str] = typer.Option(None, help="duckdb (default) or spark; default from settings."),
    threshold: Optional[float] = typer.Option(None, help="Cluster at this match probability; default from settings."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="CSV source,source_record_id,role,person_id: adds true precision, recall, F1 and blocking recall."),
    model: Optional[Path] = typer.Option(None, help="Linkage model YAML (default linkage/model/ids_model.yaml)."),
    definitions_dir: Optional[Path] = typer.Option(None, "--definitions", envvar="ENCLAVE_SOURCE_DEFINITIONS",
                                                   help="Source definitions folder, the one ingest used (default: shipped ones)."),
) -> None:
    """Standardise, train, predict, cluster; then assign person keys and rebuild the research store."""
    from linkage.link import ENGINES, LinkageInputError, run_linkage
    from linkage.model import load_model

    settings = get_settings()
    engine = engine or settings.linkage_engine
    if engine not in ENGINES:
        raise typer.BadParameter(f"choose one of {', '.join(ENGINES)}", param_hint="--engine")
    threshold = settings.linkage_threshold if threshold is None else threshold
    if not 0 < threshold <= 1:
        raise typer.BadParameter("a match probability in (0, 1]", param_hint="--threshold")
    try:
        steps = _STEPS_WITHOUT_EM + len(load_model(model).training.em)
        _check_definitions_cover_deposits(settings.vault, definitions_dir)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]linkage refused:[/red] {safe(exc)}")
        raise typer.Exit(code=2) from exc
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        task = progress.add_task("linkage", total=steps + 2)

        def on_step(name: str) -> None:
            progress.update(task, description=name, advance=1)

        try:
            result = run_linkage(settings.vault, engine=engine, threshold=threshold, ground_truth=ground_truth,
                                 model_path=model, progress=on_step)
        except (LinkageInputError, ValueError, FileNotFoundError) as exc:
            console.print(f"[red]linkage refused:[/red] {safe(exc)}")
            raise typer.Exit(code=2) from exc
        # Imported here: person keys and the research store are another part's modules.
        from linkage.keys import assign_person_keys
        from linkage.research_store import build

        on_step("assign person keys")
        from linkage.deposits import any_retired

        # Records of a withdrawn or superseded deposit leave the crosswalk; their keys are retired.
        assignment = assign_person_keys(result.clusters, settings.vault, result.run_id,
                                        allow_removed_records=any_retired(settings.vault))
        on_step("build research store")
        build(settings.vault, settings.research, definitions_dir=definitions_dir)
        progress.update(task, description="done", completed=steps + 2)

    quality = result.quality
    console.print(f"run [bold]{result.run_id}[/bold]: {quality['records']:,} records in {quality['clusters']:,} clusters "
                  f"({result.timings['total']:.1f} s); report {safe(result.run_dir / 'report.html')}")
    console.print(f"estimated false-match rate {quality['estimated']['estimated_false_match_rate']:.3%}, "
                  f"missed-match rate {quality['estimated']['estimated_missed_match_rate']:.3%}")
    if "ground_truth" in quality:
        truth = quality["ground_truth"]
        console.print(f"against ground truth: precision {truth['precision']:.4f}, recall {truth['recall']:.4f}, "
                      f"F1 {truth['f1']:.4f}, blocking recall {truth.get('blocking_recall', float('nan')):.4f}")
    del assignment
    typer.echo(result.run_id)


def _check_definitions_cover_deposits(vault: Path, definitions_dir: Optional[Path]) -> None:
    """Before anything is written: every source with a live deposit has a valid definition in the
    folder the research store will read (else keys were written, then the store build failed)."""
    from linkage.deposits import live_deposits
    from linkage.sources import load_definitions

    definitions = load_definitions(definitions_dir)
    sources = sorted(p.name for p in (vault / "deposits").glob("*") if p.is_dir() and live_deposits(vault, p.name))
    missing = [s for s in sources if s not in definitions]
    if missing:
        where = definitions_dir or "the shipped definitions"
        raise ValueError(f"no source definition for {', '.join(missing)} in {where}: pass the folder ingest used "
                         "with --definitions (or set ENCLAVE_SOURCE_DEFINITIONS)")


@app.command("report")
def report(
    run_id: Optional[str] = typer.Option(None, "--run", help="Run id (default: the latest run)."),
    ground_truth: Optional[Path] = typer.Option(None, "--ground-truth", help="Recompute true precision, recall and F1 from this CSV."),
    out: Optional[Path] = typer.Option(None, help="Write the HTML here instead of the run folder."),
) -> None:
    """Write (or rewrite) the HTML quality report of a linkage run, with its charts."""
    from linkage.link import latest_run
    from linkage.quality import recompute_for_run
    from linkage.report import write_report

    settings = get_settings()
    try:
        run_dir = settings.vault / "linkage" / "runs" / run_id if run_id else latest_run(settings.vault)
        if not (run_dir / "quality.json").is_file():
            raise FileNotFoundError(f"{run_dir}: not a completed linkage run (no quality.json)")
        quality = json.loads((run_dir / "quality.json").read_text())
        if ground_truth is not None:
            quality = recompute_for_run(run_dir, quality, ground_truth)
            (run_dir / "quality.json.tmp").write_text(json.dumps(quality, indent=1))
            (run_dir / "quality.json.tmp").replace(run_dir / "quality.json")
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]report refused:[/red] {safe(exc)}")
        raise typer.Exit(code=2) from exc
    path = write_report(quality, out or run_dir / "report.html")
    typer.echo(str(path))
