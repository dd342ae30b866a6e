"""The recovery attack: solve for suppressed cells from what is published, as an attacker would.

The attack is written here, independently of the library's own audit: for every
suppressed cell, minimise and maximise it (scipy.optimize.linprog) subject to the
published cells, the published margins and nonnegativity. No primary-suppressed cell's
interval may be narrower than the threshold.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

THRESHOLD = 10


def attack(csv_text: str, n_index: int = 1) -> dict:
    """Published crosstab with margins -> {(row, col): (lower, upper)} for blank cells."""
    table = pd.read_csv(io.StringIO(csv_text), index_col=list(range(n_index)))
    values = table.to_numpy(dtype=float)
    n_rows, n_cols = values.shape  # last row and last column are the margins
    unknown = [(i, j) for i in range(n_rows) for j in range(n_cols) if np.isnan(values[i, j])]
    pos = {cell: k for k, cell in enumerate(unknown)}
    a_eq, b_eq = [], []

    def relation(parts, total):
        coef = np.zeros(len(unknown))
        rhs = 0.0
        for cell in parts:
            if cell in pos:
                coef[pos[cell]] += 1
            else:
                rhs -= values[cell]
        if total in pos:
            coef[pos[total]] -= 1
        else:
            rhs += values[total]
        a_eq.append(coef)
        b_eq.append(rhs)

    for i in range(n_rows):
        relation([(i, j) for j in range(n_cols - 1)], (i, n_cols - 1))
    for j in range(n_cols):
        relation([(i, j) for i in range(n_rows - 1)], (n_rows - 1, j))
    out = {}
    for cell in unknown:
        c = np.zeros(len(unknown))
        c[pos[cell]] = 1
        lo = linprog(c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None), method="highs")
        assert lo.status == 0
        out[(table.index[cell[0]], table.columns[cell[1]])] = (lo.fun, -hi.fun if hi.status == 0 else np.inf)
    return out


def planted(people: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    people = people.copy()
    people.loc[people.index[rng.choice(len(people), 4, replace=False)], "neighbourhood"] = "harbour"
    people.loc[people.index[rng.choice(len(people), 6, replace=False)], "service"] = "court"
    return people


@pytest.mark.parametrize("seed", [0, 1])
def test_suppressed_cells_cannot_be_recovered(session, loader, people, seed):
    loader.tables["people"] = planted(people, seed)
    acro = session(suppress=True)
    df = acro.load("people")
    acro.crosstab(df.neighbourhood, df.service, margins=True)
    verdict = acro.results["output_0"]
    assert verdict.status == "pass", verdict.reasons
    text = (acro.outputs_dir / "output_0.csv").read_text()
    intervals = attack(text)
    truth = pd.crosstab(df.neighbourhood, df.service)
    primary = [(r, c) for r in truth.index for c in truth.columns if truth.at[r, c] < THRESHOLD]
    assert primary, "the test data must plant small cells"
    for cell in primary:
        lower, upper = intervals[cell]   # every small cell is blank ...
        assert lower <= truth.at[cell] <= upper
        assert upper - lower >= THRESHOLD, f"{cell} narrowed to [{lower}, {upper}]"   # ... and stays wide


def test_primary_suppression_alone_is_recoverable(session, loader, people):
    """The attack works: blanking only the small cells leaves them recoverable, and the gate says so."""
    from disclosure_control import gate

    loader.tables["people"] = planted(people, 0)
    acro = session(suppress=False)
    df = acro.load("people")
    table = pd.crosstab(df.neighbourhood, df.service, margins=True, margins_name="All")
    acro.crosstab(df.neighbourhood, df.service, margins=True)
    path = acro.outputs_dir / "output_0.csv"
    naive = table.astype(float).mask(table < THRESHOLD)  # primary suppression only
    path.write_text(naive.to_csv())
    intervals = attack(path.read_text())
    assert any(upper - lower < THRESHOLD for lower, upper in intervals.values())
    ev = acro.outputs_dir / "output_0.evidence.json"
    from disclosure_control.evidence import Evidence

    evidence = Evidence.read(ev)
    evidence.output_sha256 = ""
    evidence.options["sha256"] = {}
    verdict = gate.check_file(path, evidence, loader)
    assert verdict.status == "fail"
    assert verdict.checks.get("secondary") == "fail"


def test_three_dimensional_tables_pass_after_suppression(session, loader, people):
    """Two row variables: partial totals are not published, empty cells stay blank."""
    from disclosure_control import gate

    loader.tables["people"] = planted(people, 1)
    acro = session(suppress=True)
    df = acro.load("people")
    counts = acro.crosstab([df.sex, df.service], df.neighbourhood, margins=True)
    acro.crosstab([df.sex, df.service], df.neighbourhood, values=df.income, aggfunc="sum", margins=True)
    assert counts["harbour"].isna().any()
    assert all(v.status == "pass" for v in acro.results.values()), [v.reasons for v in acro.results.values()]
    report = gate.check_folder(acro.outputs_dir, loader)
    # the second table repeats the first one's cells as sums: same populations, no differencing
    assert report.all_pass, [v.reasons for v in report.outputs]
    truth = pd.crosstab([df.sex, df.service], df.neighbourhood)
    assert (counts.drop(index="All", columns="All")[truth < THRESHOLD].isna().to_numpy()[(truth < THRESHOLD).to_numpy()]).all()
