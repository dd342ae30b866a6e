"""The researcher API used in workspace notebooks.

Inside a workspace the project's extract is mounted read-only (``settings.workspace_data``,
``/data``) and outputs go to ``~/outputs``. Everything that may leave the enclave is made
through the SDC-aware session, which saves each output with its evidence so the airlock gate
can recompute it::

    from enclave import notebook as nb
    acro = nb.session()                      # ACRO-compatible: crosstab, pivot_table, ols, ...
    school = acro.load("school_enrollment")
    acro.crosstab(school.school_name, school.homeless_flag)

DP queries are charged to a local copy of the project's budget for immediate feedback; the
binding charge is made by the gate when a DP output is released (a workspace file can be
edited by its owner, the registry cannot).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from disclosure_control import dp
from disclosure_control.safe import ACRO
from enclave.settings import get_settings


class ExtractNotFound(RuntimeError):
    """No extract is mounted: the notebook is not running in a project workspace."""


def extract_dir() -> Path:
    """The mounted extract (the ``current`` version when given a project folder)."""
    root = get_settings().workspace_data
    if (root / "current" / "manifest.json").exists():
        root = root / "current"
    if not (root / "manifest.json").exists():
        raise ExtractNotFound(f"no extract manifest under {root}: open this notebook from a project workspace")
    return root


@lru_cache(maxsize=1)
def _manifest(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def manifest() -> dict[str, Any]:
    """The extract's manifest: project, version, tables, variables, k reached, checksums, linkage quality."""
    return _manifest(str(extract_dir() / "manifest.json"))


def tables() -> list[str]:
    """Names of the tables in the extract."""
    return sorted(p.stem for p in extract_dir().glob("*.parquet"))


def variables() -> pd.DataFrame:
    """One row per variable: table, name, type and description, from the manifest."""
    rows = []
    for table, info in (manifest().get("tables") or {}).items():
        for name, col in (info.get("columns") or {}).items():
            col = col if isinstance(col, dict) else {"type": col}
            rows.append({"table": table, "variable": name, "type": col.get("type"), "description": col.get("description", "")})
    return pd.DataFrame(rows, columns=["table", "variable", "type", "description"])


def read_table(name: str) -> pd.DataFrame:
    """One extract table as a DataFrame (use ``session().load`` for anything that will be released)."""
    path = extract_dir() / f"{name}.parquet"
    if path.parent != extract_dir() or not path.exists():
        raise KeyError(f"no table {name!r} in the extract; tables: {', '.join(tables())}")
    return pd.read_parquet(path)


def _agencies() -> list[str]:
    """The agencies whose data the extract holds: their output rules apply (the strictest wins)."""
    m = manifest()
    agencies = set(m.get("agencies") or [])
    agencies |= {info["source"]["agency"] for info in (m.get("tables") or {}).values()
                 if isinstance(info, dict) and (info.get("source") or {}).get("agency")}
    return sorted(agencies)


def session(suppress: bool = False, outputs_dir: str | Path | None = None, quiet: bool = False) -> ACRO:
    """An ACRO-compatible SDC session over this project's extract, held to its agencies' rules."""
    out = Path(outputs_dir).expanduser() if outputs_dir else get_settings().workspace_outputs
    out.mkdir(parents=True, exist_ok=True)
    m = manifest()
    return ACRO(
        suppress=suppress,
        outputs_dir=out,
        data_loader=read_table,
        agencies=_agencies(),
        dataset=f"{m.get('project', '')}@{m.get('version', '')}",
        quiet=quiet,
    )


def budget() -> dp.Budget:
    """The workspace's view of the project's DP budget (the release gate makes the binding charge)."""
    m = manifest()
    path = get_settings().workspace_outputs.parent / ".dp_budget.sqlite"
    b = dp.Budget(path, m.get("project", "project"))
    total = float((m.get("conditions") or {}).get("dp_epsilon") or m.get("dp_epsilon") or 0.0)
    if b.total == 0 and total > 0:
        b.set_total(total)
    return b


def _save_dp_output(method: str, value: float, epsilon: float, purpose: str, table: str | None, options: dict[str, Any]) -> Path:
    """Write a DP result with ``dp`` evidence: the gate sends it to a reviewer, the release charges epsilon."""
    import datetime as dt
    import secrets

    from disclosure_control.evidence import Evidence, atomic_write_text, sha256_file

    out = get_settings().workspace_outputs
    output_id = f"dp_{method}_{secrets.token_hex(4)}"
    path = out / f"{output_id}.csv"
    atomic_write_text(path, f"statistic,value\n{purpose},{value!r}\n")
    Evidence(output_id=output_id, output_file=path.name, method=f"dp_{method}", kind="dp", table=table,
             options={"epsilon": float(epsilon), "purpose": purpose, **options}, agencies=_agencies(),
             output_sha256=sha256_file(path), created=dt.datetime.now(dt.UTC).isoformat()).write(out)
    return path


def dp_count(values: Sequence[Any], epsilon: float, purpose: str = "count", table: str | None = None) -> float:
    """A differentially private count, charged to the project's budget and saved for release."""
    result = dp.count(values, epsilon=epsilon, budget=budget(), purpose=purpose)
    _save_dp_output("count", result, epsilon, purpose, table, {})
    return result


def dp_mean(values: Sequence[float], epsilon: float, bounds: tuple[float, float], purpose: str = "mean",
            table: str | None = None) -> float:
    """A differentially private mean with explicit bounds, charged to the project's budget and saved for release."""
    result = dp.mean(values, epsilon=epsilon, bounds=bounds, budget=budget(), purpose=purpose)
    _save_dp_output("mean", result, epsilon, purpose, table, {"bounds": list(bounds)})
    return result
