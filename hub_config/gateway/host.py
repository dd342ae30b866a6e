"""The host side of one workspace: the server sandbox, the kernel broker and the gateway, in one process.

Started by ``SandboxSpawner`` (``python -m hub_config.gateway.host SPEC``) outside every sandbox,
as the enclave's service account. It reads its spec (a root-only file the spawner wrote and this
process deletes), then:

1. listens for the kernel broker on ``broker.sock`` in the server's socket directory (the server
   alone can connect; kernels never see that directory);
2. listens for the gateway on ``gateway.sock`` in a directory of its own (the proxy's target);
3. starts the server sandbox under the workspace's server uid;

and lives exactly as long as the server: when the server ends (or is killed, by anyone), the
kernels are killed and this process exits, so the hub sees a stopped workspace. There is no path
by which the researcher's code reaches the browser without the gateway.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from hub_config import sandbox, seccomp_filter

log = logging.getLogger("enclave.workspace")


def spec_from_json(data: dict) -> sandbox.SandboxSpec:
    """A SandboxSpec back from its JSON form (paths as strings, tuples as lists)."""
    paths = {"extract_path", "home_path", "socket_dir", "etc_dir", "hub_socket", "jupyter_config_dir",
             "jupyter_data_dir", "kernels_dir"}
    values = dict(data)
    for name in paths:
        if values.get(name) is not None:
            values[name] = Path(values[name])
    values["readonly_paths"] = tuple(Path(p) for p in values["readonly_paths"])
    values["command"] = tuple(values["command"])
    values["groups"] = tuple(values.get("groups", ()))
    values["data_files"] = ()
    values["extra_ro_binds"] = tuple((Path(host), str(inside)) for host, inside in values.get("extra_ro_binds", ()))
    values["limits"] = sandbox.ResourceLimits(**values["limits"])
    return sandbox.SandboxSpec(**values)


def _audit_transfer(spec: dict):  # noqa: ANN202
    """A reporter of large transfers to the audit chain (route and size only: never a path or a value)."""

    def report(route: str, direction: str, size: int) -> None:
        try:
            from enclave import audit
            from enclave.registry.base import session_scope

            with session_scope() as session:
                audit.append(session, actor=spec["user"], action="workspace.large_transfer", project=spec["project"],
                             subject=f"user:{spec['user']}",
                             details={"route": route, "direction": direction, "bytes": size})
        except Exception as failed:  # the transfer itself already happened or was refused; keep serving
            log.error("large transfer not audited: %s", type(failed).__name__)

    async def in_thread(route: str, direction: str, size: int) -> None:
        await asyncio.to_thread(report, route, direction, size)

    def schedule(route: str, direction: str, size: int) -> None:
        asyncio.get_running_loop().create_task(in_thread(route, direction, size))

    return schedule


async def run(spec: dict) -> int:
    server_spec = spec_from_json(spec["server"])
    kernel_template = spec_from_json(spec["kernel"])
    tools = spec["tools"]
    socket_dir = Path(spec["server"]["socket_dir"])
    server_uid = server_spec.uid

    seccomp_fd = seccomp_filter.bpf_fd()
    argv = sandbox.bwrap_argv(sandbox.SandboxSpec(**{**server_spec.__dict__, "seccomp_fd": seccomp_fd}), **tools)
    try:
        server = await asyncio.create_subprocess_exec(*argv, env=spec["server_env"], stdin=asyncio.subprocess.DEVNULL,
                                                      cwd="/", pass_fds=(seccomp_fd,), start_new_session=True)
    finally:
        os.close(seccomp_fd)

    # The server takes about a second to listen: the gateway and the broker are set up meanwhile
    # (the spawner waits for both sockets, and no kernel is asked for before the server is ready).
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_unix_socket

    from hub_config.gateway import policy
    from hub_config.gateway.proxy import Gateway
    from hub_config.kernels.broker import KernelBroker

    broker = KernelBroker(kernel_template, spec["kernel_env"], tools, max_kernels=spec.get("max_kernels", 8))
    broker_server = await broker.serve(socket_dir / "broker.sock", server_uid)

    limits = policy.Limits(**spec.get("limits", {}))
    gateway = Gateway(str(socket_dir / "server.sock"), spec["base_url"], limits,
                      server_token=spec["server_env"].get("JUPYTERHUB_API_TOKEN", ""),
                      on_large_transfer=_audit_transfer(spec))
    gateway_socket = bind_unix_socket(spec["gateway_socket"], mode=0o600)
    http = HTTPServer(gateway.app(), max_body_size=limits.request_body, xheaders=False)
    http.add_socket(gateway_socket)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)
    server_ended = asyncio.ensure_future(server.wait())
    stop_requested = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({server_ended, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
    if not server_ended.done():
        server.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(server_ended), spec.get("stop_grace_seconds", 3.0))
        except asyncio.TimeoutError:
            server.kill()
            await server_ended
    else:
        log.warning("workspace server ended with %s: stopping the workspace", server.returncode)
    http.stop()
    broker_server.close()
    broker.kill_all()
    Path(spec["gateway_socket"]).unlink(missing_ok=True)
    return server.returncode if server.returncode is not None else 1


def die_with_parent(expected_parent: int) -> None:
    """Be killed when the hub dies (as bwrap's --die-with-parent does for the sandboxes under this process)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:  # the hub died before the line above
        os._exit(1)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s %(name)s] %(message)s")
    if os.environ.get("WORKSPACE_HOST_PARENT_PID"):
        die_with_parent(int(os.environ["WORKSPACE_HOST_PARENT_PID"]))
    spec_path = Path(sys.argv[1])
    spec = json.loads(spec_path.read_text())
    spec_path.unlink()  # it holds the server's hub token: nobody reads it twice
    code = asyncio.run(run(spec))
    sys.exit(code if 0 <= code < 256 else 1)


if __name__ == "__main__":
    main()
