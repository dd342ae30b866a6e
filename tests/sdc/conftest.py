"""Small synthetic extract tables and a session writing into tmp_path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_people(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "neighbourhood": rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "age": rng.integers(0, 25, n),
        "service": rng.choice(["housing", "health", "school"], n),
        "income": rng.gamma(4.0, 500.0, n).round(2),
        "enrolled": rng.integers(0, 2, n),
    })


@pytest.fixture
def people() -> pd.DataFrame:
    return make_people()


@pytest.fixture
def loader(people):
    tables = {"people": people}

    def load(name: str) -> pd.DataFrame:
        return tables[name].copy()

    load.tables = tables
    return load


@pytest.fixture
def session(tmp_path, loader):
    from disclosure_control.safe import ACRO

    def make(**kwargs):
        kwargs.setdefault("outputs_dir", tmp_path / "outputs")
        kwargs.setdefault("quiet", True)
        return ACRO(data_loader=loader, **kwargs)

    return make
