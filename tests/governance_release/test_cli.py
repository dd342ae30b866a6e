"""The ``enclave extract``, ``enclave release`` and ``enclave review`` commands: identity from
ENCLAVE_USER, clear errors and exit codes."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli(monkeypatch):
    from enclave.cli import app
    from enclave.settings import get_settings

    runner = CliRunner()

    def _run(user: str | None, *args: str):
        if user is None:
            monkeypatch.delenv("ENCLAVE_USER", raising=False)
        else:
            monkeypatch.setenv("ENCLAVE_USER", user)
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    return _run


def test_extract_commands(approved_project, cli):
    from enclave.settings import get_settings

    shown = cli("bob", "extract", "show", approved_project)
    assert shown.exit_code == 0 and "school_enrollment" in shown.output and "k required 5" in shown.output
    assert cli("bob", "extract", "verify", approved_project).exit_code == 0
    refused = cli("bob", "extract", "build", approved_project)
    assert refused.exit_code == 1 and "may not build" in refused.output
    again = cli("admin", "extract", "build", approved_project)
    assert again.exit_code == 0 and "unchanged" in again.output
    target = get_settings().extracts / approved_project / "v1" / "persons.parquet"
    victim = next((get_settings().extracts / approved_project / "v1").glob("school_*.parquet"))
    os.chmod(victim, 0o644)
    victim.write_bytes(victim.read_bytes()[:-10])
    bad = cli("admin", "extract", "verify", approved_project)
    assert bad.exit_code == 1 and "school_enrollment" in bad.output
    assert not target.exists()  # only approved tables were ever written
    assert cli("bob", "extract", "withdraw", approved_project, "--reason", "x").exit_code == 1
    done = cli("board1", "extract", "withdraw", approved_project, "--reason", "revoked by the board")
    assert done.exit_code == 0 and "1 extract version" in done.output


def test_release_and_review_errors_are_clear(approved_project, make_outputs, cli):
    name = make_outputs("safe")
    mismatch = cli("alice", "release", "create", approved_project, "-f", name, "-f", "other.csv", "-c", "one context")
    assert mismatch.exit_code == 1 and "one --context per --file" in mismatch.output
    nobody = cli(None, "release", "create", approved_project, "-f", name, "-c", "sex by homeless flag")
    assert nobody.exit_code == 1 and "ENCLAVE_USER" in nobody.output
    missing = cli("alice", "release", "create", approved_project, "-f", "absent.csv", "-c", "nothing")
    assert missing.exit_code == 1 and "absent.csv" in missing.output and "does not exist" in missing.output
    created = cli("alice", "release", "create", approved_project, "-f", name, "-c", "sex by homeless flag")
    assert created.exit_code == 0
    rid = created.output.split("request ")[1].split()[0]
    assert "nothing to review" in cli("rev1", "review", "queue").output  # a draft is not reviewable
    submitted = cli("alice", "release", "submit", rid)
    assert submitted.exit_code == 0 and "pass" in submitted.output
    assert rid in cli("rev1", "review", "queue").output
    assert "nothing to review" in cli("revres", "review", "queue").output  # a member sees nothing to review
    hidden = cli("rev1", "release", "status", "999")
    assert hidden.exit_code == 1 and "no release request 999" in hidden.output
    no_comment = cli("rev1", "review", "return", rid)
    assert no_comment.exit_code != 0
    returned = cli("rev1", "review", "return", rid, "--comment", "label the columns")
    assert returned.exit_code == 0 and "returned" in returned.output
    status = cli("alice", "release", "status", rid)
    assert "returned" in status.output and "label the columns" in status.output
    assert cli("alice", "release", "submit", rid).exit_code == 0  # round 2 after changes
    assert "round 2" in cli("alice", "release", "status", rid).output
    assert cli("alice", "release", "withdraw", rid).exit_code == 0
    late = cli("rev1", "review", "approve", rid)
    assert late.exit_code == 1 and "request_is_under_review" in late.output


def test_reviewer_sees_the_verdict_per_output_and_per_cell(approved_project, make_outputs, cli):
    name = make_outputs("disclosive")
    created = cli("alice", "release", "create", approved_project, "-f", name, "-c", "pupils by neighbourhood and grade")
    rid = created.output.split("request ")[1].split()[0]
    cli("alice", "release", "submit", rid)
    shown = cli("rev1", "review", "show", rid)
    assert shown.exit_code == 0
    assert "fail" in shown.output and "neighbourhood=" in shown.output and "days_attended=" in shown.output
    refused = cli("rev1", "review", "approve", rid, "--override", name)
    assert refused.exit_code == 1 and "approval_overrides_every_failed_output" in refused.output
