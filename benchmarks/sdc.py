"""Disclosure-control speed figures, each beside its baseline in the same run.

1. k-anonymity + l-diversity + t-closeness on N rows x 5 quasi-identifiers: ours vs pycanon 1.3.6
   (identical values required). Target: ours <= 1 s at 1M rows.
2. A crosstab with threshold, (2, 0.9)-dominance and p% checks: ours vs ACRO 1.0.2's crosstab
   (identical per-cell verdicts required). Target: >= 4x faster.
4. The researcher's crosstab call through the session (compute + output and evidence files + the
   gate's verdict shown) against ACRO's same call in the same run. Target: >= 4x
   (``researcher_crosstab_1m_speedup``).
3. Secondary suppression (tau-ARGUS + our LP recovery audit) of a 3-D table of about 3,000
   cells counted from N rows, as the safe API runs it. Target: <= 10 s. The exact audit after
   it (every primary cell's full interval) is timed separately.

Usage: ``python benchmarks/sdc.py [--rows 1000000] [--skip-pycanon-t]``. Ends with one
``name=value`` line per figure.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def microdata_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(0, 18, n),
        "sex": rng.choice(["F", "M"], n),
        "zip": rng.choice([f"z{i:03d}" for i in range(20)], n),
        "race": rng.choice(list("ABCDEF"), n),
        "year": rng.integers(2015, 2020, n),
        "diagnosis": rng.choice([f"d{i}" for i in range(8)], n),
    })


def bench_microdata(n: int, skip_pycanon_t: bool, figures: dict) -> None:
    from pycanon import anonymity as pycanon

    from disclosure_control import microdata

    df = microdata_frame(n)
    qi, sa = ["age", "sex", "zip", "race", "year"], ["diagnosis"]
    start = time.perf_counter()
    k = microdata.k_anonymity(df, qi)
    l_div = microdata.l_diversity(df, qi, sa)
    t = microdata.t_closeness(df, qi, sa)
    separate = time.perf_counter() - start
    measures, ours = timed(microdata.privacy_measures, df, qi, sa)
    assert measures == {"k": k, "l": l_div, "t": t}
    print(f"[microdata] {n:,} rows x 5 QI: ours k={k} l={l_div} t={t:.6f}: together {ours:.2f} s "
          f"(three separate calls {separate:.2f} s)")
    figures["ours_klt_separate_s"] = round(separate, 3)
    pk, tk = timed(pycanon.k_anonymity, df, qi)
    pl, tl = timed(pycanon.l_diversity, df, qi, sa)
    print(f"[microdata] pycanon k={pk} in {tk:.2f} s; l={pl} in {tl:.2f} s")
    assert (pk, pl) == (k, l_div), "results differ from pycanon"
    figures.update(ours_klt_s=round(ours, 3), pycanon_k_s=round(tk, 2), pycanon_l_s=round(tl, 2))
    if not skip_pycanon_t:
        pt, tt = timed(pycanon.t_closeness, df, qi, sa)
        print(f"[microdata] pycanon t={pt:.6f} in {tt:.2f} s")
        assert pt == t, "t-closeness differs from pycanon"
        figures["pycanon_t_s"] = round(tt, 2)
    figures["klt_identical_to_pycanon"] = 1


def crosstab_frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = rng.choice([f"r{i:02d}" for i in range(25)], n, p=np.r_[np.full(24, 0.04), [0.04]] / 1.0)
    cols = rng.choice([f"c{i}" for i in range(8)], n)
    values = rng.gamma(2.0, 100.0, n)
    frame = pd.DataFrame({"region": rows, "sector": cols, "turnover": values})
    # plant risks: a few tiny cells and a dominated cell
    # (one record in each sector: ACRO leaves empty cells out of its magnitude checks, we call
    # them disclosive zeros, so the planted row has no empty cell and the verdicts compare)
    frame.loc[frame.index[:8], "region"] = "r99"
    frame.loc[frame.index[:8], "sector"] = [f"c{i}" for i in range(8)]
    frame.loc[frame.index[5], "turnover"] = 1e9
    return frame


def ours_crosstab(frame: pd.DataFrame):
    from disclosure_control.rules import RuleSet
    from disclosure_control.tables import build_table

    result = build_table(frame, ["region"], ["sector"], frame["turnover"], "sum", RuleSet(), margins=False)
    return result


def acro_crosstab(frame: pd.DataFrame):
    from acro import ACRO

    acro = ACRO(suppress=False)
    table = acro.crosstab(frame.region, frame.sector, values=frame.turnover, aggfunc="sum")
    record = acro.results.get_index(-1)
    return table, record


def bench_crosstab(n: int, figures: dict) -> None:
    frame = crosstab_frame(n)
    ours, t_ours = timed(ours_crosstab, frame)
    logging.disable(logging.CRITICAL)
    (table, record), t_acro = timed(acro_crosstab, frame)
    logging.disable(logging.NOTSET)
    # ACRO's per-cell masks: cells lists per rule, as [row, col] labels
    acro_cells = record.sdc.get("cells", {})
    mine = {"MinimumThresholdCheck": set(), "PPercentCheck": set(), "NKCheck": set()}
    for (r, c), text in np.ndenumerate(ours.reasons.to_numpy()):
        key = (ours.reasons.index[r], ours.reasons.columns[c])
        if "contributors" in text or "threshold" in text:
            mine["MinimumThresholdCheck"].add(key)
        if "p% rule" in text:
            mine["PPercentCheck"].add(key)
        if "dominance" in text:
            mine["NKCheck"].add(key)
    theirs = {name: {(table.index[i], table.columns[j]) for i, j in acro_cells.get(name, [])} for name in mine}
    same = all(mine[name] == theirs[name] for name in mine)
    print(f"[crosstab] {n:,} rows: ours {t_ours:.2f} s, ACRO {t_acro:.2f} s, speed-up {t_acro / t_ours:.1f}x; "
          f"disclosive cells ours {[len(v) for v in mine.values()]} ACRO {[len(v) for v in theirs.values()]}; same={same}")
    figures.update(ours_crosstab_s=round(t_ours, 3), acro_crosstab_s=round(t_acro, 3),
                   crosstab_speedup=round(t_acro / t_ours, 2), crosstab_same_verdicts=int(same))


def researcher_crosstab(frame: pd.DataFrame, outputs: str):
    """What the researcher feels: load through the session, one crosstab call, files + evidence + verdict shown."""
    from disclosure_control.safe import ACRO as SessionACRO

    session = SessionACRO(suppress=False, outputs_dir=outputs, data_loader=lambda name: frame)
    df = session.load("firms")
    start = time.perf_counter()
    table = session.crosstab(df.region, df.sector, values=df.turnover, aggfunc="sum")
    return table, session.results, time.perf_counter() - start


def acro_researcher_crosstab(frame: pd.DataFrame):
    from acro import ACRO

    acro = ACRO(suppress=False)
    start = time.perf_counter()
    table = acro.crosstab(frame.region, frame.sector, values=frame.turnover, aggfunc="sum")
    return table, time.perf_counter() - start


def bench_researcher(n: int, figures: dict) -> None:
    """4. The same crosstab call as a researcher makes it: our session (compute, output and evidence files,
    the gate's verdict shown) against ACRO's call in the same run. Target: >= 4x."""
    frame = crosstab_frame(n)
    with tempfile.TemporaryDirectory() as outputs:
        ours_table, results, t_ours = researcher_crosstab(frame, outputs)
    logging.disable(logging.CRITICAL)
    theirs_table, t_acro = acro_researcher_crosstab(frame)
    logging.disable(logging.NOTSET)
    same = bool(np.allclose(ours_table.to_numpy(dtype=float), theirs_table.to_numpy(dtype=float)))
    verdict = next(iter(results.values())).status
    print(f"[researcher] {n:,} rows, crosstab with values through the session: ours {t_ours:.2f} s (verdict {verdict}), "
          f"ACRO {t_acro:.2f} s, speed-up {t_acro / t_ours:.1f}x; same table={same}")
    figures.update(researcher_crosstab_s=round(t_ours, 3), acro_researcher_crosstab_s=round(t_acro, 3),
                   researcher_crosstab_1m_speedup=round(t_acro / t_ours, 2), researcher_same_table=int(same))


def bench_suppression(n: int, figures: dict) -> None:
    from disclosure_control.suppression import audit, protect
    from disclosure_control.tables import build_table, interior_cells
    from disclosure_control.rules import RuleSet

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({
        "area": rng.choice([f"a{i:02d}" for i in range(20)], n, p=np.linspace(1, 6, 20) / np.linspace(1, 6, 20).sum()),
        "age_band": rng.choice([f"b{i:02d}" for i in range(15)], n, p=np.geomspace(1, 40, 15) / np.geomspace(1, 40, 15).sum()),
        "service": rng.choice([f"s{i:02d}" for i in range(10)], n, p=np.geomspace(1, 30, 10) / np.geomspace(1, 30, 10).sum()),
    })
    start = time.perf_counter()
    table = build_table(frame, ["area", "age_band"], ["service"], None, "count", RuleSet())
    cells, labels = interior_cells(table.counts, ["area", "age_band"], ["service"])
    disclosive = table.disclosive
    primary = np.array([bool(disclosive.at[lab]) for lab in labels])
    # as the safe API calls it (default audit limit): the audit inside protect() is timed
    protected = protect(cells, ["area", "age_band", "service"], primary, 10)
    elapsed = time.perf_counter() - start
    dims = ["area", "age_band", "service"]
    intervals, audit_s = timed(audit, protected.cube, dims, targets=protected.cube["primary"])
    widths = intervals["upper"] - intervals["lower"]
    print(f"[suppression] {len(cells):,} interior cells from {n:,} rows: {int(primary.sum())} primary, "
          f"{protected.secondary} secondary ({protected.solver}) in {elapsed:.2f} s; "
          f"LP recovery audit of every primary cell {audit_s:.2f} s, narrowest attacker interval {widths.min():g}")
    figures.update(suppression_cells=len(cells), suppression_primary=int(primary.sum()),
                   suppression_secondary=protected.secondary, suppression_s=round(elapsed, 2),
                   suppression_audit_s=round(audit_s, 2), suppression_min_interval=float(widths.min()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-pycanon-t", action="store_true", help="skip pycanon's t-closeness (about 70 s at 1M rows)")
    parser.add_argument("--only", choices=["microdata", "crosstab", "researcher", "suppression"], help="run one figure")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    figures: dict = {}
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # ACRO and tau-ARGUS write scratch files into the working directory
        if args.only in (None, "microdata"):
            bench_microdata(args.rows, args.skip_pycanon_t, figures)
        if args.only in (None, "crosstab"):
            bench_crosstab(args.rows, figures)
        if args.only in (None, "researcher"):
            bench_researcher(args.rows, figures)
        if args.only in (None, "suppression"):
            bench_suppression(args.rows, figures)
    for name, value in figures.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
