"""After a hub crash, running workspaces are stopped and recorded, never orphaned; they start again."""
from __future__ import annotations

import time

import psutil
import pytest

import hub_client as hubclient
from hub_client import audit_events
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]


def sandboxes_of(home_path: str) -> list[psutil.Process]:
    """One process per running workspace whose sandboxes bind ``home_path``: the nearest ancestor of
    those bwraps that is not a bwrap (the workspace's host process; its server and each kernel have a
    sandbox of their own, and each sandbox's in-namespace init is a second bwrap)."""
    owners: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] != "bwrap" or home_path not in cmdline:
            continue
        try:
            owner = proc.parent()
            while owner is not None and owner.name() == "bwrap":
                owner = owner.parent()
        except psutil.Error:
            continue
        if owner is not None:
            owners[owner.pid] = owner
    return list(owners.values())


def test_hub_crash_stops_and_records_workspaces_then_they_restart(running_hub):
    url, registry = running_hub.url, running_hub.settings.registry_url
    bob_home = str(running_hub.settings.home / "workspaces" / "alpha" / "bob")
    session = hubclient.login(url, "bob", PASSWORDS["bob"])
    hubclient.start_server(session, url, "bob", "alpha")
    assert len(sandboxes_of(bob_home)) == 1
    stopped_before = len(audit_events(registry, "workspace.stopped"))

    running_hub.restart_hub(kill=True)  # SIGKILL: no clean-up by the hub itself

    # --die-with-parent took the sandbox down with the hub: nothing is left running.
    deadline = time.monotonic() + 10
    while sandboxes_of(bob_home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandboxes_of(bob_home) == []
    model = hubclient.settled_model(session, url, "bob", "alpha")
    assert not model["ready"] and not model["pending"], model
    stops = audit_events(registry, "workspace.stopped")
    assert len(stops) == stopped_before + 1
    actor, _, project, details = stops[-1]
    assert (actor, project, details["extract_version"]) == ("bob", "alpha", 1)
    assert "not stopped by the hub" in details["reason"]

    # The same session cookie still works with the restarted hub, and the workspace starts again.
    hubclient.start_server(session, url, "bob", "alpha")
    kernel = hubclient.Kernel(session, url, "bob", "alpha")
    assert kernel.run("print(sorted(__import__('os').listdir('/data')))")["stdout"].strip() == "['births.parquet', 'manifest.json']"
    kernel.close()

    running_hub.restart_hub(kill=False)  # a clean shutdown stops (and records) every workspace itself
    assert sandboxes_of(bob_home) == []
    last = audit_events(registry, "workspace.stopped")[-1]
    assert last[0] == "bob" and last[3]["reason"] == "stopped by the hub"
