"""The shape of a cohort definition (pydantic), read from YAML with errors naming file and field."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from enclave.yaml_data import load_model

# Shipped inside the package: a workspace sandbox mounts the enclave packages read-only, not the repository.
DEFAULT_DIR = Path(__file__).resolve().parent / "definitions"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
Scalar = Union[str, int, float, bool]


class CohortError(ValueError):
    """A definition that cannot be used, or a table it needs that the extract lacks."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(_Strict):
    """Rows of one extract table that count as an event of a person."""

    table: str
    start: str = Field("event_date", description="column with the month the event starts (YYYY-MM)")
    end: str | None = Field(None, description="column with the month it ends; empty = still going at the reference month")
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, description="column -> value or values")
    age: tuple[int, int] | None = Field(None, description="age at the event, inclusive")
    label: str = ""


class WithinAfter(_Strict):
    event: str
    months: int = Field(ge=0, le=600)


class Condition(_Strict):
    """One test on a person. Exactly one of ``event``, ``parent``, ``any_of``, ``none_of``."""

    event: str | None = None
    # Time tests on that event (all that are given must hold for one and the same occurrence):
    in_period: bool = Field(True, description="the occurrence starts inside the definition's period")
    within_months_before_reference: int | None = Field(None, ge=1, le=600)
    within_months_after_birth: int | None = Field(None, ge=0, le=600)
    during_or_within_months_after: WithinAfter | None = None
    # Order tests between the first occurrences of two events:
    first_before: str | None = None
    first_after: str | None = None
    # A parent (through the relationships table) aged in a window at the person's birth:
    parent: dict[str, Any] | None = None
    any_of: list["Condition"] | None = None
    none_of: list["Condition"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Condition":
        kinds = [k for k in ("event", "parent", "any_of", "none_of") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a condition needs exactly one of event, parent, any_of, none_of (got {kinds or 'none'})")
        if self.parent is not None:
            unknown = set(self.parent) - {"relation", "age_at_birth"}
            if unknown:
                raise ValueError(f"parent: unknown key(s) {sorted(unknown)}")
        return self


class Unit(_Strict):
    """What one row of the result is: a person (default), or a person in each group of a table's rows."""

    table: str | None = None
    date: str = Field("event_date", description="the month column that puts a row inside the period")
    per: list[str] = Field(default_factory=list)
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    row_measures: dict[str, dict[str, Scalar | list[Scalar]]] = Field(
        default_factory=dict, description="flag -> the unit has a row matching these values")


class Period(_Strict):
    start: str
    end: str

    @model_validator(mode="after")
    def _months(self) -> "Period":
        for m in (self.start, self.end):
            if not MONTH.match(m):
                raise ValueError(f"period months must be YYYY-MM, got {m!r}")
        if self.start > self.end:
            raise ValueError("period start is after its end")
        return self


class CohortDefinition(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,60}$")
    title: str
    question: str
    use_case: str
    kind: Literal["cohort"] = "cohort"
    reference_month: str
    period: Period
    unit: Unit = Unit()
    age_at_reference: tuple[int, int] | None = None
    events: dict[str, Event]
    population: list[Condition] = Field(default_factory=list, description="all must hold")
    exclude: list[Condition] = Field(default_factory=list, description="any one excludes")
    measures: dict[str, list[Condition]] = Field(default_factory=dict, description="flag -> all must hold")
    subpopulations: dict[str, list[Condition]] = Field(default_factory=dict, description="flag -> all must hold")
    compare_by: list[str] = Field(default_factory=lambda: ["sex", "race_ethnicity", "neighbourhood"])
    notes: str = ""

    @model_validator(mode="after")
    def _references(self) -> "CohortDefinition":
        if not MONTH.match(self.reference_month):
            raise ValueError(f"reference_month must be YYYY-MM, got {self.reference_month!r}")

        def walk(conditions: list[Condition], where: str) -> None:
            for c in conditions:
                for name in (c.event, c.first_before, c.first_after,
                             c.during_or_within_months_after.event if c.during_or_within_months_after else None):
                    if name is not None and name not in self.events:
                        raise ValueError(f"{where}: unknown event {name!r} (defined: {', '.join(self.events)})")
                walk(c.any_of or [], where)
                walk(c.none_of or [], where)

        walk(self.population, "population")
        walk(self.exclude, "exclude")
        for flag, conds in {**self.measures, **self.subpopulations}.items():
            walk(conds, flag)
        return self

    def tables(self) -> set[str]:
        """Every extract table the definition reads."""
        used = {e.table for e in self.events.values()}
        if self.unit.table:
            used.add(self.unit.table)
        return used


def load_definition(path: Path) -> CohortDefinition:
    """Read one definition; errors name the file and the field."""
    return load_model(Path(path), CohortDefinition, CohortError)



def load_definitions(directory: Path | None = None) -> dict[str, CohortDefinition]:
    """Every ``*.yaml`` definition in ``directory`` (default: the shipped ``enclave/cohorts/definitions``), by name."""
    out: dict[str, CohortDefinition] = {}
    for path in sorted(Path(directory or DEFAULT_DIR).glob("*.yaml")):
        definition = load_definition(path)
        if definition.name in out:
            raise CohortError(f"{path}: a second definition named {definition.name!r}")
        out[definition.name] = definition
    return out
