"""Latency of a DP query through the DP budget service, as a workspace process sees it.

A real service process (``python -m enclave.dp_service``) on a unix socket, asked by a process
that dropped to a workspace's uid and gid; each query reads the extract table, charges the
registry budget in one transaction, signs a receipt and appends an audit event. Baseline, in the
same run: the same diffprivlib mean over the same column, read from the same Parquet file, in the
caller's own process (what the workspace did before, uncharged and unsigned).
Usage: python benchmarks/dp_service.py [--rows 200000] [--queries 30]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "hub"))

import hub_world as world  # noqa: E402

QUERY = {"statistic": "mean", "table": "births", "column": "birth_weight", "epsilon": 0.001, "bounds": [500, 6000]}


def _as_workspace(uid: int, gid: int, sock: Path, n: int) -> list[float]:
    """Milliseconds per query, asked one after another by a forked process running as (uid, gid)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            from enclave.dp_service import client

            times = []
            for _ in range(n):
                start = time.perf_counter()
                client.ask(QUERY, str(sock))
                times.append((time.perf_counter() - start) * 1000)
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(times))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the workspace-side client failed")
    return json.loads(data)


def _baseline(table: Path, n: int) -> list[float]:
    from diffprivlib.accountant import BudgetAccountant
    from diffprivlib.tools import mean

    times = []
    for _ in range(n):
        start = time.perf_counter()
        values = pd.read_parquet(table)["birth_weight"].to_numpy(dtype=float)
        mean(values, epsilon=QUERY["epsilon"], bounds=tuple(QUERY["bounds"]), accountant=BudgetAccountant())
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dp-bench-", dir="/tmp"))
    os.chmod(root, 0o711)
    home = root / "var"
    home.mkdir()
    os.environ["ENCLAVE_HOME"] = str(home)
    os.environ.pop("ENCLAVE_DATABASE_URL", None)
    from sqlalchemy import select

    from enclave.registry.base import dispose_engines, session_scope
    from enclave.registry.models import DPBudget, Person, Project
    from enclave.settings import get_settings

    get_settings.cache_clear()
    service = None
    try:
        world.build(home, get_settings().registry_url)
        table = world.World(home, world.PROJECTS).extract_dir("alpha") / "births.parquet"
        os.chmod(table.parent, 0o755)
        os.chmod(table, 0o644)
        rng = np.random.default_rng(1)
        pd.DataFrame({"pseudonym": [f"p{i:08d}" for i in range(args.rows)],
                      "birth_weight": rng.integers(1500, 4500, args.rows)}).to_parquet(table, index=False)
        with session_scope() as session:
            alpha = session.scalars(select(Project).where(Project.slug == "alpha")).one()
            session.get(DPBudget, alpha.id).epsilon_total = 1e6
            uid = session.scalars(select(Person.posix_uid).where(Person.username == "alice")).one()
            gid = alpha.posix_gid
        dispose_engines()
        sock = root / "run" / "dp.sock"
        service = subprocess.Popen([sys.executable, "-m", "enclave.dp_service", f"--socket={sock}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not sock.is_socket():
            if service.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the DP service did not start")
            time.sleep(0.05)
        _as_workspace(uid, gid, sock, 2)  # warm: the service's first query imports diffprivlib
        served = _as_workspace(uid, gid, sock, args.queries)
        base = _baseline(table, args.queries)
        print(f"rows={args.rows}")
        print(f"queries={args.queries}")
        print(f"dp_service_query_ms_median={statistics.median(served):.1f}")
        print(f"baseline_inprocess_diffprivlib_ms_median={statistics.median(base):.1f}")
        print(f"dp_service_overhead_ms_median={statistics.median(served) - statistics.median(base):.1f}")
    finally:
        if service is not None:
            service.terminate()
            service.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
