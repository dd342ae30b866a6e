"""Sign-in, refusals at spawn, the browser's download/upload/terminal paths, tokens, renames, audit.

All against the real hub, proxy, provider and sandbox of ``conftest.running_hub``.
"""
from __future__ import annotations

import base64
import json
import re

import pytest
import requests

import hub_client as hubclient
from hub_client import audit_events
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]


# ---------------------------------------------------------------- sign-in
def test_wrong_password_is_refused_by_the_provider(running_hub):
    with pytest.raises(hubclient.LoginFailed):
        hubclient.login(running_hub.url, "alice", "not-her-password")


def test_unknown_user_is_refused_by_the_provider(running_hub):
    with pytest.raises(hubclient.LoginFailed):
        hubclient.login(running_hub.url, "mallory", "whatever-password")


def test_login_gives_identity_and_groups_from_the_provider(running_hub):
    session = hubclient.login(running_hub.url, "bob", PASSWORDS["bob"])
    me = hubclient.api(session, running_hub.url, "GET", "/user")
    assert me.status_code == 200
    assert me.json()["name"] == "bob"


def test_logout_ends_the_session(running_hub):
    session = hubclient.login(running_hub.url, "bob", PASSWORDS["bob"])
    session.get(f"{running_hub.url}/hub/logout", timeout=10)
    assert hubclient.api(session, running_hub.url, "GET", "/user").status_code == 403


# ---------------------------------------------------------------- refusals at spawn
@pytest.mark.parametrize(
    ("user", "project", "reason"),
    [
        ("carol", "alpha", "not a member"),
        ("alice", "beta", "not a member"),
        ("alice", "gamma", "suspended"),
        ("alice", "delta", "revoked"),
        ("alice", "epsilon", "expired"),
        ("alice", "nosuchproject", "no project"),
    ],
)
def test_spawn_refused_with_reason_and_audited(running_hub, user, project, reason):
    session = hubclient.login(running_hub.url, user, PASSWORDS[user])
    answer = hubclient.api(session, running_hub.url, "POST", f"/users/{user}/servers/{project}")
    assert answer.status_code == 403, answer.text
    assert reason in answer.json()["message"]
    refused = [e for e in audit_events(running_hub.settings.registry_url, "workspace.refused") if e[0] == user and e[2] == project]
    assert refused and reason in refused[-1][3]["reason"]
    assert not (running_hub.settings.home / "workspaces" / project / user).exists()


def test_default_server_is_refused(running_hub):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    answer = hubclient.api(session, running_hub.url, "POST", "/users/alice/server")
    assert answer.status_code == 403


def test_refusal_page_shows_the_reason(running_hub):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    page = session.get(f"{running_hub.url}/hub/spawn/alice/gamma", timeout=30)
    # The spawn fails at once; the hub shows its "not running" page with the spawner's message.
    if "spawn-pending" in page.url or page.status_code == 200 and "refused" not in page.text:
        page = session.get(f"{running_hub.url}/hub/spawn-pending/alice/gamma", timeout=30)
    assert "project gamma is suspended" in page.text


def test_home_page_lists_projects_with_open_buttons(running_hub):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    home = session.get(f"{running_hub.url}/hub/home", timeout=30)
    assert home.status_code == 200
    opens = re.findall(r'href="/hub/spawn/alice/([a-z-]+)">Open', home.text)
    assert opens == ["alpha"]
    for project, reason in (("gamma", "suspended"), ("delta", "revoked"), ("epsilon", "expired")):
        assert re.search(rf'data-project="{project}".*?{reason}', home.text, re.S), project
    assert 'data-project="beta"' not in home.text


# ---------------------------------------------------------------- hub API restrictions
def test_users_cannot_create_api_tokens(running_hub):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    answer = hubclient.api(session, running_hub.url, "POST", "/users/alice/tokens", json={"note": "exfil"})
    assert answer.status_code == 403


def test_users_cannot_share_or_read_other_users(running_hub):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    assert hubclient.api(session, running_hub.url, "POST", "/shares/alice/alpha", json={"user": "carol"}).status_code in (403, 404)
    assert hubclient.api(session, running_hub.url, "GET", "/users/bob").status_code in (403, 404)
    assert hubclient.api(session, running_hub.url, "POST", "/users/bob/servers/alpha").status_code in (403, 404)


@pytest.mark.parametrize("body", [{"name": "beta"}, {"user_options": {"project": "beta"}}, {"display_name": "x"}])
def test_patch_of_a_workspace_is_refused(running_hub, body):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    answer = hubclient.api(session, running_hub.url, "PATCH", "/users/alice/servers/alpha", json=body)
    assert answer.status_code == 403


def test_put_and_start_options_are_refused(running_hub):
    session = hubclient.login(running_hub.url, "alice", PASSWORDS["alice"])
    assert hubclient.api(session, running_hub.url, "PUT", "/users/alice/servers/beta").status_code == 403
    answer = hubclient.api(session, running_hub.url, "POST", "/users/alice/servers/alpha",
                           json={"user_options": {"extract": "beta"}})
    assert answer.status_code == 400


# ---------------------------------------------------------------- the browser path inside a workspace
@pytest.fixture(scope="module")
def bob_in_beta(running_hub):
    session = hubclient.login(running_hub.url, "bob", PASSWORDS["bob"])
    started = hubclient.start_server(session, running_hub.url, "bob", "beta")
    assert started.status_code in (201, 202), started.text
    kernel = hubclient.Kernel(session, running_hub.url, "bob", "beta")
    answer = kernel.run("open('notes.txt', 'w').write('some text')\nopen('blob.bin', 'wb').write(bytes(range(256)))\n"
                        "from PIL import Image; Image.new('RGB', (8, 8)).save('figure.png')\n")  # a real image
    assert answer["status"] == "ok", answer
    yield session, kernel, f"{running_hub.url}/user/bob/beta"
    kernel.close()
    hubclient.stop_server(session, running_hub.url, "bob", "beta")


def test_text_contents_still_open(bob_in_beta):
    session, kernel, base = bob_in_beta
    answer = session.get(f"{base}/api/contents/notes.txt", params={"content": 1}, headers=kernel.headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["content"] == "some text"


@pytest.mark.parametrize("path", ["files/notes.txt", "files/blob.bin", "view/notes.txt",
                                  "nbconvert/html/notes.txt?download=true", "api/nbconvert"])
def test_download_handlers_are_refused(bob_in_beta, path):
    session, kernel, base = bob_in_beta
    answer = session.get(f"{base}/{path}", headers=kernel.headers, timeout=10, allow_redirects=False)
    assert answer.status_code == 403, (path, answer.status_code)


def test_binary_download_through_contents_api_is_refused(bob_in_beta):
    session, kernel, base = bob_in_beta
    for params in ({"content": 1}, {"content": 1, "format": "base64", "type": "file"}):
        answer = session.get(f"{base}/api/contents/blob.bin", params=params, headers=kernel.headers, timeout=10)
        assert answer.status_code == 403, params


def test_images_still_display(bob_in_beta):
    session, kernel, base = bob_in_beta
    answer = session.get(f"{base}/api/contents/figure.png", params={"content": 1, "format": "base64", "type": "file"},
                         headers=kernel.headers, timeout=10)
    assert answer.status_code == 200


@pytest.mark.parametrize("name", ["upload.csv", "upload.ipynb", "payload.py"])
def test_base64_upload_is_refused(bob_in_beta, running_hub, name):
    session, kernel, base = bob_in_beta
    payload = {"type": "file", "format": "base64", "content": base64.b64encode(b"a,b\n1,2\n").decode()}
    answer = hubclient.through_proxy(session, "PUT", f"{base}/api/contents/{name}", json=payload, headers=kernel.headers)
    assert answer.status_code == 403
    assert not (running_hub.settings.home / "workspaces" / "beta" / "bob" / name).exists()


def test_chunked_upload_is_refused(bob_in_beta):
    session, kernel, base = bob_in_beta
    payload = {"type": "file", "format": "base64", "chunk": 1, "content": base64.b64encode(b"x" * 10).decode()}
    answer = hubclient.through_proxy(session, "PUT", f"{base}/api/contents/big.csv", json=payload, headers=kernel.headers)
    assert answer.status_code == 403


def test_notebook_save_still_works(bob_in_beta):
    session, kernel, base = bob_in_beta
    notebook = {"type": "notebook", "format": "json",
                "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    answer = hubclient.through_proxy(session, "PUT", f"{base}/api/contents/analysis.ipynb", json=notebook,
                                     headers=kernel.headers)
    assert answer.status_code in (200, 201), answer.text


def test_terminals_are_off(bob_in_beta):
    session, kernel, base = bob_in_beta
    created = session.post(f"{base}/api/terminals", headers=kernel.headers, timeout=10)
    assert created.status_code in (403, 404)
    assert session.get(f"{base}/terminals/1", headers=kernel.headers, timeout=10).status_code in (403, 404)


def test_lab_page_disables_download_upload_and_terminal_plugins(bob_in_beta):
    session, kernel, base = bob_in_beta
    page = session.get(f"{base}/lab", timeout=10)
    assert page.status_code == 200
    # Behind the proxy too, the page is sandboxed without allow-downloads: data: and blob: downloads
    # started by output HTML are blocked by the browser.
    csp = page.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "allow-downloads" not in csp
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page.text, re.S).group(1))
    disabled = set(config["disabledExtensions"])
    for plugin in ("@jupyterlab/docmanager-extension:download", "@jupyterlab/filebrowser-extension:download",
                   "@jupyterlab/notebook-extension:export", "@jupyterlab/terminal-extension"):
        assert plugin in disabled
    settings = session.get(f"{base}/lab/api/settings/@jupyterlab/filebrowser-extension:widget", headers=kernel.headers,
                           timeout=10).json()
    toolbar = settings["settings"]["toolbar"] if "toolbar" in settings.get("settings", {}) else settings["schema"]["jupyter.lab.toolbars"]
    assert any(item.get("name") == "uploader" and item.get("disabled") for item in json.loads(json.dumps(toolbar)) if isinstance(item, dict)) \
        or '"uploader"' in json.dumps(settings)


def test_user_config_in_home_cannot_reenable_downloads(bob_in_beta):
    """A jupyter config file written into the home is not read: JUPYTER_CONFIG_DIR is read-only elsewhere."""
    _, kernel, _ = bob_in_beta
    answer = kernel.run(
        "import os\n"
        "os.makedirs(os.path.expanduser('~/.jupyter'), exist_ok=True)\n"
        "open(os.path.expanduser('~/.jupyter/jupyter_server_config.py'), 'w').write('c.ServerApp.authorizer_class = None')\n"
        "from jupyter_core.paths import jupyter_config_path\n"
        "print(os.path.expanduser('~/.jupyter') in jupyter_config_path(), os.environ['PYTHONNOUSERSITE'])\n"
    )
    assert answer["stdout"].split() == ["False", "1"], answer


# ---------------------------------------------------------------- audit of start and stop
def test_start_and_stop_are_audited_with_extract_version(running_hub):
    session = hubclient.login(running_hub.url, "bob", PASSWORDS["bob"])
    hubclient.start_server(session, running_hub.url, "bob", "alpha")
    hubclient.stop_server(session, running_hub.url, "bob", "alpha")
    events = [e for e in audit_events(running_hub.settings.registry_url, "workspace.") if e[0] == "bob" and e[2] == "alpha"]
    actions = [e[1] for e in events]
    assert actions[-3:] == ["workspace.granted", "workspace.started", "workspace.stopped"]
    assert all(e[3]["extract_version"] == 1 for e in events[-3:])


def test_session_cookie_is_needed_for_the_workspace(running_hub):
    anonymous = requests.get(f"{running_hub.url}/user/alice/alpha/api/contents", timeout=10, allow_redirects=False)
    assert anonymous.status_code in (302, 403, 404, 503)


def test_external_issuer_endpoints_come_from_its_discovery_document(running_hub):
    """With the city's issuer configured, the hub reads the endpoints from discovery (here: the running provider's)."""
    from hub_config import oidc

    external = running_hub.settings.model_copy(update={"oidc_issuer": oidc.issuer(running_hub.settings),
                                                       "oidc_client_secret": "configured-secret"})
    found = oidc.endpoints(external)
    assert found == oidc.endpoints(running_hub.settings)  # the development provider's own paths
    assert oidc.client_secret(external) == "configured-secret"
