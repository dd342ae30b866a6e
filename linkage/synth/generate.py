"""Run the generator chunk by chunk: memory stays bounded by ``chunk_people`` whatever
the population size; every chunk has its own random stream derived from (seed, chunk),
so the output is identical for the same configuration, however many worker processes
render the chunks (they are written in chunk order)."""
from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..sources import SourceDefinition, load_definitions
from .agencies import AGENCIES, Context
from .config import SynthConfig
from .pools import get_pools
from .population import Population, build_population, day
from .records import AgencyRows, build_rows
from .writer import SourceWriter, csv_bytes, render

GROUND_TRUTH = "ground_truth.csv"


@dataclass
class Chunk:
    index: int
    population: Population
    rows: dict[str, AgencyRows]


def n_chunks(cfg: SynthConfig) -> int:
    return -(-cfg.people // cfg.chunk_people)


def _check_sources(cfg: SynthConfig, definitions: dict[str, SourceDefinition]) -> list[str]:
    names = cfg.sources or list(definitions)
    unknown = [n for n in names if n not in definitions or n not in AGENCIES]
    if unknown:
        raise ValueError(f"no generator or definition for source(s) {unknown}")
    return names


def make_chunk(cfg: SynthConfig, definitions: dict[str, SourceDefinition], c: int) -> Chunk:
    names = _check_sources(cfg, definitions)
    pools = get_pools()
    size = min(cfg.chunk_people, cfg.people - c * cfg.chunk_people)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, c]))
    pop = build_population(rng, size, c * cfg.chunk_people, cfg, pools)
    ctx = Context(pop=pop, pools=pools, cfg=cfg, rng=rng, chunk=c, ws=day(cfg.window_start), we=day(cfg.window_end))
    rows: dict[str, AgencyRows] = {}
    # Every agency draws in a fixed order (overlaps feed forward), written or not.
    for name, make in AGENCIES.items():
        draft = make(ctx)
        if name in names:
            rows[name] = build_rows(draft, definitions[name], pop, pools, cfg.errors, cfg.quality_of(name), rng, c)
    return Chunk(c, pop, rows)


def iter_chunks(cfg: SynthConfig, definitions: dict[str, SourceDefinition] | None = None) -> Iterator[Chunk]:
    definitions = definitions or load_definitions()
    _check_sources(cfg, definitions)
    for c in range(n_chunks(cfg)):
        yield make_chunk(cfg, definitions, c)


def person_label(pid: np.ndarray) -> np.ndarray:
    return np.char.add("P", np.char.zfill(pid.astype("U10"), 10)).astype(object)


def _render_chunk(job: tuple[SynthConfig, dict[str, SourceDefinition], int]):
    """Worker body: one chunk rendered to file fragments plus its ground-truth rows."""
    cfg, definitions, c = job
    cpu0 = time.process_time()
    chunk = make_chunk(cfg, definitions, c)
    fragments = {}
    truth = []
    for name, rows in chunk.rows.items():
        fragments[name] = (render(definitions[name], rows.columns), len(rows.record_ids))
        for role, pids in rows.persons.items():
            present = pids >= 0
            k = int(present.sum())
            truth.append(pa.table({"source": pa.array([name] * k, pa.string()), "source_record_id": pa.array(rows.record_ids[present], pa.string()),
                                   "role": pa.array([role] * k, pa.string()), "person_id": pa.array(person_label(pids[present]), pa.string())}))
    usage = {"cpu_seconds": time.process_time() - cpu0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return c, fragments, csv_bytes(pa.concat_tables(truth), quote=False) if truth else b"", usage


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def generate(cfg: SynthConfig, out_dir: Path, definitions: dict[str, SourceDefinition] | None = None,
             progress: Callable[[int, int], None] | None = None, workers: int | None = None,
             stats: dict | None = None) -> dict[str, int]:
    """Write one file per source and ground_truth.csv into ``out_dir``; returns rows per file.
    ``stats``, when given, receives the CPU seconds and the peak RSS of the processes that rendered chunks.

    Files appear only when the whole run succeeded (written as ``.name.partial``, then renamed).
    """
    definitions = definitions or load_definitions()
    names = _check_sources(cfg, definitions)
    total = n_chunks(cfg)
    workers = min(workers or default_workers(), total)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {n: SourceWriter(definitions[n], out_dir) for n in names}
    truth_tmp = out_dir / f".{GROUND_TRUTH}.partial"
    truth_lines = 0
    jobs = ((cfg, definitions, c) for c in range(total))
    pool = None
    try:
        if workers > 1:
            # forkserver: workers never inherit the parent's threads (e.g. a progress bar's).
            pool = multiprocessing.get_context("forkserver").Pool(workers)
            results = pool.imap(_render_chunk, jobs)  # ordered; at most a few chunks in flight
        else:
            results = map(_render_chunk, jobs)
        with open(truth_tmp, "wb") as fh:
            fh.write(b"source,source_record_id,role,person_id\n")
            for c, fragments, truth, usage in results:
                if stats is not None:
                    stats["worker_cpu_seconds"] = stats.get("worker_cpu_seconds", 0.0) + usage["cpu_seconds"]
                    stats["worker_peak_rss_mb"] = max(stats.get("worker_peak_rss_mb", 0.0), usage["peak_rss_mb"])
                for name, (rendered, rows) in fragments.items():
                    writers[name].append(rendered, rows)
                fh.write(truth)
                truth_lines += truth.count(b"\n")
                if progress:
                    progress(c + 1, total)
        counts = {writers[n].path.name: writers[n].rows for n in names}
        for w in writers.values():
            w.commit()
        os.replace(truth_tmp, out_dir / GROUND_TRUTH)
    except BaseException:
        for w in writers.values():
            w.abort()
        truth_tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    counts[GROUND_TRUTH] = truth_lines
    return counts
