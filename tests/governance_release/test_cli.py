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
    assert nobody.exit_code == 1 and "is not linked to anyone in the registry" in nobody.output
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
    assert hidden.exit_code == 2 and "no release request 999" in hidden.output  # not found: exit 2, as the board's
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
    assert "fail" in shown.output and "days_attended=" in shown.output and "sex=" in shown.output
    refused = cli("rev1", "review", "approve", rid, "--override", name)
    assert refused.exit_code == 1 and "approval_overrides_every_failed_output" in refused.output


# ---------------------------------------------------------------- issue 13: identity, authorization, robust output
def _audit_actors(url: str) -> set[str]:
    from sqlalchemy import select

    from enclave.registry.base import session_scope
    from enclave.registry.models import AuditEvent

    with session_scope(url, readonly=True) as session:
        return set(session.scalars(select(AuditEvent.actor)).all())


def _submitted(approved_project, make_outputs, author="alice", title="", kind="safe") -> int:
    """A request by ``author`` taken through create and submit (the gate has not run: state submitted)."""
    from enclave.airlock import requests

    name = make_outputs(kind, user=author)
    rid = requests.create(author, approved_project, {name: "sex by homeless flag"}, title)
    requests.submit(author, rid, check=False)
    return rid


def _checked(approved_project, make_outputs, author="alice", title="") -> int:
    from enclave.airlock import checking

    rid = _submitted(approved_project, make_outputs, author, title)
    checking.run_gate(rid)
    return rid


def test_enclave_user_is_refused_in_production_mode_and_never_audited(approved_project, make_outputs, cli, monkeypatch,
                                                                      registry):
    """The issue's attack: `ENCLAVE_USER=mallory-not-a-user enclave release check 6` ran and was audited as mallory."""
    rid = _submitted(approved_project, make_outputs)
    monkeypatch.setenv("ENCLAVE_MODE", "production")
    result = cli("mallory-not-a-user", "release", "check", str(rid))
    assert result.exit_code == 1, result.output
    assert "ENCLAVE_USER is honoured only in demo and test mode" in result.output
    assert "Traceback" not in result.output
    assert not any("mallory" in actor for actor in _audit_actors(registry))
    # a real registry user fares no better: production identity is the operating-system account
    assert cli("admin", "release", "check", str(rid)).exit_code == 1


def test_removed_member_never_reviews_the_projects_requests(approved_project, make_outputs, cli):
    """revres (reviewer and researcher) is removed from the project; they must still not review its requests."""
    rid = _checked(approved_project, make_outputs)
    removed = cli("alice", "project", "remove-member", approved_project, "revres", "--reason", "left the team")
    assert removed.exit_code == 0, removed.output
    assert "nothing to review" in cli("revres", "review", "queue").output
    review = cli("revres", "review", "approve", str(rid))
    assert review.exit_code == 1 and "may_review_request" in review.output
    assert cli("revres", "release", "status", str(rid)).exit_code == 1  # no longer a reader either


def test_removed_researchers_request_is_withdrawn_and_never_released(approved_project, make_outputs, cli, registry):
    rid = _checked(approved_project, make_outputs, author="bob")
    for reviewer in ("rev1", "rev2"):
        assert cli(reviewer, "review", "approve", str(rid)).exit_code == 0
    assert "approved" in cli("bob", "release", "status", str(rid)).output
    removed = cli("alice", "project", "remove-member", approved_project, "bob", "--reason", "misconduct")
    assert removed.exit_code == 0, removed.output
    status = cli("rev1", "release", "status", str(rid))
    assert status.exit_code == 0 and "withdrawn" in status.output
    release = cli("rev1", "review", "release", str(rid))
    assert release.exit_code == 1, release.output
    from enclave.settings import get_settings

    assert not (get_settings().releases / approved_project / str(rid)).exists()


def test_removed_researchers_request_cannot_be_released_even_if_left_open(approved_project, make_outputs, cli, registry):
    """Defence in depth: a request of a removed author left approved (e.g. removed before this fix) is not releasable."""
    from enclave.registry.base import session_scope
    from enclave.registry.models import ReleaseRequest

    rid = _checked(approved_project, make_outputs, author="bob")
    for reviewer in ("rev1", "rev2"):
        assert cli(reviewer, "review", "approve", str(rid)).exit_code == 0
    assert cli("alice", "project", "remove-member", approved_project, "bob", "--reason", "misconduct").exit_code == 0
    with session_scope(registry) as session:  # as an older registry would have it: still approved
        session.get(ReleaseRequest, rid).state = "approved"
    release = cli("rev1", "review", "release", str(rid))
    assert release.exit_code == 1 and "may_release_request" in release.output


def test_agency_steward_approval_can_be_turned_on(approved_project, make_outputs, cli):
    refused = cli("alice", "board", "sources", "steward-approval", "Child Welfare", "--on")
    assert refused.exit_code == 1 and "neither an admin nor a steward" in refused.output
    turned_on = cli("admin", "board", "sources", "steward-approval", "Child Welfare", "--on")
    assert turned_on.exit_code == 0, turned_on.output
    assert "required" in cli("alice", "board", "sources", "list").output
    rid = _checked(approved_project, make_outputs)
    for reviewer in ("rev1", "rev2"):
        assert cli(reviewer, "review", "approve", str(rid)).exit_code == 0
    waiting = cli("alice", "release", "status", str(rid))
    assert "partially_reviewed" in waiting.output and "steward approval required from ['Child Welfare']" in waiting.output
    early = cli("rev1", "review", "release", str(rid))
    assert early.exit_code == 1, early.output
    decided = cli("stew", "review", "steward", str(rid), "--agency", "Child Welfare")
    assert decided.exit_code == 0 and "approved" in decided.output
    off = cli("stew", "board", "sources", "steward-approval", "Child Welfare", "--off")  # the agency's own steward
    assert off.exit_code == 0, off.output


def test_extract_show_and_verify_read_no_other_project_and_no_other_zone(approved_project, cli):
    for args in (["../research"], [approved_project, "--version", "../../research"], ["..", "--version", "research"],
                 [approved_project, "--version", "current/../../../research"]):
        for command in ("show", "verify"):
            result = cli("bob", "extract", command, *args)
            assert result.exit_code != 0, (command, args, result.output)
            assert "persons" not in result.output and "matches its manifest" not in result.output
            assert "Traceback" not in result.output
    outsider = cli("carol", "extract", "show", approved_project)  # a researcher who is not on the project
    assert outsider.exit_code == 1 and "may not read the extracts" in outsider.output
    assert cli("carol", "extract", "verify", approved_project).exit_code == 1
    assert cli("board1", "extract", "show", approved_project).exit_code == 0


def test_rerunning_the_gate_needs_read_access(approved_project, make_outputs, cli):
    rid = _submitted(approved_project, make_outputs)
    outsider = cli("carol", "release", "check", str(rid))
    assert outsider.exit_code == 1 and "may_read_request" in outsider.output
    assert cli("alice", "release", "check", str(rid)).exit_code == 0


def test_huge_ids_are_a_clear_error(approved_project, cli):
    for args in (["release", "status"], ["review", "show"], ["review", "approve"], ["release", "check"]):
        result = cli("alice", *args, "99999999999999999999")
        assert result.exit_code == 2, (args, result.output)
        assert "99999999999999999999" in result.output and "range" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


HOSTILE = "[/x] [bold]\x1b[2J\x1b]0;owned\x07 :smile: \u202egnp.exe"


def _assert_terminal_safe(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "Traceback" not in output


def test_stored_text_is_printed_literally_never_as_markup_or_escapes(approved_project, make_outputs, cli):
    rid = _checked(approved_project, make_outputs, title=HOSTILE)
    for user, args in (("alice", ["release", "list"]), ("alice", ["release", "status", str(rid)]),
                       ("rev1", ["review", "show", str(rid)]), ("rev2", ["review", "queue"])):
        result = cli(user, *args)
        assert result.exit_code == 0, (args, result.output)
        _assert_terminal_safe(result.output)
        assert "[/x]" in result.output, args
    assert cli("rev1", "review", "return", str(rid), "--comment", HOSTILE).exit_code == 0
    status = cli("alice", "release", "status", str(rid))  # the reviewer's comment, as the researcher reads it
    assert status.exit_code == 0 and status.output.count("[/x]") >= 2 and ":smile:" in status.output  # no emoji either
    _assert_terminal_safe(status.output)
