"""Value pools built once: frequency-weighted US names (from Faker's offline tables),
city neighbourhoods with zip codes, street names, nicknames."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Street names seen across Baltimore; each neighbourhood gets a fixed subset.
STREETS = (
    "N Avenue", "Greenmount Ave", "Harford Rd", "Belair Rd", "Edmondson Ave", "Park Heights Ave",
    "Pennsylvania Ave", "Eastern Ave", "Liberty Heights Ave", "York Rd", "N Charles St", "Reisterstown Rd",
    "Frederick Ave", "Wilkens Ave", "Washington Blvd", "Hilton St", "E Monument St", "W Fayette St",
    "W Baltimore St", "E Lombard St", "W Pratt St", "N Fulton Ave", "N Gay St", "Orleans St",
    "Patterson Park Ave", "N Milton Ave", "N Chester St", "Druid Hill Ave", "Gwynns Falls Pkwy",
    "Cold Spring Ln", "Northern Pkwy", "Loch Raven Blvd", "Hillen Rd", "Windsor Mill Rd", "Dolfield Ave",
    "Garrison Blvd", "W North Ave", "E 25th St", "E 33rd St", "Hanover St", "Potee St", "Pennington Ave",
    "Light St", "S Conkling St", "Boston St", "Erdman Ave", "Sinclair Ln", "Moravia Rd", "Frankford Ave",
    "Rosedale St", "Walther Ave", "Old Frederick Rd", "Poplar Grove St", "N Monroe St", "Edmondson Village Rd",
    "Coldspring Ave", "Falls Rd", "W 36th St", "Roland Ave", "St Paul St", "Guilford Ave", "Kirk Ave",
)
RACES = np.array(["black_non_hispanic", "white_non_hispanic", "hispanic", "asian_non_hispanic", "two_or_more", "other"], dtype=object)
RACE_WEIGHTS = np.array([0.61, 0.27, 0.06, 0.025, 0.025, 0.01])


@dataclass(frozen=True)
class NamePool:
    names: np.ndarray  # object array of str
    p: np.ndarray  # probabilities

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.names[rng.choice(len(self.names), size=n, p=self.p)]


@dataclass(frozen=True)
class Pools:
    female: NamePool
    male: NamePool
    last: NamePool
    nbhd_names: np.ndarray
    nbhd_zips: np.ndarray
    nbhd_p: np.ndarray
    nbhd_need: np.ndarray
    nbhd_streets: np.ndarray  # (n_nbhd, 8) object array of street names
    nicknames: dict[str, tuple[str, ...]]


def _pool(table: dict[str, float]) -> NamePool:
    names = np.array(list(table.keys()), dtype=object)
    w = np.array(list(table.values()), dtype=float)
    return NamePool(names, w / w.sum())


def load_nicknames(path: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Formal first name -> its nicknames (shared data: linkage compares names with it too)."""
    out: dict[str, list[str]] = {}
    with open(path or DATA_DIR / "nicknames.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["name"], []).append(row["nickname"])
    return {k: tuple(v) for k, v in out.items()}


def load_neighbourhoods(path: Path | None = None) -> list[dict[str, str]]:
    with open(path or DATA_DIR / "neighbourhoods.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def get_pools() -> Pools:
    from faker.providers.person.en_US import Provider

    rows = load_neighbourhoods()
    w = np.array([float(r["population_weight"]) for r in rows])
    # A fixed assignment of streets to neighbourhoods, independent of the run's seed.
    street_rng = np.random.default_rng(20240601)
    streets = np.array(STREETS, dtype=object)
    nbhd_streets = np.stack([streets[street_rng.choice(len(streets), 8, replace=False)] for _ in rows])
    return Pools(
        female=_pool(Provider.first_names_female),
        male=_pool(Provider.first_names_male),
        last=_pool(Provider.last_names),
        nbhd_names=np.array([r["neighbourhood"] for r in rows], dtype=object),
        nbhd_zips=np.array([r["zip"] for r in rows], dtype=object),
        nbhd_p=w / w.sum(),
        nbhd_need=np.array([float(r["need_index"]) for r in rows]),
        nbhd_streets=nbhd_streets,
        nicknames=load_nicknames(),
    )
