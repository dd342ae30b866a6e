"""The sandbox command line and the development provider's files, without starting anything."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from hub_config import oidc, sandbox, seccomp_filter


def _spec(tmp_path: Path, **overrides) -> sandbox.SandboxSpec:
    values = dict(
        username="alice", uid=20005, gid=30001,
        extract_path=tmp_path / "var" / "extracts" / "alpha" / "1", home_path=tmp_path / "var" / "workspaces" / "alpha" / "alice",
        socket_dir=tmp_path / "run" / "abc", etc_dir=tmp_path / "run" / "abc.etc", hub_socket=tmp_path / "run" / "hub.sock",
        jupyter_config_dir=Path("/opt/cfg"), jupyter_data_dir=Path("/opt/data"),
        readonly_paths=(Path("/opt/python"), Path("/opt/venv")), command=("jupyterhub-singleuser",),
        seccomp_fd=7,
    )
    values.update(overrides)
    return sandbox.SandboxSpec(**values)


def _binds(argv: list[str]) -> dict[str, tuple[str, str]]:
    """destination -> (kind, source) for every bind in a bwrap argv."""
    out = {}
    for i, arg in enumerate(argv):
        if arg in ("--bind", "--ro-bind"):
            out[argv[i + 2]] = (arg, argv[i + 1])
        if arg == "--":
            break
    return out


def test_only_the_extract_home_and_sockets_of_the_data_root_are_bound(tmp_path):
    argv = sandbox.bwrap_argv(_spec(tmp_path))
    binds = _binds(argv)
    data_root = str(tmp_path / "var")
    from_data_root = {dest: (kind, src) for dest, (kind, src) in binds.items() if src.startswith(data_root)}
    assert from_data_root == {"/data": ("--ro-bind", str(tmp_path / "var/extracts/alpha/1")),
                              "/home/alice": ("--bind", str(tmp_path / "var/workspaces/alpha/alice"))}
    writable = {dest for dest, (kind, _) in binds.items() if kind == "--bind"}
    assert writable == {"/home/alice", sandbox.SERVER_SOCKET_DIR}


def _server_and_kernel(tmp_path: Path) -> tuple[list[str], list[str]]:
    """The two sandboxes of one workspace as the spawner builds them (server uid; researcher in the kernel)."""
    server_uid = sandbox.server_uid("alice", "alpha")
    server = _spec(tmp_path, uid=server_uid, gid=server_uid, extract_path=None, kernels_dir=tmp_path / "run" / "abc.k")
    kernel = _spec(tmp_path, groups=(server_uid,), socket_dir=None, hub_socket=None, kernels_dir=tmp_path / "run" / "abc.k",
                   data_files=((9, sandbox.KERNEL_CONNECTION_FILE),), chdir="/home/alice/sub",
                   command=("python", "-m", "hub_config.kernels.start", "-f", sandbox.KERNEL_CONNECTION_FILE))
    return sandbox.bwrap_argv(server), sandbox.bwrap_argv(kernel)


def test_kernel_sandbox_sees_neither_the_server_sockets_nor_the_hub(tmp_path):
    server_argv, kernel_argv = _server_and_kernel(tmp_path)
    kernel = _binds(kernel_argv)
    assert sandbox.SERVER_SOCKET_DIR not in kernel and sandbox.HUB_SOCKET not in kernel
    assert {dest for dest, (kind, _) in kernel.items() if kind == "--bind"} == {"/home/alice", sandbox.KERNELS_DIR}
    assert kernel["/data"] == ("--ro-bind", str(tmp_path / "var/extracts/alpha/1"))
    i = kernel_argv.index("--ro-bind-data")
    assert kernel_argv[i - 2: i + 3] == ["--perms", "0444", "--ro-bind-data", "9", sandbox.KERNEL_CONNECTION_FILE]
    assert kernel_argv[kernel_argv.index("--chdir") + 1] == "/home/alice/sub"
    setpriv = kernel_argv[kernel_argv.index("--") + 1:]
    assert "--reuid=20005" in setpriv and "--regid=30001" in setpriv
    assert f"--groups={sandbox.server_uid('alice', 'alpha')}" in setpriv and "--no-new-privs" in setpriv


def test_server_sandbox_runs_under_its_own_uid_without_the_extract(tmp_path):
    server_argv, _ = _server_and_kernel(tmp_path)
    server = _binds(server_argv)
    assert "/data" not in server
    assert {dest for dest, (kind, _) in server.items() if kind == "--bind"} == {
        "/home/alice", sandbox.SERVER_SOCKET_DIR, sandbox.KERNELS_DIR}
    uid = sandbox.server_uid("alice", "alpha")
    setpriv = server_argv[server_argv.index("--") + 1:]
    assert f"--reuid={uid}" in setpriv and f"--regid={uid}" in setpriv and "--clear-groups" in setpriv
    assert uid >= sandbox.SERVER_UID_BASE and uid != 20005
    assert len({sandbox.server_uid(u, p) for u in ("alice", "bob") for p in ("alpha", "beta")}) == 4


def test_namespaces_privileges_and_limits(tmp_path):
    argv = sandbox.bwrap_argv(_spec(tmp_path))
    bwrap_part = argv[: argv.index("--")]
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup",
                 "--die-with-parent", "--new-session"):
        assert flag in bwrap_part
    assert "--unshare-user" not in argv  # as root it would map the sandbox user to real root
    assert bwrap_part[bwrap_part.index("--seccomp") + 1] == "7"
    setpriv = argv[argv.index("--") + 1: argv.index("--", argv.index("--") + 1)]
    assert {"--reuid=20005", "--regid=30001", "--clear-groups", "--no-new-privs", "--bounding-set=-all",
            "--inh-caps=-all"} <= set(setpriv)
    assert "--as=2147483648" in argv and "--nproc=256" in argv and "--cpu=36000" in argv
    assert argv[-1] == "jupyterhub-singleuser"


def test_parent_directories_are_traversable(tmp_path):
    argv = sandbox.bwrap_argv(_spec(tmp_path, readonly_paths=(Path("/root/.pyenv/versions/3.11.7"),)))
    # privileged bwrap would create /root 0700, which the sandbox user could not traverse
    i = argv.index("/root")
    assert argv[i - 3: i] == ["--perms", "0755", "--dir"]


def test_generated_passwd_names_only_the_user():
    text = sandbox.passwd_text("alice", 20005, 30001, "/home/alice")
    assert text.splitlines()[0] == "alice:x:20005:30001:alice:/home/alice:/bin/sh"
    assert "root" not in text


def test_seccomp_program_is_built():
    program = seccomp_filter.bpf_program()
    assert len(program) % 8 == 0 and len(program) > 100  # classic BPF: 8-byte instructions


def test_accounts_store_only_hashes_and_refuse_bad_rows(enclave_home):
    from enclave.settings import get_settings

    settings = get_settings()
    path = oidc.write_accounts(settings, [oidc.Account("alice", "correct horse battery", groups=["researcher"])])
    text = path.read_text()
    assert "correct horse battery" not in text
    row = json.loads(text)["accounts"][0]
    assert row["password_hash"].startswith("scrypt$") and row["groups"] == ["researcher"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="duplicate"):
        oidc.write_accounts(settings, [oidc.Account("a", "long enough 1"), oidc.Account("a", "long enough 2")])
    with pytest.raises(ValueError, match="shorter than 8"):
        oidc.write_accounts(settings, [oidc.Account("a", "short")])
    assert json.loads(path.read_text())["accounts"][0]["username"] == "alice"  # untouched by the refusals


def test_client_secret_is_generated_once_for_the_dev_provider(enclave_home):
    from enclave.settings import get_settings

    settings = get_settings()
    first = oidc.client_secret(settings)
    assert first == oidc.client_secret(settings) and len(first) >= 32
    config = json.loads(oidc.provider_config(settings).read_text())
    assert config["host"] == "127.0.0.1"
    assert config["clients"][0]["redirect_uris"] == [f"http://127.0.0.1:{settings.hub_port}/hub/oauth_callback"]


def test_dp_service_socket_folder_reaches_kernels_only_through_host_json_and_broker(tmp_path):
    """The DP service's socket folder is bound read-only in every kernel sandbox (the researcher's code
    calls it, identified by the kernel's uid and project gid) and in no server sandbox; the bind
    survives the spawner's host.json and the broker's per-kernel command line."""
    import dataclasses
    from types import SimpleNamespace

    from enclave.conditions import WorkspaceLimits
    from enclave.dp_service.client import SANDBOX_SOCKET
    from hub_config.gateway.host import spec_from_json
    from hub_config.kernels.broker import KernelBroker
    from hub_config.spawner import SandboxSpawner

    dp_dir = tmp_path / "run" / "dp"
    spawner = SandboxSpawner(dp_socket_path=str(dp_dir / "dp.sock"), hub_socket_path=str(tmp_path / "hub.sock"),
                             readonly_paths=["/opt/venv"])
    grant = SimpleNamespace(username="alice", project="alpha", uid=20005, gid=30001, home_path=str(tmp_path / "home"),
                            extract_path=str(tmp_path / "extract"), limits=WorkspaceLimits())
    dirs = {kind: tmp_path / "run" / kind for kind in ("socket", "kernels", "gateway", "etc")}
    kernel = spawner._kernel_spec(grant, dirs)
    on_disk = json.loads(json.dumps(dataclasses.asdict(kernel), default=str))  # as _host_spec writes host.json
    template = spec_from_json(on_disk)
    assert template == kernel
    argv = KernelBroker(template, {}, {}).argv(7, 9, "/home/alice")
    inside = str(Path(SANDBOX_SOCKET).parent)
    assert _binds(argv)[inside] == ("--ro-bind", str(dp_dir))
    assert argv.index(inside) > argv.index("/run")  # after the tmpfs on /run, which would hide it
    setpriv = argv[argv.index("--") + 1:]
    assert "--reuid=20005" in setpriv and "--regid=30001" in setpriv  # SO_PEERCRED: the researcher, the project
    server = spec_from_json(json.loads(json.dumps(dataclasses.asdict(spawner._server_spec(grant, dirs)), default=str)))
    assert inside not in _binds(sandbox.bwrap_argv(server))  # the server runs no researcher code
