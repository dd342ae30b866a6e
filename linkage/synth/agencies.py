"""What each agency records about the population: who appears, when, and the content
fields that answer the city's questions. One function per source, all vectorised.

Each returns a ``Draft``: the subject (local person index), the day the record describes
(identifiers are taken as they were that day), related roles, and content columns named
exactly as in the source definition (dates as int days, ``NULL_DAY`` for empty).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import SynthConfig
from .pools import Pools
from .population import CHILD, NULL_DAY, YEAR, Population, day, uniform_days


@dataclass
class Draft:
    subject: np.ndarray
    when: np.ndarray
    content: dict[str, np.ndarray]
    related: dict[str, np.ndarray] = field(default_factory=dict)
    maiden_roles: tuple[str, ...] = ()


@dataclass
class Context:
    pop: Population
    pools: Pools
    cfg: SynthConfig
    rng: np.random.Generator
    chunk: int
    ws: int
    we: int
    # Filled as sources are drawn, so later sources can overlap realistically.
    foster: np.ndarray | None = None
    juvenile: np.ndarray | None = None
    arrested: np.ndarray | None = None
    shelter_child_stays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _choice(rng, values, n, p=None) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    p = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
    return values[rng.choice(len(values), n, p=p)]


def _yn(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "Y", "N").astype(object)


def _window(ctx: Context, idx: np.ndarray, age_lo: float, age_hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """People of ``idx`` aged [age_lo, age_hi) at some day in the window, with that interval."""
    dob = ctx.pop.dob[idx]
    lo = np.maximum(ctx.ws, dob + int(age_lo * YEAR))
    hi = np.minimum(ctx.we, dob + int(age_hi * YEAR) - 1)
    ok = hi >= lo
    return idx[ok], lo[ok], hi[ok]


def _events(ctx: Context, idx, lo, hi, p, extra_mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Select people with probability p; each gets 1 + Poisson(extra_mean) dates in their interval."""
    rng = ctx.rng
    pick = rng.random(len(idx)) < np.clip(p, 0, 0.95)
    idx, lo, hi = idx[pick], lo[pick], hi[pick]
    counts = 1 + rng.poisson(extra_mean, len(idx))
    rep = np.repeat(np.arange(len(idx)), counts)
    return idx[rep], uniform_days(rng, lo[rep], hi[rep])


def _end_after(rng, start: np.ndarray, mean_days: float, we: int, min_days: int = 1) -> np.ndarray:
    end = start + min_days + rng.exponential(mean_days, len(start)).astype(np.int64)
    return np.where(end > we, NULL_DAY, end)


def _group_positions(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each group of the given sizes."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y, m, dd


def _date(y, m, d) -> np.ndarray:
    y, m, d = np.broadcast_arrays(np.asarray(y), np.asarray(m), np.asarray(d))
    months = (y - 1970) * 12 + (m - 1)
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + d - 1


def _race(ctx: Context, idx: np.ndarray) -> np.ndarray:
    race = ctx.pop.race[idx].copy()
    race[ctx.rng.random(len(idx)) < 0.03] = "unknown"
    return race


# ---------------------------------------------------------------- health & vital statistics
def births(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    kids = np.flatnonzero(pop.kind == CHILD)
    draw = rng.random(len(pop))
    first_child = pop.family_child_start[pop.family[kids]]
    in_city = np.where(pop.twin[kids], draw[first_child], draw[kids]) < P.born_in_city  # twins are born in one place
    kids = kids[in_city]
    n = len(kids)
    mother = pop.mother[kids]
    father = np.where(rng.random(n) < P.father_on_birth_record, pop.father[kids], -1)
    mage = (pop.dob[kids] - pop.dob[mother]) / YEAR
    young = (mage < 20).astype(float)
    gest = np.clip(np.round(rng.normal(38.8 - 0.6 * young, 1.9, n)), 22, 44).astype(np.int64)
    weight = np.clip(3350 - 170 * (39 - gest) + rng.normal(0, 420, n) - 110 * young, 400, 5600).astype(np.int64)
    began = np.clip(np.round(rng.gamma(2.0, 1.1 + 0.7 * young)), 1, 9).astype(np.int64)
    began[rng.random(n) < 0.03 + 0.04 * young] = 0
    visits = np.where(began == 0, 0, np.clip(rng.poisson(np.maximum(13 - began, 1)), 0, 30))
    plurality = np.where(pop.twin[kids], 2, 1)
    content = {
        "birth_weight_grams": weight,
        "gestational_weeks": gest,
        "prenatal_care_began_month": began,
        "prenatal_visits": visits,
        "plurality": plurality,
        "delivery_method": np.where(rng.random(n) < 0.32, "cesarean", "vaginal").astype(object),
        "birth_facility": _choice(rng, ["Johns Hopkins Hospital", "University of Maryland Medical Center", "Mercy Medical Center",
                                        "Sinai Hospital", "MedStar Harbor Hospital", "MedStar Union Memorial Hospital",
                                        "Johns Hopkins Bayview Medical Center", "Home or other"], n, [22, 16, 18, 14, 10, 8, 11, 1]),
        "paternity_acknowledged": _yn(father >= 0),
        "race_ethnicity": _race(ctx, kids),
    }
    return Draft(kids, pop.dob[kids], content, {"mother": mother, "father": father}, maiden_roles=("mother",))


def health_visits(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.flatnonzero(pop.kind == CHILD), 0, 18)
    lam = P.health_visits_per_child * (hi - lo + 1) / (ctx.we - ctx.ws + 1) * np.sqrt(pop.risk[idx])
    counts = rng.poisson(lam)
    rep = np.repeat(np.arange(len(idx)), counts)
    subj, when = idx[rep], uniform_days(rng, lo[rep], hi[rep])
    n = len(subj)
    medicaid_p = np.clip(0.45 * ctx.pop.need_at(subj, ctx.pools), 0.1, 0.9)
    r = rng.random(n)
    insurance = np.where(r < medicaid_p, "medicaid", np.where(r < medicaid_p + 0.08, "uninsured", "private")).astype(object)
    content = {
        "visit_date": when,
        "visit_type": _choice(rng, ["well_child", "sick", "dental", "vision", "immunization", "behavioral_screen"], n, [35, 25, 15, 10, 10, 5]),
        "insurance": insurance,
        "provider_site": _choice(rng, ["SBHC Frederick Douglass", "SBHC Patterson", "SBHC Digital Harbor", "Druid Health Clinic",
                                       "Eastern Health Clinic", "Mobile Vision Program", "Dental Van"], n),
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, when, content)


# ---------------------------------------------------------------- child welfare
def foster_care(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.flatnonzero(pop.kind == CHILD), 0, 18)
    pick = rng.random(len(idx)) < np.clip(P.foster_care * pop.risk[idx], 0, 0.9)
    kids, lo, hi = idx[pick], lo[pick], hi[pick]
    ctx.foster = np.zeros(len(pop), dtype=bool)
    ctx.foster[kids] = True
    removal = uniform_days(rng, lo, hi)
    n_place = 1 + rng.binomial(2, 0.3, len(kids))
    rep = np.repeat(np.arange(len(kids)), n_place)
    dur = 3 + rng.exponential(220, len(rep)).astype(np.int64)
    cum = np.cumsum(dur)
    offsets = cum - dur  # placement start, counted from the first placement of the whole array
    first_offset = np.repeat(offsets[np.cumsum(n_place) - n_place], n_place)
    start = removal[rep] + (offsets - first_offset)
    end = start + dur
    keep = start <= ctx.we
    end = np.where(end > ctx.we, NULL_DAY, end)
    ongoing = np.zeros(len(kids), dtype=bool)
    ongoing[rep[(end == NULL_DAY) & keep]] = True
    exit_reason = _choice(rng, ["reunification", "adoption", "guardianship", "aged_out", "transfer"], len(kids), [50, 15, 15, 10, 10])
    exit_reason[ongoing] = "still_in_care"
    rep, start, end = rep[keep], start[keep], end[keep]
    subj = kids[rep]
    n = len(subj)
    content = {
        "removal_date": removal[rep],
        "placement_start": start,
        "placement_end": end,
        "placement_type": _choice(rng, ["kinship", "foster_family", "group_home", "residential_treatment", "independent_living"], n, [35, 40, 12, 8, 5]),
        "removal_reason": _choice(rng, ["neglect", "physical_abuse", "sexual_abuse", "parental_substance_use", "caretaker_inability", "other"], len(kids), [45, 15, 5, 20, 10, 5])[rep],
        "exit_reason": exit_reason[rep],
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, removal[rep], content)


# ---------------------------------------------------------------- juvenile justice
def juvenile_justice(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.arange(len(pop)), 10, 18)
    p = P.juvenile * pop.risk[idx] * np.where(pop.sex[idx] == "M", 1.6, 0.45)
    if ctx.foster is not None:
        p = np.where(ctx.foster[idx], P.juvenile_if_foster, p)
    subj, when = _events(ctx, idx, lo, hi, p, 0.6)
    ctx.juvenile = np.zeros(len(pop), dtype=bool)
    ctx.juvenile[subj] = True
    n = len(subj)
    disp = _choice(rng, ["dismissed", "diverted", "informal_adjustment", "probation", "committed"], n, [25, 20, 25, 22, 8])
    disp_date = when + 14 + rng.exponential(60, n).astype(np.int64)
    pending = disp_date > ctx.we
    disp[pending] = "pending"
    content = {
        "referral_date": when,
        "offense_category": _choice(rng, ["person", "property", "drug", "weapons", "public_order", "status"], n, [25, 30, 12, 8, 15, 10]),
        "offense_level": _choice(rng, ["felony", "misdemeanor", "violation"], n, [30, 60, 10]),
        "disposition": disp,
        "disposition_date": np.where(pending, NULL_DAY, disp_date),
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, when, content)


# ---------------------------------------------------------------- homelessness
def shelter_stays(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    F = pop.n_families
    fam_risk = pop.risk[:F] if F else np.zeros(0)
    fams = np.flatnonzero(rng.random(F) < np.clip(P.shelter_family * fam_risk, 0, 0.9))
    entry_f = uniform_days(rng, ctx.ws, ctx.we + np.zeros(len(fams), dtype=np.int64))
    # Members: mother (head), children under 18 born by entry, father in 30% of stays.
    counts = pop.family_child_count[fams]
    kid_fam = np.repeat(np.arange(len(fams)), counts)
    kid_idx = np.repeat(pop.family_child_start[fams], counts) + _group_positions(counts)
    kid_ok = (pop.dob[kid_idx] <= entry_f[kid_fam]) & (entry_f[kid_fam] - pop.dob[kid_idx] < 18 * YEAR)
    kid_idx, kid_fam = kid_idx[kid_ok], kid_fam[kid_ok]
    with_father = (pop.family_father[fams] >= 0) & (rng.random(len(fams)) < 0.3)
    dad_fam = np.flatnonzero(with_father)
    singles_all, slo, shi = _window(ctx, np.flatnonzero(pop.kind != CHILD), 18, 90)
    single_pick = rng.random(len(singles_all)) < np.clip(P.shelter_single * pop.risk[singles_all], 0, 0.9)
    singles, slo, shi = singles_all[single_pick], slo[single_pick], shi[single_pick]
    entry_s = uniform_days(rng, slo, shi)
    stay_f = np.arange(len(fams))
    stay_s = len(fams) + np.arange(len(singles))
    stay_entry = np.concatenate([entry_f, entry_s])
    stay_exit = _end_after(rng, stay_entry, 75, ctx.we)
    n_stays = len(stay_entry)
    ptype = np.concatenate([
        _choice(rng, ["emergency_shelter", "transitional_housing", "rapid_rehousing"], len(fams), [55, 20, 25]),
        _choice(rng, ["emergency_shelter", "street_outreach", "transitional_housing"], len(singles), [70, 15, 15]),
    ])
    dest = _choice(rng, ["permanent", "temporary", "institutional", "unknown"], n_stays, [40, 30, 5, 25])
    dest[stay_exit == NULL_DAY] = "still_enrolled"
    hh_ids = np.char.add(f"HH{ctx.chunk:03d}", np.char.zfill(np.arange(n_stays).astype("U7"), 7)).astype(object)

    subj = np.concatenate([fams, kid_idx, pop.family_father[fams[dad_fam]], singles])
    stay = np.concatenate([stay_f, stay_f[kid_fam], stay_f[dad_fam], stay_s])
    rel = np.concatenate([np.full(len(fams), "self", dtype=object), np.full(len(kid_idx), "child", dtype=object),
                          np.full(len(dad_fam), "spouse_partner", dtype=object), np.full(len(singles), "self", dtype=object)])
    ctx.shelter_child_stays = (kid_idx, stay_entry[stay_f[kid_fam]], stay_exit[stay_f[kid_fam]])
    content = {
        "EntryDate": stay_entry[stay],
        "ExitDate": stay_exit[stay],
        "ProjectType": ptype[stay],
        "HouseholdID": hh_ids[stay],
        "RelationshipToHoH": rel,
        "ExitDestination": dest[stay],
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, stay_entry[stay], content)


# ---------------------------------------------------------------- education
def _kindergarten_year(pop: Population, idx: np.ndarray) -> np.ndarray:
    y, m, d = _ymd(pop.dob[idx])
    # Five years old by 1 September enters kindergarten that autumn.
    return y + 5 + ((m > 9) | ((m == 9) & (d > 1)))


def school_enrollment(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    kids = np.flatnonzero(pop.kind == CHILD)
    kids = kids[rng.random(len(kids)) < P.school_enrolled]
    k_year = _kindergarten_year(pop, kids)
    first_sy, last_sy = ctx.cfg.window_start.year, ctx.cfg.window_end.year
    e0 = np.maximum(first_sy, k_year)
    e1 = np.minimum(last_sy, k_year + 12)
    ok = e1 >= e0
    kids, k_year, e0, e1 = kids[ok], k_year[ok], e0[ok], e1[ok]
    n_elig = e1 - e0 + 1
    run = np.minimum(n_elig, 1 + rng.integers(0, 4, len(kids)))
    start = e0 + np.floor(rng.random(len(kids)) * (n_elig - run + 1)).astype(np.int64)
    rep = np.repeat(np.arange(len(kids)), run)
    subj = kids[rep]
    year = start[rep] + _group_positions(run)
    grade = year - k_year[rep]
    n = len(subj)
    mid_year = rng.random(n) < 0.1
    entry = np.where(mid_year, _date(year, 9, 15) + rng.integers(0, 170, n), _date(year, 8, 28) + rng.integers(0, 8, n))
    year_end = _date(year + 1, 6, 14)
    withdrawn = rng.random(n) < 0.07
    exit_day = np.where(withdrawn, entry + ((year_end - entry) * rng.random(n)).astype(np.int64), year_end)
    exit_day = np.where(exit_day > ctx.we, NULL_DAY, exit_day)
    enrolled = np.clip(((np.where(exit_day == NULL_DAY, year_end, exit_day) - entry) * 180 / 290).astype(np.int64), 1, 180)
    risk = pop.risk[subj]
    attendance = np.clip(rng.beta(12, 1.2, n) - 0.06 * (risk - 1), 0.3, 1.0)
    attended = np.minimum(np.round(enrolled * attendance).astype(np.int64), enrolled)
    in_progress = _date(year + 1, 6, 14) > ctx.we
    # Homeless flag: a shelter stay overlapping the school year, or doubled-up families.
    homeless = rng.random(n) < P.homeless_student_not_sheltered * risk
    if ctx.shelter_child_stays is not None and len(ctx.shelter_child_stays[0]):
        s_kid, s_in, s_out = ctx.shelter_child_stays
        s_out = np.where(s_out == NULL_DAY, ctx.we, s_out)
        order = np.argsort(s_kid, kind="stable")
        s_kid, s_in, s_out = s_kid[order], s_in[order], s_out[order]
        pos = np.searchsorted(s_kid, subj)
        pos_ok = pos < len(s_kid)
        match = np.zeros(n, dtype=bool)
        match[pos_ok] = s_kid[pos[pos_ok]] == subj[pos_ok]
        sy_start, sy_end = _date(year, 8, 1), _date(year + 1, 6, 30)
        overlap = match.copy()
        overlap[match] = (s_in[pos[match]] <= sy_end[match]) & (s_out[pos[match]] >= sy_start[match])
        homeless |= overlap
    _, _, nb = pop.address_at(subj, entry, ctx.pools)
    level = np.where(grade <= 5, "Elementary School", np.where(grade <= 8, "Middle School", "High School")).astype(object)
    area = np.array([n.split("/")[0] for n in ctx.pools.nbhd_names], dtype=object)[nb]
    school = np.char.add(np.char.add(area.astype(str), " "), level.astype(str)).astype(object)
    frpm_p = np.clip(0.55 * pop.need_at(subj, ctx.pools), 0.1, 0.95)
    content = {
        "school_year": np.char.add(np.char.add(year.astype("U4"), "-"), np.char.zfill(((year + 1) % 100).astype("U2"), 2)).astype(object),
        "school_name": school,
        "grade": np.where(grade == 0, "K", grade.astype("U2")).astype(object),
        "entry_date": entry,
        "exit_date": exit_day,
        "days_enrolled": np.where(in_progress, (enrolled * 0.45).astype(np.int64), enrolled),
        "days_attended": np.where(in_progress, (attended * 0.45).astype(np.int64), attended),
        "homeless_flag": _yn(homeless),
        "frpm_eligible": _yn(rng.random(n) < frpm_p),
        "special_education": _yn(rng.random(n) < 0.14),
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, entry, content)


def prek(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    kids = np.flatnonzero(pop.kind == CHILD)
    year = _kindergarten_year(pop, kids) - 1
    ok = (year >= ctx.cfg.window_start.year) & (year <= ctx.cfg.window_end.year) & (rng.random(len(kids)) < P.prek)
    subj, year = kids[ok], year[ok]
    n = len(subj)
    enrol = _date(year, 9, 1) + rng.integers(0, 10, n)
    exit_day = np.where(rng.random(n) < 0.1, enrol + rng.integers(20, 200, n), _date(year + 1, 6, 14))
    exit_day = np.where(exit_day > ctx.we, NULL_DAY, exit_day)
    content = {
        "enrollment_date": enrol,
        "exit_date": exit_day,
        "program": _choice(rng, ["city_schools_prek", "head_start", "community_based"], n, [55, 25, 20]),
        "full_day": _yn(rng.random(n) < 0.7),
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, enrol, content)


# ---------------------------------------------------------------- adult justice
def adult_arrests(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.arange(len(pop)), 18, 80)
    p = np.where(pop.sex[idx] == "M", P.arrest_male, P.arrest_female) * pop.risk[idx]
    if ctx.juvenile is not None:
        p = np.where(ctx.juvenile[idx], p * P.arrest_boost_if_juvenile, p)
    subj, when = _events(ctx, idx, lo, hi, p, 1.0)
    ctx.arrested = np.zeros(len(pop), dtype=bool)
    ctx.arrested[subj] = True
    n = len(subj)
    disp = _choice(rng, ["released_without_charge", "charged", "convicted", "acquitted", "nolle_prosequi"], n, [15, 20, 30, 5, 30])
    disp[when > ctx.we - 120] = "pending"
    content = {
        "arrest_date": when,
        "charge_category": _choice(rng, ["violent", "property", "drug", "weapons", "public_order", "traffic", "other"], n, [18, 22, 25, 8, 12, 10, 5]),
        "charge_level": _choice(rng, ["felony", "misdemeanor"], n, [35, 65]),
        "disposition": disp,
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, when, content)


# ---------------------------------------------------------------- behavioural health
def behavioral_health(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.arange(len(pop)), 12, 90)
    p = P.behavioral_health * pop.risk[idx]
    if ctx.foster is not None:
        p = np.where(ctx.foster[idx], p * 2.5, p)
    if ctx.arrested is not None:
        p = np.where(ctx.arrested[idx], p * 1.8, p)
    subj, when = _events(ctx, idx, lo, hi, p, 0.7)
    n = len(subj)
    service = _choice(rng, ["outpatient_mh", "outpatient_sud", "inpatient_psych", "crisis", "residential_sud", "school_based"], n, [45, 20, 8, 10, 7, 10])
    youth = (when - pop.dob[subj]) < 18 * YEAR
    service[youth & (service == "residential_sud")] = "school_based"
    mean_len = np.where(np.isin(service, ["inpatient_psych", "crisis"]), 12.0, 120.0)
    discharge = when + 1 + (rng.exponential(1.0, n) * mean_len).astype(np.int64)
    content = {
        "admission_date": when,
        "discharge_date": np.where(discharge > ctx.we, NULL_DAY, discharge),
        "service_type": service,
        "primary_diagnosis_group": _choice(rng, ["depressive", "anxiety", "trauma_stressor", "adhd", "substance_use", "psychotic", "bipolar", "conduct", "other"], n,
                                           [22, 15, 14, 10, 18, 5, 6, 5, 5]),
        "medicaid": _yn(rng.random(n) < 0.75),
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, when, content)


# ---------------------------------------------------------------- assisted housing
def housing_assistance(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    heads = np.flatnonzero(pop.kind != CHILD)
    heads = heads[pop.kind[heads] != 2]  # fathers join their family's spell, never head one here
    adult = (day(ctx.cfg.window_end) - pop.dob[heads]) > 18 * YEAR
    heads = heads[adult]
    pick = rng.random(len(heads)) < np.clip(P.housing_household * pop.risk[heads], 0, 0.9)
    heads = heads[pick]
    start = uniform_days(rng, ctx.ws - int(3 * YEAR), ctx.we + np.zeros(len(heads), dtype=np.int64))
    start = np.maximum(start, pop.dob[heads] + int(18 * YEAR))
    end = start + 30 + rng.exponential(4 * YEAR, len(heads)).astype(np.int64)
    keep = (end >= ctx.ws) & (start <= ctx.we)
    heads, start, end = heads[keep], start[keep], end[keep]
    end = np.where(end > ctx.we, NULL_DAY, end)
    spell_end_or_we = np.where(end == NULL_DAY, ctx.we, end)
    is_family = pop.kind[heads] == 1
    fam_heads = np.flatnonzero(is_family)
    fam = pop.family[heads[fam_heads]]
    counts = pop.family_child_count[fam]
    kid_spell = np.repeat(fam_heads, counts)
    kid_idx = np.repeat(pop.family_child_start[fam], counts) + _group_positions(counts)
    kid_ok = (pop.dob[kid_idx] <= spell_end_or_we[kid_spell]) & (start[kid_spell] - pop.dob[kid_idx] < 18 * YEAR)
    kid_idx, kid_spell = kid_idx[kid_ok], kid_spell[kid_ok]
    dad_spell = fam_heads[(pop.family_father[fam] >= 0) & pop.family_married[fam]]
    dad_idx = pop.family_father[pop.family[heads[dad_spell]]]
    n_spells = len(heads)
    size = 1 + np.bincount(kid_spell, minlength=n_spells) + np.bincount(dad_spell, minlength=n_spells)
    subj = np.concatenate([heads, kid_idx, dad_idx])
    spell = np.concatenate([np.arange(n_spells), kid_spell, dad_spell])
    rel = np.concatenate([np.full(n_spells, "head", dtype=object), np.full(len(kid_idx), "child", dtype=object), np.full(len(dad_idx), "spouse", dtype=object)])
    member_start = np.maximum(start[spell], pop.dob[subj])
    program = _choice(rng, ["public_housing", "housing_choice_voucher", "project_based_voucher"], n_spells, [35, 50, 15])
    income = np.round(rng.lognormal(9.6, 0.6, n_spells), -1).astype(np.int64)
    hh_ids = np.char.add(f"HA{ctx.chunk:03d}", np.char.zfill(np.arange(n_spells).astype("U7"), 7)).astype(object)
    content = {
        "program": program[spell],
        "household_id": hh_ids[spell],
        "relationship_to_head": rel,
        "spell_start": member_start,
        "spell_end": end[spell],
        "household_size": np.minimum(size[spell], 20),
        "annual_income": income[spell],
        "race_ethnicity": _race(ctx, subj),
    }
    # The unit address is the household's address when the spell starts.
    return Draft(subj, start[spell], content)


# ---------------------------------------------------------------- workforce development
def workforce(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.arange(len(pop)), 16, 30)
    p = np.where(pop.young_parent[idx], P.workforce_young_parent, P.workforce * pop.risk[idx])
    subj, when = _events(ctx, idx, lo, hi, p, 0.3)
    n = len(subj)
    age = (when - pop.dob[subj]) / YEAR
    program = np.where(age < 19, _choice(rng, ["youthworks_summer", "wioa_youth"], n, [60, 40]),
                       _choice(rng, ["wioa_adult", "apprenticeship", "ged_prep", "wioa_youth"], n, [40, 20, 20, 20])).astype(object)
    program[(program == "wioa_youth") & (age >= 25)] = "wioa_adult"
    summer = program == "youthworks_summer"
    y, _, _ = _ymd(when)
    when = np.where(summer, _date(y, 6, 24) + rng.integers(0, 7, n), when)
    when = np.minimum(when, ctx.we)
    exit_day = np.where(summer, when + 42, when + 40 + rng.integers(0, 300, n))
    completed = rng.random(n) < 0.65
    content = {
        "program": program,
        "enrollment_date": when,
        "exit_date": np.where(exit_day > ctx.we, NULL_DAY, exit_day),
        "completed": _yn(completed),
        "credential_earned": _yn(completed & (rng.random(n) < 0.35) & ~summer),
        "employed_at_exit": _yn(rng.random(n) < np.where(completed, 0.55, 0.3)),
        "race_ethnicity": _race(ctx, subj),
    }
    return Draft(subj, when, content)


# ---------------------------------------------------------------- employment and earnings
def wages(ctx: Context) -> Draft:
    pop, rng, P = ctx.pop, ctx.rng, ctx.cfg.participation
    idx, lo, hi = _window(ctx, np.arange(len(pop)), 16, 65)
    pick = rng.random(len(idx)) < np.clip(P.employed * np.where(pop.young_parent[idx], 1.2, 1.0), 0, 0.95)
    idx, lo, hi = idx[pick], lo[pick], hi[pick]
    ly, lm, _ = _ymd(lo)
    hy, hm, _ = _ymd(hi)
    q_lo = ly * 4 + (lm - 1) // 3
    q_hi = hy * 4 + (hm - 1) // 3
    n_q = q_hi - q_lo + 1
    run = np.minimum(n_q, 1 + rng.integers(0, 4, len(idx)))
    q0 = q_lo + np.floor(rng.random(len(idx)) * (n_q - run + 1)).astype(np.int64)
    rep = np.repeat(np.arange(len(idx)), run)
    q = q0[rep] + _group_positions(run)
    subj = idx[rep]
    n = len(subj)
    year, quarter = q // 4, q % 4 + 1
    qstart = _date(year, (quarter - 1) * 3 + 1, 1)
    base = rng.lognormal(8.4, 0.75, len(idx))
    earnings = np.round(base[rep] * rng.lognormal(0, 0.15, n), 2)
    content = {
        "YEAR": year,
        "QUARTER": quarter,
        "QUARTER_START": qstart,
        "NAICS_SECTOR": _choice(rng, ["23", "31", "44", "48", "54", "56", "61", "62", "72", "81", "92"], len(idx),
                                [6, 5, 14, 7, 6, 10, 8, 22, 14, 4, 4])[rep],
        "EARNINGS": earnings,
    }
    return Draft(subj, qstart, content)


# Order matters: later sources read overlaps recorded by earlier ones.
AGENCIES = {
    "births": births,
    "health_visits": health_visits,
    "foster_care": foster_care,
    "juvenile_justice": juvenile_justice,
    "shelter_stays": shelter_stays,
    "school_enrollment": school_enrollment,
    "prek": prek,
    "adult_arrests": adult_arrests,
    "behavioral_health": behavioral_health,
    "housing_assistance": housing_assistance,
    "workforce": workforce,
    "wages": wages,
}
