"""Identifier errors as agencies make them: typos, nicknames, swapped names, dropped
hyphen parts, transposed dates, wrong digits, blanks. Each function returns the mask of
rows it changed so tests can compare the realised rates with the configured ones."""
from __future__ import annotations

import random

import numpy as np

from .population import NULL_DAY

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typo(s: str, rnd: random.Random) -> str:
    """One keying error: substitute, drop, insert or transpose a character."""
    if len(s) < 2:
        return s + rnd.choice(_LETTERS)
    i = rnd.randrange(len(s))
    op = rnd.randrange(4)
    c = rnd.choice(_LETTERS)
    c = c.upper() if s[i].isupper() else c
    if op == 0:
        out = s[:i] + c + s[i + 1:]
    elif op == 1:
        out = s[:i] + s[i + 1:]
    elif op == 2:
        out = s[:i] + c + s[i:]
    else:
        j = min(i, len(s) - 2)
        out = s[:j] + s[j + 1] + s[j] + s[j + 2:]
    return out if out != s else s[:i] + ("q" if s[i] != "q" else "z") + s[i + 1:]


def apply_typos(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    present = np.array([v is not None for v in values], dtype=bool)
    mask = present & (rng.random(len(values)) < rate)
    # Python loop only over the few rows that get a typo (a few per cent); random.Random
    # seeded from the numpy stream is much cheaper per call than numpy's generator.
    rnd = random.Random(int(rng.integers(2**62)))
    for i in np.flatnonzero(mask):
        values[i] = typo(values[i], rnd)
    return mask


def apply_nicknames(first: np.ndarray, nicknames: dict[str, tuple[str, ...]], rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    eligible = np.fromiter(map(nicknames.__contains__, first), dtype=bool, count=len(first))
    mask = eligible & (rng.random(len(first)) < rate)
    for i in np.flatnonzero(mask):
        options = nicknames[first[i]]
        first[i] = options[int(rng.integers(0, len(options)))]
    return mask, eligible


def apply_hyphen_part(last: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    eligible = np.fromiter((v is not None and "-" in v for v in last), dtype=bool, count=len(last))
    mask = eligible & (rng.random(len(last)) < rate)
    for i in np.flatnonzero(mask):
        parts = last[i].split("-")
        last[i] = parts[int(rng.integers(0, len(parts)))]
    return mask, eligible


def swap_day_month(dob: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    d = dob.astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    m = month_start.astype(np.int64) % 12 + 1
    dd = (d - month_start).astype(np.int64) + 1
    eligible = (dob != NULL_DAY) & (dd <= 12) & (dd != m)
    mask = eligible & (rng.random(len(dob)) < rate)
    year_start = d.astype("datetime64[Y]").astype("datetime64[M]")
    swapped = (year_start + (dd - 1)).astype("datetime64[D]") + (m - 1)
    dob[mask] = swapped.astype(np.int64)[mask]
    return mask, eligible


def shift_dob(dob: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    mask = (dob != NULL_DAY) & (rng.random(len(dob)) < rate)
    k = int(mask.sum())
    delta = np.where(rng.random(k) < 0.5, rng.choice([-365, 365], k), rng.choice([-3, -2, -1, 1, 2, 3], k))
    dob[mask] += delta
    return mask


def ssn_digit(ssn: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    present = np.array([v is not None for v in ssn], dtype=bool)
    mask = present & (rng.random(len(ssn)) < rate)
    for i in np.flatnonzero(mask):
        s = ssn[i]
        j = int(rng.integers(0, len(s)))
        ssn[i] = s[:j] + str((int(s[j]) + int(rng.integers(1, 10))) % 10) + s[j + 1:]
    return mask


def blank(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    mask = rng.random(len(values)) < rate
    if values.dtype == object:
        mask &= np.array([v is not None for v in values], dtype=bool)
        values[mask] = None
    else:
        mask &= values != NULL_DAY
        values[mask] = NULL_DAY
    return mask


_DIRECTIONS = {"N": "North", "S": "South", "E": "East", "W": "West"}
_SUFFIXES = {"St": "Street", "Ave": "Avenue", "Rd": "Road", "Blvd": "Boulevard", "Pkwy": "Parkway", "Ln": "Lane"}


def spell_out(street: str) -> str:
    """'123 N Charles St' -> '123 North Charles Street' (agencies differ; standardising is linkage's job)."""
    words = street.split(" ")
    if len(words) > 2 and words[1] in _DIRECTIONS:
        words[1] = _DIRECTIONS[words[1]]
    if words[-1] in _SUFFIXES:
        words[-1] = _SUFFIXES[words[-1]]
    return " ".join(words)


def apply_spelled_out(streets: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    present = np.array([v is not None for v in streets], dtype=bool)
    mask = present & (rng.random(len(streets)) < rate)
    for i in np.flatnonzero(mask):
        streets[i] = spell_out(streets[i])
    return mask
