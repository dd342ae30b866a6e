"""Attacks on the console in a real browser through the real hub sign-in: stored and reflected
XSS in every field, CSRF on every form, another role's URL for every page, another project's ids,
ids out of range, the removed-member and self-review cases."""
from __future__ import annotations

import pytest
from conftest import XSS, registry
from console_world import make_output

pytestmark = [pytest.mark.hub, pytest.mark.slow]

REFUSED = (403, 404)


def audit_head(hub) -> int:
    from enclave import audit

    with registry(hub) as session:
        return audit.head(session)[0]


def assert_inert(person, path: str) -> None:
    """The page rendered the payload as text: no element, no script run, a strict CSP."""
    response = person.go(path)
    assert response.status < 500, (path, response.status)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert person.page.evaluate("window.__xss") is None, path
    assert person.page.locator("script").count() == 0, path
    assert person.page.locator("img[src=x]").count() == 0, path
    assert "Traceback" not in person.page.content()


@pytest.fixture(scope="module")
def alice_request(console_hub, sign_in):
    """A request of alice on school-moves whose every researcher-written field carries the payload,
    typed into the console's own forms; an output file whose cells carry it too."""
    home = console_hub.world.home
    risky = make_output(home, "school-moves", "alice", "disclosive")
    planted = home / "workspaces" / "school-moves" / "alice" / "outputs" / "planted.csv"
    planted.write_text(f"group,count\n{XSS},12\n")
    alice = sign_in("alice")
    alice.go("projects/school-moves/requests/new")
    alice.page.fill("#title", XSS)
    for name in (risky, "planted.csv"):
        alice.page.check(f"input[name=output][value='{name}']")
        alice.page.fill(f"textarea[name='context:{name}']", XSS)
    alice.page.click("#new-request button[type=submit]")
    request_id = int(alice.page.url.rsplit("/", 1)[1].split("?")[0])
    section = alice.page.locator(f"section[data-output='{risky}']")
    section.locator("summary").click()
    section.locator("textarea[name=text]").fill(XSS)
    section.locator("form:has(input[value=exception]) button").click()
    alice.page.click("#submit")
    assert alice.page.text_content("#state") == "checked"
    return request_id


def test_stored_xss_in_every_field_is_shown_as_text(console_hub, sign_in, alice_request):
    w = console_hub.world
    rev1 = sign_in("rev1")
    rev1.go(f"requests/{alice_request}")
    for textarea in rev1.page.locator("#review-form textarea").all():
        textarea.fill(XSS)
    rev1.page.click("#return")  # a review with comments and per-output comments carrying the payload
    assert rev1.page.text_content("#state") == "returned"
    board1, board2 = sign_in("board1"), sign_in("board2")
    board1.go(f"board/applications/{w.pending_application}")
    board1.page.click("#open-review")
    board1.page.fill("#vote-comment", XSS)
    board1.page.click("#vote-changes")
    board2.go(f"board/applications/{w.pending_application}")
    board2.page.fill("#conflict-reason", XSS)
    board2.page.click("#conflict-form button")
    board1.go("board/projects/other-proj")
    board1.page.fill("#reason", XSS)
    board1.page.click("#suspend")
    board1.page.fill("#reason", XSS)
    board1.page.click("#reinstate")
    stew = sign_in("stew")
    pages = {
        "alice": ["", "projects", "requests", f"requests/{alice_request}", "projects/school-moves/outputs", "audit"],
        "rev1": ["review", f"requests/{alice_request}", f"requests/{w.other_request}", "audit"],
        "board1": ["board", f"board/applications/{w.pending_application}", "board/projects/other-proj",
                   "board/projects/new-study", "audit"],
        "stew": ["steward", f"requests/{w.other_request}"],
    }
    for username, paths in pages.items():
        for path in paths:
            assert_inert(sign_in(username), path)
    # the payload is there, as text, where it was stored
    alice = sign_in("alice")
    alice.go(f"requests/{alice_request}")
    assert alice.page.text_content("#request-title") == XSS
    assert XSS in alice.page.text_content("section[data-output='planted.csv'] table")
    assert XSS in alice.page.text_content("#reviews")
    board1.go(f"board/applications/{w.pending_application}")
    assert XSS in board1.page.text_content("#votes") and XSS in board1.page.text_content("#conflicts")
    assert XSS in board1.page.text_content("#app-title")
    # a file name cannot carry markup into the outputs page either: it is checked, then escaped
    alice.go("projects/school-moves/outputs")
    alice.page.locator("#outputs tr[data-file='planted.csv'] button.check").click()
    assert_inert(alice, "projects/school-moves/outputs")
    assert stew  # signed in and used above


def test_reflected_xss_in_urls_is_inert(console_hub, sign_in):
    alice = sign_in("alice")
    from urllib.parse import quote

    for path in (f"?notice={quote(XSS)}", f"requests/{quote(XSS)}", f"board/projects/{quote(XSS)}",
                 f"projects/{quote(XSS)}/outputs", f"{quote(XSS)}"):
        assert_inert(alice, path)
    alice.go(f"?notice={quote(XSS)}")
    assert alice.page.text_content("#notice") == XSS


def _every_form(w, request_id: int) -> list[tuple[str, str, dict]]:
    """(who, where, form) for every form of the console."""
    app = f"board/applications/{w.pending_application}"
    req = f"requests/{request_id}"
    return [
        ("board3", app, {"action": "open"}), ("board3", app, {"action": "vote", "choice": "approve"}),
        ("board3", app, {"action": "decide"}), ("board3", app, {"action": "conflict", "reason": "x"}),
        ("board3", "board/projects/school-moves", {"action": "suspend", "reason": "x"}),
        ("board3", "board/projects/school-moves", {"action": "revoke", "reason": "x"}),
        ("alice", "projects/school-moves/outputs", {"name": "planted.csv"}),
        ("alice", "projects/school-moves/requests/new", {"title": "t", "output": "planted.csv", "context:planted.csv": "c"}),
        ("alice", req, {"action": "context", "name": "planted.csv", "context": "c"}),
        ("alice", req, {"action": "add", "name": "planted.csv", "context": "c"}),
        ("alice", req, {"action": "remove", "name": "planted.csv"}),
        ("alice", req, {"action": "exception", "name": "planted.csv", "text": "t"}),
        ("alice", req, {"action": "submit"}), ("alice", req, {"action": "withdraw"}),
        ("rev2", req, {"action": "review", "decision": "reject", "comments": "x"}),
        ("stew", req, {"action": "steward", "agency": "Child Welfare", "decision": "reject", "comments": "x"}),
        ("rev2", req, {"action": "release"}),
    ]


def test_csrf_every_form_without_or_with_a_forged_token_is_refused(console_hub, sign_in, alice_request):
    before = audit_head(console_hub)
    for username, path, form in _every_form(console_hub.world, alice_request):
        person = sign_in(username)
        person.go("")
        missing = person.post(path, form, with_xsrf=False)
        assert missing.status == 403, (username, path, form, missing.status)
        forged = person.post(path, {**form, "_xsrf": "2|deadbeef|deadbeef|1700000000"}, with_xsrf=False)
        assert forged.status == 403, (username, path, form, forged.status)
    assert audit_head(console_hub) == before  # nothing was done
    # the same post with the page's token works (the refusals above were the token's doing)
    alice = sign_in("alice")
    alice.go(f"requests/{alice_request}")
    ok = alice.post(f"requests/{alice_request}", {"action": "exception", "name": "planted.csv", "text": "why it is safe"})
    assert ok.status == 302, ok.status
    assert audit_head(console_hub) == before + 1


def test_another_roles_url_is_refused_for_every_page(console_hub, sign_in, alice_request):
    w = console_hub.world
    refused_pages = {
        "alice": ["board", f"board/applications/{w.pending_application}", "board/projects/school-moves", "review",
                  "steward", f"requests/{w.other_request}", f"requests/{w.other_request}/outputs/0",
                  "projects/other-proj/outputs", "projects/other-proj/requests/new"],
        "rev1": ["board", f"board/applications/{w.pending_application}", "board/projects/school-moves", "steward",
                 "projects/school-moves/outputs", "projects/school-moves/requests/new"],
        "board1": ["review", "steward", "projects/school-moves/outputs", f"requests/{alice_request}",
                   f"requests/{alice_request}/outputs/0"],
        "stew": ["board", f"board/applications/{w.pending_application}", "projects/school-moves/outputs"],
        "carol": ["board/projects/school-moves", f"requests/{alice_request}", "projects/school-moves/outputs"],
    }
    for username, paths in refused_pages.items():
        person = sign_in(username)
        for path in paths:
            response = person.go(path)
            assert response.status in REFUSED, (username, path, response.status)
            assert person.page.locator("#refusal").count() == 1
            assert "Traceback" not in person.page.content()
    # and their actions, with a valid token
    before = audit_head(console_hub)
    attempts = [
        ("alice", f"board/applications/{w.pending_application}", {"action": "vote", "choice": "approve"}),
        ("alice", "board/projects/other-proj", {"action": "suspend", "reason": "mischief"}),
        ("rev1", f"board/applications/{w.pending_application}", {"action": "decide"}),
        ("carol", f"requests/{alice_request}", {"action": "withdraw"}),
        ("board1", f"requests/{alice_request}", {"action": "review", "decision": "reject", "comments": "x"}),
        ("stew", "projects/school-moves/requests/new", {"title": "t", "output": "planted.csv", "context:planted.csv": "c"}),
        ("alice", f"requests/{alice_request}", {"action": "release"}),
    ]
    for username, path, form in attempts:
        person = sign_in(username)
        person.go("")
        answer = person.post(path, form)
        assert answer.status in (403, 404, 409), (username, path, answer.status)
    assert audit_head(console_hub) == before


def test_another_projects_ids_and_out_of_range_ids(console_hub, sign_in):
    w = console_hub.world
    alice = sign_in("alice")
    before = audit_head(console_hub)
    alice.go("")
    for form in ({"action": "context", "name": "x.csv", "context": "mine now"}, {"action": "withdraw"},
                 {"action": "exception", "name": "x.csv", "text": "t"}, {"action": "submit"}):
        answer = alice.post(f"requests/{w.other_request}", form)
        assert answer.status in REFUSED + (409,), (form, answer.status)
    response = alice.go(f"requests/{w.other_request}")
    assert response.status == 403 and "Carol" not in alice.page.content()
    for path in ("requests/99999999999999999999", "requests/0", "requests/2147483648", "requests/-1",
                 "board/applications/99999999999", f"requests/{w.other_request}/outputs/99999", "requests/1e3"):
        response = alice.go(path)
        assert response.status == 404, (path, response.status)
        assert "Traceback" not in alice.page.content()
    assert audit_head(console_hub) == before


def test_self_review_and_removed_members_are_refused(console_hub, sign_in, alice_request):
    from enclave.board import service
    from enclave.registry.base import session_scope

    before = audit_head(console_hub)
    # a reviewer on the project (revres) and one removed from it (revgone) are not independent of it
    for username in ("revres", "revgone"):
        person = sign_in(username)
        person.go("review")
        assert person.page.locator(f"#queue tr[data-request='{alice_request}']").count() == 0, username
        answer = person.post(f"requests/{alice_request}", {"action": "review", "decision": "approve", "comments": ""})
        assert answer.status == 403, (username, answer.status)
    # a removed member no longer reaches the project's outputs or requests
    revgone = sign_in("revgone")
    assert revgone.go("projects/school-moves/outputs").status == 403
    assert revgone.go(f"requests/{alice_request}").status == 403
    assert audit_head(console_hub) == before
    # a board member may not open the review of their own application
    with session_scope(console_hub.world.url) as session:
        from console_world import application

        own = service.apply(session, "boardres", application("own-study", ["boardres"])).id
    boardres = sign_in("boardres")
    boardres.go(f"board/applications/{own}")
    assert boardres.page.locator("#recusal").count() == 1 and boardres.page.locator("#open-review").count() == 0
    assert boardres.post(f"board/applications/{own}", {"action": "open"}).status == 403
    assert boardres.post(f"board/applications/{own}", {"action": "vote", "choice": "approve"}).status == 403
    with registry(console_hub) as session:
        assert service.get_application(session, own).state == "submitted"
