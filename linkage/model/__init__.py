"""Load a declarative linkage model (YAML) into Splink 5 objects.

The YAML names Splink library classes (``ExactMatchLevel``, ``DateOfBirthComparison``,
``block_on``...) and their arguments. Building them through Splink's creators, not raw SQL,
lets Splink translate every condition to the engine's dialect (DuckDB or Spark).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from splink import SettingsCreator, block_on
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink.internals.dialects import SplinkDialect

MODEL_DIR = Path(__file__).parent
DEFAULT_MODEL = MODEL_DIR / "ids_model.yaml"

_COMPOSITIONS = {"And": cll.And, "Or": cll.Or, "Not": cll.Not}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BlockingRuleSpec(_Strict):
    """One blocking rule: equality on columns (``block_on``) or a dialect-neutral SQL condition."""

    block_on: list[str] | None = None
    sql: str | None = None

    def creator(self) -> Any:
        if (self.block_on is None) == (self.sql is None):
            raise ValueError("a blocking rule needs exactly one of 'block_on' or 'sql'")
        return block_on(*self.block_on) if self.block_on else self.sql

    def sql_condition(self, dialect: str = "duckdb") -> str:
        rule = self.creator()
        if isinstance(rule, str):
            return rule
        return rule.get_blocking_rule(dialect).blocking_rule_sql


class EmSession(BlockingRuleSpec):
    max_pairs: float | None = None
    estimate_without_term_frequencies: bool = False


class PriorSpec(_Strict):
    deterministic_rules: list[BlockingRuleSpec]
    recall: float = Field(gt=0, le=1)


class USpec(_Strict):
    max_pairs: float = 5e6
    num_chunks: int = 10


class TrainingSpec(_Strict):
    seed: int = 42
    probability_two_random_records_match: PriorSpec | None = None
    u: USpec = USpec()
    em: list[EmSession]


class ThresholdSpec(_Strict):
    threshold_match_probability: float = Field(ge=0, le=1)


class ClusteringSpec(ThresholdSpec):
    # Cut weak bridges whose two sides disagree on date of birth (linkage.clustering); edges at
    # or above this probability are never cut. None: plain connected components.
    break_dob_chains_below: float | None = Field(default=None, gt=0, le=1)


class LinkageModel(_Strict):
    name: str
    splink: dict[str, Any]
    comparisons: list[dict[str, Any]]
    blocking_rules: list[BlockingRuleSpec]
    training: TrainingSpec
    prediction: ThresholdSpec
    clustering: ClusteringSpec

    def comparison_creators(self, dialect: str = "duckdb") -> list[Any]:
        return [_comparison(spec, i, dialect) for i, spec in enumerate(self.comparisons)]

    def settings_creator(self, dialect: str = "duckdb", **overrides: Any) -> SettingsCreator:
        """Splink settings for an engine's SQL dialect; ``overrides`` replace top-level keys
        (e.g. ``link_type`` for a benchmark)."""
        options = {**copy.deepcopy(self.splink), **overrides}
        return SettingsCreator(
            comparisons=self.comparison_creators(dialect),
            blocking_rules_to_generate_predictions=[r.creator() for r in self.blocking_rules],
            **options,
        )

    def columns_used(self) -> set[str]:
        """Every input column named in comparisons and blocking rules (to check the input early)."""
        names: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in ("col_name", "col_name_1", "col_name_2") and isinstance(value, str):
                        names.add(value)
                    walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(self.comparisons)
        for rule in self.blocking_rules:
            names.update(rule.block_on or [])
        return names


def _dialect_functions(dialect: str) -> dict[str, str]:
    """Names a CustomLevel's SQL may use as ``{jaro_winkler}``: each engine spells them its own way."""
    splink_dialect = SplinkDialect.from_string(dialect)
    return {"jaro_winkler": splink_dialect.jaro_winkler_function_name}


def _level(spec: dict[str, Any], where: str, dialect: str) -> Any:
    spec = dict(spec)
    kind = spec.pop("level", None)
    configure = spec.pop("configure", None)
    if kind in _COMPOSITIONS:
        children = [_level(child, f"{where}.levels[{i}]", dialect) for i, child in enumerate(spec.pop("levels", []))]
        level = _COMPOSITIONS[kind](*children)
    elif kind == "CustomLevel":
        try:
            sql = spec.pop("sql_condition").format(**_dialect_functions(dialect))
            level = cll.CustomLevel(sql, base_dialect_str=dialect, **spec)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: bad CustomLevel: {exc}") from exc
    elif kind in cll.__all__:
        try:
            level = getattr(cll, kind)(**spec)
        except TypeError as exc:
            raise ValueError(f"{where}: bad arguments for {kind}: {exc}") from exc
    else:
        raise ValueError(f"{where}: unknown comparison level {kind!r}")
    return level.configure(**configure) if configure else level


def _comparison(spec: dict[str, Any], index: int, dialect: str) -> Any:
    where = f"comparisons[{index}]"
    if "comparison" in spec:
        kind = spec["comparison"]
        if kind not in cl.__all__:
            raise ValueError(f"{where}: unknown comparison {kind!r}")
        try:
            return getattr(cl, kind)(**spec.get("args", {}))
        except TypeError as exc:
            raise ValueError(f"{where}: bad arguments for {kind}: {exc}") from exc
    if "levels" not in spec:
        raise ValueError(f"{where}: needs either 'comparison' or 'levels'")
    levels = [_level(level, f"{where}.levels[{i}]", dialect) for i, level in enumerate(spec["levels"])]
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name=spec.get("output_column_name"),
        comparison_description=spec.get("comparison_description"),
    )


def load_model(path: Path | str | None = None) -> LinkageModel:
    """Read and validate a model file; errors name the file and the offending entry."""
    path = Path(path) if path else DEFAULT_MODEL
    try:
        raw = yaml.safe_load(path.read_text())
        model = LinkageModel.model_validate(raw)
        for dialect in ("duckdb", "spark"):  # builds every creator: fails here, not mid-run
            model.settings_creator(dialect).get_settings(dialect)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: invalid linkage model: {exc}") from exc
    return model
