"""Run the generator chunk by chunk: memory stays bounded by ``chunk_people`` whatever
the population size; every chunk has its own random stream derived from the seed, so
the output is identical for the same configuration."""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sources import SourceDefinition, load_definitions
from .agencies import AGENCIES, Context
from .config import SynthConfig
from .pools import get_pools
from .population import Population, build_population, day
from .records import AgencyRows, build_rows
from .writer import SourceWriter

GROUND_TRUTH = "ground_truth.csv"


@dataclass
class Chunk:
    index: int
    population: Population
    rows: dict[str, AgencyRows]


def iter_chunks(cfg: SynthConfig, definitions: dict[str, SourceDefinition] | None = None) -> Iterator[Chunk]:
    definitions = definitions or load_definitions()
    names = cfg.sources or list(definitions)
    unknown = [n for n in names if n not in definitions or n not in AGENCIES]
    if unknown:
        raise ValueError(f"no generator or definition for source(s) {unknown}")
    pools = get_pools()
    n_chunks = -(-cfg.people // cfg.chunk_people)
    for c in range(n_chunks):
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
        yield Chunk(c, pop, rows)


def person_label(pid: np.ndarray) -> np.ndarray:
    return np.char.add("P", np.char.zfill(pid.astype("U10"), 10)).astype(object)


def generate(cfg: SynthConfig, out_dir: Path, definitions: dict[str, SourceDefinition] | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write one file per source and ground_truth.csv into ``out_dir``; returns rows per file."""
    definitions = definitions or load_definitions()
    names = cfg.sources or list(definitions)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {n: SourceWriter(definitions[n], out_dir) for n in names}
    truth_tmp = out_dir / f".{GROUND_TRUTH}.partial"
    truth_rows = 0
    try:
        with open(truth_tmp, "w", newline="", encoding="utf-8") as fh:
            truth = csv.writer(fh)
            truth.writerow(["source", "source_record_id", "role", "person_id"])
            for chunk in iter_chunks(cfg, definitions):
                for name, rows in chunk.rows.items():
                    writers[name].write(rows.columns)
                    for role, pids in rows.persons.items():
                        present = pids >= 0
                        k = int(present.sum())
                        truth.writerows(zip([name] * k, rows.record_ids[present].tolist(), [role] * k, person_label(pids[present]).tolist()))
                        truth_rows += k
                if progress:
                    progress(chunk.index + 1, -(-cfg.people // cfg.chunk_people))
        counts = {writers[n].path.name: writers[n].rows for n in names}
        for w in writers.values():
            w.commit()
        os.replace(truth_tmp, out_dir / GROUND_TRUTH)
    except BaseException:
        for w in writers.values():
            w.abort()
        truth_tmp.unlink(missing_ok=True)
        raise
    counts[GROUND_TRUTH] = truth_rows
    return counts
