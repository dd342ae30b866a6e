"""Locked settings: nothing in the home, and nothing sent to the settings API, re-enables what the
enclave disabled; the hub offers no token page.

Attacks through the real hub: the kernel writes JupyterLab user settings that put the upload
button back (``~/.jupyterlab/user-settings``, where the old configuration kept them), plus
overrides and page config in ``~/.local/share/jupyter`` and ``~/.jupyter``; the browser saves
the same setting through ``PUT /lab/api/settings``; the researcher opens ``/hub/token``.
"""
from __future__ import annotations

import json

import pytest

import hub_client as hubclient
import hub_world as world
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

PROJECT = "locked"
WIDGET = "@jupyterlab/filebrowser-extension:widget"
MARKER = "enclave-attack-9b2"
REENABLE = {"toolbar": [{"name": "uploader", "rank": 10, "disabled": False}]}

ATTACK = f"""
import json, os
home = os.path.expanduser('~')
settings = {json.dumps(REENABLE)!r}
for path in ('.jupyterlab/user-settings/@jupyterlab/filebrowser-extension/widget.jupyterlab-settings',
             '.jupyter/lab/user-settings/@jupyterlab/filebrowser-extension/widget.jupyterlab-settings'):
    os.makedirs(os.path.dirname(os.path.join(home, path)), exist_ok=True)
    open(os.path.join(home, path), 'w').write('// {MARKER}\\n' + settings)
for path in ('.local/share/jupyter/lab/settings/overrides.json', '.jupyter/labconfig/page_config.json'):
    os.makedirs(os.path.dirname(os.path.join(home, path)), exist_ok=True)
overrides = {{"{WIDGET}": json.loads(settings)}}
open(os.path.join(home, '.local/share/jupyter/lab/settings/overrides.json'), 'w').write(json.dumps(overrides))
open(os.path.join(home, '.jupyter/labconfig/page_config.json'), 'w').write(json.dumps(
    {{"disabledExtensions": {{"@jupyterlab/filebrowser-extension:download": False}}, "{MARKER}": True}}))
print('written')
"""


@pytest.fixture(scope="module")
def carol_in_locked(running_hub):
    world.add_approved_project(running_hub.settings.home, running_hub.settings.registry_url, PROJECT, ["carol"])
    workspace = hubclient.Workspace(running_hub.url, "carol", PASSWORDS["carol"], PROJECT)
    answer = workspace.kernel.run(ATTACK)
    assert answer["stdout"].strip() == "written", answer
    yield workspace
    workspace.close(running_hub.url)


def uploader_items(settings_answer: dict) -> list[dict]:
    """The upload button's toolbar items in effect: the user's settings, else the defaults with the overrides."""
    toolbar = settings_answer.get("settings", {}).get("toolbar")
    if toolbar is None:
        toolbar = settings_answer["schema"]["properties"]["toolbar"]["default"]
    return [item for item in toolbar if isinstance(item, dict) and item.get("name") == "uploader"]


def widget_settings(workspace) -> dict:  # noqa: ANN001
    answer = workspace.session.get(f"{workspace.base}/lab/api/settings/{WIDGET}", headers=workspace.kernel.headers,
                                   timeout=30)
    assert answer.status_code == 200, answer.text[:200]
    return answer.json()


def test_settings_in_the_home_do_not_reenable_upload(carol_in_locked):
    settings = widget_settings(carol_in_locked)
    assert MARKER not in json.dumps(settings), "a settings file from the home was read"
    items = uploader_items(settings)
    assert items and all(item.get("disabled") for item in items), items
    page = carol_in_locked.session.get(f"{carol_in_locked.base}/lab", timeout=30)
    assert MARKER not in page.text
    assert "@jupyterlab/filebrowser-extension:download" in page.text  # still listed as disabled


def test_settings_api_cannot_reenable_upload(carol_in_locked):
    answer = hubclient.through_proxy(carol_in_locked.session, "PUT", f"{carol_in_locked.base}/lab/api/settings/{WIDGET}",
                                     json={"raw": json.dumps(REENABLE)}, headers=carol_in_locked.kernel.headers)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    items = uploader_items(widget_settings(carol_in_locked))
    assert items and all(item.get("disabled") for item in items), items


def test_other_settings_still_save_outside_the_home(running_hub, carol_in_locked):
    theme = "@jupyterlab/apputils-extension:themes"
    answer = hubclient.through_proxy(carol_in_locked.session, "PUT", f"{carol_in_locked.base}/lab/api/settings/{theme}",
                                     json={"raw": '{"theme": "JupyterLab Dark"}'}, headers=carol_in_locked.kernel.headers)
    assert answer.status_code == 204, answer.text[:200]
    saved = carol_in_locked.session.get(f"{carol_in_locked.base}/lab/api/settings/{theme}",
                                        headers=carol_in_locked.kernel.headers, timeout=30).json()
    assert saved["settings"]["theme"] == "JupyterLab Dark"
    home = running_hub.settings.home / "workspaces" / PROJECT / "carol"
    assert not list(home.rglob("themes.jupyterlab-settings")), "user settings were written into the home"


def test_token_page_is_not_offered(running_hub, carol_in_locked):
    answer = carol_in_locked.session.get(f"{running_hub.url}/hub/token", timeout=30)
    assert answer.status_code == 404
    assert "Request new API token" not in answer.text and 'id="request-token' not in answer.text
    home = carol_in_locked.session.get(f"{running_hub.url}/hub/home", timeout=30)
    assert home.status_code == 200 and "/hub/token" not in home.text
