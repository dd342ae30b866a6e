"""The bubblewrap command lines of a workspace's two sandboxes, built as data so that they can be read and tested.

A workspace is two sandboxes side by side, never one inside the other:

- the **server sandbox** runs the Jupyter server under a uid of its own (the workspace's "server
  uid", never the researcher's). It sees the home (to serve notebooks), its own socket directory,
  the kernels' directory and the hub's socket; not the extract.
- each **kernel sandbox** runs one kernel as the researcher's uid and project gid, started by the
  kernel broker (``hub_config.kernels``) on the host on the server's request. It sees the extract
  read-only at ``/data``, the home and the kernels' directory (ZeroMQ over ``ipc`` sockets): not
  the server's socket, config, token or cookie secret, not the hub's socket, and not the server's
  processes (a pid namespace of its own).

Each is privileged bwrap (the hub runs as root) followed by ``setpriv`` to the target uid and gid
with no capabilities and ``no_new_privs``, then ``prlimit`` for the resource limits. Nothing of
the host file system is visible except what is listed here. New pid, ipc, uts, net and cgroup
namespaces; the network namespace has only ``lo``; a seccomp filter (``hub_config.seccomp_filter``)
refuses new namespaces, mounts and ptrace.

``--unshare-user`` is deliberately absent: as root with ``--uid`` it maps the sandbox user to
the real root (FIELD_NOTES); the uid switch is done by ``setpriv`` instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Fixed paths inside the sandbox.
DATA_DIR = "/data"
SERVER_SOCKET_DIR = "/run/jupyter"
SERVER_SOCKET = f"{SERVER_SOCKET_DIR}/server.sock"
KERNEL_BROKER_SOCKET = f"{SERVER_SOCKET_DIR}/broker.sock"  # created by the host, reachable from the server only
KERNELS_DIR = "/run/kernels"  # connection files (server-only) and the kernels' ipc sockets
KERNEL_CONNECTION_FILE = "/run/kernel/connection.json"  # the kernel's own copy, read-only
HUB_SOCKET = "/run/jupyterhub/hub.sock"
JUPYTER_CONFIG_DIR = "/etc/enclave/jupyter"
JUPYTER_DATA_DIR = "/etc/enclave/jupyter-data"

# Debian 12 has a merged /usr: these top-level names are symlinks into it.
USR_SYMLINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
# Host files under /etc that programs need and that say nothing about the enclave.
ETC_FILES = ("ld.so.cache", "localtime", "mime.types")


@dataclass(frozen=True)
class ResourceLimits:
    """Per-workspace limits applied with prlimit (cgroups belong to the host, not to the hub)."""

    memory_mb: int = 2048  # address space of each process
    processes: int = 256  # processes of the workspace's uid
    cpu_seconds: int = 36000  # CPU time of each process
    open_files: int = 1024
    file_size_mb: int = 4096

    def prlimit_args(self) -> list[str]:
        mib = 1024 * 1024
        return [
            f"--as={self.memory_mb * mib}",
            f"--nproc={self.processes}",
            f"--cpu={self.cpu_seconds}",
            f"--nofile={self.open_files}",
            f"--fsize={self.file_size_mb * mib}",
            "--core=0",
        ]


@dataclass(frozen=True)
class SandboxSpec:
    """Everything that varies between two workspaces."""

    username: str
    uid: int
    gid: int
    extract_path: Path | None  # a resolved version directory, never the ``current`` symlink; None: not bound
    home_path: Path
    socket_dir: Path | None  # host directory that will hold the server's unix socket; None: not bound
    etc_dir: Path  # host directory with the generated passwd and group files
    hub_socket: Path | None  # None: not bound
    jupyter_config_dir: Path
    jupyter_data_dir: Path
    readonly_paths: tuple[Path, ...]  # software bound at the same path (python, venv, packages)
    command: tuple[str, ...]  # what runs inside, as the user
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    die_with_parent: bool = True
    seccomp_fd: int | None = None  # a descriptor holding hub_config.seccomp_filter's BPF program
    groups: tuple[int, ...] = ()  # supplementary groups (the kernel's: the workspace group of the home)
    kernels_dir: Path | None = None  # host directory of the kernels' connection files and ipc sockets
    data_files: tuple[tuple[int, str], ...] = ()  # (descriptor, destination): read-only copies (0444)
    chdir: str | None = None  # working directory inside; the home by default
    extra_ro_binds: tuple[tuple[Path, str], ...] = ()  # (host directory, inside): read-only, e.g. the DP service's socket folder

    @property
    def home_in_sandbox(self) -> str:
        return f"/home/{self.username}"


def _parents(path: str) -> list[str]:
    """Every ancestor of an absolute path, shortest first, without ``/``."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _ensure_dirs(args: list[str], created: set[str], path: str) -> None:
    # Privileged bwrap creates missing parents 0700, which the sandbox user could not traverse.
    for parent in _parents(path):
        if parent not in created and parent.lstrip("/").split("/")[0] not in USR_SYMLINKS:
            args += ["--perms", "0755", "--dir", parent]
            created.add(parent)


def bwrap_argv(spec: SandboxSpec, *, bwrap: str = "bwrap", setpriv: str = "setpriv", prlimit: str = "prlimit") -> list[str]:
    """The full argv: bwrap ... -- setpriv ... -- prlimit ... -- command."""
    args: list[str] = [bwrap]
    created: set[str] = set()
    args += ["--ro-bind", "/usr", "/usr"]
    for name, target in USR_SYMLINKS.items():
        if os.path.lexists(f"/{name}"):
            args += ["--symlink", target, f"/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    args += ["--perms", "0755", "--dir", "/etc"]
    created.add("/etc")
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind", str(spec.etc_dir / "passwd"), "/etc/passwd"]
    args += ["--ro-bind", str(spec.etc_dir / "group"), "/etc/group"]
    args += ["--ro-bind", str(spec.etc_dir / "hosts"), "/etc/hosts"]
    for path in spec.readonly_paths:
        _ensure_dirs(args, created, str(path))
        args += ["--ro-bind", str(path), str(path)]
        created.add(str(path))
    for host, inside in (
        (spec.jupyter_config_dir, JUPYTER_CONFIG_DIR),
        (spec.jupyter_data_dir, JUPYTER_DATA_DIR),
        (spec.extract_path, DATA_DIR),
    ):
        if host is not None:
            _ensure_dirs(args, created, inside)
            args += ["--ro-bind", str(host), inside]
    _ensure_dirs(args, created, spec.home_in_sandbox)
    args += ["--bind", str(spec.home_path), spec.home_in_sandbox]
    if spec.socket_dir is not None:
        _ensure_dirs(args, created, SERVER_SOCKET)
        args += ["--bind", str(spec.socket_dir), SERVER_SOCKET_DIR]
    if spec.kernels_dir is not None:
        _ensure_dirs(args, created, KERNELS_DIR + "/x")
        args += ["--bind", str(spec.kernels_dir), KERNELS_DIR]
    if spec.hub_socket is not None:
        _ensure_dirs(args, created, HUB_SOCKET)
        # connect() needs no write access to the mount: a read-only bind of the socket is enough.
        args += ["--ro-bind", str(spec.hub_socket), HUB_SOCKET]
    for host, inside in spec.extra_ro_binds:
        # After the tmpfs on /run, which would hide a bind under it.
        _ensure_dirs(args, created, inside + "/x")
        args += ["--ro-bind", str(host), inside]
    for fd, inside in spec.data_files:
        _ensure_dirs(args, created, inside)
        args += ["--perms", "0444", "--ro-bind-data", str(fd), inside]
    args += ["--chdir", spec.chdir or spec.home_in_sandbox]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup"]
    args += ["--hostname", "workspace", "--new-session"]
    if spec.die_with_parent:
        args.append("--die-with-parent")
    if spec.seccomp_fd is not None:
        args += ["--seccomp", str(spec.seccomp_fd)]
    groups = ["--groups=" + ",".join(map(str, spec.groups))] if spec.groups else ["--clear-groups"]
    args += ["--", setpriv, f"--reuid={spec.uid}", f"--regid={spec.gid}", *groups,
             "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    args += [prlimit, *spec.limits.prlimit_args(), "--"]
    args += list(spec.command)
    return args


def passwd_text(username: str, uid: int, gid: int, home: str, server_uid: int | None = None) -> str:
    """A passwd with the sandbox user alone (plus the workspace server and nobody), so ``getpwuid`` works inside."""
    server = f"jupyter-server:x:{server_uid}:{server_uid}:workspace server:/nonexistent:/usr/sbin/nologin\n" if server_uid else ""
    return (
        f"{username}:x:{uid}:{gid}:{username}:{home}:/bin/sh\n"
        + server
        + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )


def group_text(project: str, gid: int, workspace_gid: int | None = None) -> str:
    workspace = f"workspace:x:{workspace_gid}:\n" if workspace_gid else ""
    return f"{project}:x:{gid}:\n{workspace}nogroup:x:65534:\n"


SERVER_UID_BASE = 1_000_000
SERVER_UID_SPAN = 1 << 20


def server_uid(username: str, project: str) -> int:
    """The uid (and gid) of a workspace's Jupyter server: derived per (user, project), outside the
    registry's ranges for people (posix_uid) and projects (posix_gid), stable across restarts so
    the files it saved in the home stay its own. It doubles as the workspace group of the home."""
    import hashlib

    digest = hashlib.sha256(f"enclave-server\0{username}\0{project}".encode()).digest()
    return SERVER_UID_BASE + int.from_bytes(digest[:4], "big") % SERVER_UID_SPAN


HOSTS_TEXT = "127.0.0.1 localhost workspace\n"
