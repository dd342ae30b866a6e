"""Start and stop the hub's processes: the development OIDC provider and JupyterHub (which starts the proxy).

Used by ``enclave hub start|oidc|demo``, by the tests and by the spawn benchmark, so that all of
them run the same processes the same way. Each start waits until the process answers and
fails with the tail of its log otherwise.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from enclave.settings import Settings
from hub_config import oidc, single_user

CONFIG_FILE = Path(__file__).resolve().parent / "jupyterhub_config.py"


class LaunchError(RuntimeError):
    """A process did not come up; the message carries the end of its log."""


@dataclass
class Managed:
    """A started process and its log file."""

    name: str
    process: subprocess.Popen
    log_path: Path
    after_stop: Callable[[], None] | None = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.after_stop is not None:
            self.after_stop()


def stop_strays(settings: Settings) -> None:
    """Stop the children a hub started but did not stop (it crashed, was killed or failed to start):
    its proxy (named by its pid file), its idle culler (named by this hub's own URL) and its DP
    budget service (named by its socket)."""
    pid_file = settings.hub_dir / "run" / "proxy.pid"
    try:
        pid = int(pid_file.read_text().strip())
        if "configurable-http-proxy" in " ".join(psutil.Process(pid).cmdline()):  # the pid may be reused
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, psutil.Error):
        pass
    pid_file.unlink(missing_ok=True)
    culler_url = f"--url={oidc.public_url(settings)}/hub/api"
    dp_socket = f"--socket={settings.hub_dir / 'run' / 'dp' / 'dp.sock'}"  # the DP service (jupyterhub_config.py)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if ("jupyterhub_idle_culler" in cmdline and culler_url in cmdline) or (
                "enclave.dp_service" in cmdline and dp_socket in cmdline):
            try:
                proc.terminate()
            except psutil.Error:
                pass


def settings_env(settings: Settings) -> dict[str, str]:
    """The ENCLAVE_* variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[f"ENCLAVE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVE_", "JUPYTERHUB_", "JPY_"))}
    env.update(settings_env(settings))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(single_user.PYSHIM_DIR), env.get("PYTHONPATH", "")]))
    return env


def _wait_until(check, managed: Managed, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if managed.process.poll() is not None:
            raise LaunchError(f"{managed.name} exited with {managed.process.returncode}:\n{managed.log_tail()}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    managed.stop()
    raise LaunchError(f"{managed.name} did not {what} within {timeout:.0f} s:\n{managed.log_tail()}")


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise LaunchError("node is not installed (make setup installs the Node parts)")
    return node


def start_oidc_provider(settings: Settings, timeout: float = 20.0) -> Managed:
    """Run ``provider.mjs`` on loopback with the account table already written by ``oidc.write_accounts``."""
    if not oidc.accounts_file(settings).exists():
        raise LaunchError(f"no account table at {oidc.accounts_file(settings)}: run `enclave hub oidc` first")
    config = oidc.provider_config(settings)
    log_path = settings.hub_dir / "logs" / "oidc-provider.log"
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    repo = Path(__file__).resolve().parent.parent
    with open(log_path, "ab") as log:
        process = subprocess.Popen([node_executable(), str(oidc.PROVIDER_SCRIPT), str(config)], cwd=repo,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=_child_env(settings), start_new_session=True)
    managed = Managed("oidc-provider", process, log_path)
    discovery = f"{oidc.issuer(settings)}/.well-known/openid-configuration"
    _wait_until(lambda: requests.get(discovery, timeout=1).ok, managed, timeout, "answer")
    return managed


def start_hub(settings: Settings, timeout: float = 60.0) -> Managed:
    """Run JupyterHub with ``jupyterhub_config.py``; it starts the proxy and the idle culler."""
    settings.hub_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
    log_path = settings.hub_dir / "logs" / "jupyterhub.log"
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)], cwd=settings.hub_dir,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=_child_env(settings), start_new_session=True)
    managed = Managed("jupyterhub", process, log_path, after_stop=lambda: stop_strays(settings))
    api = f"{oidc.public_url(settings)}/hub/api/"
    _wait_until(lambda: requests.get(api, timeout=2).status_code == 200, managed, timeout, "answer through the proxy")
    return managed
