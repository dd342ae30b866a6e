"""The researcher's SDC-aware output API, with ACRO's names and signatures.

Code written for ACRO ports by changing the import::

    from disclosure_control.safe import ACRO
    acro = ACRO(suppress=True, outputs_dir="outputs", data_loader=load)
    df = acro.load("births")                 # records carry their provenance
    acro.crosstab(df.year, df.grant_type)

Every call returns its result, writes ``<outputs>/<output_id>.<ext>`` and
``<outputs>/<output_id>.evidence.json`` (the exact derivation: table, rows, variables,
aggregation, treatment), and shows the verdict at once. The verdict comes from the gate
itself (``gate.check_file``), so the researcher sees what the airlock will decide.
With ``suppress=True`` disclosive cells are suppressed (primary and secondary,
tau-ARGUS) or rounded, as the rules say, before the output is written.
"""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from . import gate
from .provenance import TABLE_BLOCK, attach_row_ids, frame_row_ids, row_ids
from .evidence import Evidence, RowSet, Variable, atomic_write_bytes, atomic_write_text, sha256_file
from .rules import RuleBook, RuleSet, load_rulebook
from .verdicts import OutputVerdict

__all__ = ["ACRO", "SDCSession", "TABLE_ATTR", "Refused"]

TABLE_ATTR = "sdc_table"


class Refused(ValueError):
    """A request the API does not make (say why); raised to the researcher."""


class SDCSession:
    def __init__(self, config: str | None = "default", suppress: bool = False, *,
                 outputs_dir: str | Path = "outputs", data_loader: Callable[[str], pd.DataFrame] | None = None,
                 rules: RuleSet | RuleBook | str | Path | None = None, agencies: Sequence[str] = (),
                 rounding: str | None = None, dataset: str = "", quiet: bool = False):
        if isinstance(rules, (str, Path)):
            rules = load_rulebook(rules)
        self.book = rules if isinstance(rules, RuleBook) else None
        base = rules if isinstance(rules, RuleSet) else (self.book or load_rulebook()).for_agencies(agencies)
        if rounding:
            base = base.model_copy(update={"rounding": rounding})
        self.rules = base
        self.agencies = list(agencies)
        self.suppress = suppress
        self.outputs_dir = Path(outputs_dir)
        self.data_loader = data_loader
        self.dataset = dataset
        self.quiet = quiet
        self.results: dict[str, OutputVerdict] = {}
        self._tables: dict[str, pd.DataFrame] = {}
        self._blocks: dict[str, int] = {}

    # ------------------------------------------------------------------ data
    def load(self, table: str) -> pd.DataFrame:
        """The extract table, each record carrying its row id (index ``sdc_row_id`` and column ``sdc_row``).

        The row ids travel with the records through filters, sorts, ``reset_index``, merges and
        concatenation, so every output names exactly the records it used.
        """
        if self.data_loader is None:
            raise ValueError("this session has no data_loader")
        frame = self.data_loader(table).reset_index(drop=True)
        if table not in self._blocks:
            self._blocks[table] = len(self._blocks)
        self._tables[table] = frame
        loaded = attach_row_ids(frame, self._blocks[table])
        loaded.attrs[TABLE_ATTR] = table
        return loaded

    read = load

    def enable_suppression(self) -> None:
        self.suppress = True

    def disable_suppression(self) -> None:
        self.suppress = False

    def enable_rounding(self, base: int | None = None) -> None:
        self.rules = self.rules.model_copy(update={"rounding": "round", **({"rounding_base": base} if base else {})})

    def disable_rounding(self) -> None:
        self.rules = self.rules.model_copy(update={"rounding": "none"})

    # ------------------------------------------------------------ provenance
    def _provenance(self, series: list[pd.Series], frame: pd.DataFrame | None = None):
        """(table name, sorted row positions, table, order of the series' rows), or Nones.

        The row ids come from the frame given, else from the series (their row-id index, or the
        frame they are a column of); series without ids of their own must be aligned with one
        that has them (pandas aligns them by index too). Only a claim: the gate verifies it.
        """
        none = (None, None, None, None)
        series = [s for s in series if s is not None]
        if not series:
            return none
        ids = frame_row_ids(frame) if frame is not None else None
        if ids is None:
            found = [row_ids(s) for s in series]
            anchor = next((i for i, f in enumerate(found) if f is not None), None)
            if anchor is None:
                return none
            ids = found[anchor]
            for s, f in zip(series, found):
                if len(s) != len(ids):
                    return none
                if f is not None and not np.array_equal(f, ids):
                    return none
                if f is None and not s.index.equals(series[anchor].index):
                    return none
        if any(len(s) != len(ids) for s in series) or len(ids) == 0:
            return none
        blocks = np.unique(ids // TABLE_BLOCK)
        if len(blocks) != 1:
            return none
        name = next((t for t, b in self._blocks.items() if b == int(blocks[0])), None)
        table = self._tables.get(name) if name is not None else None
        if table is None:
            return none
        positions = ids - np.int64(blocks[0]) * TABLE_BLOCK
        if positions.min() < 0 or positions.max() >= len(table):
            return none
        if len(positions) > 1 and np.all(positions[1:] > positions[:-1]):
            return name, positions, table, None
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        if len(positions) > 1 and not np.all(positions[1:] > positions[:-1]):
            return none   # a record used twice (a one-to-many merge): not a set of records
        return name, positions, table, order

    def _next_id(self, prefix: str = "output") -> str:
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        used = {p.name.split(".")[0] for p in self.outputs_dir.iterdir()} | set(self.results)
        n = 0
        while f"{prefix}_{n}" in used:
            n += 1
        return f"{prefix}_{n}"

    def _variables(self, series: list[pd.Series], table, positions, order=None) -> list[Variable]:
        if positions is None:
            return [Variable.of(s, None, None) for s in series]
        ordered = [(s.iloc[order] if order is not None else s).reset_index(drop=True) for s in series]
        return [Variable.of(s, table, positions) for s in ordered]

    def _finish(self, evidence: Evidence, files: dict[str, bytes], shared=None) -> OutputVerdict:
        for name, data in files.items():
            atomic_write_bytes(self.outputs_dir / name, data)
        digests = {name: sha256_file(self.outputs_dir / name) for name in files}
        evidence.output_sha256 = digests[evidence.output_file]
        evidence.options["sha256"] = digests
        evidence.options["files"] = list(files)
        evidence.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        evidence.rules = self.rules.model_dump()
        evidence.agencies = self.agencies
        evidence.write(self.outputs_dir)
        token = gate._SAME_PROCESS_TABLE.set(shared)
        try:
            verdicts = [gate.check_file(self.outputs_dir / name, evidence, self.data_loader, self.book or self.rules,
                                        dataset=self.dataset) for name in files]
        finally:
            gate._SAME_PROCESS_TABLE.reset(token)
        verdict = verdicts[0]
        for other in verdicts[1:]:
            for check, status in other.checks.items():
                verdict.flag(check, status)
            verdict.reasons += [r for r in other.reasons if r not in verdict.reasons]
        self.results[evidence.output_id] = verdict
        self._show(verdict)
        return verdict

    def _guarded(self, fn, *args, **kwargs):
        """Run one output; anything that goes wrong becomes a ``fail`` verdict shown to the researcher."""
        try:
            return fn(*args, **kwargs)
        except Refused:
            raise
        except Exception as exc:
            output_id = self._next_id("failed")
            verdict = OutputVerdict(output="", output_id=output_id, kind="unknown")
            verdict.flag("api", "fail", f"the output could not be made: {type(exc).__name__}: {str(exc)[:200]}")
            self.results[output_id] = verdict
            self._show(verdict)
            return None

    def _show(self, verdict: OutputVerdict) -> None:
        if self.quiet:
            return
        from rich.console import Console

        colour = {"pass": "green", "review": "yellow", "fail": "red"}[verdict.status]
        console = Console()
        console.print(f"[bold {colour}]{verdict.status.upper()}[/] {verdict.output_id} ({verdict.kind})")
        for reason in verdict.reasons[:6]:
            console.print(f"  - {reason}")

    # ---------------------------------------------------------------- tables
    @staticmethod
    def _as_list(obj) -> list[pd.Series]:
        if obj is None:
            return []
        if isinstance(obj, pd.Series):
            return [obj]
        if isinstance(obj, pd.DataFrame):
            return [obj[c] for c in obj.columns]
        return list(obj)

    def _table_output(self, method: str, index: list[pd.Series], columns: list[pd.Series], values: pd.Series | None,
                      aggfunc: str | None, margins: bool, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        from .suppression import protect
        from .tables import build_table, cube_key, interior_cells, round_counts

        if not index:
            raise Refused("a table needs at least one row variable")
        # provenance first: renaming a series detaches it from the frame it came from
        table_name, positions, table, order = self._provenance(index + columns + ([values] if values is not None else []), frame)
        names = []
        for s in index + columns:
            name = str(s.name) if s.name is not None else f"var{len(names)}"
            while name in names or (values is not None and name == str(values.name)):
                name += "_"
            names.append(name)
        index = [s.rename(n) for s, n in zip(index, names[:len(index)])]
        columns = [s.rename(n) for s, n in zip(columns, names[len(index):])]
        output_id = self._next_id()
        variables = self._variables(index + columns, table, positions, order)
        value_var = self._variables([values], table, positions, order)[0] if values is not None else None
        rows = RowSet.from_positions(positions, len(table)) if positions is not None else None
        if positions is not None:
            # the very reconstruction the gate will use, so both compute the same table
            mask = rows.mask()
            keys = pd.DataFrame({v.name: v.values(table, mask) for v in variables})
            vals = pd.Series(value_var.values(table, mask), name=value_var.name) if values is not None else None
        else:
            keys = pd.DataFrame({s.name: s.to_numpy() for s in index + columns})
            vals = values
        rounding = self.rules.rounding if values is None else "none"
        effective = self.rules
        if rounding == "redact_round":
            effective = self.rules.model_copy(update={"threshold": min(self.rules.threshold, self.rules.redact_at_or_below + 1)})
        idx_names, col_names = names[:len(index)], names[len(index):]
        result = build_table(keys, idx_names, col_names, None if vals is None else vals.reset_index(drop=True),
                             aggfunc or ("count" if values is None else "mean"), effective, margins=margins,
                             want_populations=positions is not None)
        shared = None
        if positions is not None:
            shared = (gate.table_cache_key(effective, result.aggfunc, margins, idx_names, col_names, positions), result)
        published = result.published.astype(float)
        if rounding != "none":
            published = round_counts(published, effective, margins)
        treatment = {"rounding": rounding, "suppressed": False}
        if self.suppress and result.disclosive.to_numpy().any():
            value_frame = result.counts if (values is None or result.aggfunc != "sum") else result.published
            cells, labels = interior_cells(value_frame, idx_names, col_names)
            primary = np.array([bool(result.disclosive.at[l]) for l in labels])
            protected = protect(cells, idx_names + col_names, primary, effective.threshold, effective.secondary_safety_range)
            flags = dict(zip(protected.cube[idx_names + col_names].itertuples(index=False, name=None), protected.cube["suppressed"]))
            mask = pd.DataFrame(False, index=published.index, columns=published.columns)
            for r in published.index:
                for c in published.columns:
                    mask.at[r, c] = bool(flags.get(cube_key(r, c, idx_names, col_names), result.disclosive.at[r, c]))
            published = published.mask(mask)
            treatment.update(suppressed=True, secondary=protected.secondary, solver=protected.solver)
        evidence = Evidence(output_id=output_id, output_file=f"{output_id}.csv", method=method, kind="table",
                            table=table_name, rows=rows, index=variables[:len(index)], columns=variables[len(index):],
                            values=value_var, aggfunc=result.aggfunc, margins=margins, options=treatment)
        self._finish(evidence, {f"{output_id}.csv": published.to_csv().encode()}, shared)
        return published

    @staticmethod
    def _aggfuncs(aggfunc) -> list:
        if isinstance(aggfunc, (list, tuple)):
            if not aggfunc:
                raise Refused("aggfunc: an empty list")
            return list(aggfunc)
        return [aggfunc]

    @staticmethod
    def _aggfunc_name(aggfunc) -> str | None:
        if aggfunc is None or isinstance(aggfunc, str):
            return aggfunc
        name = getattr(aggfunc, "__name__", None)
        if name in ("len",):
            return "count"
        if name in ("amin", "amax", "nanmin", "nanmax", "nanmean", "nansum", "nanmedian", "nanstd", "nanvar"):
            return name.removeprefix("nan").removeprefix("a") if name.startswith(("nan", "amin", "amax")) else name
        return name

    def _several(self, method: str, index, columns, values_list: list, aggfuncs: list, margins: bool, frame=None) -> pd.DataFrame | None:
        """One checked output per (statistic, values column); the result joined as pandas/ACRO show it."""
        parts, keys = [], []
        for agg in aggfuncs:
            for values in values_list:
                name = self._aggfunc_name(agg)
                part = self._guarded(self._table_output, method, index, columns, values,
                                     name if values is not None else "count", margins, frame)
                if part is None:
                    return None
                if values is not None and not columns and part.shape[1] == 1:
                    part = part.set_axis([values.name], axis=1)   # pandas names the column after the values
                parts.append(part)
                keys.append((name,) if len(values_list) == 1 else (name, str(values.name)))
        if len(parts) == 1:
            return parts[0]
        if all(len(k) == 1 for k in keys) and len(values_list) == 1:
            return pd.concat(parts, axis=1, keys=[k[0] for k in keys])
        if len(aggfuncs) == 1:
            return pd.concat(parts, axis=1, keys=[k[-1] for k in keys]) if columns else pd.concat(parts, axis=1)
        return pd.concat(parts, axis=1, keys=[k[0] for k in keys]) if not columns else pd.concat(parts, axis=1, keys=keys)

    def crosstab(self, index: Any, columns: Any, values: Any = None, rownames: Any = None, colnames: Any = None,
                 aggfunc: Any = None, margins: bool = False, margins_name: str = "All", dropna: bool = True,
                 normalize: bool | str = False, show_suppressed: bool = False) -> pd.DataFrame | None:
        """pandas.crosstab with disclosure checks (ACRO signature; an aggfunc list gives one checked output each)."""
        if normalize:
            raise Refused("normalize is not supported: proportions hide counts; publish the counts")
        return self._several("crosstab", self._as_list(index), self._as_list(columns), [values], self._aggfuncs(aggfunc), margins)

    def pivot_table(self, data: pd.DataFrame, values: Any = None, index: Any = None, columns: Any = None,
                    aggfunc: Any = "mean", fill_value: Any = None, margins: bool = False, dropna: bool = True,
                    margins_name: str = "All", observed: bool = False, sort: bool = True) -> pd.DataFrame | None:
        """pandas.pivot_table with disclosure checks (ACRO signature; lists of values and aggfuncs accepted)."""
        def cols(spec):
            return [] if spec is None else [data[c] for c in ([spec] if not isinstance(spec, (list, tuple)) else spec)]
        values_list = cols(values) or [None]
        return self._several("pivot_table", cols(index), cols(columns), values_list, self._aggfuncs(aggfunc), margins, data)

    # ---------------------------------------------------------------- models
    def _model(self, method: str, endog: pd.Series, exog: pd.DataFrame | pd.Series, add_constant: bool = False,
               frame: pd.DataFrame | None = None):
        from .models import coefficient_table, fit

        exog = exog.to_frame() if isinstance(exog, pd.Series) else exog
        series = [endog] + [exog[c] for c in exog.columns if c != "const"]
        table_name, positions, table, order = self._provenance(series, frame)
        output_id = self._next_id()
        variables = self._variables(series, table, positions, order)
        design = exog[[c for c in exog.columns if c != "const"]].copy()
        constant = add_constant or "const" in exog.columns
        if constant:  # the constant always first, so the gate's refit lists terms in the same order
            design.insert(0, "const", 1.0)
        result = fit(method, endog, design)
        coefficients = coefficient_table(result)
        evidence = Evidence(output_id=output_id, output_file=f"{output_id}.csv", method=method, kind="model",
                            table=table_name, rows=RowSet.from_positions(positions, len(table)) if positions is not None else None,
                            values=variables[0], columns=variables[1:], options={"add_constant": constant})
        self._finish(evidence, {f"{output_id}.csv": coefficients.to_csv().encode()})
        return result

    def ols(self, endog: Any, exog: Any = None, missing: str = "none", hasconst: Any = None, **kwargs):
        return self._model("ols", endog, exog)

    def logit(self, endog: Any, exog: Any = None, missing: str | None = None, check_rank: bool = True):
        return self._model("logit", endog, exog)

    def probit(self, endog: Any, exog: Any = None, missing: str | None = None, check_rank: bool = True):
        return self._model("probit", endog, exog)

    def _formula(self, method: str, formula: str, data: pd.DataFrame):
        names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula)
        lhs, rhs = formula.split("~", 1)
        terms = [t.strip() for t in rhs.split("+") if t.strip() and t.strip() != "1"]
        for t in terms + [lhs.strip()]:
            if t not in data.columns:
                raise ValueError(f"formula term {t!r}: only plain column names are supported (derive columns first)")
        del names
        return self._model(method, data[lhs.strip()], data[terms], add_constant=True, frame=data)

    def olsr(self, formula: str, data: pd.DataFrame, subset=None, drop_cols=None, *args, **kwargs):
        return self._formula("ols", formula, data)

    def logitr(self, formula: str, data: pd.DataFrame, subset=None, drop_cols=None, *args, **kwargs):
        return self._formula("logit", formula, data)

    def probitr(self, formula: str, data: pd.DataFrame, subset=None, drop_cols=None, *args, **kwargs):
        return self._formula("probit", formula, data)

    # --------------------------------------------------------------- figures
    def hist(self, data: pd.DataFrame, column: str, by_val: Any = None, grid: bool = True, xlabelsize: int | None = None,
             xrot: float | None = None, ylabelsize: int | None = None, yrot: float | None = None, axis: Any = None,
             sharex: bool = False, sharey: bool = False, figsize: tuple | None = None, layout: tuple | None = None,
             bins: int | Any = 10, backend: str | None = None, legend: bool = False, filename: str = "histogram.png"):
        """Histogram saved as PNG plus the CSV table it plots; both are checked."""
        from .figures import histogram_reasons, histogram_table, plot_histogram

        series = data[column]
        table_name, positions, table, order = self._provenance([series], data)
        output_id = self._next_id()
        variable = self._variables([series], table, positions, order)[0]
        edges_from_data = np.ndim(bins) == 0
        hist = histogram_table(series, bins)
        edges = list(hist["bin_lower"]) + [float(hist["bin_upper"].iloc[-1])]
        suppressed = np.zeros(len(hist), dtype=bool)
        if self.suppress:
            reasons, _ = histogram_reasons(hist, self.rules, edges_from_data)
            suppressed = reasons != ""
            hist["count"] = hist["count"].astype(float).mask(suppressed)
        png = self.outputs_dir / f"{output_id}.png"
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.outputs_dir / f".{output_id}.png.tmp"
        plot_histogram(hist, tmp, title=str(column))
        png_bytes = tmp.read_bytes()
        tmp.unlink()
        evidence = Evidence(output_id=output_id, output_file=png.name, method="hist", kind="histogram", table=table_name,
                            rows=RowSet.from_positions(positions, len(table)) if positions is not None else None,
                            values=variable, options={"edges": edges, "edges_from_data": bool(edges_from_data),
                                                      "suppressed_bins": suppressed.tolist()})
        self._finish(evidence, {png.name: png_bytes, f"{output_id}.csv": hist.to_csv(index=False).encode()})
        return hist

    def surv_func(self, time: Any, status: Any, output: str, entry: Any = None, title: Any = None,
                  freq_weights: Any = None, exog: Any = None, bw_factor: float = 1.0, filename: str = "kaplan-meier.png"):
        """Kaplan-Meier table (rows with fewer than threshold at risk are blanked in suppress mode)."""
        from .safe_summary import survival_table

        table_name, positions, table, order = self._provenance([time, status])
        output_id = self._next_id()
        variables = self._variables([time, status], table, positions, order)
        surv, reasons = survival_table(time, status, self.rules)
        if self.suppress:
            surv = surv.astype(float).mask(pd.Series([bool(r) for r in reasons], index=surv.index), axis=0)
        evidence = Evidence(output_id=output_id, output_file=f"{output_id}.csv", method="surv_func", kind="survival",
                            table=table_name, rows=RowSet.from_positions(positions, len(table)) if positions is not None else None,
                            values=variables[0], columns=variables[1:], options={"output": output})
        self._finish(evidence, {f"{output_id}.csv": surv.to_csv(index=False).encode()})
        return surv

    def describe(self, data: pd.Series | pd.DataFrame, column: str | None = None) -> pd.DataFrame:
        """Summary statistics of one variable; min/max only when top/bottom-coded."""
        from .safe_summary import describe_table

        series = data[column] if isinstance(data, pd.DataFrame) else data
        table_name, positions, table, order = self._provenance([series], data if isinstance(data, pd.DataFrame) else None)
        output_id = self._next_id()
        variable = self._variables([series], table, positions, order)[0]
        summary, reasons = describe_table(series, self.rules)
        if self.suppress:
            summary = summary.mask(pd.Series([bool(r) for r in reasons], index=summary.index), axis=0)
        evidence = Evidence(output_id=output_id, output_file=f"{output_id}.csv", method="describe", kind="summary",
                            table=table_name, rows=RowSet.from_positions(positions, len(table)) if positions is not None else None,
                            values=variable)
        self._finish(evidence, {f"{output_id}.csv": summary.to_csv().encode()})
        return summary

    # --------------------------------------------------------------- session
    def print_outputs(self) -> str:
        lines = [f"{oid}: {v.status} {'; '.join(v.reasons)}" for oid, v in self.results.items()]
        text = "\n".join(lines)
        if not self.quiet:
            print(text)
        return text

    def finalise(self, path: str | None = None, ext: str = "json") -> None:
        """Write the verdict report and ACRO's results.json (default: ``<outputs>_reports``).

        Not into the outputs folder itself: the gate judges every file there.
        """
        from .report import write_reports

        folder = Path(path) if path else self.outputs_dir.with_name(self.outputs_dir.name + "_reports")
        write_reports(self.outputs_dir, list(self.results.values()), folder, self.rules)


def _never_raise(method):
    """A public output method whose unexpected errors become a shown ``fail`` verdict, never a traceback."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return self._guarded(method, self, *args, **kwargs)

    return wrapper


for _name in ("crosstab", "pivot_table", "ols", "logit", "probit", "olsr", "logitr", "probitr", "hist",
              "surv_func", "describe"):
    setattr(SDCSession, _name, _never_raise(getattr(SDCSession, _name)))
del _name

ACRO = SDCSession
