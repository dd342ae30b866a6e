"""The researcher API used in workspace notebooks.

Inside a workspace the project's extract is mounted read-only (``settings.workspace_data``,
``/data``) and outputs go to ``~/outputs``. Everything that may leave the enclave is made
through the SDC-aware session, which saves each output with its evidence so the airlock gate
can recompute it::

    from enclave import notebook as nb
    acro = nb.session()                      # ACRO-compatible: crosstab, pivot_table, ols, ...
    school = acro.load("school_enrollment")
    acro.crosstab(school.school_name, school.homeless_flag)

DP queries (``dp_query``, ``dp_count``, ``dp_mean``) are answered by the DP budget service on
the host, which runs them on the extract and charges the project's budget in the registry; the
signed receipt it returns is the output to release (nothing the workspace writes sets epsilon).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

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


def dp_query(statistic: str, table: str, column: str | None = None, *, epsilon: float,
             bounds: tuple[float, float] | None = None, where: dict[str, Any] | None = None, q: float | None = None,
             purpose: str = "") -> float:
    """A differentially private statistic of the extract, answered and charged by the host's DP service.

    ``statistic`` is count, sum, mean or quantile over ``table.column`` (one record per person),
    restricted by ``where`` (column -> value or list of values); magnitudes need ``bounds``. The
    service runs the query on the extract, charges the project's budget and signs a receipt; the
    receipt is saved in ``~/outputs`` as the output to request for release. Returns the noisy answer.
    """
    from disclosure_control.evidence import atomic_write_text
    from enclave.dp_service import client, receipts

    def plain(value: Any) -> Any:  # numpy scalars (from a DataFrame) as JSON values
        return value.item() if hasattr(value, "item") else value

    filters = {k: [plain(x) for x in (v if isinstance(v, (list, tuple, set)) else [v])] for k, v in (where or {}).items()}
    query = {"statistic": statistic, "table": table, "column": column, "epsilon": epsilon,
             "bounds": list(bounds) if bounds is not None else None, "where": filters, "q": q, "purpose": purpose}
    answer = client.ask({k: v for k, v in query.items() if v is not None})
    receipt = answer["receipt"]
    out = get_settings().workspace_outputs
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"dp_{statistic}_{receipt['payload']['spend_id']}.json"
    atomic_write_text(path, receipts.render(receipt))
    return float(receipt["payload"]["result"])


def dp_count(table: str, column: str | None = None, *, epsilon: float, where: dict[str, Any] | None = None,
             purpose: str = "count") -> float:
    """A differentially private count of persons in ``table`` (with ``column`` present), charged by the DP service."""
    return dp_query("count", table, column, epsilon=epsilon, where=where, purpose=purpose)


def dp_mean(table: str, column: str, *, epsilon: float, bounds: tuple[float, float],
            where: dict[str, Any] | None = None, purpose: str = "mean") -> float:
    """A differentially private mean of ``table.column`` with explicit bounds, charged by the DP service."""
    return dp_query("mean", table, column, epsilon=epsilon, bounds=bounds, where=where, purpose=purpose)
