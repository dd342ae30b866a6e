"""Ingress is an airlock too: files not made in the editor are refused unless the board allows ingress,
and then each one is checked by content, limited in size and recorded with its sha256.

Attacks through the real hub, in a project with default conditions: a CSV of SSNs sent as a text
file (JupyterLab's upload is base64; the contents API also takes text), the same as base64, and a
large paste into an existing file and into a notebook. The controls: the editor's own saves still
work, and a project whose approval allows ingress receives the CSV, audited.
"""
from __future__ import annotations

import base64
import hashlib

import pytest

import hub_client as hubclient
import hub_world as world
from hub_client import audit_events
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

CLOSED, OPEN = "noingress", "ingress"
SSN_CSV = "".join(f"person{i},{100 + i:03d}-{40 + i % 50:02d}-{1000 + i:04d}\n" for i in range(200))


@pytest.fixture(scope="module")
def workspaces(running_hub):
    registry, home = running_hub.settings.registry_url, running_hub.settings.home
    world.add_approved_project(home, registry, CLOSED, ["carol"])
    world.add_approved_project(home, registry, OPEN, ["carol"])
    world.set_workspace_conditions(registry, OPEN, ingress_allowed=True, ingress_max_bytes=100_000)
    opened = {p: hubclient.Workspace(running_hub.url, "carol", PASSWORDS["carol"], p) for p in (CLOSED, OPEN)}
    yield opened
    for workspace in opened.values():
        workspace.close(running_hub.url)


def on_disk(running_hub, project: str, name: str):  # noqa: ANN201
    return running_hub.settings.home / "workspaces" / project / "carol" / name


@pytest.mark.parametrize("model", [
    {"type": "file", "format": "text", "content": SSN_CSV},
    {"type": "file", "format": "base64", "content": base64.b64encode(SSN_CSV.encode()).decode()},
], ids=["text", "base64"])
def test_csv_upload_is_refused_by_default(running_hub, workspaces, model):
    answer = workspaces[CLOSED].put("ssns.csv", model)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert not on_disk(running_hub, CLOSED, "ssns.csv").exists()
    refused = [e for e in audit_events(running_hub.settings.registry_url, "workspace.transfer.refused")
               if e[2] == CLOSED and e[3].get("path") == "ssns.csv"]
    assert refused and refused[-1][3]["reason"].startswith("in:")


def test_large_paste_into_a_file_is_refused(running_hub, workspaces):
    workspace = workspaces[CLOSED]
    assert workspace.kernel.run("open('notes.txt', 'w').write('my notes\\n')")["status"] == "ok"
    pasted = {"type": "file", "format": "text", "content": "my notes\n" + SSN_CSV * 20}
    assert workspace.put("notes.txt", pasted).status_code == 403
    assert on_disk(running_hub, CLOSED, "notes.txt").read_text() == "my notes\n"


def test_large_paste_into_a_notebook_is_refused(workspaces):
    cell = {"cell_type": "markdown", "metadata": {}, "source": SSN_CSV * 20}
    notebook = {"type": "notebook", "format": "json",
                "content": {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}}
    assert workspaces[CLOSED].put("pasted.ipynb", notebook).status_code == 403


def test_editor_saves_still_work(running_hub, workspaces):
    workspace = workspaces[CLOSED]
    created = workspace.session.post(f"{workspace.base}/api/contents", json={"type": "file", "ext": ".py"},
                                     headers=workspace.kernel.headers, timeout=30)
    assert created.status_code == 201, created.text
    path = created.json()["path"]
    typed = {"type": "file", "format": "text", "content": "import pandas as pd\nframe = pd.read_parquet('/data/births.parquet')\n"}
    assert workspace.put(path, typed).status_code == 200
    cell = {"cell_type": "code", "metadata": {}, "source": "print(1)", "outputs": [], "execution_count": None}
    notebook = {"type": "notebook", "format": "json",
                "content": {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}}
    assert workspace.put("analysis.ipynb", notebook).status_code in (200, 201)
    assert on_disk(running_hub, CLOSED, path).read_text().startswith("import pandas")


def test_allowed_ingress_is_received_and_audited_with_sha256(running_hub, workspaces):
    answer = workspaces[OPEN].put("ssns.csv", {"type": "file", "format": "text", "content": SSN_CSV})
    assert answer.status_code in (200, 201), answer.text[:200]
    assert on_disk(running_hub, OPEN, "ssns.csv").read_text() == SSN_CSV
    received = [e for e in audit_events(running_hub.settings.registry_url, "workspace.transfer.in")
                if e[0] == "carol" and e[2] == OPEN and e[3].get("path") == "ssns.csv"]
    assert received and received[-1][3]["sha256"] == hashlib.sha256(SSN_CSV.encode()).hexdigest()
    assert received[-1][3]["bytes"] == len(SSN_CSV.encode())


def test_allowed_ingress_keeps_its_size_limit(running_hub, workspaces):
    answer = workspaces[OPEN].put("more.csv", {"type": "file", "format": "text", "content": SSN_CSV * 40})
    assert answer.status_code == 403
    assert not on_disk(running_hub, OPEN, "more.csv").exists()
