"""What a publisher says about a finding, as data (a YAML file or CLI options)."""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from enclave.yaml_data import load_model

DOMAINS = (
    "child welfare", "juvenile justice", "homelessness", "health and vital statistics", "adult justice",
    "behavioral health", "education", "assisted housing", "workforce development", "employment and earnings",
)


class FindingSpecError(ValueError):
    """A finding description that cannot be used; the message names the file and the field."""


def _plain(text: str) -> str:
    # Stored text is shown on public pages and in terminals: no control characters.
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text).strip()


class FindingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=3, max_length=200)
    question: str = Field(min_length=3, max_length=1000, description="the city's question this answers")
    use_case: str = Field(min_length=2, max_length=100, description="e.g. homeless students, crossover youth")
    domains: list[str] = Field(min_length=1, description="IDS domains the finding draws on")
    cohort: str = Field(min_length=3, max_length=4000, description="the cohort definition in plain words")
    summary: str = Field("", max_length=4000)
    comparisons: list[str] = Field(default_factory=list, description="e.g. gender, race/ethnicity, place")
    files: dict[str, str] = Field(default_factory=dict, description="released file -> caption; empty: every CSV and PNG")

    @field_validator("title", "question", "use_case", "cohort", "summary")
    @classmethod
    def _no_control_characters(cls, v: str) -> str:
        return _plain(v)

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, v: list[str]) -> list[str]:
        unknown = [d for d in v if d not in DOMAINS]
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; known: {', '.join(DOMAINS)}")
        return v

    @field_validator("comparisons")
    @classmethod
    def _plain_list(cls, v: list[str]) -> list[str]:
        return [_plain(x) for x in v if _plain(x)]


def load_spec(path: Path) -> FindingSpec:
    """Read a finding description; errors name the file and the field."""
    return load_model(Path(path), FindingSpec, FindingSpecError)
