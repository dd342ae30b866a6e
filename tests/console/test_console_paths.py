"""Each role's main path through the console in a real browser, signed in through the real hub and
OIDC provider: apply -> vote -> approve (extract built) -> workspace link -> outputs checked ->
request -> two reviews -> steward -> release. Screenshots of the main pages go to tests/output/."""
from __future__ import annotations

import pytest
from console_world import make_output

pytestmark = [pytest.mark.hub, pytest.mark.slow]


def _state(person) -> str:
    return person.page.text_content("#state").strip()


def test_board_member_decides_an_application_and_the_extract_is_built(console_hub, sign_in):
    app_id = console_hub.world.pending_application
    board = [sign_in(u) for u in ("board1", "board2", "board3")]
    b1 = board[0]
    b1.go("board")
    assert b1.page.locator(f"#open-applications tr[data-application='{app_id}']").count() == 1
    b1.shot("board-home")
    b1.page.click(f"#open-applications tr[data-application='{app_id}'] a")
    assert b1.page.text_content("#sources") == "school_enrollment, foster_care"
    assert "knows 1 event(s) per person" in b1.page.text_content("#attacker")
    b1.page.click("#open-review")
    assert _state(b1) == "under_review"
    for member in board:
        member.go(f"board/applications/{app_id}")
        member.page.fill("#vote-comment", f"fine by {member.username}")
        member.page.click("#vote-approve")
        assert "vote (approve) is recorded" in member.page.text_content("#notice")
    b1.go(f"board/applications/{app_id}")
    assert "Counted 3 of a quorum of 3 (met)" in b1.page.text_content("#quorum")
    b1.shot("board-application")
    b1.page.click("#decide")
    notice = b1.page.text_content("#notice")
    assert "Decided: approved." in notice and "Extract built" in notice, notice
    b1.go(f"board/applications/{console_hub.world.amendment}")  # an amendment, shown as a diff
    diff = b1.page.text_content("#diff")
    added = b1.page.locator("#diff tr", has_text="researchers").locator("td.added").text_content()
    assert added == "bob" and "end_date" in diff
    b1.go("board/projects/new-study")
    assert _state(b1) == "approved"
    assert "application.approved" in b1.page.text_content("#trail")
    b1.shot("board-project")


def test_researcher_opens_workspace_checks_outputs_and_requests_release(console_hub, sign_in):
    alice = sign_in("alice")
    alice.go("projects")
    row = alice.page.locator("#projects tr[data-project='new-study']")
    assert "version 1" in row.text_content()
    assert row.locator("a.open-workspace").get_attribute("href") == "/hub/spawn/alice/new-study"
    alice.shot("researcher-projects")
    # what the workspace's notebook would save through the safe API
    safe = make_output(console_hub.world.home, "new-study", "alice", "safe")
    risky = make_output(console_hub.world.home, "new-study", "alice", "disclosive")
    alice.page.click("#projects tr[data-project='new-study'] a.outputs-link")
    alice.page.click(f"#outputs tr[data-file='{risky}'] button.check")
    assert alice.page.text_content("#checked-status") == "fail"
    assert alice.page.locator("#checked td.failing").count() > 0
    alice.shot("researcher-outputs-checked")
    alice.go("projects/new-study/requests/new")
    alice.page.fill("#title", "School stability tables")
    for i, name in enumerate(sorted([safe, risky]), start=1):
        alice.page.check(f"input[name=output][value='{name}']")
        alice.page.fill(f"textarea[name='context:{name}']", f"crosstab {i} of the enrolment table")
    alice.page.click("#new-request button[type=submit]")
    assert _state(alice) == "draft"
    request_id = int(alice.page.url.rsplit("/", 1)[1].split("?")[0])
    section = alice.page.locator(f"section[data-output='{risky}']")
    section.locator("summary").click()
    section.locator("textarea[name=text]").fill("Small cells are suppressed in the paper; the reviewers asked for the raw table.")
    section.locator("form:has(input[value=exception]) button").click()
    alice.page.click("#submit")
    assert _state(alice) == "checked"
    assert alice.page.locator(f"section[data-output='{risky}'] .verdict").text_content() == "gate: fail"
    alice.shot("researcher-request")
    console_hub.request_id = request_id
    console_hub.outputs = (safe, risky)


def test_two_reviewers_and_the_steward_approve_then_release(console_hub, sign_in):
    request_id = console_hub.request_id
    safe, risky = console_hub.outputs
    for n, username in enumerate(("rev1", "rev2")):
        reviewer = sign_in(username)
        reviewer.go("review")
        assert reviewer.page.locator(f"#queue tr[data-request='{request_id}']").count() == 1
        if n == 0:
            reviewer.shot("reviewer-queue")
        reviewer.page.click(f"#queue tr[data-request='{request_id}'] a")
        risky_section = reviewer.page.locator(f"section[data-output='{risky}']")
        assert risky_section.locator("td.failing").count() > 0  # the table itself, failing cells marked
        assert risky_section.locator(".cell-reason").first.text_content()
        assert len(risky_section.locator("code.checksum").text_content()) == 64
        assert risky_section.locator(".evidence").count() == 1
        assert "2 independent approvals are needed" in reviewer.page.text_content("#rules")
        assert "Child Welfare" in reviewer.page.text_content("#rules")
        if n == 0:
            reviewer.shot("reviewer-request")
        reviewer.page.check(f"input[name=override][value='{risky}']")
        reviewer.page.fill(f"textarea[name='comment:{risky}']", "acceptable with the exception")
        reviewer.page.click("#approve")
        assert "partially_reviewed" in reviewer.page.text_content("#notice")  # the steward has not decided yet
    assert "override of a failed output" in reviewer.page.text_content("#reviews")
    steward = sign_in("stew")
    steward.go("steward")
    assert steward.page.locator("#steward-pending a").count() >= 1
    deposits = steward.page.locator("section[data-source='foster_care'] table.deposits").text_content()
    assert "dep-0001" in deposits and "birth_date:not_a_date: 2" in deposits  # quarantine counts and reasons
    assert "match_rate" in steward.page.locator("section[data-source='foster_care']").text_content()  # linkage quality
    assert steward.page.locator("section[data-source='school_enrollment']").count() == 0  # not their source
    steward.shot("steward-home")
    steward.go(f"requests/{request_id}")
    steward.page.click("#steward-actions .steward-approve")
    assert _state(steward) == "approved"
    rev1 = sign_in("rev1")
    rev1.go(f"requests/{request_id}")
    rev1.page.click("#release")
    assert _state(rev1) == "released"
    released = console_hub.world.home / "releases" / "new-study" / str(request_id)
    assert (released / safe).is_file() and (released / risky).is_file()
    alice = sign_in("alice")
    alice.go("requests")
    assert alice.page.locator(f"#my-requests tr[data-request='{request_id}'] .state").text_content() == "released"
    alice.go("audit")
    assert alice.page.text_content("#chain-state").startswith("Verified")
    assert "release.submitted" in alice.page.text_content("#my-actions")
    alice.shot("audit")
