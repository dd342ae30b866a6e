"""Per-cell statistics equal pandas' (groupby nlargest / sum), ties and negatives included."""
from __future__ import annotations

import numpy as np
import pandas as pd

from disclosure_control.magnitude import cell_stats


def test_cell_stats_equal_pandas():
    rng = np.random.default_rng(3)
    n, cells = 20_000, 150
    ids = rng.integers(0, cells, n)
    values = np.round(rng.normal(50, 40, n))          # ties and negative values
    values[rng.random(n) < 0.01] = np.nan
    stats = cell_stats(ids, values, cells, max_n=3)
    frame = pd.DataFrame({"cell": ids, "v": values}).dropna()
    frame["a"] = frame.v.abs()
    grouped = frame.groupby("cell")
    assert np.array_equal(stats.contributors, grouped.size().reindex(range(cells), fill_value=0).to_numpy())
    assert np.allclose(stats.total, grouped.v.sum().reindex(range(cells), fill_value=0).to_numpy())
    assert np.allclose(stats.abs_total, grouped.a.sum().reindex(range(cells), fill_value=0).to_numpy())
    for j in range(3):
        expected = grouped.a.apply(lambda s: s.nlargest(3).iloc[j] if len(s) > j else 0.0)
        assert np.array_equal(stats.top[:, j], expected.reindex(range(cells), fill_value=0).to_numpy())
    assert np.array_equal(stats.negatives, grouped.v.apply(lambda s: int((s < 0).sum())).reindex(range(cells), fill_value=0).to_numpy())
