"""The console's Tornado application and its entry point as a JupyterHub service.

JupyterHub starts ``python -m enclave.console`` with JUPYTERHUB_SERVICE_PREFIX (where the proxy
routes it), JUPYTERHUB_SERVICE_URL (where it listens) and the OAuth client of the service. The hub
API is reached through the proxy on loopback (CONSOLE_HUB_API_URL): the hub itself listens on a
unix socket that Tornado's HTTP client cannot use.
"""
from __future__ import annotations

import logging
import os
import secrets
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado import ioloop, web

from enclave.console import board, pages, releases
from enclave.console.web import STATIC, Context, NotFoundPage
from enclave.findings.serving import CatalogueHandler

ID = r"([0-9]{1,12})"  # the page refuses anything outside 1..MAX_ID with a 404
SLUG = r"([a-z0-9_-]{1,64})"


def routes(ctx: Context) -> list:
    p = ctx.prefix
    page = {"ctx": ctx}
    return [
        (p, pages.HomePage, page),
        (p + "projects", pages.ProjectsPage, page),
        (p + "projects/" + SLUG + "/outputs", releases.OutputsPage, page),
        (p + "projects/" + SLUG + "/requests/new", releases.NewRequestPage, page),
        (p + "requests", releases.RequestsPage, page),
        (p + "requests/" + ID, releases.RequestPage, page),
        (p + "requests/" + ID + "/outputs/([0-9]{1,4})", releases.OutputImage, page),
        (p + "review", releases.QueuePage, page),
        (p + "board", board.BoardHome, page),
        (p + "board/applications/" + ID, board.ApplicationPage, page),
        (p + "board/projects/" + SLUG, board.ProjectPage, page),
        (p + "steward", pages.StewardPage, page),
        (p + "audit", pages.AuditPage, page),
        (p + "oauth_callback", HubOAuthCallbackHandler),
        (p + r"static/(.*)", web.StaticFileHandler, {"path": str(STATIC)}),
        (p + r"catalogue/(.*)", CatalogueHandler),  # the public findings: no sign-in
    ]


def make_app(url: str, prefix: str = "/services/console/", *, identify=None, cookie_secret: bytes | None = None) -> web.Application:  # noqa: ANN001
    ctx = Context(url=url, prefix=prefix, identify=identify)
    return web.Application(
        routes(ctx),
        default_handler_class=NotFoundPage,
        default_handler_args={"ctx": ctx},
        cookie_secret=cookie_secret or secrets.token_bytes(32),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"path": prefix, "httponly": True, "samesite": "Strict"},
        login_url=prefix + "oauth_callback",
        serve_traceback=False,
        debug=False,
    )


def main() -> None:
    from enclave.registry.base import ensure_schema

    logging.basicConfig(level=logging.INFO, format="%(asctime)s console %(levelname)s %(message)s")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/console/")
    listen = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8002"))
    if os.environ.get("CONSOLE_HUB_API_URL"):
        os.environ["JUPYTERHUB_API_URL"] = os.environ["CONSOLE_HUB_API_URL"]
    url = ensure_schema()
    app = make_app(url, prefix)
    app.listen(listen.port, address=listen.hostname or "127.0.0.1", xheaders=True)
    logging.getLogger("enclave.console").info("console on %s%s", listen.geturl(), prefix)
    ioloop.IOLoop.current().start()
