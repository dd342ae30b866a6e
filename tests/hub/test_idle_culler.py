"""The idle culler stops a workspace left idle, and the stop is recorded; a workspace in use is kept.

Against ``conftest.culling_hub``: a hub of its own whose culler (a hub-managed service,
``jupyterhub_config.py``) stops a workspace idle for IDLE_CULL_SECONDS and checks every 30 s.
One researcher starts two workspaces at once and leaves one idle while running code in the
other's kernel every few seconds. The idle one must be culled within a bounded time; the busy one
must still be running after a culler check that came when it had been up longer than the idle
limit, so the test cannot pass by workspaces simply dying, nor by the culler never looking.
"""
from __future__ import annotations

import time

import pytest
import websocket

import hub_client as hubclient
from hub_client import audit_events
from hub_world import PASSWORDS
from test_hub_restart import sandboxes_of

pytestmark = [pytest.mark.hub, pytest.mark.timeout(420)]

CULL_EVERY = 30  # jupyterhub_config.py: max(30, min(300, idle_cull_seconds // 4))
MARGIN = 60  # a loaded two-core machine delays the culler's ticks and the hub's answers
CULLER_CHECK = "GET /hub/api/users?"  # the hub's access-log line of each culler pass ...
CULLER = "(idle-culler@"  # ... made with the culler service's token


def culler_checks(log_path) -> int:  # noqa: ANN001
    """How many passes the culler has made so far (each starts by listing the users with ready servers)."""
    return sum(1 for line in log_path.read_text(errors="replace").splitlines() if CULLER_CHECK in line and CULLER in line)


def server_model(session, url: str, project: str) -> dict:  # noqa: ANN001
    answer = hubclient.api(session, url, "GET", f"/users/bob/servers/{project}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_idle_workspace_is_culled_and_recorded_while_a_busy_one_is_kept(culling_hub):
    url, registry, home = culling_hub.url, culling_hub.settings.registry_url, culling_hub.settings.home
    log_path = culling_hub.hub.log_path
    idle_limit = culling_hub.settings.idle_cull_seconds
    assert idle_limit <= CULL_EVERY, "this test's deadlines assume the culler's shortest interval"
    idle_home = str(home / "workspaces" / "alpha" / "bob")
    busy_home = str(home / "workspaces" / "beta" / "bob")
    session = hubclient.login(url, "bob", PASSWORDS["bob"])
    stops_before = len(audit_events(registry, "workspace.stopped"))

    idle_requested = time.monotonic()  # no activity of the idle workspace can be older than this
    hubclient.start_server(session, url, "bob", "alpha", timeout=120)
    idle_ready = time.monotonic()
    hubclient.start_server(session, url, "bob", "beta", timeout=120)
    busy_ready = time.monotonic()
    assert len(sandboxes_of(idle_home)) == 1 and len(sandboxes_of(busy_home)) == 1
    kernel = hubclient.Kernel(session, url, "bob", "beta")  # the busy one: a kernel running code
    beats = 0

    def beat() -> None:
        """Run code in the busy workspace, and check it is still up: it must never be culled."""
        nonlocal beats
        beats += 1
        try:
            result = kernel.run(f"beat = {beats}; print(beat)")
        except (websocket.WebSocketException, OSError) as error:
            culled = "Culling server bob/beta" in log_path.read_text(errors="replace")
            pytest.fail(f"the busy workspace stopped answering its kernel ({error!r}); culled by the culler: {culled}")
        assert (result["status"], result["stdout"].strip()) == ("ok", str(beats)), result
        assert len(sandboxes_of(busy_home)) == 1, "the busy workspace's sandbox is gone"
        assert server_model(session, url, "beta")["ready"], "the busy workspace was stopped"

    # 1. The idle workspace is culled: within its limit plus two culler passes (and a margin).
    deadline = idle_ready + idle_limit + 2 * CULL_EVERY + MARGIN
    while time.monotonic() < deadline:
        beat()
        if not sandboxes_of(idle_home) and not server_model(session, url, "alpha")["pending"]:
            break
        time.sleep(2)
    culled_after = time.monotonic() - idle_requested
    assert sandboxes_of(idle_home) == [], f"idle workspace still running {culled_after:.0f} s after it started"
    assert culled_after >= idle_limit, f"culled after {culled_after:.0f} s, before its idle limit"
    model = server_model(session, url, "alpha")
    assert not model["ready"] and not model["pending"], model

    # It was the culler, and the stop went through the hub, which recorded it.
    log = log_path.read_text(errors="replace")
    assert "Culling server bob/alpha" in log
    assert any("DELETE /hub/api/users/bob/servers/alpha" in line and CULLER in line for line in log.splitlines())
    stops = audit_events(registry, "workspace.stopped")
    assert len(stops) == stops_before + 1, stops[stops_before:]
    actor, _, project, details = stops[-1]
    assert (actor, project, details["extract_version"]) == ("bob", "alpha", 1)
    # The spawner is not told who asked for the stop; the culler's DELETE is a stop by the hub
    # (a sandbox that dies on its own is recorded "ended while not stopped by the hub").
    assert details["reason"] == "stopped by the hub"

    # 2. The busy workspace is still running after a culler pass that came once it had been up longer
    # than the idle limit: by then its start-up activity alone would have got it culled.
    checks_seen, last_poll = culler_checks(log_path), time.monotonic()
    judged = False
    deadline = busy_ready + idle_limit + 5 + 2 * CULL_EVERY + MARGIN
    while time.monotonic() < deadline:
        beat()
        time.sleep(2)
        checks, poll = culler_checks(log_path), time.monotonic()
        if checks > checks_seen and last_poll >= busy_ready + idle_limit + 5:
            # A pass logged after last_poll judged at about that moment or later (the 5 s cover the
            # moments between the culler reading its clock and the hub logging its request).
            judged = True
            break
        checks_seen, last_poll = checks, poll
    assert judged, "the culler made no pass late enough to judge the busy workspace"
    for _ in range(3):  # a cull decided in that pass takes a moment: the busy one must survive it
        time.sleep(2)
        beat()
    kernel.close()

    log = log_path.read_text(errors="replace")
    assert "Culling server bob/beta" not in log
    assert [s for s in audit_events(registry, "workspace.stopped")[stops_before:] if s[2] == "beta"] == []
    hubclient.stop_server(session, url, "bob", "beta")
    assert sandboxes_of(busy_home) == []
