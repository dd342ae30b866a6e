"""Frequency-table rules: threshold, zeros, and the rounding schemes.

Works on plain numpy arrays of true counts so that the safe API, the gate and the
benchmark share one implementation.
"""
from __future__ import annotations

import numpy as np

from .rules import RuleSet

__all__ = ["primary_reasons", "round_to_base", "redact_then_round", "midpoint6", "apply_rounding"]


def primary_reasons(counts: np.ndarray, rules: RuleSet) -> np.ndarray:
    """Per cell: '' when safe, else why it must be suppressed (same shape as counts)."""
    counts = np.asarray(counts, dtype=float)
    reasons = np.full(counts.shape, "", dtype=object)
    small = (counts > 0) & (counts < rules.threshold)
    reasons[small] = f"count below threshold {rules.threshold}"
    if rules.zeros_disclosive:
        reasons[counts == 0] = "zero count (zeros are disclosive)"
    return reasons


def round_to_base(values: np.ndarray, base: int) -> np.ndarray:
    """Nearest multiple of base, halves rounded up (ACRO's and ONS's convention)."""
    values = np.asarray(values, dtype=float)
    return np.floor(values / base + 0.5) * base


def redact_then_round(values: np.ndarray, redact_at_or_below: int = 7, base: int = 5) -> np.ndarray:
    """OpenSAFELY: counts <= 7 become missing, the rest round to the nearest 5."""
    values = np.asarray(values, dtype=float)
    out = round_to_base(values, base)
    out[values <= redact_at_or_below] = np.nan
    return out


def midpoint6(values: np.ndarray) -> np.ndarray:
    """OpenSAFELY midpoint-6 rounding: ceil(x/6)*6 - 3, with 0 kept as 0."""
    values = np.asarray(values, dtype=float)
    return np.ceil(values / 6) * 6 - 3 * (values != 0)


def apply_rounding(values: np.ndarray, rules: RuleSet) -> np.ndarray:
    if rules.rounding == "round":
        return round_to_base(values, rules.rounding_base)
    if rules.rounding == "redact_round":
        return redact_then_round(values, rules.redact_at_or_below, rules.rounding_base)
    if rules.rounding == "midpoint6":
        return midpoint6(values)
    return np.asarray(values, dtype=float)
