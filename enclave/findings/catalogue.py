"""The public catalogue as a static site, rebuilt from the findings' records.

Static on purpose: any web server (or the console) serves it without sign-in, and nothing on
it runs on the server. Every text is escaped by Jinja2's autoescape; the only script is a
separate file that filters the list as a reader types (the pages work without it).
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

MAX_TABLE_ROWS = 500  # a finding's table is a summary; a longer one is linked, not drawn

_env = Environment(loader=PackageLoader("enclave.findings", "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)


def cell(text: str) -> str:
    """A table cell as a reader expects it: ``165.0`` is shown as ``165``; anything else as written."""
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and "e" not in text.lower() else text


_env.filters["cell"] = cell


def facet_slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "other"


def _write(path: Path, text: str) -> None:
    """Write atomically: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _table(path: Path) -> dict[str, Any]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    return {"header": header, "rows": body[:MAX_TABLE_ROWS], "truncated": max(0, len(body) - MAX_TABLE_ROWS)}


def _page(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)


def build(public: Path, records: list[dict[str, Any]]) -> None:
    """Write index, facet pages, one page per finding, the JSON feed and the full records."""
    records = sorted(records, key=lambda r: r["published_at"], reverse=True)
    live = [r for r in records if not r.get("withdrawn")]
    domains = sorted({d for r in live for d in r["domains"]})
    use_cases = sorted({r["use_case"] for r in live})
    facets = {
        "domains": [(d, facet_slug(d), sum(d in r["domains"] for r in live)) for d in domains],
        "use_cases": [(u, facet_slug(u), sum(r["use_case"] == u for r in live)) for u in use_cases],
    }
    _write(public / "style.css", _page("style.css"))
    _write(public / "search.js", _page("search.js"))
    _write(public / "favicon.svg", _page("favicon.svg"))
    _write(public / "index.html", _page("index.html", root=".", heading="Findings", findings=live, facets=facets))
    for name, slug, _ in facets["domains"]:
        chosen = [r for r in live if name in r["domains"]]
        _write(public / "domain" / f"{slug}.html",
               _page("index.html", root="..", heading=f"Findings in {name}", findings=chosen, facets=facets))
    for name, slug, _ in facets["use_cases"]:
        chosen = [r for r in live if r["use_case"] == name]
        _write(public / "use-case" / f"{slug}.html",
               _page("index.html", root="..", heading=f"Findings on {name}", findings=chosen, facets=facets))
    for record in records:
        folder = public / "findings" / record["slug"]
        tables = {}
        if not record.get("withdrawn"):
            tables = {f["name"]: _table(folder / "files" / f["name"]) for f in record["files"] if f["kind"] == "table"}
        _write(folder / "index.html", _page("finding.html", root="../..", r=record, tables=tables))
    _write(public / "findings.json", json.dumps(records, indent=2, ensure_ascii=False))
    _write(public / "feed.json", json.dumps(_feed(live), indent=2, ensure_ascii=False))


def _feed(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON Feed 1.1 (https://jsonfeed.org/version/1.1) of the live findings, newest first."""
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "IDS findings",
        "home_page_url": "index.html",
        "feed_url": "feed.json",
        "items": [
            {
                "id": r["slug"],
                "url": f"findings/{r['slug']}/index.html",
                "title": r["title"],
                "summary": r["question"],
                "content_text": r["summary"] or r["question"],
                "date_published": r["published_at"],
                "tags": [r["use_case"], *r["domains"]],
                "attachments": [
                    {"url": f"findings/{r['slug']}/files/{f['name']}",
                     "mime_type": "text/csv" if f["kind"] == "table" else "image/png"}
                    for f in r["files"]
                ],
                "_ids": {"project": r["project"]["slug"], "request_id": r["request_id"],
                         "release_id": r["checks"]["release_id"]},
            }
            for r in records
        ],
    }
