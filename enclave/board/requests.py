"""What applicants and the board write down: applications, amendments and approval conditions.

These are data (YAML files validated by pydantic), so a malformed file is refused with the
field that is wrong, before anything is written.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from enclave.board.errors import InvalidInput

SLUG_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"  # safe as a directory, a server name and a unix group


class Cohort(BaseModel):
    """Which people the extract covers. Every bound is optional; bounds are inclusive."""

    model_config = ConfigDict(extra="forbid")

    birth_year_min: int | None = None
    birth_year_max: int | None = None
    age_min: int | None = Field(default=None, ge=0)
    age_max: int | None = Field(default=None, ge=0)
    sources_present: list[str] = Field(default_factory=list, description="People must appear in every one of these sources.")

    @model_validator(mode="after")
    def _ordered(self) -> Cohort:
        for low, high in (("birth_year_min", "birth_year_max"), ("age_min", "age_max")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) is greater than {high} ({b})")
        return self

    def within(self, wider: Cohort) -> list[str]:
        """Reasons this cohort is not contained in ``wider`` (empty when it is)."""
        reasons = []
        for field, is_min in (("birth_year_min", True), ("birth_year_max", False), ("age_min", True), ("age_max", False)):
            mine, theirs = getattr(self, field), getattr(wider, field)
            if theirs is None:
                continue
            if mine is None or (mine < theirs if is_min else mine > theirs):
                reasons.append(f"cohort {field} {mine} is wider than the requested {theirs}")
        missing = set(wider.sources_present) - set(self.sources_present)
        if missing:
            reasons.append(f"cohort drops the requested sources_present {sorted(missing)}")
        return reasons


def _check_variables(sources: list[str], variables: dict[str, list[str]]) -> None:
    unknown = set(variables) - set(sources)
    if unknown:
        raise ValueError(f"variables name sources not requested: {sorted(unknown)}")
    for source, names in variables.items():
        if len(set(names)) != len(names):
            raise ValueError(f"variables of {source} repeat a name")


class ApplicationRequest(BaseModel):
    """A project application as the lead researcher files it."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(pattern=SLUG_PATTERN)
    title: str = Field(min_length=3, max_length=200)
    purpose: str = Field(min_length=10)
    use_case: str = Field(min_length=2, max_length=200)
    researchers: list[str] = Field(default_factory=list, description="Usernames; the applicant is added as lead.")
    sources: list[str] = Field(min_length=1)
    variables: dict[str, list[str]]
    cohort: Cohort = Field(default_factory=Cohort)
    k: int = Field(ge=2, le=1000)
    dp_epsilon: float = Field(ge=0, le=100)
    start_date: dt.date
    end_date: dt.date
    settings: dict[str, Any] = Field(default_factory=dict, description="Further conditions (enclave.conditions), e.g. attacker_model.")

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        return checked_settings(v)

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a source is listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ApplicationRequest:
        _check_variables(self.sources, self.variables)
        if self.end_date <= self.start_date:
            raise ValueError(f"end_date {self.end_date} is not after start_date {self.start_date}")
        absent = set(self.cohort.sources_present) - set(self.sources)
        if absent:
            raise ValueError(f"cohort.sources_present names sources not requested: {sorted(absent)}")
        return self


class AmendmentRequest(BaseModel):
    """Changes to an approved project; each needs the board's approval again."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=10)
    add_researchers: list[str] = Field(default_factory=list)
    add_sources: list[str] = Field(default_factory=list)
    add_variables: dict[str, list[str]] = Field(default_factory=dict)
    end_date: dt.date | None = None  # an extension
    dp_epsilon: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _changes_something(self) -> AmendmentRequest:
        if not (self.add_researchers or self.add_sources or self.add_variables or self.end_date or self.dp_epsilon is not None):
            raise ValueError("an amendment must change something")
        return self


class Conditions(BaseModel):
    """The conditions the board approves; omitted fields take the application's request."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] | None = None
    variables: dict[str, list[str]] | None = None
    cohort: Cohort | None = None
    k: int | None = Field(default=None, ge=2, le=1000)
    dp_epsilon: float | None = Field(default=None, ge=0, le=100)
    expires_on: dt.date | None = None
    notes: str = ""
    settings: dict[str, Any] | None = Field(default=None, description="Settings the board sets, over the application's.")

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else checked_settings(v)


def checked_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Settings as given, once ``enclave.conditions.ProjectConditions`` accepts them (unknown key: refused)."""
    from enclave.conditions import ProjectConditions

    ProjectConditions.model_validate(raw)
    return raw


def merged_settings(base: dict[str, Any] | None, over: dict[str, Any] | None) -> dict[str, Any]:
    """``over`` laid on ``base`` key by key (nested mappings merged), then checked."""
    out = dict(base or {})
    for key, value in (over or {}).items():
        out[key] = _merge(out.get(key), value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    try:
        return checked_settings(out)
    except ValidationError as error:
        raise InvalidInput(f"settings: {_describe(error)}") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def setting_assignments(items: list[str]) -> dict[str, Any]:
    """``dotted.key=value`` strings (the CLI's ``--setting``) as a nested mapping; values read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise InvalidInput(f"--setting {item!r}: expected dotted.key=value, e.g. attacker_model.events_known=2")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise InvalidInput(f"--setting {item!r}: the value is not a plain value") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InvalidInput(f"--setting {item!r}: {part} is set both as a value and as a group")
        node[parts[-1]] = value
    try:
        return checked_settings(out)
    except ValidationError as error:
        raise InvalidInput(f"--setting: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse(model: type[BaseModel], data: Any, origin: str) -> Any:
    """Validate ``data`` against ``model``; errors name ``origin`` and each bad field."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as error:
        raise InvalidInput(f"{origin}: {_describe(error)}") from None


def load_yaml(model: type[BaseModel], path: Path) -> Any:
    """Read and validate a YAML file; errors name the file, the line of a syntax error, or the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not UTF-8 text (invalid byte at offset {error.start})") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read ({error.strerror or type(error).__name__})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    return parse(model, data, str(path))
