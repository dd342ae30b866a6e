"""A real hub for the hub tests: registry and zones, the OIDC provider, JupyterHub and its proxy.

Session-scoped: the hub tests share one data root, one provider and one hub (about 5-10 s to
start on this machine), stopped at the end of the session.
"""
from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hub_world as world  # noqa: E402
from hub_client import free_port_pair  # noqa: E402
from hub_world import PASSWORDS  # noqa: E402


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


@contextmanager
def _started_hub(request, *, idle_cull_seconds: int, prefix: str):
    """A data root, registry, OIDC provider and hub of their own, removed on exit. The ENCLAVE_*
    environment is set only while the registry is built (the hub process gets its settings from
    the launcher), so tests elsewhere in the same pytest run never see this data root."""
    from enclave.registry.base import dispose_engines
    from enclave.settings import get_settings
    from hub_config import launcher, oidc

    # Not under pytest's basetemp: pytest deletes old basetemps of *other* concurrent sessions, and a
    # workspace whose socket directory vanishes mid-test answers 503. Removed at the end instead.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    home = root / "var"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENCLAVE_HOME", str(home))
        mp.delenv("ENCLAVE_DATABASE_URL", raising=False)
        hub_port = free_port_pair()
        mp.setenv("ENCLAVE_HUB_PORT", str(hub_port))
        mp.setenv("ENCLAVE_OIDC_PORT", str(free_port_pair(frozenset({hub_port, hub_port + 1}))))
        mp.setenv("ENCLAVE_IDLE_CULL_SECONDS", str(idle_cull_seconds))
        get_settings.cache_clear()
        settings = get_settings()
        built = world.build(home, settings.registry_url)
        get_settings.cache_clear()
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
        running.hub.stop()  # also stops a proxy left by a crashed hub
        provider.stop()
        dispose_engines()
        if request.session.testsfailed:  # keep the hub, proxy, provider and sandbox logs for the post-mortem
            kept = shutil.copytree(home / "hub" / "logs", Path(tempfile.mkdtemp(prefix=f"{prefix}logs-")) / "logs")
            print(f"\nhub test logs kept in {kept}")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def running_hub(request):
    """One hub for the whole hub test session (workspaces culled after an hour idle: never in a test)."""
    with _started_hub(request, idle_cull_seconds=3600, prefix="enclave-hub-") as running:
        yield running


IDLE_CULL_SECONDS = 30  # the culler's shortest check interval is 30 s (jupyterhub_config.py)


@pytest.fixture(scope="module")
def culling_hub(request):
    """A second hub, with its own data root, whose idle culler stops a workspace idle for
    IDLE_CULL_SECONDS (checked every 30 s). Only the idle-culling tests use it; the session hub
    and its workspaces are untouched."""
    with _started_hub(request, idle_cull_seconds=IDLE_CULL_SECONDS, prefix="enclave-hub-cull-") as running:
        yield running


@pytest.fixture(scope="module")
def upper_case_hub(request):
    """A hub whose ENCLAVE_HOME has upper-case letters (issue 11, item 9): the host part of an
    http+unix:// URL is lower-cased by URL parsers, so no socket path may depend on that case."""
    with _started_hub(request, idle_cull_seconds=3600, prefix="enclave-Hub-MixedCase-") as running:
        yield running


@pytest.fixture(scope="session")
def registry_url(running_hub):
    return running_hub.settings.registry_url
