"""Secondary suppression with tau-ARGUS (pytauargus, HiGHS) and the recovery-attack audit.

Primary suppression follows our rules (frequency and magnitude). tau-ARGUS then picks the
complementary cells so that the suppressed cells cannot be recovered from the margins and
the published cells. Our primary statuses reach tau-ARGUS through the microdata we give
it: a cell our rules mark unsafe is one record (unsafe under FREQ), a safe cell is at least
``threshold`` records carrying its value; tau-ARGUS works on cell values, so the split does
not change what it optimises.

``audit`` is the attacker: for every suppressed cell it solves two linear programmes (the
smallest and largest value consistent with every published cell and every additive
relation of the table, nonnegative) and reports the interval. A cell whose interval is
narrower than the threshold is recoverable; ``protect`` adds suppressions until none is.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Protected", "protect", "audit", "TOTAL"]

TOTAL = "__total__"


@contextmanager
def _in_temp_dir():
    """tau-ARGUS writes scratch logs into the working directory: keep them out of ours."""
    previous = os.getcwd()
    work = tempfile.mkdtemp(prefix="sdc_tau_")
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(previous)
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Protected:
    cube: pd.DataFrame        # dims..., value, primary, suppressed (every cell incl. totals)
    dims: list[str]
    intervals: pd.DataFrame   # attacker's [lower, upper] per suppressed primary cell
    solver: str

    @property
    def secondary(self) -> int:
        return int((self.cube["suppressed"] & ~self.cube["primary"]).sum())


def full_cube(cells: pd.DataFrame, dims: list[str], value: str = "value") -> pd.DataFrame:
    """Every interior cell of the full cross product plus every marginal (TOTAL code)."""
    levels = [sorted(cells[d].astype(str).unique()) for d in dims]
    interior = pd.MultiIndex.from_product(levels, names=dims)
    keyed = cells.assign(**{d: cells[d].astype(str) for d in dims}).set_index(dims)
    base = keyed.reindex(interior).fillna({value: 0.0}).reset_index()
    parts = [base]
    for r in range(1, len(dims) + 1):
        for summed in itertools.combinations(dims, r):
            kept = [d for d in dims if d not in summed]
            agg = (base.groupby(kept, as_index=False)[value].sum() if kept
                   else pd.DataFrame({value: [base[value].sum()]}))
            for d in summed:
                agg[d] = TOTAL
            parts.append(agg[dims + [value]])
    cube = pd.concat(parts, ignore_index=True)[dims + [value]]
    return cube


def _relations(cube: pd.DataFrame, dims: list[str]) -> list[tuple[int, list[int]]]:
    """(total cell, its parts) for every dimension of every marginal line."""
    index = {tuple(row): i for i, row in enumerate(cube[dims].itertuples(index=False, name=None))}
    codes = [[c for c in cube[d].unique() if c != TOTAL] for d in dims]
    out = []
    for i, key in enumerate(cube[dims].itertuples(index=False, name=None)):
        for d, code in enumerate(key):
            if code == TOTAL:
                out.append((i, [index[key[:d] + (c,) + key[d + 1:]] for c in codes[d]]))
    return out


def audit(cube: pd.DataFrame, dims: list[str], value: str = "value", targets: pd.Series | None = None) -> pd.DataFrame:
    """The attacker's [lower, upper] for each target cell (default: every suppressed cell)."""
    from scipy.optimize import linprog

    suppressed = cube["suppressed"].to_numpy()
    unknown = np.flatnonzero(suppressed)
    targets = unknown if targets is None else np.flatnonzero(targets.to_numpy() & suppressed)
    if len(unknown) == 0:
        return pd.DataFrame(columns=["cell", "lower", "upper"])
    position = {cell: j for j, cell in enumerate(unknown)}
    values = cube[value].to_numpy(dtype=float)
    rows, rhs = [], []
    for total, parts in _relations(cube, dims):
        coef = np.zeros(len(unknown))
        constant = 0.0
        for cell, sign in [(total, -1.0)] + [(p, 1.0) for p in parts]:
            if cell in position:
                coef[position[cell]] += sign
            else:
                constant += sign * values[cell]
        if coef.any():
            rows.append(coef)
            rhs.append(-constant)
    a_eq = np.array(rows) if rows else None
    b_eq = np.array(rhs) if rows else None
    out = []
    for cell in targets:
        c = np.zeros(len(unknown))
        c[position[cell]] = 1.0
        lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        lower = lo.fun if lo.status == 0 else 0.0
        upper = -hi.fun if hi.status == 0 else np.inf  # unbounded: fully protected
        out.append((cell, lower, upper))
    return pd.DataFrame(out, columns=["cell", "lower", "upper"])


def _tau_argus(cube: pd.DataFrame, dims: list[str], threshold: int, protection: float, method: str = "OPT(1)") -> np.ndarray:
    """Run tau-ARGUS optimal suppression; returns the suppressed flag per cube row.

    Every primary cell gets an upper protection level of ``protection`` through an
    a-priori file, so the attacker's interval is at least that wide (tau-ARGUS's own
    FREQ protection is a percentage of the cell value: about nothing for a count of 1).
    """
    from pytauargus.arb import micro_arb
    from pytauargus.dataframe import to_microdata
    from pytauargus.engine import run_batch
    from pytauargus.micro import micro_asc_rda
    from pytauargus.result import TableResult

    interior = cube[(cube[dims] != TOTAL).all(axis=1)]
    records, apriori = [], []
    for row in interior.itertuples(index=False):
        codes = [f"c{getattr(row, d)}" for d in dims]  # strings: categorical for tau-ARGUS
        key = dict(zip(dims, codes))
        value = float(row.value)
        if row.primary:
            records.append({**key, "resp": value})
            apriori.append(",".join(codes + ["PL", "0", f"{protection:g}"]))
        else:
            # enough records to be safe under FREQ(threshold), integer parts summing to value
            base, extra = divmod(int(round(value)), threshold)
            records += [{**key, "resp": float(base + (1 if i < extra else 0))} for i in range(threshold)]
    with _in_temp_dir() as work:
        asc, rda, arb, hst, tab = (os.path.join(work, f) for f in ("m.asc", "m.rda", "b.arb", "a.hst", "t.tab"))
        with open(hst, "w") as fh:
            # pytauargus validates the field count on the first line and miscounts a line
            # with two numbers, so it starts with a plain status line (unsafe, as it is)
            first = apriori[0].split(",")[:len(dims)] + ["U"]
            fh.write("\n".join([",".join(first)] + apriori) + "\n")
        micro_asc_rda(to_microdata(pd.DataFrame(records)), asc_filename=asc, rda_filename=rda)
        micro_arb(arb_filename=arb, asc_filename=asc, rda_filename=rda, explanatory_vars=[dims],
                  response_var="resp", safety_rules=f"FREQ({threshold},0)", suppress=method,
                  output_names=[tab], output_type="5", output_options="SO+", apriori=[hst])
        run_batch(arb)
        table = TableResult(path=tab, exp_vars=dims, response="resp", is_freq=False).dataframe()
    status = {}
    for row in table.itertuples(index=False):
        key = tuple(TOTAL if str(getattr(row, d)).strip() == "Total" else str(getattr(row, d)).strip()[1:] for d in dims)
        status[key] = row.status
    flags = []
    for key in cube[dims].itertuples(index=False, name=None):
        flags.append(status.get(tuple(key), "S") in ("U", "M"))
    return np.array(flags, dtype=bool)


def protect(cells: pd.DataFrame, dims: list[str], primary: pd.Series, threshold: int,
            safety_range: int = 30, max_rounds: int = 5, audit_limit: int = 400,
            opt_max_cells: int = 600) -> Protected:
    """Secondary suppression for a table given as interior cells with primary flags.

    ``cells``: one row per interior cell (dims..., value); ``primary``: aligned flags.
    Margins are always protected as if published (the safe assumption). With more than
    ``audit_limit`` primary cells the LP audit (two LPs per cell) is skipped here and the
    pattern rests on tau-ARGUS alone; the gate then sends the table to a reviewer.
    """
    cells = cells.assign(primary=np.asarray(primary, dtype=bool))
    cube = full_cube(cells[dims + ["value"]], dims)
    flags = cells.assign(**{d: cells[d].astype(str) for d in dims}).set_index(dims)["primary"]
    interior = (cube[dims] != TOTAL).all(axis=1)
    cube["primary"] = False
    cube.loc[interior, "primary"] = flags.reindex(pd.MultiIndex.from_frame(cube.loc[interior, dims])).fillna(True).to_numpy()
    # a zero cell in the cross product that has no records is still a cell (zero)
    cube["suppressed"] = cube["primary"]
    if not cube["primary"].any():
        return Protected(cube, dims, pd.DataFrame(columns=["cell", "lower", "upper"]), "none needed")
    protection = float(threshold)
    for _ in range(max_rounds):
        # OPT (one exact optimisation) is best but slow on big tables; HiTaS (MOD) splits
        # a big table into subtables and is what statistical offices use at that size.
        method = "OPT(1)" if len(cube) <= opt_max_cells else "MOD(1)"
        cube["suppressed"] = _tau_argus(cube, dims, threshold, protection, method) | cube["primary"]
        if int(cube["primary"].sum()) > audit_limit:
            return Protected(cube, dims, pd.DataFrame(columns=["cell", "lower", "upper"]),
                             f"tau-ARGUS {method}, protection level {protection:g} (not audited: over {audit_limit} primary cells)")
        intervals = audit(cube, dims, targets=cube["primary"])
        weak = intervals[(intervals["upper"] - intervals["lower"]) < threshold]
        if weak.empty:
            return Protected(cube, dims, intervals, f"tau-ARGUS {method}, protection level {protection:g}")
        protection *= 1.5  # ask tau-ARGUS for wider protection and try again
    raise RuntimeError("secondary suppression could not protect every primary cell; the table fails")
