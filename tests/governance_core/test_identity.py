"""Issue 13, item 3: the CLI acts as the operating-system account that runs it; ENCLAVE_USER only in
demo and test mode, only against a demo or test registry, and always with a warning."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.registry.base import dispose_engines, session_scope, upgrade

runner = CliRunner()


@pytest.fixture
def enclave(registry, monkeypatch):
    """Run ``enclave ...`` in-process with the given environment (ENCLAVE_USER unset unless given)."""
    from enclave.settings import get_settings

    monkeypatch.setenv("COLUMNS", "250")

    def _run(*args, user=None, mode="test"):
        monkeypatch.setenv("ENCLAVE_MODE", mode)
        if user is None:
            monkeypatch.delenv("ENCLAVE_USER", raising=False)
        else:
            monkeypatch.setenv("ENCLAVE_USER", user)
        get_settings.cache_clear()
        result = runner.invoke(app, [str(a) for a in args])
        assert "Traceback" not in result.output
        return result

    return _run


def _actors(url: str) -> list[str]:
    from sqlalchemy import select

    from enclave.registry.models import AuditEvent

    with session_scope(url, readonly=True) as session:
        return list(session.scalars(select(AuditEvent.actor).order_by(AuditEvent.seq)).all())


def test_production_refuses_enclave_user_even_for_a_real_user(enclave, registry):
    before = _actors(registry)
    result = enclave("board", "people", "grant", "carol", "reviewer", user="admin", mode="production")
    assert result.exit_code == 1
    assert "ENCLAVE_USER is honoured only in demo and test mode" in result.output
    assert _actors(registry) == before  # nothing done, nothing audited


def test_production_acts_as_the_linked_operating_system_account(enclave, registry):
    import pwd

    account = pwd.getpwuid(os.geteuid()).pw_name  # root in CI: nobody until an admin links it
    unlinked = enclave("people", "list", mode="production")
    assert unlinked.exit_code == 1
    assert f"operating-system account {account} is not linked" in unlinked.output and "link-account" in unlinked.output
    linked = enclave("people", "link-account", "board1", account, user="admin")
    assert linked.exit_code == 0, linked.output
    listing = enclave("board", "people", "list", mode="production")
    assert listing.exit_code == 0 and account in listing.output
    refused = enclave("people", "grant", "carol", "reviewer", mode="production")  # board1 is no admin
    assert refused.exit_code == 1 and "board1 is not an admin" in refused.output
    assert enclave("people", "link-account", "admin", account, user="admin").exit_code == 1  # one person per account
    assert enclave("people", "unlink-account", "board1", user="admin").exit_code == 0
    assert enclave("people", "link-account", "admin", account, user="admin").exit_code == 0
    granted = enclave("people", "grant", "carol", "reviewer", mode="production")
    assert granted.exit_code == 0, granted.output
    assert _actors(registry)[-1] == "admin" and "warning" not in granted.output


def test_linking_accounts_is_for_admins_and_checks_the_name(enclave):
    assert "board1 is not an admin" in enclave("people", "link-account", "alice", "alice", user="board1").output
    bad = enclave("people", "link-account", "alice", "../etc; rm", user="admin")
    assert bad.exit_code == 1 and "must match" in bad.output
    assert enclave("people", "link-account", "nobody-here", "x", user="admin").exit_code == 2


def test_test_mode_honours_enclave_user_with_a_visible_warning(enclave):
    result = enclave("board", "sources", "list", user="alice")
    assert result.exit_code == 0
    assert "warning" in result.output and "acting as 'alice' from ENCLAVE_USER" in result.output


def test_enclave_user_is_refused_against_a_production_registry_whatever_the_mode(enclave_home, monkeypatch):
    """ENCLAVE_MODE is the caller's own environment: it must not open a production registry to impersonation."""
    from enclave import people
    from enclave.settings import get_settings

    enclave_home.mkdir(parents=True)
    get_settings.cache_clear()
    url = get_settings().registry_url
    upgrade(url)
    with session_scope(url) as session:  # a registry set up for real use: never marked demo or test
        people.bootstrap_admin(session, "admin", "Ada Admin")
    dispose_engines()
    for mode in ("demo", "test"):
        monkeypatch.setenv("ENCLAVE_MODE", mode)
        monkeypatch.setenv("ENCLAVE_USER", "admin")
        get_settings.cache_clear()
        result = runner.invoke(app, ["board", "people", "add", "mallory", "--name", "M", "--role", "admin"])
        assert result.exit_code == 1, result.output
        assert "production registry" in result.output
    with session_scope(url, readonly=True) as session:
        assert people.person_for_os_account(session, "mallory") is None
        from sqlalchemy import select

        from enclave.registry.models import Person

        assert session.scalars(select(Person).where(Person.username == "mallory")).first() is None
    dispose_engines()


def test_board_init_links_the_first_admin_to_the_account_running_it(enclave_home, monkeypatch):
    from enclave.settings import get_settings

    monkeypatch.setenv("ENCLAVE_MODE", "production")
    monkeypatch.delenv("ENCLAVE_USER", raising=False)
    get_settings.cache_clear()
    result = runner.invoke(app, ["board", "init", "--admin", "ada", "--name", "Ada Admin"])
    assert result.exit_code == 0, result.output
    added = runner.invoke(app, ["people", "add", "bea", "--name", "Bea", "--role", "board_member"])
    assert added.exit_code == 0, added.output
    dispose_engines()


def test_the_installed_command_refuses_the_spoof_without_a_traceback(registry):
    """The real entry point, in a child process, in production mode (the default)."""
    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_MODE"}
    env["ENCLAVE_USER"] = "mallory-not-a-user"
    done = subprocess.run([sys.executable, "-m", "enclave", "release", "check", "6"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "ENCLAVE_USER is honoured only in demo and test mode" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
