"""The true population of one chunk: families (mother, father, children), single adults,
households with addresses in city neighbourhoods and moves over time. All vectorised.

Dates are int64 days since 1970-01-01; ``NEVER`` marks an event that does not happen.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .config import SynthConfig
from .pools import RACE_WEIGHTS, RACES, Pools

EPOCH = dt.date(1970, 1, 1)
NEVER = np.int64(10**6)
NULL_DAY = np.int64(-(10**6))
YEAR = 365.25

CHILD, MOTHER, FATHER, SINGLE = 0, 1, 2, 3

# Bijection person id -> valid SSN (area 001-899 without 666, group 01-99, serial 0001-9999),
# so SSNs are unique across chunks without any lookup table.
_SSN_MOD = 898 * 99 * 9999
_SSN_MULT = 1_000_003  # prime, coprime to _SSN_MOD


def day(d: dt.date) -> int:
    return (d - EPOCH).days


def ssn_for(pid: np.ndarray, seed: int) -> np.ndarray:
    x = (pid.astype(np.int64) * _SSN_MULT + (seed * 7919 + 12345)) % _SSN_MOD
    area = x // (99 * 9999) + 1
    area = area + (area >= 666)
    group = (x // 9999) % 99 + 1
    serial = x % 9999 + 1
    n = area * 1_000_000 + group * 10_000 + serial
    return np.char.zfill(n.astype("U9"), 9).astype(object)


def uniform_days(rng: np.random.Generator, lo, hi) -> np.ndarray:
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    return lo + np.floor(rng.random(np.broadcast(lo, hi).shape) * (hi - lo + 1)).astype(np.int64)


@dataclass
class Population:
    pid: np.ndarray
    first: np.ndarray
    middle: np.ndarray
    maiden: np.ndarray
    married: np.ndarray
    surname_change: np.ndarray
    dob: np.ndarray
    sex: np.ndarray
    race: np.ndarray
    ssn: np.ndarray
    hh: np.ndarray
    kind: np.ndarray
    mother: np.ndarray
    father: np.ndarray
    family: np.ndarray
    risk: np.ndarray
    young_parent: np.ndarray
    twin: np.ndarray
    n_families: int
    family_father: np.ndarray
    family_married: np.ndarray
    family_child_start: np.ndarray
    family_child_count: np.ndarray
    hh_nbhd: np.ndarray  # (H, 3) neighbourhood index per address slot
    hh_street: np.ndarray  # (H, 3) "123 Street" strings
    hh_moves: np.ndarray  # (H, 2) move days, NEVER when no move

    def __len__(self) -> int:
        return len(self.pid)

    def surname_at(self, idx: np.ndarray, when: np.ndarray) -> np.ndarray:
        changed = when >= self.surname_change[idx]
        return np.where(changed, self.married[idx], self.maiden[idx])

    def slot_at(self, hh: np.ndarray, when: np.ndarray) -> np.ndarray:
        return (when >= self.hh_moves[hh, 0]).astype(np.int64) + (when >= self.hh_moves[hh, 1])

    def address_at(self, idx: np.ndarray, when: np.ndarray, pools: Pools) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hh = self.hh[idx]
        slot = self.slot_at(hh, when)
        nb = self.hh_nbhd[hh, slot]
        return self.hh_street[hh, slot], pools.nbhd_zips[nb], nb

    def need_at(self, idx: np.ndarray, pools: Pools) -> np.ndarray:
        return pools.nbhd_need[self.hh_nbhd[self.hh[idx], 0]]


def _draw_first(rng, pools: Pools, sex: np.ndarray) -> np.ndarray:
    out = np.empty(len(sex), dtype=object)
    m = sex == "M"
    out[m] = pools.male.draw(rng, int(m.sum()))
    out[~m] = pools.female.draw(rng, int((~m).sum()))
    return out


def build_population(rng: np.random.Generator, n_people: int, pid_offset: int, cfg: SynthConfig, pools: Pools) -> Population:
    P = cfg.participation
    ws, we = day(cfg.window_start), day(cfg.window_end)

    # Families: draw more than needed, keep those that fit in the family share.
    target = int(n_people * P.family_share)
    f_max = max(1, int(target / 3.0) + 10)
    first_birth = uniform_days(rng, day(dt.date(1993, 1, 1)), day(dt.date(2024, 6, 30)) + np.zeros(f_max, dtype=np.int64))
    mother_age = np.clip(15 + rng.gamma(2.0, 3.5, f_max), 15, 42)
    mother_dob = first_birth - (mother_age * YEAR).astype(np.int64)
    kids_drawn = np.minimum(1 + rng.poisson(1.0, f_max), 6)
    has_father = rng.random(f_max) < P.father_in_city
    # Child birth days: first birth then gaps of 1-4 years; children born after the window drop out.
    max_k = 6
    gaps = ((1 + rng.gamma(2.0, 0.8, (f_max, max_k))) * YEAR).astype(np.int64)
    gaps[:, 0] = 0
    # Twins (~1.5% of families): the second child shares the first one's birth day, a hard
    # case for linkage (same date of birth, parents and address; different first names).
    twins = (kids_drawn >= 2) & (rng.random(f_max) < P.twins)
    gaps[twins, 1] = 0
    child_days = first_birth[:, None] + np.cumsum(gaps, axis=1)
    valid = (np.arange(max_k)[None, :] < kids_drawn[:, None]) & (child_days <= we)
    kids = valid.sum(axis=1)
    size = 1 + has_father + kids
    fits = np.cumsum(size) <= target
    F = int(fits.sum())
    first_birth, mother_age, mother_dob, twins = first_birth[:F], mother_age[:F], mother_dob[:F], twins[:F]
    has_father, kids, child_days, valid = has_father[:F], kids[:F], child_days[:F], valid[:F]
    n_fathers = int(has_father.sum())
    n_kids = int(kids.sum())
    n_single = n_people - F - n_fathers - n_kids
    n = n_people

    # Index layout: mothers [0, F) (mother index == family index), fathers, children, singles.
    o_f, o_c, o_s = F, F + n_fathers, F + n_fathers + n_kids
    kind = np.empty(n, dtype=np.int8)
    kind[:F], kind[o_f:o_c], kind[o_c:o_s], kind[o_s:] = MOTHER, FATHER, CHILD, SINGLE
    family = np.full(n, -1, dtype=np.int64)
    family[:F] = np.arange(F)
    fam_of_father = np.flatnonzero(has_father)
    family[o_f:o_c] = fam_of_father
    fam_of_child = np.repeat(np.arange(F), kids)
    family[o_c:o_s] = fam_of_child
    family_father = np.full(F, -1, dtype=np.int64)
    family_father[fam_of_father] = np.arange(o_f, o_c)
    child_start = o_c + np.concatenate([[0], np.cumsum(kids)[:-1]]).astype(np.int64) if F else np.zeros(0, dtype=np.int64)

    dob = np.empty(n, dtype=np.int64)
    dob[:F] = mother_dob
    father_age_gap = (rng.normal(3.0, 4.0, n_fathers) * YEAR).astype(np.int64)
    father_dob = mother_dob[fam_of_father] - father_age_gap
    father_dob = np.minimum(father_dob, first_birth[fam_of_father] - int(16 * YEAR))
    dob[o_f:o_c] = father_dob
    dob[o_c:o_s] = child_days[valid]
    dob[o_s:] = uniform_days(rng, day(dt.date(1950, 1, 1)), day(dt.date(2004, 12, 31)) + np.zeros(n_single, dtype=np.int64))

    sex = np.empty(n, dtype=object)
    sex[:F], sex[o_f:o_c] = "F", "M"
    sex[o_c:] = np.where(rng.random(n - o_c) < 0.505, "M", "F")

    first = _draw_first(rng, pools, sex)
    middle = _draw_first(rng, pools, sex)
    middle[rng.random(n) > 0.72] = None

    maiden = pools.last.draw(rng, n)
    married = np.full(n, None, dtype=object)
    surname_change = np.full(n, NEVER, dtype=np.int64)
    fam_married = has_father & (rng.random(F) < P.married)
    family_married = fam_married
    wed = np.flatnonzero(fam_married)
    married[wed] = maiden[family_father[wed]]
    surname_change[wed] = first_birth[wed] + uniform_days(rng, int(-3 * YEAR), int(5 * YEAR) + np.zeros(len(wed), dtype=np.int64))
    # Children's surname: father's when married (or by choice), else mother's; some hyphenated.
    mode = rng.random(F)
    child_father = np.where(has_father, family_father, 0)
    father_name = maiden[child_father]
    fam_surname = np.where(has_father & (fam_married | (mode < 0.5)), father_name, maiden[:F])
    hyph = has_father & (rng.random(F) < P.hyphenated_child)
    fam_surname = np.where(hyph, maiden[:F].astype(str) + "-" + father_name.astype(str), fam_surname).astype(object)
    maiden[o_c:o_s] = fam_surname[fam_of_child]

    race = np.empty(n, dtype=object)
    fam_race = RACES[rng.choice(len(RACES), F, p=RACE_WEIGHTS)]
    race[:F] = fam_race
    race[o_f:o_c] = np.where(rng.random(n_fathers) < 0.85, fam_race[fam_of_father], RACES[rng.choice(len(RACES), n_fathers, p=RACE_WEIGHTS)])
    race[o_c:o_s] = np.where(rng.random(n_kids) < 0.95, fam_race[fam_of_child], "two_or_more")
    race[o_s:] = RACES[rng.choice(len(RACES), n_single, p=RACE_WEIGHTS)]

    mother = np.full(n, -1, dtype=np.int64)
    father = np.full(n, -1, dtype=np.int64)
    mother[o_c:o_s] = fam_of_child
    father[o_c:o_s] = family_father[fam_of_child]

    # Households: one per family, one per single adult.
    H = F + n_single
    hh = np.empty(n, dtype=np.int64)
    hh[:o_s] = family[:o_s]
    hh[o_s:] = F + np.arange(n_single)
    n_nb = len(pools.nbhd_names)
    hh_nbhd = rng.choice(n_nb, (H, 3), p=pools.nbhd_p)
    street_pick = rng.integers(0, pools.nbhd_streets.shape[1], (H, 3))
    numbers = rng.integers(100, 6000, (H, 3))
    streets = pools.nbhd_streets[hh_nbhd, street_pick]
    hh_street = np.char.add(np.char.add(numbers.astype("U5"), " "), streets.astype("U40")).astype(object)
    move1 = np.where(rng.random(H) < P.moves_first, uniform_days(rng, ws, we + np.zeros(H, dtype=np.int64)), NEVER)
    move2 = np.where((move1 < NEVER) & (rng.random(H) < P.moves_second / max(P.moves_first, 1e-9)),
                     uniform_days(rng, np.minimum(move1, we), we + np.zeros(H, dtype=np.int64)), NEVER)
    hh_moves = np.stack([move1, np.maximum(move2, move1)], axis=1)

    # Risk of agency involvement: neighbourhood need, young motherhood, individual variation.
    need = pools.nbhd_need[hh_nbhd[hh, 0]]
    fam_risk = np.where(mother_age < 20, 1.6, 1.0) * rng.lognormal(0, 0.5, F)
    risk = need * rng.lognormal(0, 0.3, n)
    in_family = family >= 0
    risk[in_family] *= fam_risk[family[in_family]]
    risk /= risk.mean()
    twin = np.zeros(n, dtype=bool)
    position = np.arange(n_kids) - np.repeat(np.cumsum(kids) - kids, kids)
    twin[o_c:o_s] = twins[fam_of_child] & (position < 2) & (kids[fam_of_child] >= 2)
    young_parent = np.zeros(n, dtype=bool)
    young_parent[:F] = mother_age < 25
    young_parent[o_f:o_c] = (first_birth[fam_of_father] - father_dob) < 25 * YEAR

    return Population(
        pid=pid_offset + np.arange(n, dtype=np.int64), first=first, middle=middle, maiden=maiden, married=married,
        surname_change=surname_change, dob=dob, sex=sex, race=race, ssn=ssn_for(pid_offset + np.arange(n), cfg.seed),
        hh=hh, kind=kind, mother=mother, father=father, family=family, risk=risk, young_parent=young_parent, twin=twin,
        n_families=F, family_father=family_father, family_married=family_married,
        family_child_start=child_start, family_child_count=kids.astype(np.int64),
        hh_nbhd=hh_nbhd, hh_street=hh_street, hh_moves=hh_moves,
    )
