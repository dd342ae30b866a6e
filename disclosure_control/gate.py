"""The gate: recompute every output from the extract and its evidence, then apply the rules.

``check_file`` never trusts the output or the evidence's own verdict: it reloads the
records the evidence names (``data_loader(table)``), recomputes the output, requires the
published file to match it (suppressed cells blank, rounding as recorded), and checks
the true values under the rules that apply. A file without evidence gets the generic
checks (type, size, row-level, identifiers, small counts in a plain table) and at best
``review``. ``check_folder`` also runs differencing across the folder and the ledger.
"""
from __future__ import annotations

import contextvars
import csv
import io
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import detection
from .differencing import Ledger, Population, find_pairs
from .evidence import EVIDENCE_SUFFIX, Evidence, EvidenceError, evidence_path_for, sha256_file
from .rules import RuleBook, RuleSet
from .verdicts import CellVerdict, OutputVerdict, Report

__all__ = ["check_file", "check_folder", "check_evidence_file", "cross_check", "DataLoader", "MAX_AUDIT_CELLS"]

DataLoader = Callable[[str], pd.DataFrame]
MAX_AUDIT_CELLS = 400  # LP audit size cap: bigger suppression patterns go to a human
_REL_TOL = 1e-9


def _rules_for(rules: RuleSet | RuleBook | None, evidence: Evidence | None) -> RuleSet:
    if rules is None:
        from .rules import load_rulebook

        rules = load_rulebook()
    if isinstance(rules, RuleBook):
        return rules.for_agencies(evidence.agencies if evidence else ())
    return rules


def _grid(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text))]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= _REL_TOL * max(1.0, abs(a), abs(b))


def compare_grids(published: str, expected: str) -> tuple[list[str], np.ndarray | None]:
    """Mismatches between the published CSV and the recomputed one; blank-cell mask of the file."""
    got, want = _grid(published), _grid(expected)
    if len(got) != len(want) or any(len(a) != len(b) for a, b in zip(got, want)):
        return ["published table has a different shape from the recomputed one"], None
    problems = []
    blank = np.zeros((len(got), max((len(r) for r in got), default=0)), dtype=bool)
    for i, (row_a, row_b) in enumerate(zip(got, want)):
        for j, (a, b) in enumerate(zip(row_a, row_b)):
            if a == "":   # blank: suppressed, or empty in the data too; either way nothing shown
                blank[i, j] = True
                continue
            if a == b:
                continue
            x, y = _number(a), _number(b)
            if x is None or y is None or not _close(x, y):
                problems.append(f"row {i + 1}, column {j + 1}: published value does not match the data")
    return problems, blank


def _load_rows(evidence: Evidence, data_loader: DataLoader | None) -> tuple[pd.DataFrame, np.ndarray]:
    if data_loader is None:
        raise EvidenceError("no data loader: the output cannot be recomputed")
    if not evidence.table or evidence.rows is None:
        raise EvidenceError("evidence does not name the table and rows the output came from")
    table = data_loader(evidence.table)
    if len(table) != evidence.rows.n_table_rows:
        raise EvidenceError(f"table {evidence.table} has {len(table)} rows, the evidence expects {evidence.rows.n_table_rows}")
    return table.reset_index(drop=True), evidence.rows.mask()


def _generic(path: Path, verdict: OutputVerdict, rules: RuleSet) -> None:
    """Checks for a file without evidence: small counts in plain tables; never better than review."""
    verdict.flag("evidence", "review", "no evidence: the output cannot be recomputed; a reviewer must check it")
    if path.suffix.lower() != ".csv":
        return
    try:
        frame = pd.read_csv(path)
    except Exception:
        return
    numeric = frame.select_dtypes("number")
    values = numeric.to_numpy(dtype=float).ravel()
    values = values[~np.isnan(values)]
    if len(values) and np.all(values == np.round(values)) and (values >= 0).all():
        small = int(((values > 0) & (values < rules.threshold)).sum())
        zeros = int((values == 0).sum()) if rules.zeros_disclosive else 0
        if small:
            verdict.flag("threshold", "fail", f"{small} count-like cells below the threshold {rules.threshold}")
        if zeros:
            verdict.flag("zeros", "fail", f"{zeros} zero cells")


def _check_table(path: Path, evidence: Evidence, verdict: OutputVerdict, rules: RuleSet, table: pd.DataFrame, mask: np.ndarray, dataset: str) -> None:
    from .suppression import audit, full_cube
    from .tables import build_table, cell_label, cube_key, interior_cells, is_margin, round_counts

    positions = np.flatnonzero(mask)
    values = evidence.values   # only whether there are values, until the table is computed
    index = [v.name for v in evidence.index]
    columns = [v.name for v in evidence.columns]
    rounding = evidence.options.get("rounding", "none")
    effective = rules if rounding in ("none", rules.rounding) else rules.model_copy(update={"rounding": rounding})
    if rounding == "redact_round" and values is None:
        # OpenSAFELY: counts above the redaction level are safe once rounded
        effective = effective.model_copy(update={"threshold": min(rules.threshold, effective.redact_at_or_below + 1)})
    shared = _SAME_PROCESS_TABLE.get()
    if shared is not None and shared[0] == (effective, evidence.aggfunc or "count", evidence.margins, index, columns, positions.tobytes()):
        result = shared[1]   # the session's own computation from the same rows and expressions
    else:
        keys = pd.DataFrame({v.name: v.values(table, mask) for v in evidence.index + evidence.columns})
        values = pd.Series(evidence.values.values(table, mask), name=evidence.values.name) if evidence.values else None
        result = build_table(keys, index, columns, values, evidence.aggfunc or "count", effective,
                             margins=evidence.margins, want_populations=True)
    expected = result.published
    if rounding != "none" and values is None:
        expected = round_counts(expected, effective, evidence.margins)
    problems, blank = compare_grids(path.read_text(), expected.to_csv())
    if blank is None or problems:
        for p in problems[:5]:
            verdict.flag("reproducible", "fail", p)
        if blank is None:
            verdict.flag("reproducible", "fail", problems[0])
        return
    verdict.checks.setdefault("reproducible", "pass")
    # map the blank cells of the file onto the table (skip the header rows and label columns)
    header_rows = len(_grid(expected.to_csv())) - len(expected.index)
    label_cols = expected.index.nlevels
    suppressed = pd.DataFrame(blank[header_rows:, label_cols:], index=expected.index, columns=expected.columns)
    if rounding == "redact_round" and values is None:
        suppressed |= expected.isna()
    disclosive = result.reasons != ""
    rounded = rounding != "none" and values is None
    if rounded:
        # margins of a rounded table are sums of the published rounded cells: they reveal
        # nothing the cells do not, and a blank cell adds nothing to them (no recovery)
        for label in [r for r in expected.index if is_margin(r)]:
            disclosive.loc[label, :] = False
        for label in [c for c in expected.columns if is_margin(c)]:
            disclosive.loc[:, label] = False
    published_bad = disclosive & ~suppressed
    for r, c in zip(*np.nonzero(published_bad.to_numpy())):
        rl, cl = expected.index[r], expected.columns[c]
        verdict.cells.append(CellVerdict(cell_label(rl, cl, index, columns), "fail", [result.reasons.iat[r, c]]))
    n_bad = int(published_bad.to_numpy().sum())
    if n_bad:
        kinds = sorted({reason.split(" (")[0].split(":")[0] for reason in result.reasons.to_numpy()[published_bad.to_numpy()]})
        verdict.flag("primary", "fail", f"{n_bad} disclosive cell(s) published: {', '.join(kinds)}")
    verdict.summary.update({"cells": int(expected.size), "disclosive": int(disclosive.to_numpy().sum()),
                            "suppressed": int(suppressed.to_numpy().sum())})
    # recovery attack on the suppressed disclosive cells
    hidden = disclosive & suppressed
    if hidden.to_numpy().any() and not rounded:
        audit_values = result.counts if (values is None or result.aggfunc != "sum") else expected.fillna(0)
        cells, labels = interior_cells(audit_values, index, columns)
        dims = index + columns
        cube = full_cube(cells, dims)
        keyed = {cube_key(r, c, index, columns): (r, c) for r in expected.index for c in expected.columns}
        flags_s, flags_p = [], []
        for key in cube[dims].itertuples(index=False, name=None):
            rc = keyed.get(tuple(key))
            if rc is None:   # a partial total this table does not publish: unknown to the reader
                flags_s.append(True)
                flags_p.append(False)
            else:
                flags_s.append(bool(suppressed.at[rc]))
                flags_p.append(bool(hidden.at[rc]))
        cube["suppressed"] = flags_s
        cube["primary"] = flags_p
        if int(cube["primary"].sum()) > MAX_AUDIT_CELLS:
            verdict.flag("secondary", "review", f"{int(cube['primary'].sum())} suppressed disclosive cells: too many to audit automatically")
        else:
            # cells narrower than the threshold get exact intervals; wider ones only need proof
            intervals = audit(cube, dims, targets=cube["primary"], wide_enough=rules.threshold)
            weak = intervals[(intervals["upper"] - intervals["lower"]) < rules.threshold]
            for row in weak.itertuples(index=False):
                r, c = keyed[tuple(cube.loc[row.cell, dims])]
                verdict.cells.append(CellVerdict(cell_label(r, c, index, columns), "fail",
                                                 [f"suppressed cell recoverable from published cells: its interval is {row.upper - row.lower:g} wide, under {rules.threshold}"]))
            if len(weak):
                verdict.flag("secondary", "fail", f"{len(weak)} suppressed cell(s) can be recovered from the margins and other cells")
            else:
                verdict.checks.setdefault("secondary", "pass")
    verdict.populations = {"dataset": dataset, "table": evidence.table, "n_table_rows": len(table),
                           "cells": _table_populations(expected, suppressed.to_numpy(), result.populations, positions,
                                                       index, columns, evidence.margins, len(table))}


def _union(parts: list[np.ndarray], n_rows: int) -> np.ndarray:
    """Sorted union of disjoint row sets, through a bitmap (cheaper than sorting a concatenation)."""
    mask = np.zeros(n_rows, dtype=bool)
    for part in parts:
        mask[part] = True
    return np.flatnonzero(mask)


def _table_populations(expected: pd.DataFrame, suppressed: np.ndarray, members: dict, positions: np.ndarray,
                       index: list[str], columns: list[str], margins: bool, n_rows: int) -> dict[str, np.ndarray]:
    """Every published cell, and every sum a reader can add up from them: each row's and each
    column's published cells and all of them (the "separate total" differencing attack)."""
    from .tables import cell_label, is_margin

    pops: dict[str, np.ndarray] = {}
    open_cells: dict[tuple[int, int], np.ndarray] = {}
    for (r, c), rows in members.items():
        try:
            i, j = expected.index.get_loc(r), expected.columns.get_loc(c)
        except (KeyError, TypeError):
            continue
        if not isinstance(i, (int, np.integer)) or not isinstance(j, (int, np.integer)) or suppressed[i, j]:
            continue
        pops[f"{cell_label(r, c, index, columns)}"] = positions[rows]
        if not is_margin(r) and not is_margin(c):
            open_cells[(int(i), int(j))] = positions[rows]
    inner_rows = [i for i, r in enumerate(expected.index) if not is_margin(r)]
    inner_cols = [j for j, c in enumerate(expected.columns) if not is_margin(c)]
    if len(inner_cols) > 1:
        for i in inner_rows:
            parts = [open_cells[(i, j)] for j in inner_cols if (i, j) in open_cells]
            if len(parts) > 1 or (parts and len(parts) < len(inner_cols)):
                pops[f"sum of the published cells of row {cell_label(expected.index[i], expected.columns[inner_cols[0]], index, [])}"] = _union(parts, n_rows)
    if len(inner_rows) > 1:
        for j in inner_cols:
            parts = [open_cells[(i, j)] for i in inner_rows if (i, j) in open_cells]
            if len(parts) > 1 or (parts and len(parts) < len(inner_rows)):
                label = cell_label(expected.index[inner_rows[0]], expected.columns[j], [], columns) if columns else {}
                pops[f"sum of the published cells of column {label}"] = _union(parts, n_rows)
    if len(open_cells) > 1:
        pops["whole table (sum of all published cells)"] = _union(list(open_cells.values()), n_rows)
    return pops


def _check_histogram(path: Path, evidence: Evidence, verdict: OutputVerdict, rules: RuleSet, table: pd.DataFrame, mask: np.ndarray, dataset: str) -> None:
    from .figures import histogram_reasons, histogram_table

    values = evidence.values.values(table, mask)
    edges = evidence.options.get("edges")
    hist = histogram_table(values, np.asarray(edges, dtype=float))
    if path.suffix.lower() == ".csv":
        problems, blank = compare_grids(path.read_text(), hist.to_csv(index=False))
        if problems or blank is None:
            verdict.flag("reproducible", "fail", (problems or ["shape differs"])[0])
            return
        suppressed = blank[1:, 2]
    else:
        suppressed = np.asarray(evidence.options.get("suppressed_bins", [False] * len(hist)), dtype=bool)
    reasons, findings = histogram_reasons(hist, rules, bool(evidence.options.get("edges_from_data")))
    for check, status, reason in findings:
        verdict.flag(check, status, reason)
    bad = (reasons != "") & ~suppressed
    for i in np.flatnonzero(bad):
        verdict.cells.append(CellVerdict({"bin": [float(hist.bin_lower[i]), float(hist.bin_upper[i])]}, "fail", [reasons[i]]))
    if bad.any():
        verdict.flag("primary", "fail", f"{int(bad.sum())} histogram bin(s) below the threshold")
    verdict.summary.update({"bins": len(hist)})


def _check_model(path: Path, evidence: Evidence, verdict: OutputVerdict, rules: RuleSet, table: pd.DataFrame, mask: np.ndarray, dataset: str) -> None:
    from .models import coefficient_table, fit, model_reasons

    endog = pd.Series(evidence.values.values(table, mask), name=evidence.values.name)
    exog = pd.DataFrame({v.name: v.values(table, mask) for v in evidence.columns})
    if evidence.options.get("add_constant"):
        exog.insert(0, "const", 1.0)
    result = fit(evidence.method.removesuffix("r"), endog, exog)
    expected = coefficient_table(result)
    problems, blank = compare_grids(path.read_text(), expected.to_csv())
    if problems or blank is None or blank.any():
        verdict.flag("reproducible", "fail", (problems or ["coefficient table differs from the refit model"])[0])
        return
    findings, summary = model_reasons(result, exog, rules)
    for check, status, reason in findings:
        verdict.flag(check, status, reason)
    verdict.summary.update(summary)


def _check_summary(path: Path, evidence: Evidence, verdict: OutputVerdict, rules: RuleSet, table: pd.DataFrame, mask: np.ndarray, dataset: str) -> None:
    from .safe_summary import describe_table

    values = pd.Series(evidence.values.values(table, mask), name=evidence.values.name).astype(float)
    expected, reasons = describe_table(values, rules)
    problems, blank = compare_grids(path.read_text(), expected.to_csv())
    if problems or blank is None:
        verdict.flag("reproducible", "fail", (problems or ["shape differs"])[0])
        return
    shown = ~blank[1:, 1]
    for i, stat in enumerate(expected.index):
        if reasons[i] and shown[i]:
            verdict.cells.append(CellVerdict({"statistic": stat}, "fail", [reasons[i]]))
    if any(reasons[i] and shown[i] for i in range(len(reasons))):
        verdict.flag("primary", "fail", "disclosive summary statistics published")
    members = np.flatnonzero(mask)[values.notna().to_numpy()]
    verdict.populations = {"dataset": dataset, "table": evidence.table, "n_table_rows": len(table),
                           "cells": {f"count of {values.name}": members}}


def _check_survival(path: Path, evidence: Evidence, verdict: OutputVerdict, rules: RuleSet, table: pd.DataFrame, mask: np.ndarray, dataset: str) -> None:
    from .safe_summary import survival_table

    time = pd.Series(evidence.values.values(table, mask))
    status = pd.Series(evidence.columns[0].values(table, mask))
    expected, reasons = survival_table(time, status, rules)
    if path.suffix.lower() == ".csv":
        problems, blank = compare_grids(path.read_text(), expected.to_csv(index=False))
        if problems or blank is None:
            verdict.flag("reproducible", "fail", (problems or ["shape differs"])[0])
            return
    for i, reason in enumerate(reasons):
        if reason:
            verdict.cells.append(CellVerdict({"time": float(expected["time"].iloc[i])}, "fail", [reason]))
    if any(reasons):
        verdict.flag("primary", "fail", f"{sum(1 for r in reasons if r)} survival rows with fewer than {rules.threshold} at risk")


# The researcher's session shows the gate's verdict at once; it has just computed the same table
# from the same extract rows and expressions (``build_table`` with the gate's rules), so the gate
# reuses it there instead of computing it twice. The airlock's gate, in its own process, never
# sees this and recomputes everything from the extract.
_SAME_PROCESS_TABLE: contextvars.ContextVar = contextvars.ContextVar("sdc_same_process_table", default=None)


def table_cache_key(rules: RuleSet, aggfunc: str, margins: bool, index: list[str], columns: list[str], positions: np.ndarray):
    return (rules, aggfunc, margins, list(index), list(columns), np.asarray(positions, dtype=np.int64).tobytes())


_CHECKERS = {"table": _check_table, "histogram": _check_histogram, "model": _check_model,
             "summary": _check_summary, "survival": _check_survival}


_KIND_OF_METHOD = {"crosstab": "table", "pivot_table": "table", "ols": "model", "logit": "model", "probit": "model",
                   "olsr": "model", "logitr": "model", "probitr": "model", "hist": "histogram",
                   "surv_func": "survival", "describe": "summary"}
_MAGNITUDE_AGGFUNCS = {"sum", "mean", "median", "min", "max", "std", "var"}


def check_file(path: str | Path, evidence: Evidence | str | Path | None, data_loader: DataLoader | None,
               rules: RuleSet | RuleBook | None = None, ledger: Ledger | None = None, dataset: str = "") -> OutputVerdict:
    """Verdict for one output file. ``evidence``: an Evidence, a path to one, or None.

    Never raises: anything that goes wrong while checking makes the output ``fail`` with the reason.
    """
    path = Path(path)
    verdict = OutputVerdict(output=path.name, output_id=path.name.split(".")[0], kind="unknown")
    try:
        _check_file(path, evidence, data_loader, rules, ledger, dataset, verdict)
    except Exception as exc:  # fail closed: an output the gate cannot assess does not pass
        verdict.populations = {}
        verdict.flag("gate", "fail", f"the gate could not check this output: {type(exc).__name__}: {str(exc)[:200]}")
    return verdict


def _expected_kind(evidence: Evidence) -> str | None:
    """The kind the evidence's method makes (a DP method makes ``dp``); None when unknown."""
    if evidence.method.startswith(("dp_", "dp.")):
        return "dp"
    return _KIND_OF_METHOD.get(evidence.method)


def _flag_supplied_variables(evidence: Evidence, verdict: OutputVerdict) -> None:
    """Variables the gate cannot recompute from the extract: fail for magnitudes, review for counts."""
    keys = evidence.index + evidence.columns
    if evidence.kind == "table":
        for v in keys:
            if not v.recomputable:
                verdict.flag("derived", "review", f"grouping variable {v.name}: its values came from the researcher's code "
                                                  "and cannot be recomputed from the extract; a reviewer must check it")
        if evidence.values is not None and not evidence.values.extract_values:
            if (evidence.aggfunc or "count") in _MAGNITUDE_AGGFUNCS:
                verdict.flag("derived", "fail", f"value variable {evidence.values.name}: its numbers are not the extract's "
                                                "(a constant or values set by the researcher's code); magnitudes over them are not released")
            else:
                verdict.flag("derived", "review", f"value variable {evidence.values.name} cannot be recomputed from the extract")
        return
    numbers = [evidence.values] + (evidence.columns if evidence.kind == "model" else [])
    for v in numbers:
        if v is not None and not v.extract_values:
            verdict.flag("derived", "fail", f"variable {v.name}: its numbers are not the extract's (a constant or values "
                                            "set by the researcher's code); the gate cannot recompute this output")
    for v in (evidence.columns if evidence.kind != "model" else []):
        if not v.recomputable:
            verdict.flag("derived", "review", f"variable {v.name} cannot be recomputed from the extract")


def _check_file(path: Path, evidence, data_loader, rules, ledger, dataset: str, verdict: OutputVerdict) -> None:
    if isinstance(evidence, (str, Path)):
        try:
            evidence = Evidence.read(Path(evidence))
        except EvidenceError as exc:
            verdict.flag("evidence", "fail", str(exc))
            for check, status, reason in detection.detect(path, _rules_for(rules, None)):
                verdict.flag(check, status, reason)
            return
    ruleset = _rules_for(rules, evidence)
    for check, status, reason in detection.detect(path, ruleset):
        verdict.flag(check, status, reason)
    if verdict.status == "fail":
        verdict.reasons.insert(0, "blocked before review")
        return
    if evidence is None:
        _generic(path, verdict, ruleset)
        return
    verdict.kind = evidence.kind
    verdict.output_id = evidence.output_id
    verdict.table = evidence.table
    output_name = evidence.output_file
    if path.name != output_name and path.name not in evidence.options.get("files", []):
        verdict.flag("evidence", "fail", f"evidence belongs to {output_name}, not {path.name}")
        return
    recorded = evidence.options.get("sha256", {}).get(path.name, evidence.output_sha256 if path.name == output_name else "")
    if recorded and recorded != sha256_file(path):
        verdict.flag("integrity", "fail", "the file changed after it was made (checksum differs from its evidence)")
        return
    expected_kind = _expected_kind(evidence)
    if expected_kind is not None and expected_kind != evidence.kind:
        verdict.flag("evidence", "fail", f"the evidence calls a {evidence.method} output {evidence.kind!r}: edited evidence")
        return
    checker = _CHECKERS.get(evidence.kind)
    if checker is None:
        # dp or figure: the gate cannot recompute it; the file's own content is still checked
        verdict.flag("evidence", "review", f"outputs of kind {evidence.kind} are checked by a reviewer")
        _generic(path, verdict, ruleset)
        return
    if evidence.kind in ("histogram", "survival") and path.suffix.lower() == ".png":
        verdict.flag("figure", "pass")
    if data_loader is None or not evidence.table or evidence.rows is None:
        # nothing to recompute from: judged as a file without evidence (never better);
        # magnitudes the gate cannot recompute are not released at all
        if data_loader is not None and (evidence.kind != "table" or (evidence.aggfunc or "count") in _MAGNITUDE_AGGFUNCS):
            verdict.flag("reproducible", "fail", "the evidence names no extract rows: statistics over values the gate "
                                                 "cannot recompute are not released (load the data with the session)")
        _generic(path, verdict, ruleset)
        return
    try:
        table, mask = _load_rows(evidence, data_loader)
    except EvidenceError as exc:
        verdict.flag("reproducible", "fail", f"not reproducible: {exc}")
        return
    _flag_supplied_variables(evidence, verdict)
    try:
        checker(path, evidence, verdict, ruleset, table, mask, dataset)
    except (EvidenceError, KeyError, ValueError, TypeError, IndexError) as exc:
        verdict.populations = {}
        verdict.flag("reproducible", "fail", f"recomputation failed: {type(exc).__name__}: {str(exc)[:200]}")
        return
    if verdict.populations and verdict.status != "fail":
        pops = _populations(verdict)
        hits = ledger.attacks(pops, ruleset.threshold) if ledger is not None else []
        for hit in hits:
            verdict.flag("differencing", "fail", hit.reason())
        if not hits:
            verdict.checks.setdefault("differencing", "pass")


def _populations(verdict: OutputVerdict) -> list[Population]:
    p = verdict.populations
    if not p:
        return []
    return [Population(verdict.output_id, label, p["dataset"], p["table"], p["n_table_rows"], np.asarray(members, dtype=np.int64))
            for label, members in p["cells"].items()]


def _is_output(path: Path) -> bool:
    return path.is_file() and not path.name.endswith(EVIDENCE_SUFFIX)


def _embedded_tables(obj, depth: int = 0) -> int:
    """Records of the largest table hidden inside a JSON value (a list of objects, or columns of lists)."""
    if depth > 20:
        return 0
    if isinstance(obj, list):
        own = sum(1 for x in obj if isinstance(x, (dict, list))) if len(obj) >= 10 else 0
        return max([own] + [_embedded_tables(x, depth + 1) for x in obj[:1000]])
    if isinstance(obj, dict):
        lists = [len(v) for v in obj.values() if isinstance(v, list) and len(v) >= 20]
        own = max(lists) if len(lists) >= 2 and len(set(lists)) < len(lists) else 0
        return max([own] + [_embedded_tables(v, depth + 1) for v in obj.values()])
    return 0


def check_evidence_file(path: Path, folder_files: set[str]) -> OutputVerdict | None:
    """A file named like evidence is judged too: it must be evidence the API wrote, beside its output,
    carrying derivations and no data. None when it is; else a failing verdict."""
    verdict = OutputVerdict(output=path.name, output_id=path.name[: -len(EVIDENCE_SUFFIX)], kind="evidence")
    try:
        evidence = Evidence.read(path)
    except EvidenceError as exc:
        verdict.flag("evidence", "fail", f"named as evidence but is not evidence written by the API: {str(exc)[-200:]}")
        return verdict
    except Exception as exc:
        verdict.flag("evidence", "fail", f"unreadable evidence: {type(exc).__name__}")
        return verdict
    if evidence.output_id != verdict.output_id or evidence.output_file not in folder_files:
        verdict.flag("evidence", "fail", "evidence without its output beside it")
    hidden = _embedded_tables({"options": evidence.options, "rules": evidence.rules})
    if hidden or len(evidence.note) > 2000:
        verdict.flag("row_level", "fail", f"the evidence carries data ({hidden} records) besides the derivation")
    return verdict if verdict.status != "pass" else None


def cross_check(verdicts: list[OutputVerdict], threshold: int) -> int:
    """Differencing between the outputs of one request: each output against all the others before it.
    Flags the later output of each differencing pair; returns the number of hits."""
    seen: list[Population] = []
    n = 0
    for verdict in verdicts:
        pops = _populations(verdict)
        for hit in find_pairs(pops, seen, threshold):
            verdict.flag("differencing", "fail", hit.reason())
            n += 1
        seen += pops
    return n


def check_folder(folder: str | Path, data_loader: DataLoader | None, rules: RuleSet | RuleBook | None = None,
                 ledger: Ledger | None = None, dataset: str = "") -> Report:
    """Verdicts for every file under ``folder``; an evidence file is listed when it fails as evidence."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    outputs = []
    files = sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    for path in files:
        if path.name.endswith(EVIDENCE_SUFFIX):
            siblings = {p.name for p in path.parent.iterdir()}
            bad = check_evidence_file(path, siblings)
            if bad is not None:
                outputs.append(bad)
            continue
        if not path.is_file():
            verdict = OutputVerdict(output=path.name, output_id=path.name.split(".")[0], kind="file")
            verdict.flag("file_type", "fail", f"{path.name}: not a regular file")
            outputs.append(verdict)
            continue
        evidence = evidence_path_for(path)
        verdict = check_file(path, evidence, data_loader, rules, ledger, dataset)
        if evidence is None and verdict.kind == "unknown":
            verdict.kind = "file"
        outputs.append(verdict)
    threshold = _rules_for(rules, None).threshold if not isinstance(rules, RuleSet) else rules.threshold
    cross_check(outputs, threshold)
    book_rules = rules.model_dump() if isinstance(rules, RuleSet) else _rules_for(rules, None).model_dump()
    return Report(outputs=outputs, rules=book_rules)


def record_release(report: Report, ledger: Ledger) -> int:
    """Enter the cells of released (passed) outputs into the differencing ledger."""
    added = 0
    for verdict in report.outputs:
        if verdict.status == "pass":
            added += ledger.record(_populations(verdict))
    return added
