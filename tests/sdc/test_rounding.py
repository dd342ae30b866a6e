"""Rounding schemes: base 5, OpenSAFELY redact-then-round and midpoint 6."""
from __future__ import annotations

import numpy as np

from disclosure_control.frequency import midpoint6, redact_then_round, round_to_base


def test_round_to_base_five():
    assert round_to_base(np.array([0, 2, 3, 7, 8, 12, 13]), 5).tolist() == [0, 0, 5, 5, 10, 10, 15]


def test_redact_then_round():
    out = redact_then_round(np.array([0, 3, 7, 8, 12, 13, 101]))
    assert np.isnan(out[:3]).all()
    assert out[3:].tolist() == [10, 10, 15, 100]


def test_midpoint6():
    assert midpoint6(np.array([0, 1, 6, 7, 12, 13])).tolist() == [0, 3, 3, 9, 9, 15]
