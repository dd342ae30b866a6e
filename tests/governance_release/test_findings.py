"""Publishing released requests as public findings: only released files, verified against the
release's checksums, by the project's researchers or the board, audited; the static catalogue
escapes every stored text and withdrawals leave a notice."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from markupsafe import escape
import json
from pathlib import Path

import pytest
import yaml

from enclave.airlock import publishing, requests, reviews
from enclave.airlock.errors import Refused
from enclave.airlock.states import RequestState
from enclave.findings import publish as findings
from enclave.findings.spec import FindingSpec, FindingSpecError, load_spec
from enclave.registry.base import session_scope

SPEC = dict(
    title="Homeless pupils by sex",
    question="How many pupils experiencing homelessness does the district have, by sex?",
    use_case="homeless students",
    domains=["education", "homelessness"],
    cohort="Pupils enrolled in a district school in the extract's school years, flagged homeless (McKinney-Vento).",
    summary="Counts of pupils by sex and homelessness flag.",
    comparisons=["gender"],
)


def _released_request(approved_project, outputs, make_outputs, title="pupils"):
    """A request with one passing table and one histogram, through two reviews and the release."""
    from disclosure_control.safe import ACRO

    from enclave.airlock.checking import extract_loader
    from enclave.settings import get_settings

    table = make_outputs("safe")
    folder = outputs("alice")
    extract = (get_settings().extracts / approved_project / "current").resolve()
    manifest = json.loads((extract / "manifest.json").read_text())
    acro = ACRO(suppress=True, outputs_dir=folder, data_loader=extract_loader(extract, manifest),
                dataset=f"{approved_project}@{extract.name}", quiet=True)
    before = {p.name for p in folder.iterdir()}
    acro.hist(acro.load("school_enrollment"), "days_attended", bins=[0, 60, 120, 180, 240])
    chart = next(n for n in {p.name for p in folder.iterdir()} - before if n.endswith(".png"))
    rid = requests.create("alice", approved_project, {table: "pupils by sex and homelessness", chart: "days attended"}, title)
    requests.submit("alice", rid)
    reviews.review("rev1", rid, "approve")
    assert reviews.review("rev2", rid, "approve") == RequestState.approved
    publishing.release("rev1", rid)
    return rid, table, chart


def test_publish_a_released_request_builds_the_catalogue(approved_project, outputs, make_outputs, registry):
    from enclave import audit
    from enclave.audit import Filters

    rid, table, chart = _released_request(approved_project, outputs, make_outputs)
    record = findings.publish("alice", rid, FindingSpec(**SPEC))
    public = findings.public_dir()
    page = (public / "findings" / record["slug"] / "index.html").read_text()
    assert str(escape(SPEC["title"])) in page and str(escape(SPEC["cohort"])) in page
    assert f"Release request {rid}" in page and "2 independent disclosure reviewers approved" in page
    # Exactly the released bytes, nothing else.
    files = {p.name for p in (public / "findings" / record["slug"] / "files").iterdir()}
    assert files == {table, chart}
    assert {f["name"]: f["sha256"] for f in record["files"]} == {
        n: hashlib.sha256((public / "findings" / record["slug"] / "files" / n).read_bytes()).hexdigest()
        for n in files}
    # Index, facets and the JSON feed list it.
    assert SPEC["title"] in (public / "index.html").read_text()
    assert SPEC["title"] in (public / "domain" / "homelessness.html").read_text()
    assert SPEC["title"] in (public / "use-case" / "homeless-students.html").read_text()
    feed = json.loads((public / "feed.json").read_text())
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert [i["id"] for i in feed["items"]] == [record["slug"]]
    assert feed["items"][0]["_ids"]["request_id"] == rid
    with session_scope(registry, readonly=True) as session:
        events = audit.show(session, Filters(action="finding.published"))
        assert [(e.actor, e.subject) for e in events] == [("alice", f"request:{rid}")]
        assert audit.verify(session).ok
    # Once only.
    with pytest.raises(Refused) as refused:
        findings.publish("alice", rid, FindingSpec(**SPEC))
    assert refused.value.rule == "not_published_already"


def test_only_released_requests_and_files_by_permitted_people(approved_project, outputs, make_outputs, enclave_home):
    rid, table, _ = _released_request(approved_project, outputs, make_outputs)
    # A reviewer of the request is not the project's voice; nor is a stranger.
    for user in ("rev1", "stew"):
        with pytest.raises(Refused) as refused:
            findings.publish(user, rid, FindingSpec(**SPEC))
        assert refused.value.rule == "may_publish"
    # A file in the workspace that was never released, and a path out of the release folder.
    (outputs("alice") / "secret.csv").write_text("a,b\n1,2\n")
    for name in ("secret.csv", "../../registry.db", f"../{rid}/{table}"):
        with pytest.raises(Refused) as refused:
            findings.publish("alice", rid, FindingSpec(**SPEC, files={name: "x"}))
        assert refused.value.rule == "only_released_files"
    # An approved request that was not released yet.
    second = make_outputs("safe")
    other = requests.create("alice", approved_project, {second: "again"}, "second")
    requests.submit("alice", other)
    reviews.review("rev1", other, "approve")
    reviews.review("rev2", other, "approve")
    with pytest.raises(Refused) as refused:
        findings.publish("alice", other, FindingSpec(**SPEC))
    assert refused.value.rule == "request_is_released"
    assert not (findings.public_dir() / "findings").exists() or not any((findings.public_dir() / "findings").iterdir())


def test_a_released_file_changed_afterwards_is_not_published(approved_project, outputs, make_outputs):
    from enclave.settings import get_settings

    rid, table, _ = _released_request(approved_project, outputs, make_outputs)
    released = next(get_settings().releases.glob(f"*/{rid}/{table}"))
    released.write_text(released.read_text().replace("1", "7"))  # someone with access to the releases zone
    with pytest.raises(Refused) as refused:
        findings.publish("board1", rid, FindingSpec(**SPEC))
    assert refused.value.rule == "files_match_release"
    public = findings.public_dir()
    assert not list(public.glob("findings/*")) and not list(public.glob(".staging-*"))


def test_stored_text_is_escaped_and_withdrawal_leaves_a_notice(approved_project, outputs, make_outputs):
    rid, table, _ = _released_request(approved_project, outputs, make_outputs)
    hostile = dict(SPEC, title='Pupils <script>alert("x")</script>', summary='<img src=x onerror="alert(1)">\x1b[31m')
    record = findings.publish("alice", rid, FindingSpec(**hostile))
    public = findings.public_dir()
    page = (public / "findings" / record["slug"] / "index.html").read_text()
    index = (public / "index.html").read_text()
    for text in (page, index):
        assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert" in page and "\x1b" not in page
    with pytest.raises(Refused) as refused:
        findings.withdraw("alice", record["slug"], "numbers wrong")
    assert refused.value.rule == "may_withdraw_finding"
    findings.withdraw("board1", record["slug"], "a linkage error was found")
    page = (public / "findings" / record["slug"] / "index.html").read_text()
    assert "withdrawn" in page and "a linkage error was found" in page
    assert not (public / "findings" / record["slug"] / "files").exists()
    assert record["slug"] not in (public / "index.html").read_text()
    assert json.loads((public / "feed.json").read_text())["items"] == []


def test_spec_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "finding.yaml"
    bad.write_text(yaml.safe_dump(dict(SPEC, domains=["astrology"])))
    with pytest.raises(FindingSpecError, match=r"finding.yaml: field domains"):
        load_spec(bad)
    bad.write_bytes(b"title: \xff\xfe\n")
    with pytest.raises(FindingSpecError, match="not UTF-8"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump(dict(SPEC, colour="red")))
    with pytest.raises(FindingSpecError, match="field colour"):
        load_spec(bad)


# -- the catalogue in a real browser (Debian's chromium through Playwright), served by a plain
# static file server with no sign-in. Screenshots go to tests/output/findings/.

SHOTS = Path(__file__).resolve().parents[1] / "output" / "findings"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def served_catalogue(approved_project, outputs, make_outputs):
    rid, table, chart = _released_request(approved_project, outputs, make_outputs)
    record = findings.publish("alice", rid, FindingSpec(**SPEC, files={table: "Pupils by sex and homelessness",
                                                                        chart: "Days attended"}))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    handler = functools.partial(Quiet, directory=str(findings.public_dir()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", record, table, chart
    finally:
        server.shutdown()
        server.server_close()


def test_a_reader_finds_a_finding_and_sees_its_table_chart_and_provenance(served_catalogue):
    from playwright.sync_api import sync_playwright

    url, record, table, chart = served_catalogue
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/index.html")
        assert page.locator("li.finding").count() == 1
        page.fill("#search", "no such words")
        assert page.locator("li.finding:visible").count() == 0
        assert page.text_content("#count").strip() == "0 findings"
        page.fill("#search", "homeless pupils")
        assert page.locator("li.finding:visible").count() == 1
        page.screenshot(path=str(SHOTS / "catalogue_index.png"), full_page=True)
        page.click("text=By domain >> xpath=.. >> text=education")
        assert page.locator("li.finding").count() == 1
        page.click(f"text={SPEC['title']}")
        assert page.locator("h1").text_content() == SPEC["title"]
        assert page.locator("table tbody tr").count() >= 2
        loaded = page.eval_on_selector("img", "img => img.complete && img.naturalWidth > 0")
        assert loaded, "the released chart does not load"
        assert f"Release request {record['request_id']}" in page.text_content(".provenance")
        page.screenshot(path=str(SHOTS / "catalogue_finding.png"), full_page=True)
        answer = page.request.get(f"{url}/feed.json")
        assert answer.ok and answer.json()["items"][0]["title"] == SPEC["title"]
        browser.close()
    assert errors == []  # the CSP allows the page's own script and styles; nothing else runs


def test_the_console_serves_the_catalogue_without_sign_in_and_nothing_else(approved_project, outputs, make_outputs):
    import asyncio

    import requests
    from tornado import httpserver, web

    from enclave.findings.serving import CatalogueHandler

    rid, _, _ = _released_request(approved_project, outputs, make_outputs)
    record = findings.publish("alice", rid, FindingSpec(**SPEC))
    (findings.public_dir() / ".staging-left").mkdir()
    (findings.public_dir() / ".staging-left" / "secret.csv").write_text("x\n")
    ready, stop = threading.Event(), {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = httpserver.HTTPServer(web.Application([(r"/services/console/catalogue/(.*)", CatalogueHandler)]))
        server.listen(0, "127.0.0.1")
        stop["port"] = next(iter(server._sockets.values())).getsockname()[1]
        stop["loop"] = loop
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(10)
    base = f"http://127.0.0.1:{stop['port']}/services/console/catalogue/"
    try:
        page = requests.get(base, timeout=10)
        assert page.status_code == 200 and "IDS findings" in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert requests.get(base + f"findings/{record['slug']}/index.html", timeout=10).status_code == 200
        for path in (".staging-left/secret.csv", "../registry.db", "%2e%2e/registry.db", "findings/../../registry.db"):
            assert requests.get(base + path, timeout=10).status_code in (403, 404), path
    finally:
        stop["loop"].call_soon_threadsafe(stop["loop"].stop)


def test_the_cli_publishes_as_the_registry_person_and_refuses_a_spoofed_one(approved_project, outputs, make_outputs,
                                                                           tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from enclave.cli import app
    from enclave.settings import get_settings

    rid, _, _ = _released_request(approved_project, outputs, make_outputs)
    spec = tmp_path / "finding.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    runner = CliRunner()

    def as_(user: str, mode: str, *args: str):  # noqa: ANN202
        monkeypatch.setenv("ENCLAVE_USER", user)
        monkeypatch.setenv("ENCLAVE_MODE", mode)
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    refused = as_("alice", "production", "findings", "publish", str(rid), "--spec", str(spec))
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert not (findings.public_dir() / "findings").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"title: \xff\n")
    shown = as_("alice", "test", "findings", "publish", str(rid), "--spec", str(bad))
    assert shown.exit_code == 1 and "not UTF-8" in shown.output and "Traceback" not in shown.output
    done = as_("alice", "test", "findings", "publish", str(rid), "--spec", str(spec))
    assert done.exit_code == 0, done.output
    listed = as_("alice", "test", "findings", "list")
    assert f"{rid}" in listed.output and "live" in listed.output
