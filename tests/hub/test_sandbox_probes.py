"""Acceptance: log in through the OIDC provider, open a project workspace, and attack it from its kernel.

Every probe is an attack that would succeed from the host as root (reading another project's
extract, the vault, the databases, connecting to the hub's ports, mounting, ptrace...). Each
runs inside the sandbox through the Jupyter REST and websocket API and is asserted one by one.
A probe that fails with anything but an OS-level refusal is a harness error, not a pass.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path
import threading

import pytest

import hub_client as hubclient
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

HARNESS = r'''
import ctypes, ctypes.util, json, os, resource, signal, socket, subprocess, sys
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
def read(path):
    with open(path, "rb") as f:
        return f.read(64)
def write(path, mode="w"):
    with open(path, mode) as f:
        f.write("x")
    return "written"
def tcp(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect((host, port))
    return "connected"
def udp_echo(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"ping", ("127.0.0.1", port))
        return s.recvfrom(16)[0]
def unix(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
    return "connected"
def hub_api(method, path):
    # The hub's API through the socket the sandbox must keep, with the server's own token.
    import http.client
    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect("/run/jupyterhub/hub.sock")
    conn = Conn("hub", timeout=10)
    conn.request(method, "/hub/api" + path, body="{}",
                 headers={"Authorization": "token " + os.environ.get("JUPYTERHUB_API_TOKEN", "")})
    return conn.getresponse().status
def libc(name, *args):
    rc = getattr(_libc, name)(*args)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc
def status_field(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return line.split()[1]
def cmdlines():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
            except OSError:
                out.append("")
    return out
_results = {}
for _name, _expr in json.loads(PROBES_JSON).items():
    try:
        _value = eval(_expr)
        _results[_name] = ["open", repr(_value)[:300]]
    except (OSError, MemoryError) as _e:
        _results[_name] = ["blocked", f"{type(_e).__name__}: {_e}"[:300]]
    except Exception as _e:
        _results[_name] = ["error", f"{type(_e).__name__}: {_e}"[:300]]
print("PROBE-RESULTS" + json.dumps(_results))
'''


def probes(home: str, hub_port: int, oidc_port: int, udp_port: int, settings) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """name -> (expression run in the kernel, expected outcome: "blocked" or the repr it must return)."""
    mib = 1024 * 1024
    return {
        # files of other zones and other people
        "read_other_project_extract": (f"read('{home}/extracts/beta/1/births.parquet')", "blocked"),
        "list_extracts_zone": (f"os.listdir('{home}/extracts')", "blocked"),
        "read_vault": (f"read('{home}/vault/inner/secret.txt')", "blocked"),
        "read_research_store": (f"read('{home}/research/inner/secret.txt')", "blocked"),
        "read_airlock": (f"read('{home}/airlock/inner/secret.txt')", "blocked"),
        "read_releases": (f"read('{home}/releases/inner/secret.txt')", "blocked"),
        "read_registry_db": (f"read('{home}/registry.db')", "blocked"),
        "read_hub_db": (f"read('{home}/hub/jupyterhub.sqlite')", "blocked"),
        "read_cookie_secret": (f"read('{home}/hub/jupyterhub_cookie_secret')", "blocked"),
        "read_oidc_client_secret": (f"read('{home}/hub/oidc/client_secret')", "blocked"),
        "read_other_user_home_host_path": (f"read('{home}/workspaces/alpha/bob/notes.txt')", "blocked"),
        "read_other_user_home_sandbox_path": ("os.listdir('/home/bob')", "blocked"),
        "read_hub_log": (f"read('{home}/hub/logs/jupyterhub.log')", "blocked"),
        "read_host_shadow": ("read('/etc/shadow')", "blocked"),
        "read_dev_mem": ("read('/dev/mem')", "blocked"),
        "list_sysfs_network": ("os.listdir('/sys/class/net')", "blocked"),
        # writes outside the home
        "write_new_file_in_data": ("write('/data/new.csv')", "blocked"),
        "append_to_extract_manifest": ("write('/data/manifest.json', 'a')", "blocked"),
        "write_into_venv": ("write(sys.prefix + '/lib/python3.11/site-packages/evil.pth')", "blocked"),
        "write_jupyter_config": ("write(os.environ['JUPYTER_CONFIG_DIR'] + '/jupyter_server_config.py', 'a')", "blocked"),
        "write_etc_passwd": ("write('/etc/passwd', 'a')", "blocked"),
        # network: only the sandbox's own sockets
        "tcp_proxy_public_port": (f"tcp('127.0.0.1', {hub_port})", "blocked"),
        "tcp_proxy_api_port": (f"tcp('127.0.0.1', {hub_port + 1})", "blocked"),
        "tcp_oidc_provider": (f"tcp('127.0.0.1', {oidc_port})", "blocked"),
        "tcp_ipv6_loopback": (f"tcp('::1', {hub_port})", "blocked"),
        "udp_echo_on_host_loopback": (f"udp_echo({udp_port})", "blocked"),
        "dns_resolution": ("socket.getaddrinfo('pypi.org', 443)", "blocked"),
        "no_resolver_configured": ("read('/etc/resolv.conf')", "blocked"),
        "raw_socket": ("socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)", "blocked"),
        "hub_socket_by_host_path": (f"unix('{home}/hub/run/hub.sock')", "blocked"),
        "only_loopback_interface": ("[n for _, n in socket.if_nameindex()]", "['lo']"),
        # the hub API: only the server (another uid, another sandbox) reaches it; a kernel has neither
        # the hub's socket nor a token (issue 11; before, these answered 200 and 403 with the server's token)
        "hub_api_reachable_control": ("hub_api('GET', '/')", "blocked"),
        "server_token_creates_api_token": ("hub_api('POST', '/users/alice/tokens')", "blocked"),
        "server_token_reads_other_user": ("hub_api('GET', '/users/bob') in (403, 404)", "blocked"),
        "server_token_starts_other_workspace": ("hub_api('POST', '/users/alice/servers/beta')", "blocked"),
        # privileges
        "setuid_root": ("os.setuid(0)", "blocked"),
        "setgid_root": ("os.setgid(0)", "blocked"),
        "ptrace_attach_pid1": ("libc('ptrace', 16, 1, 0, 0)", "blocked"),
        "ptrace_attach_server": ("libc('ptrace', 16, os.getppid(), 0, 0)", "blocked"),
        "mount_tmpfs": ("libc('mount', b'none', b'/tmp', b'tmpfs', 0, None)", "blocked"),
        "new_user_namespace": ("libc('unshare', 0x10000000)", "blocked"),
        "unshare_tool_as_root": ("subprocess.run(['unshare', '-U', '-r', 'true'], capture_output=True).returncode != 0", "True"),
        "signal_sandbox_init": ("os.kill(1, signal.SIGTERM)", "blocked"),
        "read_init_environment": ("read('/proc/1/environ')", "blocked"),
        "no_capabilities": ("[status_field(f) for f in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')]",
                            repr(["0000000000000000"] * 5 + ["1"])),
        # processes of the host and other workspaces
        "processes_visible": ("[c for c in cmdlines() if 'jupyterhub -f' in c or 'configurable-http-proxy' in c "
                              "or 'provider.mjs' in c or 'jupyterhub_idle_culler' in c]", "[]"),
        "process_count_small": ("len(cmdlines()) <= 8", "True"),
        "hostname_is_sandbox": ("socket.gethostname()", "'workspace'"),
        # resource limits
        "allocate_beyond_memory_limit": (f"len(bytearray({settings.workspace_memory_mb + 512} * {mib}))", "blocked"),
        "process_limit": ("resource.getrlimit(resource.RLIMIT_NPROC)", repr((settings.workspace_max_procs,) * 2)),
        "cpu_limit": ("resource.getrlimit(resource.RLIMIT_CPU)", repr((settings.workspace_cpu_seconds,) * 2)),
    }


@pytest.fixture(scope="module")
def udp_echo_server():
    """An echo server on host loopback: reachable from the host, so the UDP probe can fail meaningfully."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(64)
            except OSError:
                continue
            sock.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(2)
    sock.close()


@pytest.fixture(scope="module")
def alice_in_alpha(running_hub):
    """Alice logged in through the provider, her alpha workspace running, a kernel open in it."""
    home = running_hub.settings.home
    bob_home = home / "workspaces" / "alpha" / "bob"
    bob_home.mkdir(parents=True, exist_ok=True)  # exists if bob opened alpha earlier in the session
    (bob_home / "notes.txt").write_text("bob's private notes")
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    started = hubclient.start_server(session, running_hub.url, "alice", "alpha")
    assert started.status_code in (201, 202), started.text
    kernel = hubclient.Kernel(session, running_hub.url, "alice", "alpha")
    yield session, kernel
    kernel.close()
    hubclient.stop_server(session, running_hub.url, "alice", "alpha")


@pytest.fixture(scope="module")
def probe_results(running_hub, alice_in_alpha, udp_echo_server):
    _, kernel = alice_in_alpha
    s = running_hub.settings
    table = probes(str(s.home), s.hub_port, s.oidc_port, udp_echo_server, s)
    code = f"PROBES_JSON = {json.dumps(json.dumps({k: v[0] for k, v in table.items()}))}\n" + HARNESS
    answer = kernel.run(code, timeout=120)
    assert answer["status"] == "ok", answer
    line = next(li for li in answer["stdout"].splitlines() if li.startswith("PROBE-RESULTS"))
    return table, json.loads(line[len("PROBE-RESULTS"):])


def test_udp_echo_server_answers_from_the_host(udp_echo_server):
    # The control for the UDP probe: outside the sandbox the same packet comes back.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"ping", ("127.0.0.1", udp_echo_server))
        assert s.recvfrom(16)[0] == b"ping"


def test_at_least_25_probes(running_hub):
    s = running_hub.settings
    assert len(probes(str(s.home), s.hub_port, s.oidc_port, 1, s)) >= 25


PROBE_NAMES = list(probes("/h", 1, 2, 3, type("S", (), {"workspace_memory_mb": 1, "workspace_max_procs": 1,
                                                         "workspace_cpu_seconds": 1})()))


@pytest.mark.parametrize("name", PROBE_NAMES)
def test_probe(probe_results, name):
    table, results = probe_results
    outcome, detail = results[name]
    expected = table[name][1]
    assert outcome != "error", f"harness error in {name}: {detail}"
    if expected == "blocked":
        assert outcome == "blocked", f"{name} was NOT blocked: {detail}"
    else:
        assert (outcome, detail) == ("open", expected), f"{name}: {outcome} {detail}"


def test_workspace_sees_its_extract_and_writes_its_home(running_hub, alice_in_alpha):
    """The controls of the probes: the same kernel reads /data and writes its home."""
    _, kernel = alice_in_alpha
    answer = kernel.run(
        "import os, pandas as pd\n"
        "print(len(pd.read_parquet('/data/births.parquet')), os.getuid(), os.getgid(), os.environ['HOME'])\n"
        "open(os.path.expanduser('~/analysis.txt'), 'w').write('ok')\n"
    )
    assert answer["status"] == "ok", answer
    rows, uid, gid, home = answer["stdout"].split()
    assert rows == "50" and home == "/home/alice"
    from sqlalchemy import select

    from enclave.registry.base import session_scope
    from enclave.registry.models import Person, Project

    with session_scope(running_hub.settings.registry_url, readonly=True) as session:
        assert int(uid) == session.scalar(select(Person.posix_uid).where(Person.username == "alice"))
        assert int(gid) == session.scalar(select(Project.posix_gid).where(Project.slug == "alpha"))
    written = running_hub.settings.home / "workspaces" / "alpha" / "alice" / "analysis.txt"
    assert written.read_text() == "ok"
    assert written.stat().st_uid == int(uid)
    # A new home starts with the project notebook templates, owned by the user and the workspace group
    # (the server's own uid is its only other member: it serves and saves the notebooks).
    from hub_config.sandbox import server_uid

    workspace_group = server_uid("alice", "alpha")
    assert written.stat().st_gid == workspace_group
    templates = Path(__file__).resolve().parents[2] / "notebooks" / "templates"
    for template in templates.iterdir():
        copied = written.parent / template.name
        assert copied.read_bytes() == template.read_bytes()
        assert (copied.stat().st_uid, copied.stat().st_gid) == (int(uid), workspace_group)


def test_probe_targets_exist_on_the_host(running_hub, alice_in_alpha):
    """The controls of the file probes: every file the sandbox failed to read is there on the host."""
    home = running_hub.settings.home
    for relative in ("extracts/beta/1/births.parquet", "vault/inner/secret.txt", "research/inner/secret.txt",
                     "airlock/inner/secret.txt", "releases/inner/secret.txt", "registry.db", "hub/jupyterhub.sqlite",
                     "hub/jupyterhub_cookie_secret", "hub/oidc/client_secret", "workspaces/alpha/bob/notes.txt",
                     "hub/logs/jupyterhub.log"):
        assert (home / relative).is_file(), relative
    assert (home / "hub" / "run" / "hub.sock").is_socket()
