"""The governance CLI groups: identity (ENCLAVE_USER in test mode), clear errors, non-zero exits."""
from __future__ import annotations

import re
import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

from enclave.cli.audit import app as audit_app
from enclave.cli.board import app as board_app
from enclave.cli.project import app as project_app
from enclave.registry.base import dispose_engines

runner = CliRunner()


@pytest.fixture
def as_user(registry, monkeypatch):
    """Run a CLI group as a given ENCLAVE_USER; returns (exit code, stdout + stderr)."""
    from enclave.settings import get_settings

    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped, so assertions see whole cells

    def _run(user, app, *args):
        if user is None:
            monkeypatch.delenv("ENCLAVE_USER", raising=False)
        else:
            monkeypatch.setenv("ENCLAVE_USER", user)
        get_settings.cache_clear()
        result = runner.invoke(app, [str(a) for a in args])
        return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")

    return _run


def _application_file(tmp_path, **overrides):
    data = {
        "project": "school-moves", "title": "School moves", "purpose": "Does foster care change schools?",
        "use_case": "education", "researchers": ["bob"], "sources": ["foster_care", "school_enrollment"],
        "variables": {"foster_care": ["placement_type"]}, "cohort": {"birth_year_min": 2005},
        "k": 10, "dp_epsilon": 1.0, "start_date": "2026-01-01", "end_date": "2030-01-01",
    }
    data.update(overrides)
    path = tmp_path / "application.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_full_board_flow_through_the_cli(as_user, tmp_path):
    code, output = as_user("alice", project_app, "apply", _application_file(tmp_path))
    assert code == 0, output
    assert "application 1 submitted" in output
    assert as_user("board1", board_app, "open", 1)[0] == 0
    for member in ("board1", "board2", "board3"):
        code, output = as_user(member, board_app, "vote", 1, "approve", "--comment", "sound design")
        assert code == 0, output
    conditions = tmp_path / "conditions.yaml"
    conditions.write_text("k: 20\nnotes: aggregate outputs only\n")
    code, output = as_user("board2", board_app, "decide", 1, "--conditions", conditions)
    assert code == 0, output
    assert "approved" in output and "k 20" in output
    code, output = as_user("alice", project_app, "status", "school-moves")
    assert code == 0 and "approved" in output and "k 20" in output and "member bob: researcher, active" in output
    code, output = as_user("bob", project_app, "check", "school-moves")
    assert code == 1 and "no extract built" in output


def test_no_identity_is_a_clear_error(as_user):
    code, output = as_user(None, board_app, "list")  # no ENCLAVE_USER: the unlinked OS account is nobody
    assert code == 1 and "is not linked to anyone in the registry" in output


def test_unknown_caller_is_refused(as_user):
    code, output = as_user("mallory", board_app, "list")
    assert code == 2 and "no person 'mallory'" in output


def test_non_board_member_vote_refused(as_user, tmp_path):
    as_user("alice", project_app, "apply", _application_file(tmp_path))
    as_user("board1", board_app, "open", 1)
    code, output = as_user("carol", board_app, "vote", 1, "approve")
    assert code == 1 and "carol is not a board member" in output


def test_bad_application_names_file_and_field(as_user, tmp_path):
    path = _application_file(tmp_path, k=1)
    code, output = as_user("alice", project_app, "apply", path)
    assert code == 1 and str(path) in output.replace("\n", "") and "k:" in output
    broken = tmp_path / "broken.yaml"
    broken.write_text("project: x\ntitle: [unclosed\n")
    code, output = as_user("alice", project_app, "apply", broken)
    assert code == 1 and "line" in output and "not valid YAML" in output


def test_amend_cli_parses_variables(as_user, tmp_path, submit, approve):
    approve(submit())
    code, output = as_user("alice", project_app, "amend", "school-moves", "--reason", "need one more variable",
                           "--add-variable", "foster_care.removal_reason", "--add-researcher", "carol")
    assert code == 0, output
    code, output = as_user("alice", project_app, "amend", "school-moves", "--reason", "need one more variable",
                           "--add-variable", "removal_reason")
    assert code == 1 and "source.variable" in output


def test_audit_show_requires_board_or_admin(as_user):
    code, output = as_user("alice", audit_app, "show")
    assert code == 1 and "may not read the audit chain" in output
    code, output = as_user("admin", audit_app, "show", "--person", "stew", "--json")
    assert code == 0 and '"subject": "user:stew"' in output


def test_audit_verify_exits_non_zero_naming_the_event(as_user, registry):
    code, output = as_user("admin", audit_app, "verify")
    assert code == 0 and "intact" in output
    dispose_engines()
    con = sqlite3.connect(registry.removeprefix("sqlite:///"))
    con.execute("DROP TRIGGER audit_events_no_update")
    con.execute("UPDATE audit_events SET actor = 'nobody' WHERE seq = 3")
    con.commit()
    con.close()
    code, output = as_user("admin", audit_app, "verify")
    assert code == 1
    assert "event 3 (person.added) was edited" in output and "audit chain broken" in output


def test_suspend_requires_reason_and_board(as_user, submit, approve):
    approve(submit())
    code, output = as_user("bob", board_app, "suspend", "school-moves", "--reason", "x")
    assert code == 1 and "neither a board member nor an admin" in output
    code, output = as_user("board1", board_app, "suspend", "school-moves", "--reason", "inquiry")
    assert code == 0
    code, output = as_user("bob", project_app, "list")
    assert code == 0 and "suspended" in output


def test_audit_head_and_anchor(as_user):
    code, output = as_user("admin", audit_app, "head")
    assert code == 0
    anchor = re.search(r"\b\d+:[0-9a-f]{64}\b", output).group(0)  # stderr also carries the test-mode warning
    code, output = as_user("admin", audit_app, "verify", "--anchor", anchor)
    assert code == 0 and "intact" in output
    seq = anchor.split(":")[0]
    code, output = as_user("admin", audit_app, "verify", "--anchor", f"{seq}:{'0' * 64}")
    assert code == 1 and f"event {seq} no longer has its anchored hash" in output
    code, output = as_user("admin", audit_app, "verify", "--anchor", "nonsense")
    assert code == 1 and "not <seq>:<64 hex digits>" in output


# ---------------------------------------------------------------- issue 13: authorization and robust input/output
def test_board_member_cannot_open_or_vote_on_their_own_application(as_user, tmp_path):
    """board5 is also a researcher: their own application must go before the rest of the board."""
    code, output = as_user("board5", project_app, "apply", _application_file(tmp_path, researchers=[]))
    assert code == 0, output
    code, output = as_user("board5", board_app, "open", 1)
    assert code == 1 and "recused" in output
    assert as_user("board1", board_app, "open", 1)[0] == 0
    code, output = as_user("board5", board_app, "vote", 1, "approve")
    assert code == 1 and "recused" in output


def test_board_member_named_in_an_application_cannot_open_its_review(as_user, tmp_path):
    code, output = as_user("alice", project_app, "apply", _application_file(tmp_path, researchers=["board5"]))
    assert code == 0, output
    code, output = as_user("board5", board_app, "open", 1)
    assert code == 1 and "recused" in output


def test_removed_member_stays_recused_on_the_board(as_user, submit, approve, registry):
    """Membership history: a board member once on the project is never independent of it."""
    approve(submit(researchers=["bob", "board5"]))
    code, output = as_user("alice", project_app, "remove-member", "school-moves", "board5", "--reason", "left")
    assert code == 0, output
    code, output = as_user("alice", project_app, "amend", "school-moves", "--reason", "the study needs more time", "--end-date", "2027-04-30")
    assert code == 0, output
    code, output = as_user("board5", board_app, "open", 2)
    assert code == 1 and "recused" in output


def test_huge_and_negative_ids_are_clear_errors(as_user):
    for args in (("show", "99999999999999999999"), ("open", "99999999999999999999"), ("show", "0"),
                 ("vote", "99999999999999999999", "approve")):
        code, output = as_user("board1", board_app, *args)
        assert code == 2, (args, output)
        assert "range" in output and "Traceback" not in output
    code, output = as_user("alice", project_app, "withdraw", "99999999999999999999")
    assert code == 2 and "range" in output


def test_invalid_utf8_application_names_the_file(as_user, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"project: school-moves\ntitle: Caf\xe9 society\n")
    code, output = as_user("alice", project_app, "apply", path)
    assert code == 1, output
    assert str(path) in output.replace("\n", "") and "UTF-8" in output
    code, output = as_user("alice", project_app, "apply", tmp_path)  # a folder, not a file
    assert code == 1 and str(tmp_path) in output.replace("\n", "")


HOSTILE = "[/x] [bold]\x1b[2J\x1b]0;owned\x07\r :smile: \u202eexe.txt"


def _assert_terminal_safe(output: str) -> None:
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in output, repr(raw)
    assert "Traceback" not in output


def test_stored_markup_and_escape_sequences_are_printed_literally(as_user, tmp_path, registry):
    from enclave import people
    from enclave.registry.base import session_scope

    with session_scope(registry) as session:
        people.register_source(session, "admin", "foster_care", "Child Welfare", domain=HOSTILE)
    code, output = as_user("alice", project_app, "apply",
                           _application_file(tmp_path, title=HOSTILE, purpose=HOSTILE, researchers=["bob"]))
    assert code == 0, output
    assert as_user("board1", board_app, "open", 1)[0] == 0
    assert as_user("board1", board_app, "vote", 1, "changes", "--comment", HOSTILE)[0] == 0
    assert as_user("board2", board_app, "conflict", "school-moves", "--reason", HOSTILE)[0] == 0  # into the audit chain
    for user, group, args in (("alice", project_app, ["list"]), ("board1", board_app, ["show", 1]),
                              ("board1", board_app, ["list"]), ("admin", audit_app, ["show"]),
                              ("alice", board_app, ["sources", "list"]), ("alice", project_app, ["status", "school-moves"])):
        code, output = as_user(user, group, *args)
        assert code == 0, (args, output)
        _assert_terminal_safe(output)
        assert "[/x]" in output or args == ["list"] and group is board_app, args  # board list shows no title


def test_listing_sources_needs_a_registry_identity(as_user):
    code, output = as_user("mallory", board_app, "sources", "list")
    assert code == 2 and "no person 'mallory'" in output


def test_settings_from_application_and_board_shown_and_kept(as_user, tmp_path):
    """The attacker model as data: the application's settings, the board's --setting over them,
    every condition in `board show`, a bad key refused with its name."""
    from sqlalchemy import select as sql_select

    from enclave.registry.base import session_scope
    from enclave.registry.models import Project
    from enclave.settings import get_settings

    app_file = _application_file(tmp_path, settings={"attacker_model": {"events_known": 2}})
    assert as_user("alice", project_app, "apply", app_file)[0] == 0
    code, output = as_user("board1", board_app, "show", 1)
    assert code == 0 and "condition attacker_model.events_known: 2" in output
    assert "condition attacker_model.family_edges_known: True" in output and "condition workspace.ingress_allowed: False" in output
    assert as_user("board1", board_app, "open", 1)[0] == 0
    for member in ("board1", "board2", "board3"):
        assert as_user(member, board_app, "vote", 1, "approve")[0] == 0
    code, output = as_user("board2", board_app, "decide", 1, "--setting", "attacker_model.family_edgs_known=false")
    assert code == 1 and "family_edgs_known" in output and "Traceback" not in output
    code, output = as_user("board2", board_app, "decide", 1, "--setting", "attacker_model.family_edges_known=false")
    assert code == 0, output
    assert "condition attacker_model.events_known: 2" in output and "condition attacker_model.family_edges_known: False" in output
    with session_scope(get_settings().registry_url, readonly=True) as session:
        approval = session.scalars(sql_select(Project).where(Project.slug == "school-moves")).one().current_approval
        assert approval.settings == {"attacker_model": {"events_known": 2, "family_edges_known": False}}
