"""`make demo`: synthetic deposits, linkage, three board-approved projects with their extracts.

Each step is idempotent (synth output kept, ingest skips known deposits, the board's demo
approvals and extract builds are no-ops when done), so the demo restarts quickly.
Steps run through the same commands and services as real use.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.console import Console

from enclave.settings import Settings, get_settings

console = Console(stderr=True)

DEMO_PEOPLE = 3000
DEMO_SEED = 2026


def _enclave(*args: str) -> None:
    """Run one `enclave` subcommand in a child process, failing loudly."""
    cmd = [sys.executable, "-m", "enclave", *args]
    console.print(f"[bold]$ enclave {' '.join(args)}[/bold]")
    subprocess.run(cmd, check=True)


def prepare(settings: Settings | None = None, people: int = DEMO_PEOPLE, seed: int = DEMO_SEED) -> list[str]:
    """Build everything the demo needs under ENCLAVE_HOME; returns the approved demo projects."""
    settings = settings or get_settings()
    synth_dir = settings.home / "demo" / "deposits"
    if not (synth_dir / "ground_truth.csv").exists():
        _enclave("data", "synth", "--people", str(people), "--seed", str(seed), "--out", str(synth_dir))
    _enclave("data", "ingest-dir", str(synth_dir))
    if not (settings.vault / "linkage" / "crosswalk.parquet").exists():
        _enclave("link", "run", "--ground-truth", str(synth_dir / "ground_truth.csv"))

    from enclave.board import demo as board_demo
    from enclave.provisioning import provision
    from enclave.registry.base import session_scope, upgrade

    upgrade(settings.registry_url)
    with session_scope(settings.registry_url) as session:
        board_demo.seed(session)
    with session_scope(settings.registry_url) as session:
        approved = board_demo.approve_demo_projects(session)
    projects = [p.project for p in board_demo.demo_projects(_today())]
    for project in projects:
        result = provision(project, actor="admin", url=settings.registry_url)
        console.print(f"extract {project}: {result}")
    if approved:
        console.print(f"board approved: {', '.join(approved)}")
    return projects


def _today():
    import datetime as dt

    return dt.datetime.now(dt.UTC).date()


if __name__ == "__main__":
    prepare()
    print(Path(get_settings().home))
