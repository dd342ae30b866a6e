"""Workspace spawn benchmark: real OIDC provider, hub, proxy and bubblewrap sandboxes on this machine.

Figures:
- spawn_p50_seconds: median over 10 sequential spawns (POST to ready, through the hub REST API)
  of one project workspace; target <= 1.5 s on an idle machine (issue 11; 1.21 s idle and 4.49 s
  at load 5 before the server got its own uid). The load average is printed beside it.
- concurrent_workspaces: workspaces of 20 different users running at once (all started together).
- workspace_rss_mb: median resident memory of one running workspace (the host process with its
  gateway and kernel broker, the server sandbox: bwrap and the Jupyter server; no kernel), while
  the 20 run; 116 MB before (bwrap and the server alone).
- gateway_added_ms: median extra time of one request through the gateway against the same request
  straight to the server's socket (200 requests each, from the host).
Baseline, run side by side: the same Jupyter server stack imported and started without the
sandbox is not possible without a hub, so the baseline is the cost of importing that stack in a
plain Python process (``baseline_server_import_seconds``), measured in this run under this load,
and FIELD_NOTES' 3-4.5 s spawn-to-ready on an idle machine of this kind.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import Progress

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "hub"))

import hub_client as hubclient  # noqa: E402
import hub_world as world  # noqa: E402
from hub_client import free_port_pair  # noqa: E402

SEQUENTIAL_SPAWNS = 10
CONCURRENT = 20
console = Console()


def workspace_rss_mb(runtime_dir: str) -> list[float]:
    """Resident memory (MiB) of each workspace: its host process (gateway, broker) and everything under it."""
    hosts = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "hub_config.gateway.host" in cmdline and any(arg.startswith(runtime_dir) for arg in cmdline):
            hosts.append(proc)
    sizes = []
    for proc in hosts:
        tree = [proc, *proc.children(recursive=True)]
        sizes.append(sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
    return sizes


def _unix_get_ms(socket_path: str, path: str, n: int) -> float:
    """Median milliseconds of ``n`` GETs of ``path`` over a unix socket (a new connection each, as the proxy does)."""
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(socket_path)

    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn = Conn("workspace", timeout=10)
        conn.request("GET", path)
        conn.getresponse().read()
        conn.close()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def baseline_import_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jupyter_server.serverapp, jupyterlab, jupyterhub.singleuser"],
                   check=True, env={**os.environ, "PYTHONPATH": str(REPO / "hub_config" / "single_user" / "pyshim")})
    return time.perf_counter() - started


def gateway_latency(settings, user: str, project: str) -> tuple[float, float]:  # noqa: ANN001
    """Median ms of one request through the running workspace's gateway and straight to its server."""
    import hashlib

    from hub_config.spawner import short_runtime_dir

    name = hashlib.sha256(f"{user}\0{project}".encode()).hexdigest()[:16]
    runtime = short_runtime_dir(str(settings.hub_dir.resolve()))
    path = f"/user/{user}/{project}/api/status"
    return (_unix_get_ms(str(runtime / f"{name}.gw" / "gateway.sock"), path, 200),
            _unix_get_ms(str(runtime / name / "server.sock"), path, 200))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="enclave-spawn-bench-"))
    home = root / "var"
    home.mkdir()
    hub_port = free_port_pair()
    os.environ.update(ENCLAVE_HOME=str(home), ENCLAVE_HUB_PORT=str(hub_port),
                      ENCLAVE_OIDC_PORT=str(free_port_pair(frozenset({hub_port, hub_port + 1}))))
    os.environ.pop("ENCLAVE_DATABASE_URL", None)
    from enclave.settings import get_settings
    from hub_config import launcher, oidc

    settings = get_settings()
    bench_users = [f"r{i:02d}" for i in range(1, CONCURRENT + 1)]
    with console.status("building the registry, projects and extracts..."):
        world.build(home, settings.registry_url)
        world.add_approved_project(home, settings.registry_url, "bench", bench_users)
    passwords = {u: f"pw-{u}-bench" for u in [p[0] for p in world.PEOPLE] + bench_users}
    oidc.write_accounts(settings, [oidc.Account(u, pw) for u, pw in passwords.items()])
    provider = launcher.start_oidc_provider(settings)
    hub = None
    try:
        t0 = time.perf_counter()
        hub = launcher.start_hub(settings)
        hub_start = time.perf_counter() - t0
        url = oidc.public_url(settings)
        load_before = os.getloadavg()[0]

        baseline = baseline_import_seconds()
        alice = hubclient.login(url, "alice", passwords["alice"])
        spawn_times = []
        with Progress(console=console) as progress:
            task = progress.add_task("sequential spawns", total=SEQUENTIAL_SPAWNS)
            for _ in range(SEQUENTIAL_SPAWNS):
                started = time.perf_counter()
                answer = hubclient.start_server(alice, url, "alice", "alpha", timeout=120)
                assert answer.status_code in (201, 202), answer.text
                spawn_times.append(time.perf_counter() - started)
                if len(spawn_times) == SEQUENTIAL_SPAWNS:
                    gateway_ms, direct_ms = gateway_latency(settings, "alice", "alpha")
                hubclient.stop_server(alice, url, "alice", "alpha")
                progress.advance(task)
        load_spawns = os.getloadavg()[0]

        sessions = {u: hubclient.login(url, u, passwords[u]) for u in bench_users}

        def spawn(user: str) -> bool:
            try:
                answer = hubclient.start_server(sessions[user], url, user, "bench", timeout=300)
                return answer.status_code in (201, 202)
            except (TimeoutError, hubclient.SpawnFailed):
                return False

        with console.status(f"starting {CONCURRENT} workspaces at once..."):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENT) as pool:
                ready = sum(pool.map(spawn, bench_users))
            concurrent_wall = time.perf_counter() - t0
        running = [u for u in bench_users
                   if hubclient.api(sessions[u], url, "GET", f"/users/{u}/servers/bench").json().get("ready")]
        from hub_config.spawner import short_runtime_dir

        rss = workspace_rss_mb(str(short_runtime_dir(str(settings.hub_dir.resolve()))))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda u: hubclient.stop_server(sessions[u], url, u, "bench"), bench_users))
    finally:
        if hub is not None:
            hub.stop()
        provider.stop()
        shutil.rmtree(root, ignore_errors=True)

    p50 = statistics.median(spawn_times)
    console.print(f"hub + proxy start: {hub_start:.1f} s; load average at start {load_before:.1f} on {os.cpu_count()} cores")
    console.print(f"spawn to ready (s): min {min(spawn_times):.2f} p50 {p50:.2f} max {max(spawn_times):.2f} "
                  f"(target <= 1.5 s idle; before: 1.21 s idle, 4.49 s at load 5) at load {load_spawns:.1f}")
    console.print(f"one request: {gateway_ms:.2f} ms through the gateway, {direct_ms:.2f} ms straight to the server")
    console.print(f"baseline: importing the server stack without a sandbox took {baseline:.2f} s in this run")
    console.print(f"{ready}/{CONCURRENT} concurrent starts succeeded in {concurrent_wall:.1f} s; {len(running)} running together")
    console.print(f"RSS per running workspace (MiB): median {statistics.median(rss) if rss else 0:.0f}, "
                  f"max {max(rss) if rss else 0:.0f}, over {len(rss)} sandboxes")
    print(f"baseline_server_import_seconds={baseline:.2f}")
    print(f"spawn_p50_seconds={p50:.2f} baseline_idle=1.21 baseline_load5=4.49 load_average={load_spawns:.1f}")
    print(f"concurrent_workspaces={len(running)}")
    print(f"workspace_rss_mb={statistics.median(rss) if rss else 0:.0f} baseline=116")
    print(f"gateway_added_ms={gateway_ms - direct_ms:.2f} through_gateway_ms={gateway_ms:.2f} direct_ms={direct_ms:.2f}")


if __name__ == "__main__":
    main()
