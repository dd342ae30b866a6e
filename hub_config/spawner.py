"""SandboxSpawner: one workspace per (user, project) named server, reached over unix sockets.

At every start the spawner asks ``enclave.entitlements.check_workspace`` (membership, approval,
expiry, suspension, revocation, extract present) and refuses with the reason otherwise. The
workspace is the Jupyter server in a sandbox under a server uid of its own and each kernel in a
sandbox of its own as the researcher (``hub_config.sandbox``), both run by a host process
outside every sandbox (``hub_config.gateway.host``) which also runs the kernel broker and the
gateway. The hub and the proxy reach the workspace through the gateway's unix socket only;
JupyterHub 6.1 cannot express a unix socket in its server record (it parses host and port), so
the spawner keeps ``server.connect_url`` set to the ``http+unix://`` URL itself, including for a
spawner rebuilt from the database after a hub restart. Sockets live under a short fixed root
(``/run/enclave/<hash>``): a unix socket path has at most 107 bytes, and the host part of an
``http+unix://`` URL is lower-cased by URL parsers, so no path with upper-case letters may be in it.

Every start, stop and refusal is appended to the audit chain (``enclave.audit``) with the user,
the project and the extract version.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from hub_config import sandbox, single_user
from hub_config.refusal import WorkspaceFailed, WorkspaceRefused

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES_IN_SANDBOX = ("enclave", "linkage", "disclosure_control", "hub_config")
SOCKET_ROOT = Path("/run/enclave")
KERNEL_PROVISIONER = "enclave-sandbox"  # hub_config.kernels.provisioner, an entry point of pyproject.toml


def short_runtime_dir(key: str) -> Path:
    """A short, lower-case, fixed directory for the workspaces' sockets of the hub named by ``key``
    (its state directory): ``/run/enclave/<hash>/ws``, or under /tmp when /run is not writable."""
    name = hashlib.sha256(key.encode()).hexdigest()[:12]
    root = SOCKET_ROOT if os.access(SOCKET_ROOT if SOCKET_ROOT.exists() else SOCKET_ROOT.parent, os.W_OK) \
        else Path(f"/tmp/enclave-{os.getuid()}")
    return root / name / "ws"


FAILURE_LINE = re.compile(r"(bwrap: .+|setpriv: .+|prlimit: .+|\b[A-Z]\w*(Error|Exception): .+)")


def failure_cause(log_tail: str) -> str:
    """The last line of a workspace log that names why it failed, shortened (what the user and the audit see)."""
    causes = [m.group(1) for m in map(FAILURE_LINE.search, log_tail.splitlines()) if m]
    return causes[-1][:200] if causes else "no error line in the workspace log"


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
        "the folder is bound read-only into every kernel sandbox (kernels run the researcher's code)."
    ).tag(config=True)
    max_kernels = Integer(8, help="Kernels that may run at once in one workspace.").tag(config=True)
    gateway_limits = Dict(help="Overrides of hub_config.gateway.policy.Limits (bytes).").tag(config=True)
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
        return str(short_runtime_dir(self.hub_socket_path or "default"))

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

    @default("server_token_scopes")
    def _default_server_token_scopes(self) -> list[str]:
        # The server's token reports activity and nothing else: the default "server" role would let it
        # open the workspace itself (access:servers!server) from anywhere, the public proxy included.
        return ["users:activity!user"]

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

    def _server_uid(self, grant) -> int:  # noqa: ANN001
        """The workspace's server uid, which is also the gid of the workspace group owning the home."""
        return sandbox.server_uid(grant.username, grant.project)

    def _prepare_home(self, grant) -> None:  # noqa: ANN001
        """The home, owned by the researcher and the workspace group (setgid, group read-write):
        the server (another uid, in that group) serves and saves its files, nobody else enters."""
        home = Path(grant.home_path)
        group = self._server_uid(grant)
        home.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(home.parent, 0o711)
        if home.is_symlink() or (home.exists() and not home.is_dir()):
            raise RuntimeError("the workspace home is not a directory")
        if home.exists():
            if os.stat(home).st_mode & 0o7777 != 0o2770 or os.stat(home).st_gid != group:
                self._share_with_group(home, grant.uid, group)  # a home from before the server had its own uid
            return
        staging = home.with_name(f".{home.name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        templates = Path(self.templates_dir)
        if templates.is_dir():
            shutil.copytree(templates, staging, symlinks=False)
        else:
            staging.mkdir()
        self._share_with_group(staging, grant.uid, group)
        os.replace(staging, home)  # a home appears complete or not at all

    @staticmethod
    def _share_with_group(root: Path, uid: int, group: int) -> None:
        for path in [root, *root.rglob("*")]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            # Files the server saved keep their owner (a server uid); everything else is the researcher's.
            os.chown(path, uid if path.stat().st_uid < sandbox.SERVER_UID_BASE else -1, group)
            os.chmod(path, 0o2770 if path.is_dir() else (mode & 0o700) | ((mode & 0o600) >> 3))

    def _server_dir_name(self) -> str:
        # Short and fixed per (user, project): the socket path must stay under 108 bytes.
        return hashlib.sha256(f"{self.user.name}\0{self.name}".encode()).hexdigest()[:16]

    def _prepare_runtime(self, grant) -> dict[str, Path]:  # noqa: ANN001
        """The workspace's directories under the runtime root, fresh at every start:

        - ``<name>/``: the server's socket and the broker's (server uid, 0700; never in a kernel sandbox);
        - ``<name>.k/``: the kernels' connection files and ipc sockets (server uid and workspace group,
          setgid and sticky: a kernel creates its sockets, removes nobody else's);
        - ``<name>.gw/``: the gateway's socket and the host's spec (root, 0700);
        - ``<name>.etc/``: the generated passwd, group and hosts.
        """
        runtime = Path(self.runtime_dir)
        runtime.mkdir(parents=True, exist_ok=True, mode=0o711)
        os.chmod(runtime, 0o711)
        name = self._server_dir_name()
        server_uid = self._server_uid(grant)
        dirs = {"socket": runtime / name, "kernels": runtime / f"{name}.k", "gateway": runtime / f"{name}.gw",
                "etc": runtime / f"{name}.etc"}
        for kind, path in dirs.items():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(mode=0o700)
        os.chown(dirs["socket"], server_uid, server_uid)
        os.chown(dirs["kernels"], server_uid, server_uid)
        os.chmod(dirs["kernels"], 0o3770)
        os.chmod(dirs["etc"], 0o755)
        inside_home = f"/home/{grant.username}"
        etc_dir = dirs["etc"]
        (etc_dir / "passwd").write_text(sandbox.passwd_text(grant.username, grant.uid, grant.gid, inside_home, server_uid))
        (etc_dir / "group").write_text(sandbox.group_text(grant.project, grant.gid, server_uid))
        (etc_dir / "hosts").write_text(sandbox.HOSTS_TEXT)
        for f in etc_dir.iterdir():
            os.chmod(f, 0o644)
        if len(str(dirs["gateway"] / "gateway.sock")) > 107:
            raise RuntimeError(f"runtime_dir {runtime} is too long for a unix socket path")
        return dirs

    def _common_env(self, grant) -> dict[str, str]:  # noqa: ANN001
        home = f"/home/{grant.username}"
        return dict(
            HOME=home, USER=grant.username, LOGNAME=grant.username, SHELL="/bin/sh",
            PATH=f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            LANG="C.UTF-8",  # the kernel gets a fixed locale, nothing of the hub's environment
            JUPYTER_CONFIG_DIR=sandbox.JUPYTER_CONFIG_DIR,
            JUPYTER_DATA_DIR=sandbox.JUPYTER_DATA_DIR,
            JUPYTER_RUNTIME_DIR="/tmp/jupyter-runtime",
            PYTHONNOUSERSITE="1",
            MPLCONFIGDIR="/tmp/matplotlib",
            ENCLAVE_WORKSPACE_PROJECT=grant.project,
            ENCLAVE_WORKSPACE_EXTRACT_VERSION=str(grant.extract_version),
            ENCLAVE_WORKSPACE_DATA=sandbox.DATA_DIR,
            ENCLAVE_WORKSPACE_OUTPUTS=f"{home}/outputs",
            # No enclave.toml from the (user-writable) working directory may change settings in here.
            ENCLAVE_CONFIG="/dev/null",
        )

    def _sandbox_env(self, grant) -> dict[str, str]:  # noqa: ANN001
        """The server's environment: it holds the server's hub token, and no kernel ever sees it."""
        env = self.get_env()
        base_url = self.server.base_url if self.server else f"/user/{self.user.name}/{self.name}/"
        env.update(self._common_env(grant))
        env.update(
            LANG=env.get("LANG", "C.UTF-8"),
            PYTHONPATH=str(single_user.PYSHIM_DIR),
            ENCLAVE_TERMINALS_ENABLED="1" if self.terminals_enabled else "0",
            ENCLAVE_KERNEL_BROKER=sandbox.KERNEL_BROKER_SOCKET,
            # jupyter_server accepts --sock only with the default port; the host part is never used.
            JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:8888{base_url}",
            JUPYTERHUB_API_URL=f"http+unix://{quote(sandbox.HUB_SOCKET, safe='')}/hub/api",
        )
        env["JUPYTERHUB_ACTIVITY_URL"] = f"{env['JUPYTERHUB_API_URL']}/users/{quote(self.user.name, safe='')}/activity"
        return env

    def _kernel_env(self, grant) -> dict[str, str]:  # noqa: ANN001
        """A kernel's environment, built from nothing: no hub or server token, no JUPYTERHUB_* at all."""
        extra = {k: v for k, v in self.environment.items()
                 if isinstance(v, str) and not k.startswith(("JUPYTERHUB_", "JPY_"))}
        return {**extra, **self._common_env(grant)}

    def _fail_closed_args(self) -> list[str]:
        """The browser-path controls again on the command line: traitlets only logs a config file
        that fails to load and goes on with defaults, so these must not depend on that file.
        The kernel settings are among them: a kernel the server started itself would run as the
        server's uid, with the server's token in its environment."""
        args = [
            "--ServerApp.authorizer_class=hub_config.single_user.authorizer.EnclaveAuthorizer",
            "--ServerApp.contents_manager_class=hub_config.single_user.contents.EnclaveContentsManager",
            "--ServerApp.kernel_websocket_connection_class="
            "hub_config.single_user.output_limit.EnclaveKernelWebsocketConnection",
            f"--KernelProvisionerFactory.default_provisioner_name={KERNEL_PROVISIONER}",
            "--KernelManager.transport=ipc",
        ]
        if not self.terminals_enabled:
            args.append("--ServerApp.terminals_enabled=False")
        return args

    # -- the board's per-project limits, enforced by the server (issue 11, items 3, 4, 10) ------------------
    @staticmethod
    def _workspace_limit_args(grant) -> list[str]:  # noqa: ANN001
        """The project's workspace conditions as server config (enclave.conditions.WorkspaceLimits)."""
        return single_user.limit_args(grant.limits)

    def _limits(self) -> sandbox.ResourceLimits:
        return sandbox.ResourceLimits(memory_mb=self.memory_limit_mb, processes=self.max_processes,
                                      cpu_seconds=self.cpu_seconds, open_files=self.open_files)

    def _server_spec(self, grant, dirs: dict[str, Path]) -> sandbox.SandboxSpec:  # noqa: ANN001
        """The server sandbox: server uid, the home, its sockets, the kernels' directory, the hub's socket; no extract."""
        server_uid = self._server_uid(grant)
        return sandbox.SandboxSpec(
            username=grant.username, uid=server_uid, gid=server_uid,
            extract_path=None, home_path=Path(grant.home_path),
            socket_dir=dirs["socket"], etc_dir=dirs["etc"], hub_socket=Path(self.hub_socket_path),
            jupyter_config_dir=Path(self.jupyter_config_dir), jupyter_data_dir=Path(self.jupyter_data_dir),
            readonly_paths=tuple(Path(p) for p in self.readonly_paths),
            command=(*self.cmd, f"--ServerApp.sock={sandbox.SERVER_SOCKET}", *self._fail_closed_args(),
                     *self._workspace_limit_args(grant), *self.get_args()),
            limits=self._limits(), kernels_dir=dirs["kernels"],
        )

    def _kernel_spec(self, grant, dirs: dict[str, Path]) -> sandbox.SandboxSpec:  # noqa: ANN001
        """The template of every kernel sandbox: the researcher's uid and project gid (plus the workspace
        group of the home), the extract, the home and the kernels' directory; nothing of the server."""
        return sandbox.SandboxSpec(
            username=grant.username, uid=grant.uid, gid=grant.gid, groups=(self._server_uid(grant),),
            extract_path=Path(grant.extract_path).resolve(), home_path=Path(grant.home_path),
            socket_dir=None, etc_dir=dirs["etc"], hub_socket=None,
            jupyter_config_dir=Path(self.jupyter_config_dir), jupyter_data_dir=Path(self.jupyter_data_dir),
            readonly_paths=tuple(Path(p) for p in self.readonly_paths),
            command=(str(Path(sys.prefix) / "bin" / "python"), "-m", "hub_config.kernels.start",
                     "-f", sandbox.KERNEL_CONNECTION_FILE),
            limits=self._limits(), kernels_dir=dirs["kernels"], extra_ro_binds=self._dp_socket_binds(),
        )

    def _host_spec(self, grant, dirs: dict[str, Path]) -> dict:  # noqa: ANN001
        def as_json(spec: sandbox.SandboxSpec) -> dict:
            return json.loads(json.dumps(dataclasses.asdict(spec), default=str))

        base_url = self.server.base_url if self.server else f"/user/{self.user.name}/{self.name}/"
        return {
            "user": self.user.name, "project": grant.project, "base_url": base_url,
            "server": as_json(self._server_spec(grant, dirs)), "kernel": as_json(self._kernel_spec(grant, dirs)),
            "server_env": self._sandbox_env(grant), "kernel_env": self._kernel_env(grant),
            "tools": {"bwrap": self.bwrap_path, "setpriv": self.setpriv_path, "prlimit": self.prlimit_path},
            "gateway_socket": str(dirs["gateway"] / "gateway.sock"), "limits": dict(self.gateway_limits),
            "max_kernels": self.max_kernels, "stop_grace_seconds": self.stop_grace_seconds,
        }

    def _host_env(self) -> dict[str, str]:
        """The host process's environment: the hub's settings (for the audit), no hub secrets."""
        env = {k: v for k, v in os.environ.items()
               if k.startswith(("ENCLAVE_", "LANG", "LC_", "PATH", "PYTHON")) or k in ("HOME", "TZ")}
        env["WORKSPACE_HOST_PARENT_PID"] = str(os.getpid())  # the host process dies with the hub (PR_SET_PDEATHSIG)
        return env

    def _log_path(self) -> Path:
        return Path(self.log_dir) / f"{self._server_dir_name()}.log"

    async def start(self) -> str:
        grant = await self._grant()
        self.project = grant.project
        self.extract_version = int(grant.extract_version)
        try:
            self._check_isolation(grant)
            await asyncio.to_thread(self._prepare_home, grant)
            dirs = await asyncio.to_thread(self._prepare_runtime, grant)
        except (OSError, RuntimeError) as failed:
            await self._audit("workspace.failed", cause=str(failed)[:200])
            raise WorkspaceFailed(grant.project, f"it could not be prepared: {str(failed)[:200]}") from None
        spec_file = dirs["gateway"] / "host.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._host_spec(grant, dirs), f)
        log_dir = Path(self.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._log_path(), "ab") as log:
            os.chmod(log.name, 0o600)
            self._proc = subprocess.Popen([sys.executable, "-m", "hub_config.gateway.host", str(spec_file)],
                                          env=self._host_env(), stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd="/", start_new_session=True)
        self.pid = self._proc.pid
        self.pid_start_ticks = _process_start_ticks(self.pid) or 0
        self.socket_path = str(dirs["gateway"] / "gateway.sock")
        await self._wait_for_socket(dirs["socket"] / "server.sock")
        await self._audit("workspace.started")
        self.log.info("workspace %s/%s started, host pid %s", self.user.name, self.name, self.pid)
        return self.socket_url

    # -- the DP budget service's socket (enclave.dp_service) ---------------------------------------------------------
    def _dp_socket_binds(self) -> tuple[tuple[Path, str], ...]:
        """The folder of the DP service's socket, to be bound read-only where
        ``enclave.dp_service.client.SANDBOX_SOCKET`` lies, in every KERNEL sandbox.

        Kernels run the researcher's code, which calls the service; the server sandbox has no use
        for it. The folder (holding that socket alone) rather than the socket: a service
        (re)started after the workspace still appears in it. The service tells projects apart by
        the caller's uid and gid (SO_PEERCRED): a kernel keeps the researcher's uid and the
        project gid as its primary gid, so one socket serves every sandbox.
        """
        if not self.dp_socket_path:
            return ()
        from enclave.dp_service.client import SANDBOX_SOCKET

        host_dir = Path(self.dp_socket_path).parent
        host_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        return ((host_dir, str(Path(SANDBOX_SOCKET).parent)),)

    async def _wait_for_socket(self, server_socket: Path) -> None:
        """Return once the gateway and the server listen, so the hub's first readiness check succeeds.

        The hub polls with an exponential back-off (up to seconds between tries); watching for
        the socket files every 50 ms is cheaper and ends the wait as soon as both listen.
        A workspace that dies first is reported with its cause, to the user and to the audit.
        """
        gateway_socket = Path(self.socket_path)
        deadline = time.monotonic() + self.start_timeout
        while not (gateway_socket.exists() and server_socket.exists()) and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = self._log_path()
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
                cause = failure_cause(tail)
                self.log.error("workspace %s/%s exited with %s:\n%s", self.user.name, self.name, self._proc.returncode, tail)
                await self._audit("workspace.failed", exit_code=self._proc.returncode, cause=cause)
                self._cleanup_runtime()
                self.clear_state()
                raise WorkspaceFailed(self.project, f"{cause} (exit code {self._proc.returncode})")
            await asyncio.sleep(0.05)
        if not (gateway_socket.exists() and server_socket.exists()):
            cause = f"its server did not listen within {self.start_timeout} s"
            await self._audit("workspace.failed", cause=cause)
            raise WorkspaceFailed(self.project, cause)

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
            name = Path(self.socket_path).parent.name.removesuffix(".gw")
            runtime = Path(self.socket_path).parent.parent
            for suffix in ("", ".k", ".gw", ".etc"):
                shutil.rmtree(runtime / f"{name}{suffix}", ignore_errors=True)

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
        # The host process stops the server and the kernels on SIGTERM; both sandboxes run bwrap with
        # --die-with-parent, so a SIGKILL of the host kills them too.
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

