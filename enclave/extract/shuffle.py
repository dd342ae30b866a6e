"""Stage 5, shuffle: every table's rows (relationship edges included) in a fresh random order.

The research store writes rows sorted by person key, so without this row *i* of two projects'
tables is the same record and aligning them re-links every pseudonym across projects. The order
comes from the operating system's randomness on every build (never from the project, version or
data), so no two extracts, even of the same approval, share a row position.
"""
from __future__ import annotations

import secrets

import numpy as np
import pandas as pd


def shuffle(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """New frames, each in its own fresh random row order, with a plain 0..n-1 index."""
    rng = np.random.default_rng(secrets.randbits(128))
    return {name: df.iloc[rng.permutation(len(df))].reset_index(drop=True) for name, df in tables.items()}
