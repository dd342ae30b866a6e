"""Every knob of the synthetic IDS generator, as data with defaults (pydantic)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class ErrorRates(BaseModel):
    """Probabilities of identifier errors, per record (or per field where said)."""

    model_config = ConfigDict(extra="forbid")

    typo: float = Field(0.02, ge=0, le=1, description="Per name field: one character substituted, dropped, inserted or transposed.")
    nickname: float = Field(0.12, ge=0, le=1, description="Of records whose first name has a nickname: the nickname is used.")
    swap_first_last: float = Field(0.01, ge=0, le=1, description="First and last name recorded in each other's place.")
    hyphen_part_only: float = Field(0.4, ge=0, le=1, description="Of hyphenated surnames: only one part recorded.")
    dob_day_month_swap: float = Field(0.02, ge=0, le=1, description="Of dates of birth with day <= 12 and day != month: day and month transposed.")
    dob_typo: float = Field(0.01, ge=0, le=1, description="Date of birth off by a few days or one year.")
    ssn_typo: float = Field(0.01, ge=0, le=1, description="One SSN digit wrong.")
    sex_error: float = Field(0.005, ge=0, le=1, description="Sex miscoded.")
    missing_middle: float = Field(0.35, ge=0, le=1, description="Middle name left blank although the person has one.")
    missing_dob: float = Field(0.01, ge=0, le=1)
    missing_first: float = Field(0.005, ge=0, le=1)
    missing_address: float = Field(0.05, ge=0, le=1, description="Street (and in half of those the zip) left blank.")
    duplicate: float = Field(0.02, ge=0, le=1, description="Record entered a second time within the agency under a new id.")
    address_spelled_out: float = Field(0.15, ge=0, le=1, description="Street written in full words (North ... Avenue) instead of abbreviated.")


class SourceQuality(BaseModel):
    """How well one agency records identifiers."""

    model_config = ConfigDict(extra="forbid")

    ssn_missing: float = Field(0.0, ge=0, le=1, description="Share of records without an SSN.")
    uppercase: bool = Field(False, description="Agency system stores names in capitals.")
    error_scale: float = Field(1.0, ge=0, le=20, description="Multiplies every ErrorRates probability for this source.")


def _default_quality() -> dict[str, SourceQuality]:
    return {
        "births": SourceQuality(ssn_missing=0.08, error_scale=0.5),
        "health_visits": SourceQuality(ssn_missing=0.45),
        "foster_care": SourceQuality(ssn_missing=0.15),
        "juvenile_justice": SourceQuality(ssn_missing=0.4, uppercase=True, error_scale=1.3),
        "shelter_stays": SourceQuality(ssn_missing=0.35, error_scale=1.8),
        "adult_arrests": SourceQuality(ssn_missing=0.75, uppercase=True, error_scale=1.5),
        "behavioral_health": SourceQuality(ssn_missing=0.3),
        "school_enrollment": SourceQuality(ssn_missing=1.0, error_scale=0.8),
        "prek": SourceQuality(ssn_missing=1.0),
        "housing_assistance": SourceQuality(ssn_missing=0.03, error_scale=0.7),
        "workforce": SourceQuality(ssn_missing=0.05),
        "wages": SourceQuality(ssn_missing=0.0, uppercase=True, error_scale=0.6),
    }


class Participation(BaseModel):
    """Base rates of agency involvement; each is scaled by a person's neighbourhood need and family risk."""

    model_config = ConfigDict(extra="forbid")

    family_share: float = Field(0.7, ge=0, le=1, description="Share of people living in families with children.")
    father_in_city: float = Field(0.65, ge=0, le=1, description="Families whose father also lives in the city data.")
    father_on_birth_record: float = Field(0.8, ge=0, le=1)
    married: float = Field(0.4, ge=0, le=1, description="Of families with a father: mother takes the father's surname.")
    hyphenated_child: float = Field(0.06, ge=0, le=1)
    twins: float = Field(0.015, ge=0, le=1, description="Families whose first two children are twins.")
    born_in_city: float = Field(0.9, ge=0, le=1, description="Children with a city birth record.")
    moves_first: float = Field(0.5, ge=0, le=1, description="Households that move once in the window.")
    moves_second: float = Field(0.25, ge=0, le=1, description="Households that move a second time.")
    health_visits_per_child: float = 0.8
    foster_care: float = 0.03
    juvenile: float = 0.04
    juvenile_if_foster: float = 0.3
    shelter_family: float = 0.03
    shelter_single: float = 0.02
    school_enrolled: float = 0.85
    homeless_student_not_sheltered: float = 0.02
    prek: float = 0.5
    arrest_male: float = 0.07
    arrest_female: float = 0.02
    arrest_boost_if_juvenile: float = 3.0
    behavioral_health: float = 0.05
    housing_household: float = 0.1
    workforce: float = 0.04
    workforce_young_parent: float = 0.25
    employed: float = 0.45


class SynthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    people: int = Field(10_000, ge=10, le=50_000_000)
    seed: int = Field(0, ge=0)
    chunk_people: int = Field(50_000, ge=1_000, description="People generated per chunk; bounds memory. Output depends on it.")
    window_start: dt.date = dt.date(2015, 1, 1)
    window_end: dt.date = dt.date(2024, 12, 31)
    sources: list[str] | None = Field(None, description="Only these sources (default: every definition).")
    errors: ErrorRates = Field(default_factory=ErrorRates)
    quality: dict[str, SourceQuality] = Field(default_factory=_default_quality)
    participation: Participation = Field(default_factory=Participation)

    @classmethod
    def from_yaml(cls, path: Path, **overrides) -> "SynthConfig":
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(raw)

    def quality_of(self, source: str) -> SourceQuality:
        return self.quality.get(source, SourceQuality())
