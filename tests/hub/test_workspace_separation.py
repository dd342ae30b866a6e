"""Issue 11, items 1, 5 and 7: the researcher's code against its own workspace server, through the real hub.

Each test is an attack a kernel cell (or a leaked credential) can try. On the layout where the
server and the kernels shared one uid and one sandbox, each succeeded: the kernel's environment
held the server's hub token, which opened the workspace through the public proxy; a cell could
kill its server, read its cookie secret, or replace it with a plain ``jupyterhub-singleuser``
that served ``/files/<extract>.parquet``. Here each must fail, and the workspace must stay
restricted or end dead. The host-side tests play the strongest attacker: the test process (root)
replaces or kills the server itself, as a kernel that broke out of its sandbox would.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import requests

import hub_client as hubclient
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

USER, PROJECT = "bob", "beta"
BASE = f"/user/{USER}/{PROJECT}/"


def _of_this_hub(proc: psutil.Process) -> bool:
    """True when an ancestor of ``proc`` was started for this hub's data root (other hubs run on this machine)."""
    from hub_config import spawner

    settings = HUB["settings"]
    marks = [str(settings.home)]
    if hasattr(spawner, "short_runtime_dir"):  # absent before issue 11, where the sandbox binds the home
        marks.append(str(spawner.short_runtime_dir(str(settings.hub_dir.resolve()))))
    try:
        return any(mark in arg for parent in proc.parents() for arg in parent.cmdline() for mark in marks)
    except psutil.Error:
        return False


HUB: dict = {}


def _server_process() -> psutil.Process:
    """The workspace's Jupyter server of this hub, found from the host by its environment (either layout)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "jupyterhub-singleuser" not in cmdline or "--ServerApp.sock" not in cmdline:
            continue
        try:
            env = proc.environ()
        except psutil.Error:
            continue
        if env.get("JUPYTERHUB_USER") == USER and env.get("JUPYTERHUB_SERVER_NAME") == PROJECT and _of_this_hub(proc):
            return proc
    raise AssertionError("no running server of the workspace")


def _wait_for(predicate, timeout: float = 30, what: str = "state") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def bob_in_beta(running_hub):
    """Bob logged in, his beta workspace running, a kernel open, an extract copy in his home."""
    HUB["settings"] = running_hub.settings
    session = hubclient.login(running_hub.url, USER, PASSWORDS[USER])
    started = hubclient.start_server(session, running_hub.url, USER, PROJECT)
    assert started.status_code in (201, 202), started.text
    kernel = hubclient.Kernel(session, running_hub.url, USER, PROJECT)
    copied = kernel.run("import shutil, os\nshutil.copy('/data/births.parquet', os.path.expanduser('~/leak.parquet'))\n"
                        "print(open(os.path.expanduser('~/leak.parquet'), 'rb').read(4))")
    assert copied["stdout"].strip() == "b'PAR1'", copied
    yield session, kernel
    try:
        kernel.close()
    except Exception:  # noqa: BLE001 - the last tests end the workspace on purpose
        pass
    hubclient.stop_server(session, running_hub.url, USER, PROJECT)


def _run_json(kernel, code: str) -> dict:  # noqa: ANN001
    answer = kernel.run(code + "\nprint('RESULT' + json.dumps(result))", timeout=120)
    assert answer["status"] == "ok", answer
    line = next(li for li in answer["stdout"].splitlines() if li.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def _not_leaked(answer: requests.Response) -> bool:
    return not (answer.status_code == 200 and (b"PAR1" in answer.content or b"UEFSM" in answer.content))


def test_kernel_environment_holds_no_hub_or_server_token(bob_in_beta):
    _, kernel = bob_in_beta
    token = _server_process().environ()["JUPYTERHUB_API_TOKEN"]
    result = _run_json(kernel, "import os, json, glob\n"
                       "found = []\n"
                       "for path in ['/proc/self/environ', *glob.glob('/proc/[0-9]*/environ')]:\n"
                       "    try:\n"
                       "        found.append(open(path, 'rb').read().decode(errors='replace'))\n"
                       "    except OSError:\n"
                       "        pass\n"
                       "result = {'names': sorted(k for k in os.environ if k.startswith(('JUPYTERHUB', 'JPY')) or 'TOKEN' in k),"
                       " 'environs': found}")
    assert result["names"] == []
    assert not [e for e in result["environs"] if token in e]


def test_server_token_is_useless_through_the_public_proxy(running_hub, bob_in_beta):
    """A token that leaks anyway (read here from the host) opens nothing from outside the workspace."""
    token = _server_process().environ()["JUPYTERHUB_API_TOKEN"]
    outsider = requests.Session()
    headers = {"Authorization": f"token {token}"}
    url = running_hub.url

    def ask(method: str, path: str, **kwargs):  # noqa: ANN202
        # through_proxy retries only the proxy's own 503 (EPIPE when a refusal beats the request body):
        # the answer asserted is always the workspace's or the hub's.
        return hubclient.through_proxy(outsider, method, f"{url}{path}", allow_redirects=False, **kwargs)

    assert ask("GET", f"{BASE}api/contents", headers=headers).status_code in (302, 401, 403)
    assert ask("GET", f"{BASE}api/contents/leak.parquet", headers=headers).status_code in (302, 401, 403)
    kernels = ask("POST", f"{BASE}api/kernels", json={"name": "python3"}, headers=headers)
    assert kernels.status_code in (302, 401, 403), kernels.status_code
    assert ask("GET", f"{BASE}api/contents?token={token}").status_code in (302, 401, 403)
    activity = ask("POST", f"/hub/api/users/{USER}/activity", headers=headers, json={"last_activity": "2030-01-01T00:00:00Z"})
    assert activity.status_code == 403, activity.status_code
    servers = outsider.get(f"{url}/hub/api/users/{USER}", headers=headers)
    assert "servers" not in (servers.json() if servers.ok else {})


def test_kernel_cannot_read_the_servers_config_token_or_cookie_secret(bob_in_beta):
    _, kernel = bob_in_beta
    server = _server_process()
    token = server.environ()["JUPYTERHUB_API_TOKEN"]
    result = _run_json(kernel, "import os, glob, json\n"
                       "paths = ['/tmp/jupyter-runtime/jupyter_cookie_secret', *glob.glob('/tmp/jupyter-runtime/*'),"
                       " *glob.glob('/run/jupyter/*'), *glob.glob('/run/kernels/*.json'), '/proc/%d/environ']\n"
                       "result = {}\n"
                       "for p in paths:\n"
                       "    try:\n"
                       "        result[p] = open(p, 'rb').read(4096).decode(errors='replace')\n"
                       "    except OSError as e:\n"
                       "        result[p] = 'refused'\n" % server.pid)
    readable = {p: v for p, v in result.items() if v != "refused"}
    assert not [p for p, v in readable.items() if token in v], readable.keys()
    assert "/tmp/jupyter-runtime/jupyter_cookie_secret" not in readable
    assert not [p for p in readable if "jpserver" in p or p.startswith("/run/jupyter/") or p.endswith(".json")]


def test_kernel_cannot_signal_its_server(running_hub, bob_in_beta):
    session, kernel = bob_in_beta
    server_before = _server_process()
    try:
        result = _run_json(kernel, "import os, signal, json, ctypes\n"
                           "libc = ctypes.CDLL(None, use_errno=True)\n"
                           "result = {'seen': [], 'killed': [], 'traced': []}\n"
                           "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
                           "    try:\n"
                           "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
                           "    except OSError:\n"
                           "        continue\n"
                           "    if b'jupyterhub-singleuser' in cmd or b'hub_config.gateway' in cmd:\n"
                           "        result['seen'].append(int(pid))\n"
                           "for pid in result['seen'] + [os.getppid(), 1]:\n"
                           "    if libc.ptrace(16, pid, 0, 0) == 0:\n"
                           "        result['traced'].append(pid)\n"
                           "    try:\n"
                           "        os.kill(pid, signal.SIGKILL)\n"
                           "        result['killed'].append(pid)\n"
                           "    except OSError:\n"
                           "        pass\n")
    except Exception as lost:  # noqa: BLE001 - the old layout: the cell killed its own server mid-reply
        result = {"seen": ["?"], "killed": ["?"], "traced": [], "lost": repr(lost)}
    assert result["seen"] == [] and result["killed"] == [] and result["traced"] == [], result
    assert server_before.is_running() and _server_process().pid == server_before.pid
    assert kernel.run("print(6 * 7)")["stdout"].strip() == "42"


REPLACE_SERVER = r'''
import json, os, shutil, subprocess, sys, time
result = {}
sock = '/run/jupyter/server.sock'
try:
    os.rename(sock, '/run/jupyter/real.sock')
    env = dict(os.environ)
    os.makedirs('/tmp/plain-config', exist_ok=True)
    env['JUPYTER_CONFIG_DIR'] = '/tmp/plain-config'
    subprocess.Popen([sys.prefix + '/bin/jupyterhub-singleuser', '--ServerApp.sock=' + sock,
                      '--ServerApp.root_dir=' + os.path.expanduser('~')], env=env, start_new_session=True,
                     stdout=open('/tmp/plain.log', 'wb'), stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    result['replaced'] = os.path.exists(sock)
except OSError as e:
    result['replaced'] = False
    result['error'] = f'{type(e).__name__}: {e}'
'''


def test_kernel_cannot_replace_its_server(running_hub, bob_in_beta):
    """The attack of the issue: rename the server's socket, start a plain server in its place."""
    session, kernel = bob_in_beta
    result = _run_json(kernel, REPLACE_SERVER)
    url = running_hub.url
    for path in ("files/leak.parquet", "api/contents/leak.parquet?type=file&format=base64",
                 "view/leak.parquet", "api/terminals"):
        answer = session.get(f"{url}{BASE}{path}", headers=kernel.headers, timeout=60)
        assert _not_leaked(answer) and answer.status_code != 200, (path, answer.status_code, result)
    assert result["replaced"] is False, result


def _runtime_dirs(running_hub) -> Path:
    from hub_config.spawner import short_runtime_dir

    import hashlib

    name = hashlib.sha256(f"{USER}\0{PROJECT}".encode()).hexdigest()[:16]
    return short_runtime_dir(str(running_hub.settings.hub_dir.resolve())) / name


def test_a_replaced_server_gets_nothing_through_the_gateway(running_hub, bob_in_beta):
    """Defence in depth: the server is replaced (by root, from the host) with a plain, unrestricted
    jupyterhub-singleuser holding the real server's credentials; the browser still gets no file out."""
    session, kernel = bob_in_beta
    server = _server_process()
    from urllib.parse import quote

    hub_api = f"http+unix://{quote(str(running_hub.settings.hub_dir / 'run' / 'hub.sock'), safe='')}/hub/api"
    env = {**server.environ(), "JUPYTER_CONFIG_DIR": tempfile.mkdtemp(prefix="plain-config-"),
           "JUPYTER_RUNTIME_DIR": tempfile.mkdtemp(prefix="plain-runtime-"), "JUPYTERHUB_API_URL": hub_api,
           "JUPYTERHUB_ACTIVITY_URL": f"{hub_api}/users/{USER}/activity"}
    socket_dir = _runtime_dirs(running_hub)
    home = running_hub.settings.home / "workspaces" / PROJECT / USER
    os.rename(socket_dir / "server.sock", socket_dir / "real.sock")
    plain_log = open(Path(env["JUPYTER_RUNTIME_DIR"]) / "plain.log", "wb")  # noqa: SIM115 - closed below
    plain = subprocess.Popen([str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser"), "--allow-root",
                              f"--ServerApp.sock={socket_dir / 'server.sock'}", f"--ServerApp.root_dir={home}",
                              "--ServerApp.terminals_enabled=True"],
                             env=env, stdout=plain_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            _wait_for(lambda: (socket_dir / "server.sock").exists(), 60, "the plain server")
        except AssertionError:
            raise AssertionError((Path(env["JUPYTER_RUNTIME_DIR"]) / "plain.log").read_text()[-3000:]) from None
        url = running_hub.url
        # The controls: the plain server has its own cookie secret, so the browser signs in to it again
        # (OAuth with the hub, as the attack of the issue did); then it answers through the gateway.
        lab = session.get(f"{url}{BASE}lab", timeout=60)
        assert lab.status_code == 200, lab.status_code
        listing = session.get(f"{url}{BASE}api/contents", timeout=30)
        assert listing.status_code == 200 and "leak.parquet" in listing.text, listing.status_code
        for path in ("files/leak.parquet", "view/leak.parquet", "nbconvert/html/leak.parquet?download=true",
                     "api/contents/leak.parquet?type=file&format=base64", "api/contents/leak.parquet?content=1",
                     "api/terminals", "terminals/1"):
            answer = session.get(f"{url}{BASE}{path}", headers=kernel.headers, timeout=30)
            assert _not_leaked(answer) and answer.status_code in (403, 404, 405), (path, answer.status_code)
    finally:
        plain.kill()
        plain.wait(10)
        plain_log.close()
        os.replace(socket_dir / "real.sock", socket_dir / "server.sock")
        for d in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
            shutil.rmtree(env[d], ignore_errors=True)


def test_a_killed_server_leaves_a_dead_workspace(running_hub, bob_in_beta):
    """Whoever kills the server, nothing takes its place: the gateway's socket goes and the hub stops it."""
    session, kernel = bob_in_beta
    server = _server_process()
    gateway_socket = _runtime_dirs(running_hub).with_name(_runtime_dirs(running_hub).name + ".gw") / "gateway.sock"
    assert gateway_socket.is_socket()
    server.send_signal(signal.SIGKILL)
    _wait_for(lambda: not gateway_socket.exists(), 30, "the workspace to end")
    answer = session.get(f"{running_hub.url}{BASE}files/leak.parquet", timeout=30)
    assert _not_leaked(answer) and answer.status_code != 200
