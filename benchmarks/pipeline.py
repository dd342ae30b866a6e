"""The whole intake-to-research-store path, timed stage by stage on synthetic agency files.

    .venv/bin/python benchmarks/pipeline.py [--people N] [--label 1m]

Synthesises the files first (not timed), then times, in one process: ingest of every source
file (what `enclave data ingest-dir` does), linkage (`run_linkage`), person keys and the
research store (what `enclave link run` adds). Peak memory is the RSS of the process tree
(psutil, sampled). The machine may be shared: the load average before the run is printed
beside the figures, and CPU seconds too (much less sensitive to other jobs than wall time).

Baseline (issue 14, measured before this round): 1M records (340,000 people) ingest-dir 11.8 s
+ link run 51.2 s = 63 s, peak 2.65 GB. Target: <= 40 s, <= 4 GB.

Ends with ``name=value`` lines: ``pipeline_<label>_seconds``, ``pipeline_<label>_peak_gb`` and
one ``pipeline_<label>_<stage>_seconds`` per stage.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = {"1m": {"seconds": 63.0, "peak_gb": 2.65}}


class PeakMemory:
    """Peak resident memory of this process and its children, sampled every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._proc.memory_info().rss + sum(c.memory_info().rss for c in self._proc.children(recursive=True))
            except Exception:  # noqa: BLE001 - a child ended between listing and reading
                rss = 0
            self.peak = max(self.peak, rss)
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=340_000, help="synthetic people (about 2.9 records each)")
    parser.add_argument("--label", default=None, help="figure label (default: 1m for 340,000 people, else the record count)")
    args = parser.parse_args()

    from linkage.ingest import ingest_file
    from linkage.keys import assign_person_keys
    from linkage.link import run_linkage
    from linkage.research_store import build
    from linkage.sources import load_definitions

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        data, vault, research = Path(tmp) / "synth", Path(tmp) / "vault", Path(tmp) / "research"
        env = {**os.environ, "ENCLAVE_HOME": str(Path(tmp) / "home"), "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "enclave", "data", "synth", "--people", str(args.people), "--seed", "7",
                        "--out", str(data)], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        definitions = load_definitions()
        files = [p for p in sorted(data.iterdir()) if p.stem in definitions and p.suffix == f".{definitions[p.stem].format}"]
        load = os.getloadavg()
        cpu0 = cpu_seconds()
        stages: dict[str, float] = {}
        started = time.perf_counter()
        with PeakMemory() as memory:
            t = time.perf_counter()
            records = 0
            for f in files:
                records += ingest_file(definitions[f.stem], f, vault).rows_accepted
            stages["ingest"] = time.perf_counter() - t
            t = time.perf_counter()
            run = run_linkage(vault, ground_truth=data / "ground_truth.csv")
            stages["link"] = time.perf_counter() - t
            t = time.perf_counter()
            assign_person_keys(run.clusters, vault, run.run_id)
            stages["keys"] = time.perf_counter() - t
            t = time.perf_counter()
            build(vault, research)
            stages["research_store"] = time.perf_counter() - t
        total = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
    label = args.label or ("1m" if args.people == 340_000 else f"{round(run.quality['records'], -3) // 1000}k")
    truth = run.quality["ground_truth"]
    print(f"pipeline {label}: {run.quality['records']:,} identifier records from {len(files)} files; load average "
          f"{load[0]:.1f} / {load[1]:.1f} (1 / 5 min) on {os.cpu_count()} cores; CPU {cpu:.1f} s")
    print(f"pipeline {label}: {total:.1f} s wall, peak {memory.peak / 2**30:.2f} GB; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) + f"; link steps {run.timings}")
    print(f"pipeline {label}: F1 {truth['f1']:.4f} (P {truth['precision']:.4f}, R {truth['recall']:.4f})")
    if label in BASELINE:
        print(f"baseline {label}: {BASELINE[label]['seconds']} s, {BASELINE[label]['peak_gb']} GB (before this round)")
    figures[f"pipeline_{label}_seconds"] = round(total, 1)
    figures[f"pipeline_{label}_peak_gb"] = round(memory.peak / 2**30, 2)
    for k, v in stages.items():
        figures[f"pipeline_{label}_{k}_seconds"] = round(v, 1)
    figures[f"pipeline_{label}_cpu_seconds"] = round(cpu, 1)
    figures[f"pipeline_{label}_load_average"] = round(load[0], 1)
    figures[f"pipeline_{label}_f1"] = round(truth["f1"], 4)
    for name, value in figures.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
