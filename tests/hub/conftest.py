"""A real hub for the hub tests: registry and zones, the OIDC provider, JupyterHub and its proxy.

Module-scoped: each test module that asks for ``running_hub`` gets its own data root, ports and
processes, stopped (and checked stopped) at the end of the module.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import world  # noqa: E402

PASSWORDS = {username: f"pw-{username}-{os.getpid()}" for username, _, _ in world.PEOPLE}


def free_port_pair() -> int:
    """A loopback port p with p + 1 free too (the proxy's API listens on p + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports")


@dataclass
class RunningHub:
    url: str
    settings: object
    world: world.World
    hub: object
    provider: object

    def restart_hub(self, *, kill: bool) -> None:
        """Stop the hub (SIGKILL to simulate a crash, SIGTERM otherwise) and start it again."""
        from hub_config import launcher

        if kill:
            self.hub.process.send_signal(signal.SIGKILL)
            self.hub.process.wait(10)
        else:
            self.hub.stop()
        self.hub = launcher.start_hub(self.settings)


def _kill_leftover_proxy(settings) -> None:  # noqa: ANN001
    pid_file = settings.hub_dir / "run" / "proxy.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


@pytest.fixture(scope="module")
def running_hub(tmp_path_factory):
    from enclave.registry.base import dispose_engines
    from enclave.settings import get_settings
    from hub_config import launcher, oidc

    home = tmp_path_factory.mktemp("hub") / "var"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENCLAVE_HOME", str(home))
        mp.delenv("ENCLAVE_DATABASE_URL", raising=False)
        mp.setenv("ENCLAVE_HUB_PORT", str(free_port_pair()))
        mp.setenv("ENCLAVE_OIDC_PORT", str(free_port_pair()))
        mp.setenv("ENCLAVE_IDLE_CULL_SECONDS", "3600")
        get_settings.cache_clear()
        settings = get_settings()
        built = world.build(home)
        oidc.write_accounts(settings, [oidc.Account(u, PASSWORDS[u], name=n, groups=r) for u, n, r in world.PEOPLE])
        provider = launcher.start_oidc_provider(settings)
        try:
            hub = launcher.start_hub(settings)
        except Exception:
            provider.stop()
            raise
        running = RunningHub(oidc.public_url(settings), settings, built, hub, provider)
        try:
            yield running
        finally:
            running.hub.stop()
            _kill_leftover_proxy(settings)
            provider.stop()
            dispose_engines()
            get_settings.cache_clear()


@pytest.fixture(scope="module")
def registry_url(running_hub):
    return running_hub.settings.registry_url


def audit_events(url: str, action_prefix: str) -> list:
    import json

    from sqlalchemy import select

    from enclave.registry.base import session_scope
    from enclave.registry.models import AuditEvent

    with session_scope(url, readonly=True) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like(f"{action_prefix}%"))).all()
        return [(e.actor, e.action, e.project, json.loads(e.details or "{}")) for e in events]
