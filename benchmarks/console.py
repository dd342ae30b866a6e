"""Time to answer a console page with 100 projects and 1,000 release requests in the registry.

The console's Tornado application is served in this process on loopback (the hub's sign-in is
replaced by a header naming the person: the sign-in is the hub's cost, not the page's). Projects
go through the board's real service; requests are written as the airlock leaves them after the
gate (files, verdicts, reviews), to keep the set-up short. Then ``--pages`` GETs cycle through
the pages each role uses most. Target (issue 13): median under 300 ms.
Baseline: the same GETs of the static stylesheet through the same server (the server's own floor).
Usage: python benchmarks/console.py [--projects 100] [--requests 1000] [--pages 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path


def _build(url: str, projects: int, requests_: int) -> list[int]:
    from enclave import people
    from enclave.board import service
    from enclave.board.requests import ApplicationRequest
    from enclave.registry.base import session_scope, upgrade
    from enclave.registry.models import Project, ReleaseFile, ReleaseRequest, ReleaseSnapshot, Review, Verdict

    upgrade(url)
    today = dt.datetime.now(dt.UTC).date()
    with session_scope(url) as s:
        people.bootstrap_admin(s, "admin", "Ada Admin")
        for u, roles in [("board1", ["board_member"]), ("board2", ["board_member"]), ("board3", ["board_member"]),
                         ("rev1", ["reviewer"]), ("rev2", ["reviewer"]), ("stew", ["steward"])]:
            people.add_person(s, "admin", u, u, roles)
        for i in range(projects):
            people.add_person(s, "admin", f"res{i}", f"Researcher {i}", ["researcher"])
        people.register_source(s, "admin", "school_enrollment", "Schools", stewards=["stew"])
    for i in range(projects):
        with session_scope(url) as s:
            a = service.apply(s, f"res{i}", ApplicationRequest.model_validate({
                "project": f"p{i:03d}", "title": f"Project {i}", "purpose": "console page benchmark", "use_case": "education",
                "researchers": [], "sources": ["school_enrollment"], "variables": {"school_enrollment": ["sex"]},
                "cohort": {}, "k": 5, "dp_epsilon": 1.0, "start_date": today.isoformat(),
                "end_date": (today + dt.timedelta(days=365)).isoformat()}))
            service.open_review(s, "board1", a.id)
            for b in ("board1", "board2", "board3"):
                service.vote(s, b, a.id, "approve")
            service.decide(s, "board1", a.id)
    ids = []
    with session_scope(url) as s:
        from sqlalchemy import select

        from enclave.registry.models import Person

        rev = s.scalars(select(Person).where(Person.username == "rev2")).one()
        slugs = {p.slug: p for p in s.scalars(select(Project))}
        for n in range(requests_):
            i = n % projects
            author = s.scalars(select(Person).where(Person.username == f"res{i}")).one()
            req = ReleaseRequest(project_id=slugs[f"p{i:03d}"].id, author_id=author.id, title=f"Tables {n}",
                                 state="checked" if n % 3 else "partially_reviewed",
                                 submitted_at=dt.datetime.now(dt.UTC))
            for k in range(3):
                f = ReleaseFile(name=f"table{k}.csv", sha256="0" * 64, size=100, context="counts by sex")
                f.verdicts.append(Verdict(status=("pass", "review", "fail")[k], reasons=[], details={}))
                req.files.append(f)
            s.add(req)
            s.flush()
            s.add(ReleaseSnapshot(request_id=req.id, round=1, path=f"{req.id}/r1", checksums={}, extract_version=1))
            if req.state == "partially_reviewed":
                s.add(Review(request_id=req.id, reviewer_id=rev.id, round=1, decision="approve", comments="",
                             file_decisions={}))
            ids.append(req.id)
    return ids


def _serve(url: str, port: int) -> None:
    from tornado import ioloop

    from enclave.console.app import make_app

    asyncio.set_event_loop(asyncio.new_event_loop())
    make_app(url, identify=lambda h: h.request.headers.get("X-Bench-User")).listen(port, address="127.0.0.1")
    ioloop.IOLoop.current().start()


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()

    import requests

    with tempfile.TemporaryDirectory() as scratch:
        os.environ["ENCLAVE_HOME"] = str(Path(scratch) / "var")
        os.environ.pop("ENCLAVE_DATABASE_URL", None)
        from enclave.settings import get_settings

        get_settings.cache_clear()
        url = get_settings().registry_url
        started = time.perf_counter()
        ids = _build(url, args.projects, args.requests)
        print(f"setup_s={time.perf_counter() - started:.1f}  # {args.projects} projects, {len(ids)} requests")
        threading.Thread(target=_serve, args=(url, args.port), daemon=True).start()
        base = f"http://127.0.0.1:{args.port}/services/console/"
        http = requests.Session()
        for _ in range(100):
            try:
                http.get(base + "static/console.css", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        pages = [
            ("rev1", lambda n: f"requests/{ids[n % len(ids)]}"),
            ("rev1", lambda n: "review"),
            ("board1", lambda n: "board"),
            ("board1", lambda n: f"board/applications/{1 + n % args.projects}"),
            ("board1", lambda n: f"board/projects/p{n % args.projects:03d}"),
            ("res0", lambda n: "projects"),
            ("res0", lambda n: "requests"),
            ("stew", lambda n: "steward"),
        ]
        timings: dict[str, list[float]] = {}
        floor = []
        for n in range(args.pages):
            user, path = pages[n % len(pages)]
            target = path(n)
            t0 = time.perf_counter()
            answer = http.get(base + target, headers={"X-Bench-User": user}, timeout=60)
            elapsed = (time.perf_counter() - t0) * 1000
            assert answer.status_code == 200, (target, answer.status_code)
            timings.setdefault(re.sub(r"\d+", "N", target).replace("/", "_"), []).append(elapsed)
            if n % 10 == 0:
                t0 = time.perf_counter()
                http.get(base + "static/console.css")
                floor.append((time.perf_counter() - t0) * 1000)
        every = [t for ts in timings.values() for t in ts]
        print(f"console_page_p50_ms={statistics.median(every):.1f}")
        print(f"console_page_p95_ms={_percentile(every, 95):.1f}")
        for name, ts in sorted(timings.items()):
            print(f"console_page_{name}_p50_ms={statistics.median(ts):.1f}  # p95 {_percentile(ts, 95):.1f}, n={len(ts)}")
        print(f"baseline_static_p50_ms={statistics.median(floor):.1f}  # same server, the stylesheet")


if __name__ == "__main__":
    main()
