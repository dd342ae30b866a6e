"""``enclave hub oidc``: development sign-ins for the people of the registry."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from enclave.cli import app

runner = CliRunner()


def test_oidc_refuses_an_empty_registry(enclave_home):
    result = runner.invoke(app, ["hub", "oidc"])
    assert result.exit_code != 0
    assert "no people" in result.output


def test_oidc_gives_every_person_a_sign_in(enclave_home):
    from enclave import people
    from enclave.registry.base import dispose_engines, session_scope, upgrade
    from enclave.settings import get_settings

    settings = get_settings()
    upgrade(settings.registry_url)
    with session_scope(settings.registry_url) as session:
        people.bootstrap_admin(session, "admin", "Ada Admin")
        people.add_person(session, "admin", "alice", "Alice Researcher", ["researcher"])
    result = runner.invoke(app, ["hub", "oidc"])
    dispose_engines()
    assert result.exit_code == 0, result.output
    logins = json.loads((settings.hub_dir / "oidc" / "demo-logins.json").read_text())
    assert [login["username"] for login in logins] == ["admin", "alice"]
    accounts = json.loads((settings.hub_dir / "oidc" / "accounts.json").read_text())["accounts"]
    assert {a["username"]: a["groups"] for a in accounts} == {"admin": ["admin"], "alice": ["researcher"]}
    assert all(login["password"] not in json.dumps(accounts) for login in logins)
    assert "alice" in result.output and logins[1]["password"] in result.output
