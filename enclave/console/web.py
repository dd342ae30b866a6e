"""What every console page shares: the hub's sign-in (HubOAuth), the registry person behind it,
security headers, XSRF, escaped templates, ids checked as ranges and error pages without tracebacks.

Identity comes only from the hub's OAuth cookie (the OIDC sign-in); the registry decides what the
person may see and do, through the same permission and policy functions the CLI uses.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from enclave.airlock.errors import AirlockError, NotFound as AirlockNotFound, Refused
from enclave.board.errors import GovernanceError, InvalidInput, NotAllowed, NotFound, NotPermitted
from enclave.entitlements import Refused as EntitlementRefused

log = logging.getLogger("enclave.console")

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
MAX_ID = 2**31 - 1  # ids are SQLite/PostgreSQL integers: anything outside is refused before a query

# No inline script or style, no third-party origin, no framing, forms post only back here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class PageError(Exception):
    """A refusal the console itself raises (bad id, missing form field), shown with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_id(text: str, what: str = "id") -> int:
    """An id from a URL or form: digits only, 1..MAX_ID (no overflow, no negative, no text)."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10 or not 1 <= int(text) <= MAX_ID:
        raise PageError(404, f"no such {what}")
    return int(text)


@dataclass
class Context:
    """Process-wide state of the console: the registry URL, templates and (benchmark only) an identity."""

    url: str
    prefix: str
    hub_prefix: str = "/hub/"
    identify: Callable[[web.RequestHandler], str | None] | None = None  # tests of the app alone; never set by main()
    env: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["age"] = age
        self.env.filters["when"] = when


def age(moment: dt.datetime | None) -> str:
    """How long ago, in words a reviewer reads at a glance."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    seconds = max(0, int((dt.datetime.now(dt.UTC) - moment).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def when(moment: Any) -> str:
    if moment is None:
        return ""
    if isinstance(moment, dt.datetime):
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return str(moment)


class Page(HubOAuthenticated, web.RequestHandler):
    """Base of every page: signed in through the hub, a registry person, headers, errors."""

    def initialize(self, ctx: Context) -> None:
        self.ctx = ctx
        self.username: str | None = None
        self.roles: frozenset[str] = frozenset()

    # -- identity -----------------------------------------------------------------------------------
    def get_current_user(self):  # noqa: ANN201 - tornado API
        if self.ctx.identify is not None:
            name = self.ctx.identify(self)
            return {"name": name} if name else None
        return super().get_current_user()

    def check_xsrf_cookie(self) -> None:
        if self.ctx.identify is not None:  # the app-alone tests: tornado's own check
            return web.RequestHandler.check_xsrf_cookie(self)
        return super().check_xsrf_cookie()

    async def prepare(self) -> None:
        user = self.current_user
        if not user:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())
                return
            raise web.HTTPError(403, "sign in first")
        from enclave.people import get_person
        from enclave.registry.base import session_scope

        with session_scope(self.ctx.url, readonly=True) as session:
            try:
                person = get_person(session, user["name"])
            except GovernanceError:
                raise PageError(403, "your sign-in has no account in the enclave registry") from None
            if not person.active:
                raise PageError(403, "your account is disabled")
            self.username = person.username
            self.person_name = person.name
            self.roles = frozenset(person.role_names)

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    # -- output -------------------------------------------------------------------------------------
    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Cross-Origin-Opener-Policy", "same-origin")

    def url(self, path: str = "") -> str:
        return self.ctx.prefix + path.lstrip("/")

    def render_page(self, template: str, **values: Any) -> None:
        values.update(
            me=self.username, my_name=getattr(self, "person_name", ""), roles=self.roles, url=self.url,
            xsrf=lambda: Markup(self.xsrf_form_html()),  # tornado builds it with the token escaped
            hub=self.ctx.hub_prefix, notice=self.get_argument("notice", "", strip=True)[:200],
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.ctx.env.get_template(template).render(**values))

    def done(self, path: str, notice: str) -> None:
        """After a successful form: back to a page (POST/redirect/GET), with a short notice."""
        from urllib.parse import urlencode

        self.redirect(self.url(path) + "?" + urlencode({"notice": notice}))

    def form(self, name: str, default: str | None = None, limit: int = 20000) -> str:
        value = self.get_body_argument(name, default)
        if value is None:
            raise PageError(400, f"the form field {name!r} is missing")
        if len(value) > limit:
            raise PageError(400, f"the form field {name!r} is longer than {limit} characters")
        return value

    # -- errors -------------------------------------------------------------------------------------
    def _status_and_message(self, error: BaseException | None) -> tuple[int, str]:
        if isinstance(error, PageError):
            return error.status, error.message
        if isinstance(error, (NotFound, AirlockNotFound)):
            return 404, str(error)
        if isinstance(error, (NotPermitted,)):
            return 403, str(error)
        if isinstance(error, Refused):
            return 403, str(error)
        if isinstance(error, EntitlementRefused):
            return 403, str(getattr(error, "reason", error))
        if isinstance(error, (NotAllowed, InvalidInput, GovernanceError, AirlockError)):
            return 409, str(error)
        if isinstance(error, web.HTTPError):
            return error.status_code, error.log_message or ""
        return 500, ""

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001
        status, message = self._status_and_message(value)
        if status >= 500:
            super().log_exception(typ, value, tb)
        elif isinstance(value, web.HTTPError):
            log.info("refused %s %s: %s", self.request.method, self.request.path, message)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        status, message = self._status_and_message(error) if error is not None else (status_code, "")
        if status >= 500:
            reference = secrets.token_hex(4)
            log.error("console error reference %s", reference)
            message = f"Something went wrong on our side (reference {reference}). Nothing was changed."
        elif not message:
            message = {403: "You may not do this.", 404: "There is nothing here.", 405: "Not allowed."}.get(status, "Refused.")
        self.set_status(status)
        self.clear_header("Location")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.ctx.env.get_template("error.html").render(
            status=status, message=message, url=self.url, me=self.username, roles=self.roles,
            xsrf=lambda: "", hub=self.ctx.hub_prefix, notice=""))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        # a refusal raised in prepare() or a handler carries its own status
        error = kwargs.get("exc_info", (None, None, None))[1]
        if error is not None and not isinstance(error, web.HTTPError):
            status_code = self._status_and_message(error)[0]
        super().send_error(status_code, **kwargs)


class NotFoundPage(Page):
    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished:
            raise PageError(404, "There is no such page in the console.")
