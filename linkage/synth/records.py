"""From a Draft to the rows an agency would deposit: identifiers as of the record's day,
within-agency duplicates, identifier errors, agency column names, record ids."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sources import SUBJECT_ROLE, SourceDefinition
from . import errors as E
from .agencies import Draft
from .config import ErrorRates, SourceQuality
from .pools import Pools
from .population import NULL_DAY, Population


@dataclass
class AgencyRows:
    """Rows of one source for one chunk: output columns, and the truth behind them."""

    columns: dict[str, np.ndarray]  # agency column -> values (dates as int days, NULL_DAY empty)
    record_ids: np.ndarray
    persons: dict[str, np.ndarray]  # role -> global person id (-1 when the role is absent)
    error_masks: dict[str, np.ndarray]  # "<role>.<error>" -> rows changed (and "...eligible")


def _identifiers(pop: Population, pools: Pools, idx: np.ndarray, when: np.ndarray, fields: set[str], maiden: bool) -> dict[str, np.ndarray]:
    n = len(idx)
    present = idx >= 0
    safe = np.where(present, idx, 0)
    out: dict[str, np.ndarray] = {}
    if "first_name" in fields:
        out["first_name"] = pop.first[safe].copy()
    if "middle_name" in fields:
        out["middle_name"] = pop.middle[safe].copy()
    if "last_name" in fields:
        out["last_name"] = (pop.maiden[safe] if maiden else pop.surname_at(safe, when)).copy()
    if "dob" in fields:
        out["dob"] = pop.dob[safe].copy()
    if "sex" in fields:
        out["sex"] = pop.sex[safe].copy()
    if "ssn" in fields:
        out["ssn"] = pop.ssn[safe].copy()
    if {"street", "zip"} & fields:
        street, zips, _ = pop.address_at(safe, when, pools)
        out["street"], out["zip"] = street.copy(), zips.copy()
    for name, values in out.items():
        if values.dtype == object:
            values[~present] = None
        else:
            values[~present] = NULL_DAY
    assert all(len(v) == n for v in out.values())
    return out


def _corrupt(ids: dict[str, np.ndarray], rates: ErrorRates, quality: SourceQuality, pools: Pools, rng: np.random.Generator,
             ssn_missing: float, role: str, dob_is_event: bool = False) -> dict[str, np.ndarray]:
    s = quality.error_scale
    r = lambda x: min(1.0, x * s)  # noqa: E731 - scaled rate
    masks: dict[str, np.ndarray] = {}
    if "first_name" in ids:
        masks["nickname"], masks["nickname.eligible"] = E.apply_nicknames(ids["first_name"], pools.nicknames, r(rates.nickname), rng)
    if "last_name" in ids:
        masks["hyphen_part_only"], masks["hyphen_part_only.eligible"] = E.apply_hyphen_part(ids["last_name"], r(rates.hyphen_part_only), rng)
    for f in ("first_name", "middle_name", "last_name"):
        if f in ids:
            masks[f"typo.{f}"] = E.apply_typos(ids[f], r(rates.typo), rng)
    if "first_name" in ids and "last_name" in ids:
        swap = (rng.random(len(ids["first_name"])) < r(rates.swap_first_last))
        swap &= np.array([v is not None for v in ids["first_name"]]) & np.array([v is not None for v in ids["last_name"]])
        ids["first_name"][swap], ids["last_name"][swap] = ids["last_name"][swap], ids["first_name"][swap].copy()
        masks["swap_first_last"] = swap
    if "dob" in ids and not dob_is_event:  # a birth certificate's date of birth is its event: always right
        masks["dob_day_month_swap"], masks["dob_day_month_swap.eligible"] = E.swap_day_month(ids["dob"], r(rates.dob_day_month_swap), rng)
        masks["dob_typo"] = E.shift_dob(ids["dob"], r(rates.dob_typo), rng)
        masks["missing_dob"] = E.blank(ids["dob"], r(rates.missing_dob), rng)
    if "ssn" in ids:
        masks["ssn_typo"] = E.ssn_digit(ids["ssn"], r(rates.ssn_typo), rng)
        masks["missing_ssn"] = E.blank(ids["ssn"], ssn_missing, rng)
    if "sex" in ids:
        flip = (rng.random(len(ids["sex"])) < r(rates.sex_error)) & np.array([v is not None for v in ids["sex"]])
        ids["sex"][flip] = np.where(ids["sex"][flip] == "M", "F", "M")
        masks["sex_error"] = flip
    if "middle_name" in ids:
        masks["missing_middle"] = E.blank(ids["middle_name"], rates.missing_middle, rng)
    if "first_name" in ids:
        masks["missing_first"] = E.blank(ids["first_name"], r(rates.missing_first), rng)
    if "street" in ids:
        masks["address_spelled_out"] = E.apply_spelled_out(ids["street"], rates.address_spelled_out, rng)
        gone = E.blank(ids["street"], r(rates.missing_address), rng)
        masks["missing_address"] = gone
        zip_gone = gone & (rng.random(len(gone)) < 0.5)
        ids["zip"][zip_gone] = None
    return {f"{role}.{k}": v for k, v in masks.items()}


def _upper(values: np.ndarray) -> np.ndarray:
    return np.array([v.upper() if v is not None else None for v in values], dtype=object)


def build_rows(draft: Draft, definition: SourceDefinition, pop: Population, pools: Pools, rates: ErrorRates,
               quality: SourceQuality, rng: np.random.Generator, chunk: int) -> AgencyRows:
    n0 = len(draft.subject)
    # Within-agency duplicates: the same event keyed in twice; errors are drawn independently.
    dup = np.flatnonzero(rng.random(n0) < min(1.0, rates.duplicate * quality.error_scale))
    rows = np.concatenate([np.arange(n0), dup])
    rng.shuffle(rows)  # file order must not reveal people or duplicates
    when = draft.when[rows]
    role_idx = {SUBJECT_ROLE: draft.subject[rows]}
    role_idx.update({role: idx[rows] for role, idx in draft.related.items()})

    columns: dict[str, np.ndarray] = {}
    persons: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for role, mapping in definition.roles.items():
        idx = role_idx[role]
        fields = set(mapping)
        ids = _identifiers(pop, pools, idx, when, fields, maiden=role in draft.maiden_roles)
        # Fathers' SSNs are missing far more often on birth certificates than mothers'.
        ssn_missing = max(quality.ssn_missing, 0.4) if role == "father" else quality.ssn_missing
        dob_is_event = role == SUBJECT_ROLE and mapping.get("dob") == definition.event_date
        masks.update(_corrupt(ids, rates, quality, pools, rng, ssn_missing, role, dob_is_event))
        if "ssn" in ids and definition.ssn_kind == "last4":
            ids["ssn"] = np.array([v[-4:] if v is not None else None for v in ids["ssn"]], dtype=object)
        if "sex" in ids:
            code = {std: agency for agency, std in reversed(list(definition.sex_codes.items()))}
            ids["sex"] = np.array([code[v] if v is not None else None for v in ids["sex"]], dtype=object)
        for f in ("first_name", "middle_name", "last_name", "street"):
            if f in ids and quality.uppercase:
                ids[f] = _upper(ids[f])
        if "middle_name" in ids and "initial" in mapping["middle_name"].lower():
            ids["middle_name"] = np.array([v[0] if v else None for v in ids["middle_name"]], dtype=object)
        for f, column in mapping.items():
            columns.setdefault(column, ids[f])  # a column shared by roles (the residence) comes from the subject
        persons[role] = np.where(idx >= 0, pop.pid[np.where(idx >= 0, idx, 0)], -1)
    for column, values in draft.content.items():
        columns[column] = values[rows]
    prefix = definition.name[:3].upper()
    record_ids = np.char.add(f"{prefix}{chunk:04d}", np.char.zfill(np.arange(len(rows)).astype("U7"), 7)).astype(object)
    columns[definition.record_id] = record_ids
    return AgencyRows(columns=columns, record_ids=record_ids, persons=persons, error_masks=masks)
