"""The data every stage of an extract build shares: what the board approved (``ExtractSpec``,
its ``Cohort`` and conditions, the attacker model among them), the names of the store's key
columns, the result of a build and the one error a build raises."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from enclave.conditions import ProjectConditions

MANIFEST = "manifest.json"
CURRENT = "current"
PSEUDONYM = "pseudonym"
PERSON_KEY = "person_key"
PERSONS_TABLE = "persons"
RELATIONSHIPS_TABLE = "relationships"
AGE = "age_at_event"


class ProvisioningError(Exception):
    """The extract cannot be built as approved; the message names the source, variable or file."""


class Cohort(BaseModel):
    """Which people and events an approval covers (the board's ``Cohort``); bounds inclusive and optional.

    Birth-year bounds and ``sources_present`` select people; age bounds select the events of tables
    that carry ``age_at_event``. A missing value never passes a bound.
    """

    model_config = ConfigDict(extra="forbid")

    birth_year_min: int | None = None
    birth_year_max: int | None = None
    age_min: int | None = None
    age_max: int | None = None
    sources_present: list[str] = Field(default_factory=list, description="People must appear in every one of these sources.")


class ExtractSpec(BaseModel):
    """What the board approved, as provisioning needs it (built from the registry's approval row)."""

    model_config = ConfigDict(extra="forbid")

    project: str
    approval_id: str
    variables: dict[str, list[str]] = Field(description="source (research table) -> approved columns")
    cohort: Cohort = Field(default_factory=Cohort)
    k: int = Field(ge=1)
    dp_epsilon: float | None = Field(default=None, description="The project's DP budget, shown to the workspace.")
    quasi_identifiers: list[str] = Field(
        default_factory=lambda: ["birth_year", "age_at_event", "sex", "race_ethnicity", "neighbourhood", "event_date"],
        description="Columns that can single a person out in combination; generalised until k holds.",
    )
    # Attributes of the person an attacker may already know. They are checked across the join of
    # all tables (one value set per person); event-level ones (event_date, age_at_event) differ
    # from row to row by nature, so they stay a per-table matter above.
    person_quasi_identifiers: list[str] = Field(
        default_factory=lambda: ["birth_year", "sex", "race_ethnicity", "neighbourhood"],
        description="Person-level quasi-identifiers: k must also hold for each person's values joined over all tables.",
    )

    conditions: ProjectConditions = Field(
        default_factory=ProjectConditions,
        description="The board's further conditions; the attacker model decides what the extract must withstand.")

    @field_validator("project")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not v or "/" in v or v.startswith(".") or v == CURRENT:
            raise ValueError(f"project id {v!r} cannot name a folder")
        return v

    def fingerprint_payload(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["variables"] = {s: sorted(c) for s, c in sorted(self.variables.items())}
        # Only the attacker model shapes the files; a workspace limit changed by the board is no new extract.
        data["conditions"] = {"attacker_model": data["conditions"]["attacker_model"]}
        return data


@dataclass
class BuildResult:
    project: str
    version: str
    path: Path
    manifest: dict[str, Any]
    created: bool  # False when an identical extract already existed (idempotent re-run)
    adopted: bool = False  # True when a complete version left by a crashed run was taken over

    def __str__(self) -> str:
        what = "built" if self.created else ("adopted" if self.adopted else "unchanged")
        return (f"{self.project}/{self.version} {what} (k required {self.manifest.get('k_required')}, "
                f"reached {self.manifest.get('k_reached')})")
