"""Egress volume through the browser: a read cap on every contents read (notebooks included), a cap on
kernel output over the websocket with a visible notice, and an audit event for every large transfer.

Attacks through the real hub: a 22 MB notebook full of rows opened through the contents API; a
6 MB CSV opened as text; 10,000 printed rows (about 1 MB) streamed to the browser; a 700 kB value
pulled out through an execute request's ``user_expressions`` (a reply, not an output).
"""
from __future__ import annotations

import hashlib
import json
import uuid

import pytest

import hub_client as hubclient
import hub_world as world
from hub_client import audit_events
from hub_world import PASSWORDS
from hub_config.single_user.output_limit import OutputBudget

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

PROJECT = "egress"
ROW = "{i:06d},2019-04-01,3000,{'x' * 80}"  # an f-string body, run in the kernel: about 100 bytes a row
NOTICE = "[enclave] Output withheld"


def test_output_budget_refills_over_its_window():
    budget = OutputBudget(capacity=1000, window_seconds=10.0, reserve_capacity=100)
    assert budget.spend(900, protocol=False, now=0.0)
    assert not budget.spend(200, protocol=False, now=0.0)
    assert budget.spend(50, protocol=True, now=0.0)  # a status message uses the reserve
    assert budget.spend(200, protocol=False, now=5.0)  # half a window refills half the budget
    assert budget.withheld == 200


@pytest.fixture(scope="module")
def carol_in_egress(running_hub):
    registry = running_hub.settings.registry_url
    world.add_approved_project(running_hub.settings.home, registry, PROJECT, ["carol"])
    workspace = hubclient.Workspace(running_hub.url, "carol", PASSWORDS["carol"], PROJECT)
    answer = workspace.kernel.run(
        "import json\n"
        f"rows = [f\"{ROW}\\n\" for i in range(230_000)]\n"
        "nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'source': 'extract rows', 'execution_count': 1,\n"
        "       'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': rows}]}],\n"
        "      'metadata': {}, 'nbformat': 4, 'nbformat_minor': 4}\n"
        "json.dump(nb, open('rows.ipynb', 'w'))\n"
        "open('big.csv', 'w').write(''.join(rows[:63_000]))\n"
        "open('medium.csv', 'w').write(''.join(rows[:21_000]))\n"
        "import os; print(os.path.getsize('rows.ipynb'), os.path.getsize('big.csv'), os.path.getsize('medium.csv'))\n"
    )
    assert answer["status"] == "ok", answer
    sizes = [int(s) for s in answer["stdout"].split()]
    assert sizes[0] > 22_000_000 and 6_000_000 < sizes[1] < 7_000_000 and 2_000_000 < sizes[2] < 2_500_000, sizes
    yield workspace
    workspace.close(running_hub.url)


def _events(running_hub, action: str, path: str) -> list[dict]:
    return [e[3] for e in audit_events(running_hub.settings.registry_url, action)
            if e[0] == "carol" and e[2] == PROJECT and e[3].get("path") == path]


def test_22mb_notebook_is_not_served(running_hub, carol_in_egress):
    answer = carol_in_egress.get("rows.ipynb")
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert "2019-04-01" not in answer.text
    refused = _events(running_hub, "workspace.transfer.refused", "rows.ipynb")
    assert refused and refused[-1]["bytes"] > 22_000_000


def test_csv_over_the_read_cap_is_not_served(carol_in_egress):
    answer = carol_in_egress.get("big.csv", format="text", type="file")
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])


def test_large_read_under_the_cap_is_served_and_audited(running_hub, carol_in_egress):
    home = running_hub.settings.home / "workspaces" / PROJECT / "carol"
    answer = carol_in_egress.get("medium.csv", format="text", type="file")
    assert answer.status_code == 200
    served = _events(running_hub, "workspace.transfer.out", "medium.csv")
    assert served, "a 2 MB read left no audit event"
    data = (home / "medium.csv").read_bytes()
    assert served[-1]["bytes"] == len(data) and served[-1]["sha256"] == hashlib.sha256(data).hexdigest()
    assert served[-1]["extract_version"] == 1


def test_small_notebook_still_opens(carol_in_egress):
    notebook = {"type": "notebook", "format": "json",
                "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    assert carol_in_egress.put("small.ipynb", notebook).status_code in (200, 201)
    assert carol_in_egress.get("small.ipynb").status_code == 200


def test_reply_over_the_message_cap_is_withheld(carol_in_egress):
    """user_expressions come back in the shell reply, not as output: they are capped too."""
    kernel = carol_in_egress.kernel
    msg_id = uuid.uuid4().hex
    kernel.ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "carol", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "secret = '2019-04-01,' * 100_000", "silent": False, "store_history": False,
                    "user_expressions": {"leak": "secret"}, "allow_stdin": False, "stop_on_error": True},
    }))
    while True:
        msg = json.loads(kernel.ws.recv())
        if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "execute_reply":
            break
    assert "2019-04-01" not in json.dumps(msg)
    assert msg["content"]["status"] == "error" and msg["content"]["ename"] == "OutputWithheld"


def test_printed_rows_are_capped_with_a_notice(running_hub, carol_in_egress):
    answer = carol_in_egress.kernel.run(f"for i in range(10_000):\n    print(f\"{ROW}\")\n",
                                        timeout=120)
    assert answer["status"] == "ok", answer
    rows = [line for line in answer["stdout"].splitlines() if ",2019-04-01," in line]
    assert len(rows) < 10_000 // 2, f"{len(rows)} of 10,000 printed rows reached the browser"
    assert len(answer["stdout"].encode()) < 600 * 1024
    assert NOTICE in answer["stdout"], "no visible notice in the notebook"
    withheld = [e for e in audit_events(running_hub.settings.registry_url, "workspace.output.withheld")
                if e[0] == "carol" and e[2] == PROJECT]
    assert withheld and withheld[-1][3]["bytes"] > 0


def test_only_the_workspace_server_records_its_transfers(running_hub, carol_in_egress):
    """The audit route takes events from the server's own token only: not from the researcher's browser session."""
    before = len(audit_events(running_hub.settings.registry_url, "workspace.transfer"))
    event = {"kind": "transfer.out", "path": "forged.csv", "bytes": 1}
    for user in ("carol", "bob"):
        answer = hubclient.api(carol_in_egress.session, running_hub.url, "POST",
                               f"/enclave/workspaces/{user}/{PROJECT}/events", json=event)
        assert answer.status_code in (403, 404), (user, answer.status_code)
    assert len(audit_events(running_hub.settings.registry_url, "workspace.transfer")) == before
