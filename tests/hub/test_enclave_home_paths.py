"""Issue 11, item 9: any ENCLAVE_HOME works, and a failed start names its cause to the user and in the audit."""
from __future__ import annotations

import pytest

import hub_client as hubclient
from hub_world import PASSWORDS

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]


def test_workspace_starts_under_an_enclave_home_with_upper_case_letters(upper_case_hub):
    home = str(upper_case_hub.settings.home)
    assert any(c.isupper() for c in home), home
    url = upper_case_hub.url
    session = hubclient.login(url, "alice", PASSWORDS["alice"])
    started = hubclient.start_server(session, url, "alice", "alpha", timeout=60)
    assert started.status_code in (201, 202), started.text
    kernel = hubclient.Kernel(session, url, "alice", "alpha")
    try:
        assert kernel.run("print(6 * 7)")["stdout"].strip() == "42"
    finally:
        kernel.close()
        hubclient.stop_server(session, url, "alice", "alpha")


def test_a_failed_start_names_its_cause_on_the_page_and_in_the_audit(upper_case_hub):
    """Bob's beta home is a file, not a directory: the workspace cannot start, and says why."""
    home = upper_case_hub.settings.home / "workspaces" / "beta" / "bob"
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a directory")
    url = upper_case_hub.url
    session = hubclient.login(url, "bob", PASSWORDS["bob"])
    try:
        try:  # a start that fails at once is answered with an error; a later failure stops the pending start
            answer = hubclient.start_server(session, url, "bob", "beta", timeout=60)
            assert answer.status_code >= 400, answer.text
            assert "not a directory" in answer.text, answer.text
        except hubclient.SpawnFailed:
            pass
        page = session.get(f"{url}/hub/spawn-pending/bob/beta", timeout=30)
        assert "could not start" in page.text and "not a directory" in page.text, page.text[-2000:]
        failed = hubclient.audit_events(upper_case_hub.settings.registry_url, "workspace.failed")
        assert [d for actor, _, project, d in failed if actor == "bob" and project == "beta"
                and "not a directory" in d.get("cause", "")], failed
    finally:
        home.unlink()


def test_the_cause_is_the_last_error_line_of_the_workspace_log():
    from hub_config.spawner import failure_cause

    log = "[I server] starting\nTraceback (most recent call last):\n  File x\nOSError: [Errno 98] Address in use\n[I] bye\n"
    assert failure_cause(log) == "OSError: [Errno 98] Address in use"
    assert failure_cause("bwrap: Can't bind mount /oldroot/x on /newroot/data: No such file or directory") \
        .startswith("bwrap: Can't bind mount")
    assert failure_cause("nothing useful") == "no error line in the workspace log"
