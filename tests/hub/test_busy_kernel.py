"""A busy kernel is activity, up to the project's maximum run time; the chart's cull section follows the settings.

Against ``conftest.culling_hub`` (idle limit 30 s, culler every 30 s). Bob starts a cell that
computes silently (``time.sleep``) in two workspaces: beta with the default maximum run time, and
alpha whose approval sets ``max_kernel_run_seconds`` to 5 s. Nothing else talks to either. The
old rule (activity = kernel messages) culls both; beta must survive a culler pass made when its
last kernel message was older than the idle limit, and alpha, whose busy credit ran out, must be
culled within its limit plus two passes.
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

import hub_client as hubclient
import hub_world as world
from hub_world import PASSWORDS
from test_hub_restart import sandboxes_of
from test_idle_culler import CULL_EVERY, MARGIN, culler_checks, server_model

VALUES = Path(__file__).resolve().parents[2] / "hub_config" / "kubernetes" / "values.yaml"


def test_chart_cull_section_is_derived_from_the_settings():
    from enclave.settings import Settings
    from hub_config.culling import cull_policy

    policy = cull_policy(Settings.model_fields["idle_cull_seconds"].default)
    values = yaml.safe_load(VALUES.read_text())
    assert values["cull"] == policy.chart_values()
    assert (policy.timeout, policy.every, policy.activity_interval) == (3600, 300, 300)
    assert (cull_policy(30).every, cull_policy(30).activity_interval) == (30, 10)


def test_busy_credit_ends_at_the_maximum_run_time():
    from traitlets.config import Configurable

    from hub_config.single_user.busy_activity import BusyKernelActivity

    activity = BusyKernelActivity(Configurable(), max_kernel_run_seconds=100)
    assert activity.credited("k", True, now=0.0) and activity.credited("k", True, now=99.0)
    assert not activity.credited("k", True, now=100.0)
    assert not activity.credited("k", False, now=101.0)  # idle resets the clock
    assert activity.credited("k", True, now=102.0)


def start_silent_cell(kernel: hubclient.Kernel, code: str) -> None:
    """Send an execute request and wait only until the kernel reports itself busy with it."""
    msg_id = uuid.uuid4().hex
    kernel.ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "bob", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    while True:
        msg = json.loads(kernel.ws.recv())
        if (msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "busy"):
            return


@pytest.mark.hub
@pytest.mark.timeout(420)
def test_silently_busy_kernel_is_not_culled_until_its_maximum_run_time(culling_hub):
    url, registry, home = culling_hub.url, culling_hub.settings.registry_url, culling_hub.settings.home
    log_path = culling_hub.hub.log_path
    idle_limit = culling_hub.settings.idle_cull_seconds
    world.set_workspace_conditions(registry, "alpha", max_kernel_run_seconds=5)
    short_home, busy_home = str(home / "workspaces" / "alpha" / "bob"), str(home / "workspaces" / "beta" / "bob")
    session = hubclient.login(url, "bob", PASSWORDS["bob"])
    hubclient.start_server(session, url, "bob", "alpha", timeout=120)
    hubclient.start_server(session, url, "bob", "beta", timeout=120)
    short, busy = hubclient.Kernel(session, url, "bob", "alpha"), hubclient.Kernel(session, url, "bob", "beta")
    start_silent_cell(short, "import time\ntime.sleep(600)")
    start_silent_cell(busy, "import time\ntime.sleep(600)")
    silent_since = time.monotonic()  # no kernel message from either after this

    # 1. alpha's busy credit ends after 5 s: then it is idle, and culled within its limit plus two passes.
    deadline = silent_since + 5 + idle_limit + 2 * CULL_EVERY + MARGIN
    while sandboxes_of(short_home) and time.monotonic() < deadline:
        time.sleep(2)
    assert sandboxes_of(short_home) == [], "a kernel busy past its maximum run time kept its workspace"
    assert "Culling server bob/alpha" in log_path.read_text(errors="replace")

    # 2. beta survives a culler pass made when its last kernel message was older than the idle limit.
    checks_seen, last_poll, judged = culler_checks(log_path), time.monotonic(), False
    deadline = silent_since + idle_limit + 5 + 2 * CULL_EVERY + MARGIN
    while time.monotonic() < deadline:
        time.sleep(2)
        checks, poll = culler_checks(log_path), time.monotonic()
        if checks > checks_seen and last_poll >= silent_since + idle_limit + 5:
            judged = True
            break
        checks_seen, last_poll = checks, poll
    assert judged, "the culler made no pass late enough to judge the busy workspace"
    time.sleep(4)  # a cull decided in that pass takes a moment
    assert "Culling server bob/beta" not in log_path.read_text(errors="replace"), "the busy workspace was culled"
    assert len(sandboxes_of(busy_home)) == 1 and server_model(session, url, "beta")["ready"]
    busy.ws.close()
    hubclient.stop_server(session, url, "bob", "beta")


def test_project_limits_reach_the_server_traits(tmp_path):
    """The spawners' command-line names match the traits they set (a misspelt one would be ignored silently)."""
    from traitlets.config import Configurable
    from traitlets.config.loader import KVArgParseConfigLoader

    from enclave.conditions import WorkspaceLimits
    from hub_config import single_user
    from hub_config.single_user.busy_activity import BusyKernelActivity
    from hub_config.single_user.contents import EnclaveContentsManager

    limits = WorkspaceLimits(contents_read_cap_bytes=1234, ingress_allowed=True, ingress_max_bytes=567,
                             max_kernel_run_seconds=89)
    config = KVArgParseConfigLoader(single_user.limit_args(limits)).load_config()
    contents = EnclaveContentsManager(config=config, root_dir=str(tmp_path))
    assert (contents.read_cap_bytes, contents.ingress_allowed, contents.ingress_max_bytes) == (1234, True, 567)
    assert BusyKernelActivity(Configurable(config=config)).max_kernel_run_seconds == 89
