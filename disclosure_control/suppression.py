"""Secondary suppression with tau-ARGUS (pytauargus, HiGHS) and the recovery-attack audit.

Primary suppression follows our rules (frequency and magnitude). tau-ARGUS then picks the
complementary cells so that the suppressed cells cannot be recovered from the margins and
the published cells. Our primary statuses reach tau-ARGUS through the microdata we give
it: a cell our rules mark unsafe is one record (unsafe under FREQ), a safe cell is enough
records carrying its value to pass FREQ; tau-ARGUS works on cell values, so the split does
not change what HiTaS optimises (OPT's input carries frequencies: it gets ``threshold``).

``audit`` is the attacker: for every suppressed cell it solves two linear programmes (the
smallest and largest value consistent with every published cell and every additive
relation of the table, nonnegative) and reports the interval. A cell whose interval is
narrower than the threshold is recoverable; ``protect`` adds suppressions until none is.

On big tables (HiTaS) tau-ARGUS is asked only to make the primary cells unknown, without
protection levels, and ``protect`` then closes what the audit finds open with hypercubes
(the GHMITER idea: 2^n cells whose alternating changes keep every total), re-auditing
until no primary cell is narrower than the threshold. Where hypercubes would cost more than
tau-ARGUS's own pattern, an LP per narrow cell picks the cells to add instead; tau-ARGUS
with protection levels on every primary cell remains the last resort.
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
    intervals: pd.DataFrame   # attacker's [lower, upper] per suppressed primary cell (inner bound once wide enough)
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


def _grid(cube: pd.DataFrame, dims: list[str]) -> tuple[np.ndarray, list[list[str]]]:
    """Cube row of every grid position; along each dimension the TOTAL slot comes last."""
    codes = [[c for c in pd.unique(cube[d]) if c != TOTAL] for d in dims]
    position = []
    for d, cs in zip(dims, codes):
        lookup = {c: i for i, c in enumerate(cs)}
        lookup[TOTAL] = len(cs)
        position.append(cube[d].map(lookup).to_numpy())
    grid = np.full([len(cs) + 1 for cs in codes], -1, dtype=np.int64)
    grid[tuple(position)] = np.arange(len(cube))
    return grid, codes


def _relations(cube: pd.DataFrame, dims: list[str]):
    """Sparse matrix, one row per additive relation (parts minus total = 0), one column per cube row."""
    from scipy import sparse

    grid, _ = _grid(cube, dims)
    rows, cols, coef = [], [], []
    first = 0
    for d in range(len(dims)):
        lines = np.moveaxis(grid, d, -1).reshape(-1, grid.shape[d])
        lines = lines[(lines >= 0).all(axis=1)]
        numbers = np.arange(first, first + len(lines))
        parts = lines[:, :-1]
        rows += [np.repeat(numbers, parts.shape[1]), numbers]
        cols += [parts.ravel(), lines[:, -1]]
        coef += [np.ones(parts.size), -np.ones(len(lines))]
        first += len(lines)
    return sparse.csr_matrix((np.concatenate(coef), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(first, len(cube)))


def audit(cube: pd.DataFrame, dims: list[str], value: str = "value", targets: pd.Series | np.ndarray | None = None,
          wide_enough: float | None = None) -> pd.DataFrame:
    """The attacker's [lower, upper] for each target cell (default: every suppressed cell).

    With ``wide_enough``, a target already proven at least that wide gets no LPs of its own
    and its [lower, upper] is an inner bound of the attacker's interval (the attacker cannot
    narrow it further, and the exact interval may be wider); every narrower cell is exact.
    The proof: every LP solution is a table the attacker cannot rule out, so the spread of a
    cell over the solutions seen so far is a width the attacker has to concede.
    """
    from scipy.optimize import linprog
    from scipy.sparse.csgraph import connected_components

    suppressed = cube["suppressed"].to_numpy(dtype=bool)
    unknown = np.flatnonzero(suppressed)
    wanted = suppressed if targets is None else (np.asarray(targets, dtype=bool) & suppressed)
    if len(unknown) == 0:
        return pd.DataFrame(columns=["cell", "lower", "upper"])
    values = cube[value].to_numpy(dtype=float)
    relations = _relations(cube, dims)
    a = relations[:, unknown].tocsr()
    b = -(relations[:, ~suppressed] @ values[~suppressed])
    binding = np.diff(a.indptr) > 0
    a, b = a[binding], b[binding]
    # cells linked by no chain of relations cannot inform each other: smaller LPs
    _, component = connected_components((a.T @ a).tocsr(), directed=False)
    is_target = wanted[unknown]
    lower, upper = values[unknown].copy(), values[unknown].copy()
    margin = 1e-6  # solver tolerance: a proof must not rest on a rounding error
    rng = np.random.default_rng(0)
    for comp in np.unique(component[is_target]):
        cols = np.flatnonzero(component == comp)
        a_c = a[:, cols].tocsr()
        used = np.diff(a_c.indptr) > 0
        a_c, b_c = a_c[used], b[used]
        lo, hi = lower[cols], upper[cols]   # the true table is one the attacker cannot rule out
        target = is_target[cols]

        def solve(objective):
            result = linprog(objective, A_eq=a_c, b_eq=b_c, bounds=(0, None), method="highs")
            if result.status == 0 and wide_enough is not None:
                np.minimum(lo, result.x, out=lo)
                np.maximum(hi, result.x, out=hi)
            return result

        def proven(j=None):
            wide = hi - lo >= wide_enough + margin
            return wide if j is None else wide[j]

        if wide_enough is not None:
            # a few random directions find tables far apart for most cells at once
            for _ in range(10):
                open_ = target & ~proven()
                if not open_.any():
                    break
                weights = np.where(open_, rng.uniform(0.5, 1.5, len(cols)), 0.0)
                solve(weights)
                solve(-weights)
        for j in np.flatnonzero(target):
            if wide_enough is not None and proven(j):
                continue
            c = np.zeros(len(cols))
            c[j] = 1.0
            res = solve(c)
            lo[j] = res.fun if res.status == 0 else 0.0
            if wide_enough is not None and proven(j):
                continue
            res = solve(-c)
            hi[j] = -res.fun if res.status == 0 else np.inf  # unbounded: fully protected
        lower[cols], upper[cols] = lo, hi
    chosen = np.flatnonzero(is_target)
    return pd.DataFrame({"cell": unknown[chosen], "lower": lower[chosen], "upper": upper[chosen]})


def _tau_argus(cube: pd.DataFrame, dims: list[str], threshold: int, protection: float | None,
               method: str = "OPT(1)") -> np.ndarray:
    """Run tau-ARGUS optimal suppression; returns the suppressed flag per cube row.

    With ``protection``, every primary cell gets an upper protection level of that much
    through an a-priori file, so the attacker's interval is at least that wide (tau-ARGUS's
    own FREQ protection is a percentage of the cell value: about nothing for a count of 1).
    Without, tau-ARGUS only makes the primary cells unknown: more than twice as fast under
    HiTaS, but the caller has to audit and widen the pattern.
    """
    from pytauargus.arb import micro_arb
    from pytauargus.dataframe import to_microdata
    from pytauargus.engine import run_batch
    from pytauargus.micro import micro_asc_rda
    from pytauargus.result import TableResult

    # HiTaS takes only statuses and values from the records (its patterns came out identical
    # with 2 or 10 records a safe cell), so two records make a safe cell there at a fifth of
    # the microdata; OPT's input carries the frequencies and its pattern changes with them
    freq = threshold if method.startswith("OPT") else 2
    interior = cube[(cube[dims] != TOTAL).all(axis=1)]
    records, apriori = [], []
    for row in interior.itertuples(index=False):
        codes = [f"c{getattr(row, d)}" for d in dims]  # strings: categorical for tau-ARGUS
        key = dict(zip(dims, codes))
        value = float(row.value)
        if row.primary:
            records.append({**key, "resp": value})
            if protection is not None:
                apriori.append(",".join(codes + ["PL", "0", f"{protection:g}"]))
        else:
            # enough records to be safe under FREQ(freq), integer parts summing to value
            base, extra = divmod(int(round(value)), freq)
            records += [{**key, "resp": float(base + (1 if i < extra else 0))} for i in range(freq)]
    with _in_temp_dir() as work:
        asc, rda, arb, hst, tab = (os.path.join(work, f) for f in ("m.asc", "m.rda", "b.arb", "a.hst", "t.tab"))
        if apriori:
            with open(hst, "w") as fh:
                # pytauargus validates the field count on the first line and miscounts a line
                # with two numbers, so it starts with a plain status line (unsafe, as it is)
                first = apriori[0].split(",")[:len(dims)] + ["U"]
                fh.write("\n".join([",".join(first)] + apriori) + "\n")
        micro_asc_rda(to_microdata(pd.DataFrame(records)), asc_filename=asc, rda_filename=rda)
        micro_arb(arb_filename=arb, asc_filename=asc, rda_filename=rda, explanatory_vars=[dims],
                  response_var="resp", safety_rules=f"FREQ({freq},0)", suppress=method,
                  output_names=[tab], output_type="5", output_options="SO+", apriori=[hst] if apriori else None)
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


def _hypercubes(cube: pd.DataFrame, dims: list[str], weak: np.ndarray, threshold: int,
                max_candidates: int = 2_000_000) -> np.ndarray | None:
    """Suppressed flags after adding hypercubes around each weak interior cell.

    A hypercube is the 2^n interior cells at the corners spanned by the weak cell and one
    other code per dimension. Adding t to the corners an even number of steps from the cell
    and taking t from the others leaves every line total as it was, so once all corners are
    suppressed the attacker cannot tell the tables apart for any t keeping cells >= 0: the
    weak cell ranges over at least (smallest even corner + smallest odd corner). Cost is the
    value of the corners not yet suppressed (tau-ARGUS's default cost), plus one per cell so
    that, among equal values, fewer new suppressions win. Margins are never corners: GHMITER
    allows them, but with them the cells hidden were worth 20-55 times what tau-ARGUS hides
    with protection levels (measured on a 3-D and a 4-D table), the grand total included.
    ``None`` when no hypercube is possible at all.
    """
    grid, codes = _grid(cube, dims)
    inner = grid[tuple(slice(0, len(c)) for c in codes)]
    if (inner < 0).any() or np.prod([len(c) - 1 for c in codes], dtype=float) > max_candidates:
        return None
    values = cube["value"].to_numpy(dtype=float)[inner]
    suppressed = cube["suppressed"].to_numpy(dtype=bool).copy()
    corners = list(itertools.product((0, 1), repeat=len(dims)))
    odd_corners = [c for c in corners if sum(c) % 2]

    def cell_at(p, others, q, corner):
        return inner[tuple(others[d][q[d]] if side else p[d] for d, side in enumerate(corner))]

    for cell in weak:
        p = np.argwhere(inner == cell)[0]
        others = [np.delete(np.arange(len(c)), p[d]) for d, c in enumerate(codes)]
        if any(len(o) == 0 for o in others):
            return None
        hidden = suppressed[inner]
        even = odd = np.inf   # smallest corner value per candidate, the weak cell left out
        cost = 0.0
        for corner in corners[1:]:
            at = np.ix_(*[others[d] if side else p[d:d + 1] for d, side in enumerate(corner)])
            v = values[at]
            cost = cost + np.where(hidden[at], 0.0, v + 1.0)
            if sum(corner) % 2:
                odd = np.minimum(odd, v)
            else:
                even = np.minimum(even, v)
        own = values[tuple(p)]
        width = np.minimum(even, own) + odd
        single, single_cost = [], np.inf
        if (width >= threshold).any():
            best = np.argmin(np.where(width >= threshold, cost, np.inf))
            single, single_cost = [np.unravel_index(best, cost.shape)], cost.flat[best]
        # Hypercubes whose odd corners differ let the cell rise by the sum of their smallest
        # odd corners (it falls by one's even side): several cheap ones can beat one dear
        # one, or be the only way. Greedy by cost per unit of width; the next audit checks
        chosen, taken, rise, fall, total_cost = [], set(), 0.0, 0.0, 0.0
        for flat in np.argsort((cost / np.maximum(np.minimum(odd, threshold), 1e-9)).ravel(), kind="stable"):
            if odd.flat[flat] <= 0 or rise + fall >= threshold or total_cost >= single_cost:
                break
            q = np.unravel_index(flat, cost.shape)
            lowered = {int(cell_at(p, others, q, corner)) for corner in odd_corners}
            if lowered & taken:
                continue
            taken |= lowered
            chosen.append(q)
            rise += odd.flat[flat]
            fall = max(fall, min(even.flat[flat], own))
            total_cost += cost.flat[flat]
        if single and (rise + fall < threshold or total_cost >= single_cost):
            chosen = single
        for q in chosen:  # none: this cell is left to the caller's fallback
            for corner in corners:
                suppressed[cell_at(p, others, q, corner)] = True
    return suppressed


def _lp_cover(cube: pd.DataFrame, dims: list[str], weak: np.ndarray, threshold: int) -> np.ndarray | None:
    """Suppressed flags after adding, for each weak cell, the support of a cheap change y
    of the whole table that keeps every relation (A y = 0), keeps cells >= 0 and raises the
    weak cell by ``threshold``: once its support is suppressed, the true table and the table
    plus y both fit what is published, so the cell is at least that wide. An LP finds y,
    minimising sum (value + 1) |y| over cells not yet suppressed (tau-ARGUS's cost, suppressed
    cells free). One LP a cell: slower than hypercubes, about as good as protection levels.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    values = cube["value"].to_numpy(dtype=float)
    suppressed = cube["suppressed"].to_numpy(dtype=bool).copy()
    relations = _relations(cube, dims)
    n = len(cube)
    a_eq = sparse.vstack([sparse.hstack([relations, -relations]), sparse.csr_matrix((1, 2 * n))]).tolil()
    b_eq = np.r_[np.zeros(relations.shape[0]), float(threshold)]
    # y = up - down; down <= value keeps the changed table >= 0
    bounds = np.c_[np.zeros(2 * n), np.r_[np.full(n, np.inf), values]]
    for cell in weak:
        a_eq[-1, :] = 0
        a_eq[-1, cell], a_eq[-1, n + cell] = 1.0, -1.0
        weight = np.where(suppressed, 0.0, values + 1.0)
        result = linprog(np.r_[weight, weight], A_eq=a_eq.tocsc(), b_eq=b_eq, bounds=bounds, method="highs")
        if result.status != 0:
            return None
        suppressed |= np.abs(result.x[:n] - result.x[n:]) > 1e-7
    return suppressed


def _audited_repair(cube: pd.DataFrame, dims: list[str], threshold: int, widen, budget: float = np.inf,
                    rounds: int = 10) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Audit, ``widen`` around the cells the attacker narrows, until none is narrow.

    More suppression never narrows an interval (it only removes constraints from the
    attacker's LP), so a cell proven wide stays wide and later rounds audit only the rest.
    ``None`` when ``widen`` cannot close the cells or hides more value than ``budget``.
    """
    cube = cube.copy()
    values = cube["value"].to_numpy(dtype=float)
    start = cube["suppressed"].to_numpy(dtype=bool).copy()
    open_ = cube["primary"].to_numpy(dtype=bool).copy()
    proven = []
    for _ in range(rounds):
        intervals = audit(cube, dims, targets=open_, wide_enough=threshold)
        narrow = ((intervals["upper"] - intervals["lower"]) < threshold).to_numpy()
        proven.append(intervals[~narrow])
        if not narrow.any():
            return cube["suppressed"].to_numpy(), pd.concat(proven).sort_values("cell", ignore_index=True)
        if narrow.sum() == open_.sum() and len(proven) > 1:
            return None  # no progress: this way cannot close these cells
        widened = widen(cube, dims, intervals["cell"].to_numpy()[narrow], threshold)
        if widened is None or values[widened & ~start].sum() > budget:
            return None
        cube["suppressed"] = widened
        open_ = np.zeros(len(cube), dtype=bool)
        open_[intervals["cell"].to_numpy()[narrow]] = True
    return None


def protect(cells: pd.DataFrame, dims: list[str], primary: pd.Series, threshold: int,
            safety_range: int = 30, max_rounds: int = 5, audit_limit: int = 400,
            opt_max_cells: int = 600) -> Protected:
    """Secondary suppression for a table given as interior cells with primary flags.

    ``cells``: one row per interior cell (dims..., value); ``primary``: aligned flags.
    Margins are always protected as if published (the safe assumption). With more than
    ``audit_limit`` primary cells the LP audit is skipped here and the pattern rests on
    tau-ARGUS's protection levels alone; the gate then sends the table to a reviewer.
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
    n_primary = int(cube["primary"].sum())
    # OPT (one exact optimisation) is best but slow on big tables; HiTaS (MOD) splits
    # a big table into subtables and is what statistical offices use at that size.
    method = "OPT(1)" if len(cube) <= opt_max_cells else "MOD(1)"
    if method == "MOD(1)" and n_primary <= audit_limit:
        # HiTaS spends most of its time meeting a-priori protection levels (13 s against
        # 5 s for 3,000 cells): let it hide the primary cells only, then widen just the
        # cells the attacker narrows. The audit, not tau-ARGUS, is the guarantee here.
        cube["suppressed"] = _tau_argus(cube, dims, threshold, None, method) | cube["primary"]
        # hypercubes are the fastest way to widen, but where they cannot find cheap ones
        # (sparse corners, 4-D) they hid 15-50 times what tau-ARGUS hides with protection
        # levels: only within the value of tau-ARGUS's own secondary cells, else the LPs
        values = cube["value"].to_numpy(dtype=float)
        budget = values[(cube["suppressed"] & ~cube["primary"]).to_numpy()].sum()
        for widen, how, limit in ((_hypercubes, "hypercubes", budget), (_lp_cover, "LP-chosen covers", np.inf)):
            repaired = _audited_repair(cube, dims, threshold, widen, limit)
            if repaired is not None:
                cube["suppressed"], intervals = repaired
                return Protected(cube, dims, intervals, f"tau-ARGUS {method} with {how} around the cells the LP audit narrowed")
        cube["suppressed"] = cube["primary"]
    protection = float(threshold)
    for _ in range(max_rounds):
        cube["suppressed"] = _tau_argus(cube, dims, threshold, protection, method) | cube["primary"]
        if n_primary > audit_limit:
            return Protected(cube, dims, pd.DataFrame(columns=["cell", "lower", "upper"]),
                             f"tau-ARGUS {method}, protection level {protection:g} (not audited: over {audit_limit} primary cells)")
        intervals = audit(cube, dims, targets=cube["primary"], wide_enough=threshold)
        weak = intervals[(intervals["upper"] - intervals["lower"]) < threshold]
        if weak.empty:
            return Protected(cube, dims, intervals, f"tau-ARGUS {method}, protection level {protection:g}")
        protection *= 1.5  # ask tau-ARGUS for wider protection and try again
    raise RuntimeError("secondary suppression could not protect every primary cell; the table fails")
