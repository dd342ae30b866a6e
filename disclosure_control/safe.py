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
from .evidence import Evidence, RowSet, Variable, atomic_write_bytes, atomic_write_text, sha256_file
from .rules import RuleBook, RuleSet, load_rulebook
from .verdicts import OutputVerdict

__all__ = ["ACRO", "SDCSession", "TABLE_ATTR"]

TABLE_ATTR = "sdc_table"


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

    # ------------------------------------------------------------------ data
    def load(self, table: str) -> pd.DataFrame:
        """The extract table, with a row-position index and its provenance attached."""
        if self.data_loader is None:
            raise ValueError("this session has no data_loader")
        frame = self.data_loader(table).reset_index(drop=True)
        frame.attrs[TABLE_ATTR] = table
        self._tables[table] = frame
        return frame

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
    def _provenance(self, series: list[pd.Series]) -> tuple[str | None, np.ndarray | None, pd.DataFrame | None]:
        """Table and row positions the series come from, or (None, None, None).

        Series derived from the table (``pd.cut``, arithmetic) lose pandas ``attrs`` but keep
        the row index; they count as derived variables of the same rows.
        """
        tables = {s.attrs.get(TABLE_ATTR) for s in series} - {None}
        if len(tables) != 1:
            return None, None, None
        name = tables.pop()
        table = self._tables.get(name)
        if table is None:
            return None, None, None
        index = series[0].index
        if any(not s.index.equals(index) for s in series[1:]):
            return None, None, None
        if not pd.api.types.is_integer_dtype(index) or not index.is_unique:
            return None, None, None
        positions = index.to_numpy(dtype=np.int64)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(table)):
            return None, None, None
        return name, np.sort(positions), table

    def _next_id(self, prefix: str = "output") -> str:
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        used = {p.name.split(".")[0] for p in self.outputs_dir.iterdir()}
        n = 0
        while f"{prefix}_{n}" in used:
            n += 1
        return f"{prefix}_{n}"

    def _variables(self, series: list[pd.Series], table, positions) -> list[Variable]:
        if positions is None:
            return [Variable.of(s, None, None) for s in series]
        ordered = [s.loc[positions] if not s.index.equals(pd.Index(positions)) else s for s in series]
        return [Variable.of(s, table, positions) for s in ordered]

    def _finish(self, evidence: Evidence, files: dict[str, bytes]) -> OutputVerdict:
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
        verdicts = [gate.check_file(self.outputs_dir / name, evidence, self.data_loader, self.book or self.rules,
                                    dataset=self.dataset) for name in files]
        verdict = verdicts[0]
        for other in verdicts[1:]:
            for check, status in other.checks.items():
                verdict.flag(check, status)
            verdict.reasons += [r for r in other.reasons if r not in verdict.reasons]
        self.results[evidence.output_id] = verdict
        self._show(verdict)
        return verdict

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
                      aggfunc: str | None, margins: bool) -> pd.DataFrame:
        from .suppression import protect
        from .tables import build_table, cube_key, interior_cells, round_counts

        names = []
        for s in index + columns:
            name = str(s.name) if s.name is not None else f"var{len(names)}"
            while name in names:
                name += "_"
            names.append(name)
        index = [s.rename(n) for s, n in zip(index, names[:len(index)])]
        columns = [s.rename(n) for s, n in zip(columns, names[len(index):])]
        table_name, positions, table = self._provenance(index + columns + ([values] if values is not None else []))
        output_id = self._next_id()
        variables = self._variables(index + columns, table, positions)
        value_var = self._variables([values], table, positions)[0] if values is not None else None
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
                             aggfunc or ("count" if values is None else "mean"), effective, margins=margins)
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
        self._finish(evidence, {f"{output_id}.csv": published.to_csv().encode()})
        return published

    def crosstab(self, index: Any, columns: Any, values: Any = None, rownames: Any = None, colnames: Any = None,
                 aggfunc: str | None = None, margins: bool = False, margins_name: str = "All", dropna: bool = True,
                 normalize: bool | str = False, show_suppressed: bool = False) -> pd.DataFrame:
        """pandas.crosstab with disclosure checks (ACRO signature)."""
        if normalize:
            raise ValueError("normalize is not supported: proportions hide counts; publish the counts")
        if isinstance(aggfunc, (list, tuple)):
            raise ValueError("one aggfunc per output: call crosstab once per statistic")
        return self._table_output("crosstab", self._as_list(index), self._as_list(columns), values, aggfunc, margins)

    def pivot_table(self, data: pd.DataFrame, values: Any = None, index: Any = None, columns: Any = None,
                    aggfunc: Any = "mean", fill_value: Any = None, margins: bool = False, dropna: bool = True,
                    margins_name: str = "All", observed: bool = False, sort: bool = True) -> pd.DataFrame:
        """pandas.pivot_table with disclosure checks (ACRO signature; one values column, one aggfunc)."""
        def cols(spec):
            return [] if spec is None else [data[c] for c in ([spec] if isinstance(spec, str) else spec)]
        if isinstance(values, (list, tuple)):
            if len(values) != 1:
                raise ValueError("one values column per pivot_table output")
            values = values[0]
        if isinstance(aggfunc, (list, tuple)):
            raise ValueError("one aggfunc per output")
        return self._table_output("pivot_table", cols(index), cols(columns), data[values] if values is not None else None,
                                  aggfunc if values is not None else "count", margins)

    # ---------------------------------------------------------------- models
    def _model(self, method: str, endog: pd.Series, exog: pd.DataFrame | pd.Series, add_constant: bool = False):
        from .models import coefficient_table, fit

        exog = exog.to_frame() if isinstance(exog, pd.Series) else exog
        series = [endog] + [exog[c] for c in exog.columns if c != "const"]
        table_name, positions, table = self._provenance(series)
        output_id = self._next_id()
        variables = self._variables(series, table, positions)
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
        return self._model(method, data[lhs.strip()], data[terms], add_constant=True)

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
        table_name, positions, table = self._provenance([series])
        output_id = self._next_id()
        variable = self._variables([series], table, positions)[0]
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

        table_name, positions, table = self._provenance([time, status])
        output_id = self._next_id()
        variables = self._variables([time, status], table, positions)
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
        table_name, positions, table = self._provenance([series])
        output_id = self._next_id()
        variable = self._variables([series], table, positions)[0]
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


ACRO = SDCSession
