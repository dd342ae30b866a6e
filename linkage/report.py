"""The HTML quality report of a linkage run: one self-contained file with embedded PNG charts.

Input is the ``quality.json`` dict from ``linkage.quality``; the report holds aggregates only.
"""
from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in the vault zone
import matplotlib.pyplot as plt  # noqa: E402

CHART_TITLES = {
    "match_weights": "Match-weight histogram of scored pairs",
    "parameters": "m and u probabilities per comparison level",
    "cluster_sizes": "Cluster-size distribution",
    "source_pairs": "Match rates per pair of sources",
}


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def chart_match_weights(quality: dict[str, Any]) -> str:
    import math

    bins = quality["match_weight_histogram"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar([b["bin_start"] for b in bins], [b["pairs"] for b in bins], width=1.0, align="edge", color="#4477aa")
    p = quality["threshold_match_probability"]
    if p < 1:
        ax.axvline(math.log2(p / (1 - p)), color="#cc3311", linestyle="--", label=f"threshold p = {p}")
        ax.legend()
    ax.set_yscale("log")
    ax.set_xlabel("match weight (log2 Bayes factor)")
    ax.set_ylabel("pairs (log scale)")
    return _png(fig)


def chart_parameters(quality: dict[str, Any]) -> str:
    params = [p for p in quality["parameters"] if p["m"] is not None and p["u"] is not None]
    labels = [f"{p['comparison']}: {str(p['level'])[:40]}" for p in params]
    fig, ax = plt.subplots(figsize=(9, max(3, 0.28 * len(params))))
    y = range(len(params))
    ax.barh([i - 0.2 for i in y], [p["m"] for p in params], height=0.4, label="m", color="#228833")
    ax.barh([i + 0.2 for i in y], [p["u"] for p in params], height=0.4, label="u", color="#ee6677")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("probability (log scale)")
    ax.legend()
    return _png(fig)


def chart_cluster_sizes(quality: dict[str, Any]) -> str:
    sizes = quality["cluster_sizes"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar([s["size"] for s in sizes], [s["clusters"] for s in sizes], color="#66ccee")
    ax.set_yscale("log")
    ax.set_xlabel("records in cluster")
    ax.set_ylabel("clusters (log scale)")
    return _png(fig)


def chart_source_pairs(quality: dict[str, Any]) -> str:
    matrix = quality["sources"]["pair_rates"]
    names = list(matrix)
    values = [[matrix[a][b] for b in names] for a in names]
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(names), 1.0 + 0.6 * len(names)))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{values[i][j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if values[i][j] > 0.6 else "black")
    ax.set_xlabel("linked to a record of")
    ax.set_ylabel("records of")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def render(quality: dict[str, Any]) -> str:
    charts = {
        "match_weights": chart_match_weights(quality),
        "parameters": chart_parameters(quality),
        "cluster_sizes": chart_cluster_sizes(quality),
        "source_pairs": chart_source_pairs(quality),
    }
    run = quality.get("run", {})
    est = quality["estimated"]
    sections = [
        f"<h1>Linkage quality report</h1><p>Run <code>{html.escape(str(run.get('run_id', '?')))}</code>, "
        f"engine {html.escape(str(run.get('engine', '?')))}, model {html.escape(str(run.get('model', '?')))}.</p>",
        _table(["figure", "value"], [
            ["records", f"{quality['records']:,}"],
            ["clusters (persons)", f"{quality['clusters']:,}"],
            ["cluster threshold (match probability)", quality["threshold_match_probability"]],
            ["scored pairs kept", f"{est['scored_pairs']:,}"],
            ["pairs at or above threshold", f"{est['accepted_pairs']:,}"],
            ["estimated false-match rate (model)", _pct(est["estimated_false_match_rate"])],
            ["estimated missed-match rate among scored pairs (model)", _pct(est["estimated_missed_match_rate"])],
        ]),
        "<p class='note'>Estimated rates take each pair's match probability at its word: they are as good as the "
        "model's calibration, and missed matches that no blocking rule brought into comparison are not counted.</p>",
    ]
    truth = quality.get("ground_truth")
    if truth:
        rows = [
            ["pairwise precision", f"{truth['precision']:.4f}"],
            ["pairwise recall", f"{truth['recall']:.4f}"],
            ["pairwise F1", f"{truth['f1']:.4f}"],
            ["true pairs", f"{truth['true_pairs']:,}"],
            ["ground-truth rows matched to records", f"{truth['ground_truth_rows_matched']:,} of {truth['ground_truth_rows']:,}"],
        ]
        if "blocking_recall" in truth:
            rows.append(["blocking recall (true pairs any rule compares)", f"{truth['blocking_recall']:.4f}"])
        sections += ["<h2>Measured against ground truth</h2>", _table(["figure", "value"], rows)]
    per_source = quality["sources"]["per_source"]
    sections += [
        "<h2>Match rates per source</h2>",
        _table(["source", "records", "linked to another record"],
               [[s, f"{v['records']:,}", _pct(v["linked_rate"])] for s, v in per_source.items()]),
    ]
    intake = quality.get("intake") or {}
    if intake:
        rows = []
        for source, v in intake.items():
            flagged = "; ".join(f"{col}: " + ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
                                for col, reasons in sorted(v["flags"].items()))
            rows.append([source, f"{v['rows_read']:,}", f"{v['rows_accepted']:,}", f"{v['rows_quarantined']:,}",
                         f"{v['rows_flagged']:,}", flagged or "-"])
        sections += ["<h2>Intake per source (live deposits)</h2>",
                     _table(["source", "rows read", "accepted", "quarantined", "kept with a field nulled",
                             "nulled fields (column: reason count)"], rows)]
    for key, title in CHART_TITLES.items():
        sections.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{charts[key]}'>")
    sections.append(
        "<h2>Model parameters</h2>"
        + _table(["comparison", "level", "m", "u"],
                 [[p["comparison"], p["level"], f"{p['m']:.4g}" if p["m"] is not None else "",
                   f"{p['u']:.4g}" if p["u"] is not None else ""] for p in quality["parameters"]])
    )
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}"
             "img{max-width:100%}.note{color:#555;font-size:90%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Linkage quality</title><style>{style}</style>"
            f"</head><body>{''.join(sections)}</body></html>")


def write_report(quality: dict[str, Any], path: Path | str) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render(quality))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
