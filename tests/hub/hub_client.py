"""A browser-less client of the hub: OIDC login through the real provider, the hub REST API, kernels;
plus the small helpers the hub tests and the spawn benchmark share (free ports, audit events).

One ``requests`` session follows ``/hub/oauth_login`` to the provider, posts the login form and
comes back through the callback with the hub's cookie, as a browser would.
"""
from __future__ import annotations

import json
import re
import socket
import time
import uuid
from urllib.parse import urljoin

import requests
import websocket

FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


class LoginFailed(AssertionError):
    pass


class SpawnFailed(RuntimeError):
    pass


def login(hub_url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{hub_url}/hub/oauth_login", timeout=10)
    match = FORM_ACTION.search(page.text)
    if not match:
        raise LoginFailed(f"no login form at {page.url} ({page.status_code})")
    answer = session.post(urljoin(page.url, match.group(1)), data={"login": username, "password": password}, timeout=10)
    if not answer.url.startswith(hub_url) or answer.status_code >= 400:
        raise LoginFailed(f"login of {username} ended at {answer.url} with {answer.status_code}")
    return session


def api(session: requests.Session, hub_url: str, method: str, path: str, **kwargs) -> requests.Response:
    # The hub renews its _xsrf cookie on page visits (the workspace's OAuth round trip is one):
    # send the current one, as JupyterHub's own pages do.
    xsrf = next((c.value for c in session.cookies if c.name == "_xsrf" and c.path == "/hub/"), "")
    headers = {"X-XSRFToken": xsrf, **kwargs.pop("headers", {})}
    return through_proxy(session, method, f"{hub_url}/hub/api{path}", headers=headers, **kwargs)


def start_server(session: requests.Session, hub_url: str, user: str, server: str, timeout: float = 30) -> requests.Response:
    """POST a start and wait until the server is ready; returns the POST's response (for refusals)."""
    answer = api(session, hub_url, "POST", f"/users/{user}/servers/{server}")
    if answer.status_code >= 400:
        return answer
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = api(session, hub_url, "GET", f"/users/{user}/servers/{server}")
        if model.ok and model.json().get("ready"):
            return answer
        if model.ok and not model.json().get("pending"):
            raise SpawnFailed(f"server {user}/{server} stopped while starting")
        time.sleep(0.1)
    raise TimeoutError(f"server {user}/{server} not ready after {timeout} s")


def settled_model(session: requests.Session, hub_url: str, user: str, server: str, timeout: float = 30) -> dict:
    """The server's model once nothing is pending. After a restart the hub checks every
    spawner in the background (``pending == "check"``); asking before that ends is a race."""
    deadline = time.monotonic() + timeout
    while True:
        model = api(session, hub_url, "GET", f"/users/{user}/servers/{server}")
        assert model.status_code == 200, model.text
        if not model.json().get("pending") or time.monotonic() > deadline:
            return model.json()
        time.sleep(0.1)


def stop_server(session: requests.Session, hub_url: str, user: str, server: str) -> None:
    answer = api(session, hub_url, "DELETE", f"/users/{user}/servers/{server}")
    assert answer.status_code in (202, 204), answer.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        model = api(session, hub_url, "GET", f"/users/{user}/servers/{server}")
        if model.status_code == 404 or not model.json().get("pending"):
            return
        time.sleep(0.1)


def through_proxy(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """A request to a workspace through the proxy, retried on the proxy's own 503.

    When a workspace refuses a request with a body (an upload) before the proxy has finished
    forwarding that body, configurable-http-proxy gets EPIPE and answers 503 itself (seen under
    load). The workspace's decision is what the tests assert, so that proxy error is retried.
    """
    # Three tries 0.2 s apart were seen to fail together on a loaded machine: back off longer.
    for attempt in range(1, 9):
        answer = session.request(method, url, timeout=30, **kwargs)
        if answer.status_code != 503:
            return answer
        time.sleep(0.25 * attempt)
    return answer


class Kernel:
    """A kernel of a running workspace, driven through the Jupyter REST and websocket API."""

    def __init__(self, session: requests.Session, hub_url: str, user: str, server: str) -> None:
        self.session = session
        self.base = f"{hub_url}/user/{user}/{server}"
        # The first visit completes the workspace's own OAuth with the hub and sets its cookie.
        lab = session.get(f"{self.base}/lab", timeout=30)
        assert lab.status_code == 200, (lab.status_code, lab.url)
        xsrf = next(c.value for c in session.cookies if c.name == "_xsrf" and c.path == f"/user/{user}/{server}/")
        self.headers = {"X-XSRFToken": xsrf}
        started = session.post(f"{self.base}/api/kernels", json={"name": "python3"}, headers=self.headers, timeout=30)
        assert started.status_code == 201, started.text
        self.kernel_id = started.json()["id"]
        ws_url = self.base.replace("http://", "ws://") + f"/api/kernels/{self.kernel_id}/channels"
        cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        self.ws = websocket.create_connection(ws_url, cookie=cookie, header=[f"X-XSRFToken: {xsrf}"], timeout=60)

    def run(self, code: str, timeout: float = 60) -> dict:
        """Execute ``code``; returns stdout text, the error name if any, and the status."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out, error, status, idle = [], None, None, False
        deadline = time.monotonic() + timeout
        # Done when both the shell reply and the iopub "idle" arrived (their order is not fixed).
        while (status is None or not idle) and time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = msg["content"]["ename"] + ": " + msg["content"]["evalue"]
            elif kind == "execute_reply":
                status = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        return {"stdout": "".join(out), "error": error, "status": status}

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.session.delete(f"{self.base}/api/kernels/{self.kernel_id}", headers=self.headers, timeout=10)


def free_port_pair(avoid: frozenset[int] = frozenset()) -> int:
    """A loopback port p with p + 1 free too (the proxy's API listens on p + 1), both outside ``avoid``."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if {port, port + 1} & avoid:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports")


def audit_events(url: str, action_prefix: str) -> list:
    import json

    from sqlalchemy import select

    from enclave.registry.base import session_scope
    from enclave.registry.models import AuditEvent

    with session_scope(url, readonly=True) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like(f"{action_prefix}%"))).all()
        return [(e.actor, e.action, e.project, json.loads(e.details or "{}")) for e in events]


class Workspace:
    """A user's running workspace of one project: the signed-in session, a kernel, and contents-API calls."""

    def __init__(self, hub_url: str, user: str, password: str, project: str) -> None:
        self.user, self.project = user, project
        self.session = login(hub_url, user, password)
        started = start_server(self.session, hub_url, user, project, timeout=120)
        assert started.status_code in (201, 202), started.text
        self.kernel = Kernel(self.session, hub_url, user, project)
        self.base = self.kernel.base

    def get(self, path: str, **params) -> requests.Response:
        return self.session.get(f"{self.base}/api/contents/{path}", params={"content": 1, **params},
                                headers=self.kernel.headers, timeout=60)

    def put(self, path: str, model: dict) -> requests.Response:
        return through_proxy(self.session, "PUT", f"{self.base}/api/contents/{path}", json=model,
                             headers=self.kernel.headers)

    def close(self, hub_url: str) -> None:
        self.kernel.close()
        stop_server(self.session, hub_url, self.user, self.project)
