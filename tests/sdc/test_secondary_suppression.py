"""The recovery attack: solve for suppressed cells from what is published, as an attacker would.

The attack is written here, independently of the library's own audit: for every
suppressed cell, minimise and maximise it (scipy.optimize.linprog) subject to the
published cells, the published margins and nonnegativity. No primary-suppressed cell's
interval may be narrower than the threshold.
"""
from __future__ import annotations

import io
import itertools

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


def attack_cube(cube: pd.DataFrame, dims: list[str], total: str, cells=None) -> dict:
    """The same attack on a full n-dimensional cube (every cell and every marginal), built
    here from a dense array: {cube row: (lower, upper)} for every suppressed primary cell
    (or for the given ``cells``)."""
    codes = [sorted(set(cube[d]) - {total}) + [total] for d in dims]
    shape = tuple(len(c) for c in codes)
    row_at = np.full(shape, -1)
    for row, key in enumerate(cube[dims].itertuples(index=False, name=None)):
        row_at[tuple(c.index(k) for c, k in zip(codes, key))] = row
    assert (row_at >= 0).all()
    values = cube["value"].to_numpy(dtype=float)
    hidden = cube["suppressed"].to_numpy(dtype=bool)
    unknown = np.flatnonzero(hidden)
    pos = {cell: k for k, cell in enumerate(unknown)}
    a_eq, b_eq = [], []
    for d in range(len(dims)):
        rest = [range(n) for k, n in enumerate(shape) if k != d]
        for other in itertools.product(*rest):
            line = [row_at[other[:d] + (i,) + other[d:]] for i in range(shape[d])]
            coef, rhs = np.zeros(len(unknown)), 0.0
            for cell, sign in [(c, 1.0) for c in line[:-1]] + [(line[-1], -1.0)]:
                if cell in pos:
                    coef[pos[cell]] += sign
                else:
                    rhs -= sign * values[cell]
            if coef.any():
                a_eq.append(coef)
                b_eq.append(rhs)
    out = {}
    for cell in np.flatnonzero(hidden & cube["primary"].to_numpy(dtype=bool)) if cells is None else cells:
        c = np.zeros(len(unknown))
        c[pos[cell]] = 1
        lo = linprog(c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None), method="highs")
        assert lo.status == 0
        out[cell] = (lo.fun, -hi.fun if hi.status == 0 else np.inf)
    return out


def big_table(seed: int = 0, rows: int = 60_000) -> tuple[pd.DataFrame, np.ndarray]:
    """A 3-D count table big enough for HiTaS (720 cells with margins), skewed so that a
    fifth of its cells are small."""
    rng = np.random.default_rng(seed)
    dims = {"area": 8, "age": 7, "service": 9}
    frame = pd.DataFrame({d: rng.choice([f"{d}{i}" for i in range(k)], rows, p=np.geomspace(1, 40, k) / np.geomspace(1, 40, k).sum())
                          for d, k in dims.items()})
    counts = frame.value_counts().rename("value").reset_index()
    full = pd.MultiIndex.from_product([sorted(counts[d].unique()) for d in dims], names=list(dims))
    cells = counts.set_index(list(dims)).reindex(full, fill_value=0).reset_index()
    return cells, ((cells["value"] > 0) & (cells["value"] < THRESHOLD)).to_numpy()


def benchmark_like_table(seed: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """The benchmark's 20 x 15 x 10 count table from 1M rows (drawn as counts), zeros disclosive."""
    rng = np.random.default_rng(seed)
    shares = [np.linspace(1, 6, 20), np.geomspace(1, 40, 15), np.geomspace(1, 30, 10)]
    joint = np.einsum("i,j,k->ijk", *[p / p.sum() for p in shares])
    counts = rng.multinomial(1_000_000, joint.ravel())
    index = pd.MultiIndex.from_product([[f"{d}{i:02d}" for i in range(len(p))] for d, p in zip("abc", shares)],
                                       names=["area", "age", "service"])
    cells = pd.DataFrame({"value": counts}, index=index).reset_index()
    return cells, (cells["value"] < THRESHOLD).to_numpy()


@pytest.mark.parametrize("make, widened_with", [(big_table, "LP-chosen covers"), (benchmark_like_table, "hypercubes")])
def test_big_table_protected_without_protection_levels_survives_the_attack(make, widened_with):
    """HiTaS without a-priori protection levels, then more cells wherever the audit finds one
    narrow: hypercubes where they are cheap (the benchmark's table), else LP-chosen cells."""
    from disclosure_control.suppression import TOTAL, _tau_argus, audit, protect

    cells, primary = make()
    dims = ["area", "age", "service"]
    protected = protect(cells, dims, primary, THRESHOLD)
    assert f"with {widened_with} around" in protected.solver   # not the last resort (protection levels)
    cube = protected.cube
    intervals = attack_cube(cube, dims, TOTAL)
    assert len(intervals) == primary.sum()
    for cell, (lower, upper) in intervals.items():
        assert lower - 1e-6 <= cube.at[cell, "value"] <= upper + 1e-6
        assert upper - lower >= THRESHOLD - 1e-6, f"{cube.loc[cell, dims].tolist()} narrowed to [{lower}, {upper}]"
    # tau-ARGUS's pattern alone leaves cells narrow: the added cells are what protects them
    # (the library's audit only points at them; the independent attack confirms)
    cube = cube.assign(suppressed=_tau_argus(cube, dims, THRESHOLD, None, "MOD(1)") | cube["primary"])
    found = audit(cube, dims, targets=cube["primary"], wide_enough=THRESHOLD)
    suspects = found["cell"][found["upper"] - found["lower"] < THRESHOLD].to_numpy()
    assert len(suspects) and any(upper - lower < THRESHOLD for lower, upper in attack_cube(cube, dims, TOTAL, suspects).values())


def test_audit_shortcut_is_exact_where_it_matters():
    """With wide_enough the audit skips cells it has proven wide: the narrow cells and their
    intervals must be exactly those of the full audit, and no skipped cell may be narrow."""
    from disclosure_control.suppression import TOTAL, _tau_argus, audit, full_cube

    cells, primary = big_table(seed=1)
    dims = ["area", "age", "service"]
    cube = full_cube(cells, dims)
    flags = pd.Series(primary, index=pd.MultiIndex.from_frame(cells[dims]))
    interior = (cube[dims] != TOTAL).all(axis=1)
    cube["primary"] = False
    cube.loc[interior, "primary"] = flags.reindex(pd.MultiIndex.from_frame(cube.loc[interior, dims])).to_numpy()
    cube["suppressed"] = _tau_argus(cube, dims, THRESHOLD, None, "MOD(1)") | cube["primary"]
    exact = audit(cube, dims, targets=cube["primary"]).set_index("cell")
    quick = audit(cube, dims, targets=cube["primary"], wide_enough=THRESHOLD).set_index("cell")
    independent = attack_cube(cube, dims, TOTAL)
    assert sorted(exact.index) == sorted(quick.index) == sorted(independent)
    for cell, (lower, upper) in independent.items():
        assert exact.at[cell, "lower"] == pytest.approx(lower, abs=1e-6)
        assert exact.at[cell, "upper"] == pytest.approx(upper, abs=1e-6)
    narrow = exact["upper"] - exact["lower"] < THRESHOLD
    assert narrow.any() and not narrow.all()
    assert ((quick["upper"] - quick["lower"]) < THRESHOLD).equals(narrow)
    pd.testing.assert_frame_equal(quick[narrow], exact[narrow])
    # elsewhere an inner bound: inside the exact interval
    assert (quick["lower"] >= exact["lower"] - 1e-6).all() and (quick["upper"] <= exact["upper"] + 1e-6).all()
