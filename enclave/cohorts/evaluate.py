"""Evaluate a cohort definition on an extract's tables (or a research store's: any person column).

Dates in the extract are months (``YYYY-MM``), or coarser where the extract generalised them
(``YYYY-Qn``, ``YYYY``); a coarser date counts from its first month, so time-order tests on
generalised dates are approximate and the result says how many dates were coarse. Birth
years may be bands (``2000-2019``): a person is in an age window only when every age the band
allows is inside it; those the band leaves undecided are counted, not guessed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from enclave.cohorts.definition import CohortDefinition, CohortError, Condition, Event

_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})")
_YEAR = re.compile(r"^(\d{4})$")
_BAND = re.compile(r"^(\d{4})\s*-\s*(\d{4})$")


def month_index(values: pd.Series) -> tuple[pd.Series, int]:
    """Months since year 0 (float, NaN when missing) and how many values were coarser than a month."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return (values.dt.year * 12 + values.dt.month - 1).astype(float), 0
    text = values.astype("string")
    out = pd.Series(np.nan, index=values.index)
    month = text.str.extract(_MONTH)
    ok = month[0].notna()
    out[ok] = month.loc[ok, 0].astype(int) * 12 + month.loc[ok, 1].astype(int) - 1
    quarter = text.str.extract(_QUARTER)
    okq = quarter[0].notna()
    out[okq] = quarter.loc[okq, 0].astype(int) * 12 + (quarter.loc[okq, 1].astype(int) - 1) * 3
    year = text.str.extract(_YEAR)
    oky = year[0].notna()
    out[oky] = year.loc[oky, 0].astype(int) * 12
    return out, int(okq.sum() + oky.sum())


def birth_year_bounds(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Lowest and highest birth year each value allows (a year, or a band ``lo-hi``)."""
    text = values.astype("string").str.strip()
    lo = pd.to_numeric(text, errors="coerce")
    hi = lo.copy()
    band = text.str.extract(_BAND)
    okb = band[0].notna()
    lo[okb] = band.loc[okb, 0].astype(int)
    hi[okb] = band.loc[okb, 1].astype(int)
    return lo, hi


def _month(text: str) -> int:
    y, m = text.split("-")
    return int(y) * 12 + int(m) - 1


@dataclass
class Cohort:
    """One row per unit: the person column, the unit's groups, comparison columns and 0/1 flags."""

    definition: CohortDefinition
    units: pd.DataFrame
    person: str
    counts: dict[str, int] = field(default_factory=dict)
    rows: pd.DataFrame | None = None  # one anchor-table row per unit, as loaded (see report.anchored_rows)

    @property
    def flags(self) -> list[str]:
        d = self.definition
        return [*d.unit.row_measures, *d.measures, *d.subpopulations]


class _Context:
    def __init__(self, definition: CohortDefinition, tables: dict[str, pd.DataFrame], person: str):
        missing = sorted(t for t in definition.tables() if t not in tables)
        if missing:
            raise CohortError(f"cohort {definition.name}: the extract has no table(s) {', '.join(missing)}")
        self.d, self.tables, self.person = definition, tables, person
        self.ref = _month(definition.reference_month)
        self.p_start, self.p_end = _month(definition.period.start), _month(definition.period.end)
        persons = person_table(tables, person)
        self.by_lo, self.by_hi = birth_year_bounds(persons["birth_year"]) if "birth_year" in persons else (
            pd.Series(np.nan, index=persons.index), pd.Series(np.nan, index=persons.index))
        self.persons = persons
        self.coarse_dates = 0
        self._occ: dict[str, pd.DataFrame] = {}
        self.birth_month = self._birth_months()

    def _birth_months(self) -> pd.Series:
        births = self.tables.get("births")
        if births is not None and self.person in births and "event_date" in births:
            months, _ = month_index(births["event_date"])
            return pd.Series(months.to_numpy(), index=births[self.person].to_numpy()).groupby(level=0).min()
        return pd.Series(dtype=float)

    def occurrences(self, name: str) -> pd.DataFrame:
        """person, start, end (month indices) of every row that is event ``name``."""
        if name in self._occ:
            return self._occ[name]
        ev: Event = self.d.events[name]
        rows = self.tables[ev.table]
        for col in (self.person, ev.start, *([ev.end] if ev.end else []), *ev.where):
            if col not in rows.columns:
                raise CohortError(f"cohort {self.d.name}: event {name}: table {ev.table} has no column {col!r}")
        keep = _matches(rows, ev.where)
        start, coarse = month_index(rows[ev.start])
        self.coarse_dates += coarse
        end = month_index(rows[ev.end])[0].fillna(self.ref) if ev.end else start
        occ = pd.DataFrame({"person": rows[self.person].to_numpy(), "start": start.to_numpy(), "end": end.to_numpy()})
        occ = occ[keep.to_numpy() & occ["start"].notna().to_numpy()]
        if ev.age is not None:
            age = self._age_at(rows.loc[keep & start.notna()], occ)
            occ = occ[(age >= ev.age[0]) & (age <= ev.age[1])]
        self._occ[name] = occ.reset_index(drop=True)
        return self._occ[name]

    def _age_at(self, rows: pd.DataFrame, occ: pd.DataFrame) -> np.ndarray:
        if "age_at_event" in rows.columns:
            return pd.to_numeric(rows["age_at_event"], errors="coerce").to_numpy()
        born = self.birth_month.reindex(occ["person"]).to_numpy()
        from_births = np.floor((occ["start"].to_numpy() - born) / 12)
        by = self.by_lo.reindex(occ["person"]).where(
            self.by_lo.reindex(occ["person"]) == self.by_hi.reindex(occ["person"])).to_numpy()
        from_year = np.floor(occ["start"].to_numpy() / 12) - by
        return np.where(np.isnan(from_births), from_year, from_births)

    # -- conditions --------------------------------------------------------------------------------
    def holds(self, condition: Condition, people: pd.Index) -> pd.Series:
        """For each of ``people``, whether ``condition`` holds."""
        if condition.any_of is not None:
            out = pd.Series(False, index=people)
            for c in condition.any_of:
                out |= self.holds(c, people)
            return out
        if condition.none_of is not None:
            out = pd.Series(True, index=people)
            for c in condition.none_of:
                out &= ~self.holds(c, people)
            return out
        if condition.parent is not None:
            return self._parent(condition.parent, people)
        return pd.Series(people.isin(self._event_people(condition)), index=people)

    def _timed(self, name: str, in_period: bool) -> pd.DataFrame:
        occ = self.occurrences(name)
        if in_period:
            occ = occ[(occ["start"] <= self.p_end) & (occ["end"] >= self.p_start)]
        return occ

    def _event_people(self, c: Condition) -> set:
        occ = self._timed(c.event, c.in_period)
        if c.within_months_before_reference is not None:
            lo = self.ref - c.within_months_before_reference
            occ = occ[(occ["end"] > lo) & (occ["start"] <= self.ref)]
        if c.within_months_after_birth is not None:
            born = self.birth_month.reindex(occ["person"]).to_numpy()
            occ = occ[(occ["start"].to_numpy() - born) < c.within_months_after_birth]
        if c.during_or_within_months_after is not None:
            other = self._timed(c.during_or_within_months_after.event, c.in_period)
            pairs = occ.merge(other, on="person", suffixes=("", "_c"))
            ok = (pairs["start"] >= pairs["start_c"]) & (pairs["start"] <= pairs["end_c"] + c.during_or_within_months_after.months)
            occ = pairs.loc[ok, ["person", "start", "end"]]
        first = occ.groupby("person")["start"].min()
        for other_name, before in ((c.first_before, True), (c.first_after, False)):
            if other_name is None:
                continue
            other_first = self._timed(other_name, c.in_period).groupby("person")["start"].min()
            both = first.index.intersection(other_first.index)
            a, b = first[both], other_first[both]
            first = a[(a < b) if before else (a > b)]
        return set(first.index)

    def _parent(self, spec: dict[str, Any], people: pd.Index) -> pd.Series:
        rel = self.tables.get("relationships")
        if rel is None:
            raise CohortError(f"cohort {self.d.name}: a parent condition needs the relationships table")
        src, dst = f"{self.person}_from", f"{self.person}_to"
        if src not in rel.columns or dst not in rel.columns:
            raise CohortError(f"table relationships has no columns {src}, {dst}")
        relations = spec.get("relation", ["mother_of", "father_of"])
        relations = [relations] if isinstance(relations, str) else list(relations)
        edges = rel[rel["relation"].isin(relations) & rel[dst].isin(people)][[src, dst]]
        if "age_at_birth" in spec:
            lo_age, hi_age = spec["age_at_birth"]
            child_year = np.floor(self.birth_month.reindex(edges[dst]).to_numpy() / 12)
            fallback = self.by_lo.reindex(edges[dst]).where(self.by_lo.reindex(edges[dst]) == self.by_hi.reindex(edges[dst])).to_numpy()
            child_year = np.where(np.isnan(child_year), fallback, child_year)
            # Every age the parent's birth-year band allows must be in the window.
            oldest = child_year - self.by_lo.reindex(edges[src]).to_numpy()
            youngest = child_year - self.by_hi.reindex(edges[src]).to_numpy()
            edges = edges[(youngest >= lo_age) & (oldest <= hi_age)]
        return pd.Series(people.isin(set(edges[dst])), index=people)


PERSON_LEVEL = ("birth_year", "sex", "race_ethnicity", "neighbourhood")


def person_table(tables: dict[str, pd.DataFrame], person: str) -> pd.DataFrame:
    """One row per person: the ``persons`` table where there is one (a research store), else the
    person-level columns every extract table carries (provisioning makes them agree across
    tables), first known value per person."""
    if "persons" in tables:
        persons = tables["persons"]
        if person not in persons.columns:
            raise CohortError(f"table persons has no column {person!r}")
        return persons.drop_duplicates(person).set_index(person)
    parts = [t[[person, *[c for c in PERSON_LEVEL if c in t.columns]]] for name, t in tables.items()
             if name != "relationships" and person in t.columns]
    if not parts:
        raise CohortError(f"no table has the person column {person!r}")
    stacked = pd.concat(parts, ignore_index=True)
    return stacked.groupby(person, sort=True).first()


def _matches(rows: pd.DataFrame, where: dict[str, Any]) -> pd.Series:
    keep = pd.Series(True, index=rows.index)
    for col, wanted in where.items():
        if col not in rows.columns:
            raise CohortError(f"table has no column {col!r}")
        values = wanted if isinstance(wanted, list) else [wanted]
        column = rows[col]
        if pd.api.types.is_bool_dtype(column) or all(isinstance(v, bool) for v in values):
            keep &= column.astype("boolean").isin([bool(v) for v in values]).fillna(False).astype(bool)
        else:
            keep &= column.astype("string").isin([str(v) for v in values]).fillna(False).astype(bool)
    return keep


def evaluate(definition: CohortDefinition, tables: dict[str, pd.DataFrame], person: str = "pseudonym") -> Cohort:
    """The cohort's units with their comparison columns and flags, and the counts along the way."""
    ctx = _Context(definition, tables, person)
    people = ctx.persons.index
    counts: dict[str, int] = {"persons_in_extract": len(people)}
    keep = pd.Series(True, index=people)
    if definition.age_at_reference is not None:
        lo, hi = definition.age_at_reference
        ref_year = ctx.ref // 12
        youngest, oldest = ref_year - ctx.by_hi, ref_year - ctx.by_lo
        inside = (youngest >= lo) & (oldest <= hi)
        undecided = ~inside & (oldest >= lo) & (youngest <= hi)
        counts["age_undecided_by_birth_year_band"] = int(undecided.sum())
        keep &= inside.fillna(False)
    for c in definition.population:
        keep &= ctx.holds(c, people)
    counts["population"] = int(keep.sum())
    excluded = pd.Series(False, index=people)
    for c in definition.exclude:
        excluded |= ctx.holds(c, people)
    counts["excluded"] = int((keep & excluded).sum())
    keep &= ~excluded
    members = people[keep.to_numpy()]
    counts["cohort"] = len(members)

    base = ctx.persons.loc[members, [c for c in definition.compare_by if c in ctx.persons.columns]].copy()
    for flag, conds in {**definition.measures, **definition.subpopulations}.items():
        ok = pd.Series(True, index=members)
        for c in conds:
            ok &= ctx.holds(c, members)
        base[flag] = ok.astype(int).to_numpy()
    base.index.name = person
    base = base.reset_index()

    if definition.unit.table:
        rows = tables[definition.unit.table]
        for col in definition.unit.per:
            if col not in rows.columns:
                raise CohortError(f"cohort {definition.name}: unit table {definition.unit.table} has no column {col!r}")
        in_unit = rows[rows[person].isin(members) & _matches(rows, definition.unit.where)]
        if definition.unit.date in in_unit.columns:
            months, _ = month_index(in_unit[definition.unit.date])
            in_unit = in_unit[((months >= ctx.p_start) & (months <= ctx.p_end)).to_numpy()]
        keys = [person, *definition.unit.per]
        flags = in_unit[keys].copy()
        for flag, where in definition.unit.row_measures.items():
            flags[flag] = _matches(in_unit, where).astype(int).to_numpy()
        units = flags.groupby(keys, dropna=False, observed=True).max().reset_index() if definition.unit.row_measures \
            else flags.drop_duplicates(keys)
        units = units.merge(base, on=person, how="left")
        counts["units"] = len(units)
    else:
        units = base
    counts["dates_coarser_than_month"] = ctx.coarse_dates
    return Cohort(definition, units.reset_index(drop=True), person, counts)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (95% by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(cohort: Cohort, measure: str, by: list[str] | None = None) -> pd.DataFrame:
    """Units, units with the flag, rate and its 95% interval, per group (for a first look; outputs
    to release go through the SDC-aware API, which suppresses and rounds)."""
    if measure not in cohort.units.columns:
        raise CohortError(f"cohort {cohort.definition.name} has no measure {measure!r}; it has {', '.join(cohort.flags)}")
    groups = cohort.units.groupby(by or (lambda _: "all"), dropna=False, observed=True)[measure]
    out = groups.agg(n="size", k="sum").reset_index()
    bounds = [wilson(int(k), int(n)) for k, n in zip(out["k"], out["n"])]
    out["rate"] = out["k"] / out["n"]
    out["ci_low"] = [b[0] for b in bounds]
    out["ci_high"] = [b[1] for b in bounds]
    return out
