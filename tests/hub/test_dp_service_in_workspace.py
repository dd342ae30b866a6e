"""The DP budget service from inside a real workspace sandbox: the hub starts it, the spawner binds
its socket, a kernel asks through the researcher API and the project's registry budget is charged.
The workspace cannot make the service charge (or answer for) another project."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

import hub_client as hubclient
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

ASK = r'''
import json, os
from enclave import notebook as nb
from enclave.dp_service import client
value = nb.dp_count("births", epsilon=0.25, purpose="births in the cohort")
outputs = sorted(os.listdir(os.path.expanduser("~/outputs")))
receipt = json.load(open(os.path.expanduser("~/outputs/" + outputs[-1])))["dp_receipt"]
try:
    client.ask({"statistic": "count", "table": "births", "epsilon": 0.25, "project": "beta"})
    other = "answered"
except client.DPServiceError as exc:
    other = str(exc)
print("DP-RESULT" + json.dumps({"value": value, "outputs": outputs, "receipt": receipt, "other": other}))
'''


def test_a_kernel_gets_a_charged_signed_answer_for_its_own_project_only(running_hub):
    from enclave.dp_service import receipts
    from enclave.registry.base import session_scope
    from enclave.registry.models import DPBudget, Project

    url = running_hub.settings.registry_url
    dp_socket = running_hub.settings.hub_dir / "run" / "dp" / "dp.sock"
    deadline = time.monotonic() + 120
    while not dp_socket.is_socket():  # the hub starts the service beside itself: wait until it listens
        assert time.monotonic() < deadline, "the hub did not start the DP service"
        time.sleep(0.1)
    session = hubclient.login(running_hub.url, "bob", PASSWORDS["bob"])
    started = hubclient.start_server(session, running_hub.url, "bob", "beta")
    assert started.status_code in (201, 202), started.text
    kernel = hubclient.Kernel(session, running_hub.url, "bob", "beta")
    try:
        ran = kernel.run(ASK, timeout=120)
    finally:
        kernel.close()
        hubclient.stop_server(session, running_hub.url, "bob", "beta")
    assert ran["error"] is None, ran
    result = json.loads(ran["stdout"].split("DP-RESULT", 1)[1])
    assert "project" in result["other"]  # the query cannot name a project: the caller's uid and gid do
    payload = result["receipt"]["payload"]
    assert payload["project"] == "beta" and payload["epsilon"] == 0.25 and payload["result"] == result["value"]
    assert result["outputs"] == [f"dp_count_{payload['spend_id']}.json"]
    with _settings(running_hub):
        assert receipts.verify_signature(result["receipt"]) == payload  # signed with the host key
    with session_scope(url, readonly=True) as db:
        beta = db.scalars(select(Project).where(Project.slug == "beta")).one()
        assert db.get(DPBudget, beta.id).epsilon_spent == pytest.approx(0.25)


def _settings(running_hub):
    """ENCLAVE_HOME of the running hub while the host key is read."""
    from contextlib import contextmanager

    from enclave.settings import get_settings

    @contextmanager
    def scope():
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ENCLAVE_HOME", str(running_hub.settings.home))
            get_settings.cache_clear()
            try:
                yield
            finally:
                get_settings.cache_clear()
        get_settings.cache_clear()

    return scope()
