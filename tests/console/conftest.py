"""A real hub with the console service, the real OIDC provider, and Debian's Chromium driven by
Playwright: one hub and one browser per test module (each context is one signed-in person)."""
from __future__ import annotations

import re
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import console_world as world  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "console"  # git-ignored (tests/output/)


def free_port_triple() -> int:
    """A loopback port p with p + 1 (proxy API) and p + 2 (console) free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for extra in (1, 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + extra))
            return port
        except OSError:
            continue
    raise RuntimeError("no three free ports in a row")


@dataclass
class ConsoleHub:
    url: str  # the proxy's public URL
    world: world.World
    settings: object

    @property
    def console(self) -> str:
        return f"{self.url}/services/console/"


XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'  # in every stored text field


def _environment(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("ENCLAVE_HOME", str(home))
    mp.delenv("ENCLAVE_DATABASE_URL", raising=False)
    mp.delenv("ENCLAVE_USER", raising=False)
    mp.setenv("ENCLAVE_BOARD_QUORUM", "3")
    mp.setenv("ENCLAVE_REVIEWERS_REQUIRED", "2")


@pytest.fixture(scope="session")
def _world_template():
    """The enclave built once per session (provisioning and the gate take a while); each module gets a copy."""
    from enclave.registry.base import dispose_engines
    from enclave.settings import get_settings

    root = Path(tempfile.mkdtemp(prefix="enclave-console-template-"))
    home = root / "var"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, home)
        get_settings.cache_clear()
        try:
            built = world.build(home, get_settings().registry_url, xss=XSS)
        finally:
            dispose_engines()
            get_settings.cache_clear()
    yield home, built
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def console_hub(request, _world_template):
    from enclave.registry.base import dispose_engines
    from enclave.settings import get_settings
    from hub_config import launcher, oidc

    template, template_world = _world_template
    root = Path(tempfile.mkdtemp(prefix="enclave-console-"))
    home = root / "var"
    shutil.copytree(template, home, symlinks=True)
    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, home)
        hub_port = free_port_triple()
        mp.setenv("ENCLAVE_HUB_PORT", str(hub_port))
        oidc_port = free_port_triple()
        while oidc_port in range(hub_port - 2, hub_port + 3):
            oidc_port = free_port_triple()
        mp.setenv("ENCLAVE_OIDC_PORT", str(oidc_port))
        get_settings.cache_clear()
        settings = get_settings()
        built = world.World(home=home, url=settings.registry_url, other_request=template_world.other_request,
                            pending_application=template_world.pending_application, amendment=template_world.amendment)
        oidc.write_accounts(settings, [oidc.Account(u, world.PASSWORDS[u], name=n, groups=r) for u, n, r in world.PEOPLE])
        provider = launcher.start_oidc_provider(settings)
        try:
            hub = launcher.start_hub(settings)
        except Exception:
            provider.stop()
            raise
        running = ConsoleHub(oidc.public_url(settings), built, settings)
        try:
            _wait_for_console(running)
            yield running
        finally:
            hub.stop()
            provider.stop()
            dispose_engines()
            get_settings.cache_clear()
            if request.session.testsfailed:
                kept = shutil.copytree(home / "hub" / "logs", Path(tempfile.mkdtemp(prefix="enclave-console-logs-")) / "logs")
                print(f"\nconsole test logs kept in {kept}")
            shutil.rmtree(root, ignore_errors=True)


def _wait_for_console(hub: ConsoleHub, timeout: float = 30) -> None:
    """The hub starts the console as a managed service: wait until the proxy routes to it."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = requests.get(hub.console, allow_redirects=False, timeout=5)
            if answer.status_code in (302, 303):  # not signed in: sent to the hub's OAuth
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError("the console service did not come up behind the proxy")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Person:
    """One signed-in person: a browser context of their own, signed in through the hub and the provider."""

    def __init__(self, browser, hub: ConsoleHub, username: str, shots: Path):
        self.hub, self.username, self.shots = hub, username, shots
        self.context = browser.new_context(viewport={"width": 1366, "height": 900})
        self.page = self.context.new_page()
        self.page.goto(f"{hub.url}/hub/oauth_login?next=/services/console/")
        self.page.fill("input[name=login]", username)
        self.page.fill("input[name=password]", world.PASSWORDS[username])
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/services/console/(\?.*)?$"))
        assert self.page.text_content("#me") == username

    def go(self, path: str):
        return self.page.goto(self.hub.console + path.lstrip("/"))

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def post(self, path: str, form: dict, *, with_xsrf: bool = True):
        """A form post with this person's cookies, as a page of the console would send it."""
        data = dict(form)
        if with_xsrf:
            data["_xsrf"] = self.xsrf()
        return self.context.request.post(self.hub.console + path.lstrip("/"), form=data, max_redirects=0,
                                         fail_on_status_code=False)

    def xsrf(self) -> str:
        token = self.page.locator("input[name=_xsrf]").first
        if token.count():
            return token.get_attribute("value")
        self.go("audit")  # any page; forms carry the token in a hidden field
        return next(c["value"] for c in self.context.cookies() if c["name"] == "_xsrf")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def sign_in(browser, console_hub, request):
    people: dict[str, Person] = {}
    shots = SCREENSHOTS / request.module.__name__.rsplit(".", 1)[-1]

    def _sign_in(username: str) -> Person:
        if username not in people:
            people[username] = Person(browser, console_hub, username, shots)
        return people[username]

    yield _sign_in
    for person in people.values():
        person.close()


def registry(hub: ConsoleHub):
    """A read-only registry session on the test hub's data (to assert what a refused action left)."""
    from enclave.registry.base import session_scope

    return session_scope(hub.world.url, readonly=True)
