"""Output-checking rules as data: a pydantic ``RuleSet`` loaded from YAML.

A rules file has ``defaults`` and ``agencies.<name>`` overrides. An output that uses
several agencies' data is held to the strictest value of every field
(``RuleSet.strictest``), so an agency can only tighten, never loosen, what applies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_RULES_PATH = Path(__file__).with_name("rules") / "default.yaml"

Rounding = Literal["none", "round", "redact_round", "midpoint6"]
# Strictness order of the rounding options: redaction + rounding hides the most.
_ROUNDING_STRICTNESS = {"none": 0, "round": 1, "midpoint6": 2, "redact_round": 3}


class RulesError(ValueError):
    """A rules file that cannot be used; names the file and the field."""


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: int = Field(10, ge=1)
    zeros_disclosive: bool = True
    rounding: Rounding = "none"
    rounding_base: int = Field(5, ge=1)
    redact_at_or_below: int = Field(7, ge=0)
    nk_rules: tuple[tuple[int, float], ...] = ((2, 0.90),)
    p_ratio: float = Field(0.10, ge=0, le=1)
    min_dof: int = Field(10, ge=0)
    min_level_obs: int = Field(10, ge=0)
    quantile_min_contributors: int = Field(10, ge=1)
    extreme_bin_share: float = Field(0.0, ge=0, le=1)
    secondary_safety_range: int = Field(30, ge=0, le=100)
    max_rows: int = Field(5000, ge=1)
    max_file_bytes: int = Field(16_000_000, ge=1)
    allowed_extensions: tuple[str, ...] = ("csv", "json", "png", "svg", "txt", "md", "html")
    identifier_column_patterns: tuple[str, ...] = ()
    identifier_value_pattern: str = r"^[0-9a-f]{16,}$"
    # Checks whose `fail` a researcher's exception plus reviewers' overrides may lift; any other fail is final.
    exceptionable_checks: tuple[str, ...] = ()

    @field_validator("nk_rules")
    @classmethod
    def _valid_nk(cls, value):
        for n, k in value:
            if n < 1 or not (0 < k <= 1):
                raise ValueError(f"nk rule ({n}, {k}) needs n >= 1 and 0 < k <= 1")
        return tuple(sorted(set((int(n), float(k)) for n, k in value)))

    @classmethod
    def strictest(cls, *rulesets: "RuleSet") -> "RuleSet":
        """One rule set at least as strict as each given one, field by field."""
        if not rulesets:
            return cls()
        if len(rulesets) == 1:
            return rulesets[0]
        patterns: list[str] = []
        for r in rulesets:
            patterns += [p for p in r.identifier_column_patterns if p not in patterns]
        allowed = set(rulesets[0].allowed_extensions)
        for r in rulesets[1:]:
            allowed &= set(r.allowed_extensions)
        return cls(
            threshold=max(r.threshold for r in rulesets),
            zeros_disclosive=any(r.zeros_disclosive for r in rulesets),
            rounding=max((r.rounding for r in rulesets), key=_ROUNDING_STRICTNESS.__getitem__),
            rounding_base=max(r.rounding_base for r in rulesets),
            redact_at_or_below=max(r.redact_at_or_below for r in rulesets),
            nk_rules=tuple(nk for r in rulesets for nk in r.nk_rules),
            p_ratio=max(r.p_ratio for r in rulesets),
            min_dof=max(r.min_dof for r in rulesets),
            min_level_obs=max(r.min_level_obs for r in rulesets),
            quantile_min_contributors=max(r.quantile_min_contributors for r in rulesets),
            extreme_bin_share=max(r.extreme_bin_share for r in rulesets),
            secondary_safety_range=max(r.secondary_safety_range for r in rulesets),
            max_rows=min(r.max_rows for r in rulesets),
            max_file_bytes=min(r.max_file_bytes for r in rulesets),
            allowed_extensions=tuple(sorted(allowed)),
            identifier_column_patterns=tuple(patterns),
            identifier_value_pattern=rulesets[0].identifier_value_pattern,
            exceptionable_checks=tuple(sorted(set.intersection(*(set(r.exceptionable_checks) for r in rulesets)))),
        )


class RuleBook(BaseModel):
    """The contents of a rules file: defaults plus per-agency overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: RuleSet = RuleSet()
    agencies: dict[str, dict] = {}

    def for_agencies(self, agencies: Iterable[str] = ()) -> RuleSet:
        """The rules for an output using these agencies' data (strictest of each)."""
        sets = [self.defaults]
        for agency in sorted(set(agencies)):
            override = self.agencies.get(agency)
            if override:
                sets.append(RuleSet(**{**self.defaults.model_dump(), **override}))
        return RuleSet.strictest(*sets)


def load_rulebook(path: str | Path | None = None) -> RuleBook:
    """Read and validate a rules file (default: the packaged ``rules/default.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"{path}: cannot read rules: {exc}") from exc
    if not isinstance(raw, dict):
        raise RulesError(f"{path}: top level must be a mapping with 'defaults' and 'agencies'")
    try:
        book = RuleBook(**raw)
        for agency, override in book.agencies.items():  # validate overrides now, not at use
            RuleSet(**{**book.defaults.model_dump(), **(override or {})})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise RulesError(f"{path}: field {field}: {first['msg']}") from exc
    return book


def load_rules(path: str | Path | None = None, agencies: Iterable[str] = ()) -> RuleSet:
    """The rule set for an output that uses the given agencies' data."""
    return load_rulebook(path).for_agencies(agencies)
