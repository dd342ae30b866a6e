"""Differencing: a ledger of every released cell and the attack that subtracts two of them.

Each released cell is stored as its population (the positions of the records it counts, in
its extract table) with its count. A new cell whose population contains a released one,
or is contained in it, differs from it by a set of records; if that set is smaller than
the threshold, subtracting the two published numbers reveals a small count, whatever the
tables were called or how they were filtered. Row and column unions a reader can add up
from published cells count as cells too (that is the "total beside a table missing one
row" attack). Populations are compared exactly (bitmaps), after a cheap count filter.
"""
from __future__ import annotations

import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Ledger", "Population", "Hit", "find_pairs"]


@dataclass
class Population:
    output_id: str
    label: str                 # e.g. "sex=F, year=2020" or "rows a=A (union)"
    dataset: str               # extract identity (project/version) so positions are comparable
    table: str
    n_table_rows: int
    positions: np.ndarray

    @property
    def count(self) -> int:
        return int(len(self.positions))

    def mask(self) -> np.ndarray:
        m = np.zeros(self.n_table_rows, dtype=bool)
        m[self.positions] = True
        return m


@dataclass
class Hit:
    new_output: str
    new_cell: str
    released_output: str
    released_cell: str
    difference: int

    def reason(self) -> str:
        return (f"differencing: cell [{self.new_cell}] and [{self.released_cell}] of {self.released_output} "
                f"differ by {self.difference} record(s), below the threshold")


def _nested_difference(a: Population, b: Population, threshold: int) -> int | None:
    """Records by which the larger population exceeds the smaller one it contains, if small."""
    if (a.dataset, a.table, a.n_table_rows) != (b.dataset, b.table, b.n_table_rows):
        return None
    diff = abs(a.count - b.count)
    if diff == 0 or diff >= threshold:
        return None
    small, big = (a, b) if a.count < b.count else (b, a)
    if np.isin(small.positions, big.positions, assume_unique=True).all():
        return diff
    return None


def find_pairs(new: list[Population], released: list[Population], threshold: int, skip_same_output: bool = True) -> list[Hit]:
    hits = []
    by_count: dict[tuple, list[Population]] = {}
    for r in released:
        by_count.setdefault((r.dataset, r.table, r.n_table_rows), []).append(r)
    for a in new:
        for b in by_count.get((a.dataset, a.table, a.n_table_rows), []):
            if skip_same_output and b.output_id == a.output_id:
                continue  # within one table secondary suppression and margins handle it
            d = _nested_difference(a, b, threshold)
            if d is not None:
                hits.append(Hit(a.output_id, a.label, b.output_id, b.label, d))
    return hits


class Ledger:
    """Released cells, persisted in a SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("""CREATE TABLE IF NOT EXISTS cell (
                id INTEGER PRIMARY KEY, output_id TEXT NOT NULL, label TEXT NOT NULL, dataset TEXT NOT NULL,
                tbl TEXT NOT NULL, n_table_rows INTEGER NOT NULL, n INTEGER NOT NULL, positions BLOB NOT NULL)""")
            db.execute("CREATE INDEX IF NOT EXISTS cell_table ON cell(dataset, tbl, n)")

    def _db(self):
        db = sqlite3.connect(self.path, timeout=60)
        return db

    def record(self, populations: list[Population]) -> int:
        """Add released cells (after release); returns how many were added."""
        rows = [(p.output_id, p.label, p.dataset, p.table, p.n_table_rows, p.count,
                 zlib.compress(np.asarray(p.positions, dtype=np.int64).tobytes(), 6)) for p in populations]
        with self._db() as db:
            db.executemany("INSERT INTO cell(output_id, label, dataset, tbl, n_table_rows, n, positions) VALUES (?,?,?,?,?,?,?)", rows)
        return len(rows)

    def released_outputs(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT output_id FROM cell ORDER BY output_id")]

    def candidates(self, population: Population, threshold: int) -> list[Population]:
        with self._db() as db:
            rows = db.execute(
                "SELECT output_id, label, dataset, tbl, n_table_rows, positions FROM cell "
                "WHERE dataset = ? AND tbl = ? AND n_table_rows = ? AND n BETWEEN ? AND ? AND n != ?",
                (population.dataset, population.table, population.n_table_rows,
                 population.count - threshold + 1, population.count + threshold - 1, population.count)).fetchall()
        return [Population(o, l, d, t, n, np.frombuffer(zlib.decompress(b), dtype=np.int64)) for o, l, d, t, n, b in rows]

    def attacks(self, populations: list[Population], threshold: int) -> list[Hit]:
        hits = []
        for p in populations:
            # ids repeat across releases (output_0 ...): a released cell is never "the same output"
            hits += find_pairs([p], self.candidates(p, threshold), threshold, skip_same_output=False)
        return hits
