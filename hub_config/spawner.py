"""SandboxSpawner: one bubblewrap sandbox per (user, project) named server, reached over unix sockets.

At every start the spawner asks ``enclave.entitlements.check_workspace`` (membership, approval,
expiry, suspension, revocation, extract present) and refuses with the reason otherwise. The
sandbox itself is described in ``hub_config.sandbox``. The server listens on a unix socket;
JupyterHub 6.1 cannot express that in its server record (it parses host and port), so the
spawner keeps ``server.connect_url`` set to the ``http+unix://`` URL itself, including for a
spawner rebuilt from the database after a hub restart.

Every start, stop and refusal is appended to the audit chain (``enclave.audit``) with the user,
the project and the extract version.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Float, Integer, List, Unicode, default

from hub_config import sandbox, seccomp_filter, single_user
from hub_config.refusal import WorkspaceRefused

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES_IN_SANDBOX = ("enclave", "linkage", "disclosure_control", "hub_config")


def _process_start_ticks(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot), to tell a live sandbox from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _package_dirs() -> list[Path]:
    import importlib.util

    dirs = []
    for name in PACKAGES_IN_SANDBOX:
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            dirs.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    return dirs


class SandboxSpawner(Spawner):
    """Start each project workspace in a bubblewrap sandbox with no network, as the user's uid."""

    bwrap_path = Unicode("bwrap", help="The bubblewrap executable.").tag(config=True)
    setpriv_path = Unicode("setpriv", help="util-linux setpriv, used to drop to the workspace uid.").tag(config=True)
    prlimit_path = Unicode("prlimit", help="util-linux prlimit, used for the resource limits.").tag(config=True)

    hub_socket_path = Unicode(
        help="Host path of the hub's unix socket (JupyterHub.hub_bind_url), bound into every sandbox."
    ).tag(config=True)
    runtime_dir = Unicode(
        help="Host directory for the servers' unix sockets and generated /etc files. Keep it short: "
        "a unix socket path has at most 107 bytes."
    ).tag(config=True)
    log_dir = Unicode(help="Host directory for each sandbox's server log (root only).").tag(config=True)
    templates_dir = Unicode(
        str(REPO_ROOT / "notebooks" / "templates"),
        help="Notebook templates copied into a workspace home when it is created.",
    ).tag(config=True)
    jupyter_config_dir = Unicode(str(single_user.CONFIG_DIR), help="Read-only JUPYTER_CONFIG_DIR of the workspaces.").tag(config=True)
    jupyter_data_dir = Unicode(str(single_user.DATA_DIR), help="Read-only JUPYTER_DATA_DIR of the workspaces.").tag(config=True)
    readonly_paths = List(
        Unicode(),
        help="Host paths bound read-only at the same path (the Python install, the venv, the enclave packages). "
        "None may contain the enclave's data root.",
    ).tag(config=True)
    forbidden_roots = List(
        Unicode(),
        help="Host paths (the data root) that no read-only path may contain or lie inside, except the "
        "extract and the home bound on purpose.",
    ).tag(config=True)

    memory_limit_mb = Integer(2048, help="Address-space limit of each workspace process (MiB).").tag(config=True)
    max_processes = Integer(256, help="Process limit of the workspace user.").tag(config=True)
    cpu_seconds = Integer(36000, help="CPU-time limit of each workspace process (seconds).").tag(config=True)
    open_files = Integer(1024, help="Open-file limit of each workspace process.").tag(config=True)
    terminals_enabled = Bool(False, help="Let workspace users open terminals.").tag(config=True)
    dp_socket_path = Unicode(
        "", help="Host path of the DP budget service's unix socket (enclave.dp_service), alone in its folder; "
        "the folder is bound read-only into every sandbox."
    ).tag(config=True)
    stop_grace_seconds = Float(3.0, help="Seconds between SIGTERM and SIGKILL at stop.").tag(config=True)

    # Set by start() or load_state(); persisted through get_state().
    pid = Integer(0)
    pid_start_ticks = Integer(0)
    project = Unicode("")
    extract_version = Integer(0)
    socket_path = Unicode("")

    _proc: subprocess.Popen | None = None

    @default("runtime_dir")
    def _default_runtime_dir(self) -> str:
        return str(Path(self.hub_socket_path).parent / "ws") if self.hub_socket_path else "/run/enclave-hub/ws"

    @default("log_dir")
    def _default_log_dir(self) -> str:
        return str(Path(self.runtime_dir).parent / "logs")

    @default("readonly_paths")
    def _default_readonly_paths(self) -> list[str]:
        paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), *_package_dirs()}
        return sorted(str(p) for p in paths if not str(p).startswith("/usr/"))

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser")]

    @default("env_keep")
    def _default_env_keep(self) -> list[str]:
        return ["LANG"]  # nothing of the hub's environment (secrets, ENCLAVE_*) reaches a workspace

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        # One start costs about 3 s of CPU: twenty at once on two cores need a minute.
        return 120

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        return 60

    # -- the unix-socket URL ----------------------------------------------------------------------------
    @property
    def socket_url(self) -> str:
        return f"http+unix://{quote(self.socket_path, safe='')}" if self.socket_path else ""

    def _get_server(self):  # noqa: ANN202 - jupyterhub.objects.Server
        server = Spawner.server.fget(self)
        if server is not None and self.socket_path and not server.connect_url.startswith(self.socket_url):
            server.connect_url = self.socket_url  # the validator appends the server's base_url
        return server

    server = property(_get_server, Spawner.server.fset)

    async def get_url(self) -> str:
        server = self.server
        return server.url if server is not None else ""

    # -- state across hub restarts ------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = super().get_state()
        if self.pid:
            state.update(pid=self.pid, pid_start_ticks=self.pid_start_ticks, project=self.project,
                         extract_version=self.extract_version, socket_path=self.socket_path)
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.pid = state.get("pid", 0)
        self.pid_start_ticks = state.get("pid_start_ticks", 0)
        self.project = state.get("project", "")
        self.extract_version = state.get("extract_version", 0)
        self.socket_path = state.get("socket_path", "")

    def clear_state(self) -> None:
        super().clear_state()
        self.pid = 0
        self.pid_start_ticks = 0
        self.socket_path = ""
        self._proc = None

    # -- refusal of renames ------------------------------------------------------------------------------------
    async def rename(self, old_name: str, new_name: str) -> None:
        # A server's name is its project: renaming would detach it from the entitlement checks.
        raise web.HTTPError(403, "Workspaces are named after their project and cannot be renamed.")

    # -- audit --------------------------------------------------------------------------------------------------
    def _audit_now(self, action: str, details: dict) -> None:
        from enclave import audit
        from enclave.registry.base import session_scope

        with session_scope() as session:
            audit.append(session, actor=self.user.name, action=action, project=self.project or self.name,
                         subject=f"user:{self.user.name}", details=details)

    async def _audit(self, action: str, **details: object) -> None:
        details.setdefault("extract_version", self.extract_version or None)
        await asyncio.to_thread(self._audit_now, action, details)

    # -- start ---------------------------------------------------------------------------------------------------
    async def _grant(self):  # noqa: ANN202 - enclave.entitlements.WorkspaceGrant
        from enclave.entitlements import Refused, check_workspace

        project = self.name
        if not project:
            # Refusals of the default server are audited here; check_workspace audits its own.
            await asyncio.to_thread(self._audit_now, "workspace.refused", {"reason": "no project named"})
            raise WorkspaceRefused("(none)", "open a project's workspace from the home page")
        try:
            return await asyncio.to_thread(check_workspace, self.user.name, project)
        except Refused as refused:
            self.log.warning("workspace %s/%s refused: %s", self.user.name, project, refused.reason)
            raise WorkspaceRefused(project, refused.reason) from None

    def _check_isolation(self, grant) -> None:  # noqa: ANN001
        """Fail closed if a read-only software path would expose the data root."""
        for ro in map(Path, self.readonly_paths):
            for root in map(Path, self.forbidden_roots):
                if ro == root or ro.is_relative_to(root) or root.is_relative_to(ro):
                    raise RuntimeError(f"sandbox read-only path {ro} overlaps the data root {root}")
        if not Path(self.hub_socket_path).is_socket():
            raise RuntimeError(f"hub socket {self.hub_socket_path} is missing")

    def _prepare_home(self, grant) -> None:  # noqa: ANN001
        home = Path(grant.home_path)
        home.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(home.parent, 0o711)
        if home.exists():
            return
        staging = home.with_name(f".{home.name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        templates = Path(self.templates_dir)
        if templates.is_dir():
            shutil.copytree(templates, staging, symlinks=False)
        else:
            staging.mkdir()
        for path in [staging, *staging.rglob("*")]:
            os.lchown(path, grant.uid, grant.gid)
            if not path.is_symlink():
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
        os.replace(staging, home)  # a home appears complete or not at all

    def _server_dir_name(self) -> str:
        # Short and fixed per (user, project): the socket path must stay under 108 bytes.
        return hashlib.sha256(f"{self.user.name}\0{self.name}".encode()).hexdigest()[:16]

    def _prepare_runtime(self, grant) -> tuple[Path, Path]:  # noqa: ANN001
        runtime = Path(self.runtime_dir)
        runtime.mkdir(parents=True, exist_ok=True)
        os.chmod(runtime, 0o711)
        name = self._server_dir_name()
        socket_dir = runtime / name
        shutil.rmtree(socket_dir, ignore_errors=True)
        socket_dir.mkdir(mode=0o700)
        os.chown(socket_dir, grant.uid, grant.gid)
        etc_dir = runtime / f"{name}.etc"
        shutil.rmtree(etc_dir, ignore_errors=True)
        etc_dir.mkdir(mode=0o755)
        inside_home = f"/home/{grant.username}"
        (etc_dir / "passwd").write_text(sandbox.passwd_text(grant.username, grant.uid, grant.gid, inside_home))
        (etc_dir / "group").write_text(sandbox.group_text(grant.project, grant.gid))
        (etc_dir / "hosts").write_text(sandbox.HOSTS_TEXT)
        for f in etc_dir.iterdir():
            os.chmod(f, 0o644)
        if len(str(socket_dir / "server.sock")) > 107:
            raise RuntimeError(f"runtime_dir {runtime} is too long for a unix socket path")
        return socket_dir, etc_dir

    def _sandbox_env(self, grant) -> dict[str, str]:  # noqa: ANN001
        env = self.get_env()
        home = f"/home/{grant.username}"
        base_url = self.server.base_url if self.server else f"/user/{self.user.name}/{self.name}/"
        env.update(
            HOME=home, USER=grant.username, LOGNAME=grant.username, SHELL="/bin/sh",
            PATH=f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            LANG=env.get("LANG", "C.UTF-8"),
            JUPYTER_CONFIG_DIR=sandbox.JUPYTER_CONFIG_DIR,
            JUPYTER_DATA_DIR=sandbox.JUPYTER_DATA_DIR,
            JUPYTER_RUNTIME_DIR="/tmp/jupyter-runtime",
            PYTHONNOUSERSITE="1",
            PYTHONPATH=str(single_user.PYSHIM_DIR),
            MPLCONFIGDIR="/tmp/matplotlib",
            ENCLAVE_TERMINALS_ENABLED="1" if self.terminals_enabled else "0",
            ENCLAVE_WORKSPACE_PROJECT=grant.project,
            ENCLAVE_WORKSPACE_EXTRACT_VERSION=str(grant.extract_version),
            ENCLAVE_WORKSPACE_DATA=sandbox.DATA_DIR,
            ENCLAVE_WORKSPACE_OUTPUTS=f"{home}/outputs",
            # No enclave.toml from the (user-writable) working directory may change settings in here.
            ENCLAVE_CONFIG="/dev/null",
            # jupyter_server accepts --sock only with the default port; the host part is never used.
            JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:8888{base_url}",
            JUPYTERHUB_API_URL=f"http+unix://{quote(sandbox.HUB_SOCKET, safe='')}/hub/api",
        )
        env["JUPYTERHUB_ACTIVITY_URL"] = f"{env['JUPYTERHUB_API_URL']}/users/{quote(self.user.name, safe='')}/activity"
        return env

    def _fail_closed_args(self) -> list[str]:
        """The browser-path controls again on the command line: traitlets only logs a config file
        that fails to load and goes on with defaults, so these must not depend on that file."""
        args = [
            "--ServerApp.authorizer_class=hub_config.single_user.authorizer.EnclaveAuthorizer",
            "--ServerApp.contents_manager_class=hub_config.single_user.contents.EnclaveContentsManager",
            "--ServerApp.kernel_websocket_connection_class="
            "hub_config.single_user.output_limit.EnclaveKernelWebsocketConnection",
        ]
        if not self.terminals_enabled:
            args.append("--ServerApp.terminals_enabled=False")
        return args

    # -- the board's per-project limits, enforced by the server (issue 11, items 3, 4, 10) ------------------
    @staticmethod
    def _workspace_limit_args(grant) -> list[str]:  # noqa: ANN001
        """The project's workspace conditions as server config (enclave.conditions.WorkspaceLimits)."""
        return single_user.limit_args(grant.limits)

    async def start(self) -> str:
        grant = await self._grant()
        self.project = grant.project
        self.extract_version = int(grant.extract_version)
        self._check_isolation(grant)
        await asyncio.to_thread(self._prepare_home, grant)
        socket_dir, etc_dir = await asyncio.to_thread(self._prepare_runtime, grant)
        seccomp_fd = seccomp_filter.bpf_fd()
        spec = sandbox.SandboxSpec(
            username=grant.username, uid=grant.uid, gid=grant.gid,
            extract_path=Path(grant.extract_path).resolve(), home_path=Path(grant.home_path),
            socket_dir=socket_dir, etc_dir=etc_dir, hub_socket=Path(self.hub_socket_path),
            jupyter_config_dir=Path(self.jupyter_config_dir), jupyter_data_dir=Path(self.jupyter_data_dir),
            readonly_paths=tuple(Path(p) for p in self.readonly_paths),
            command=(*self.cmd, f"--ServerApp.sock={sandbox.SERVER_SOCKET}", *self._fail_closed_args(),
                     *self._workspace_limit_args(grant), *self.get_args()),
            limits=sandbox.ResourceLimits(memory_mb=self.memory_limit_mb, processes=self.max_processes,
                                          cpu_seconds=self.cpu_seconds, open_files=self.open_files),
            seccomp_fd=seccomp_fd,
        )
        argv = sandbox.bwrap_argv(spec, bwrap=self.bwrap_path, setpriv=self.setpriv_path, prlimit=self.prlimit_path)
        argv = self._with_dp_socket(argv)
        log_dir = Path(self.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with open(log_dir / f"{self._server_dir_name()}.log", "ab") as log:
                os.chmod(log.name, 0o600)
                self._proc = subprocess.Popen(argv, env=self._sandbox_env(grant), stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
                                              pass_fds=(seccomp_fd,))
        finally:
            os.close(seccomp_fd)
        self.pid = self._proc.pid
        self.pid_start_ticks = _process_start_ticks(self.pid) or 0
        self.socket_path = str(socket_dir / "server.sock")
        await self._wait_for_socket()
        await self._audit("workspace.started")
        self.log.info("workspace %s/%s started in sandbox pid %s", self.user.name, self.name, self.pid)
        return self.socket_url

    # -- the DP budget service's socket (enclave.dp_service) ---------------------------------------------------------
    def _with_dp_socket(self, argv: list[str]) -> list[str]:
        """``argv`` with the folder of the DP service's socket bound read-only where
        ``enclave.dp_service.client.SANDBOX_SOCKET`` lies.

        The folder (holding that socket alone) rather than the socket: a service (re)started after
        the workspace still appears in it. The service tells projects apart by the caller's uid
        and gid (SO_PEERCRED), so one socket serves every sandbox. Inserted before ``--chdir``:
        after the tmpfs on /run, which would hide it.
        """
        if not self.dp_socket_path:
            return argv
        from enclave.dp_service.client import SANDBOX_SOCKET

        host_dir = Path(self.dp_socket_path).parent
        host_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        at = argv.index("--chdir")
        bind = ["--perms", "0755", "--dir", str(Path(SANDBOX_SOCKET).parent),
                "--ro-bind", str(host_dir), str(Path(SANDBOX_SOCKET).parent)]
        return argv[:at] + bind + argv[at:]

    async def _wait_for_socket(self) -> None:
        """Return once the server's socket exists, so the hub's first readiness check succeeds.

        The hub polls with an exponential back-off (up to seconds between tries); watching for
        the socket file every 50 ms is cheaper and ends the wait as soon as the server listens.
        A sandbox that dies first is reported with the end of its log.
        """
        socket_file = Path(self.socket_path)
        deadline = time.monotonic() + self.start_timeout
        while not socket_file.exists() and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = Path(self.log_dir) / f"{self._server_dir_name()}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
                self.log.error("workspace %s/%s exited with %s:\n%s", self.user.name, self.name, self._proc.returncode, tail)
                await self._audit("workspace.failed", exit_code=self._proc.returncode)
                self._cleanup_runtime()
                self.clear_state()
                raise RuntimeError("the workspace exited while starting; the hub log has the details")
            await asyncio.sleep(0.05)

    # -- poll and stop ---------------------------------------------------------------------------------------------
    def _alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if not self.pid:
            return False
        ticks = _process_start_ticks(self.pid)
        return ticks is not None and ticks == self.pid_start_ticks

    async def poll(self) -> int | None:
        if self._alive():
            self.server  # noqa: B018 - re-attaches connect_url to a Server rebuilt from the database
            return None
        if self.pid:
            # Ended on its own or with a hub that went away: record it once, then forget it.
            code = self._proc.returncode if self._proc is not None else None
            await self._audit("workspace.stopped", reason="ended while not stopped by the hub", exit_code=code)
            self._cleanup_runtime()
            self.clear_state()
            return code if code is not None else 1
        return 0

    def _cleanup_runtime(self) -> None:
        if self.socket_path:
            socket_dir = Path(self.socket_path).parent
            shutil.rmtree(socket_dir, ignore_errors=True)
            shutil.rmtree(socket_dir.with_name(socket_dir.name + ".etc"), ignore_errors=True)

    async def stop(self, now: bool = False) -> None:
        if not self.pid:
            return
        if self._alive():
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + (0 if now else self.stop_grace_seconds)
            while self._alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self._alive():
                self._signal(signal.SIGKILL)
                while self._alive():
                    await asyncio.sleep(0.05)
        await self._audit("workspace.stopped", reason="stopped by the hub")
        self._cleanup_runtime()
        self.clear_state()

    def _signal(self, sig: int) -> None:
        # bwrap runs with --die-with-parent: when it dies, the sandbox's pid 1 and with it every
        # process of the pid namespace are killed by the kernel.
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

