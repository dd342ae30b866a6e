"""The board's CLI closes the loop: approval builds the extract, revocation withdraws it at once."""
from __future__ import annotations

from typer.testing import CliRunner

from enclave.registry.base import session_scope


def _as(monkeypatch, user, *args):
    from enclave.cli import app
    from enclave.settings import get_settings

    monkeypatch.setenv("ENCLAVE_USER", user)
    get_settings.cache_clear()
    return CliRunner().invoke(app, [str(a) for a in args])


def test_approval_builds_and_revocation_withdraws_the_extract(registry, research_store, make_application, monkeypatch):
    from enclave.board import service
    from enclave.settings import get_settings

    with session_scope(registry) as session:
        app_id = service.apply(session, "alice", make_application("cli-loop")).id
        service.open_review(session, "board1", app_id)
        for voter in ("board1", "board2", "board3"):
            service.vote(session, voter, app_id, "approve")

    result = _as(monkeypatch, "board1", "board", "decide", app_id)
    assert result.exit_code == 0, result.output
    current = get_settings().extracts / "cli-loop" / "current"
    assert (current / "manifest.json").is_file(), result.output

    result = _as(monkeypatch, "board1", "board", "revoke", "cli-loop", "--reason", "breach")
    assert result.exit_code == 0, result.output
    assert "withdrawn" in result.output
    assert not current.exists()
