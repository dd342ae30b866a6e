"""What the gateway lets through: routes, methods, sizes and content, each rule a small function.

Routes are relative to the workspace's base URL (``/user/<name>/<project>/``). Anything not
allowed here is refused, so a handler the server gained (or a server replaced by one that has
them all: files, view, nbconvert, terminals) is unreachable from the browser.
"""
from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass
from urllib.parse import unquote


class Route(enum.Enum):
    """The kinds of request the gateway forwards."""

    PAGE = "page"  # the base URL and JupyterLab's pages and its own API (settings, workspaces)
    STATIC = "static"  # read-only assets of the installation
    CONTENTS = "contents"  # the contents API: every read and write of a file
    KERNELS = "kernels"  # kernels, sessions, kernel specs
    CHANNELS = "channels"  # a kernel's websocket
    EVENTS = "events"  # the server's event websocket
    SERVER = "server"  # status, identity, config
    AUTH = "auth"  # the OAuth callback with the hub, logout


@dataclass(frozen=True)
class Limits:
    """Sizes in bytes; the contents manager has its own, lower, per-project caps."""

    request_body: int = 16 * 1024 * 1024
    response_body: int = 8 * 1024 * 1024
    static_body: int = 32 * 1024 * 1024
    image_bytes: int = 2 * 1024 * 1024
    websocket_message: int = 8 * 1024 * 1024
    audit_threshold: int = 1024 * 1024


# (pattern, methods, route). The first match wins; patterns are anchored on the relative path.
_RULES: tuple[tuple[re.Pattern, frozenset[str], Route], ...] = tuple(
    (re.compile(pattern), frozenset(methods.split()), route)
    for pattern, methods, route in (
        (r"", "GET", Route.PAGE),
        (r"lab(/.*)?", "GET PUT PATCH POST DELETE", Route.PAGE),
        (r"(lab/)?static/.+", "GET", Route.STATIC),
        (r"lab/extensions/.+", "GET", Route.STATIC),
        (r"kernelspecs/[^/]+/[^/]+", "GET", Route.STATIC),
        (r"custom/custom\.css", "GET", Route.STATIC),
        (r"api/contents(/.*)?", "GET PUT POST PATCH DELETE", Route.CONTENTS),
        (r"api/kernels/[^/]+/channels", "GET", Route.CHANNELS),
        (r"api/kernels(/[^/]+(/(interrupt|restart))?)?", "GET POST DELETE", Route.KERNELS),
        (r"api/sessions(/[^/]+)?", "GET POST PATCH DELETE", Route.KERNELS),
        (r"api/kernelspecs(/[^/]+)?", "GET", Route.KERNELS),
        (r"api/events/subscribe", "GET", Route.EVENTS),
        (r"api", "GET", Route.SERVER),
        (r"api/(status|me)", "GET", Route.SERVER),
        (r"api/config/[^/]+", "GET", Route.SERVER),
        (r"oauth_callback", "GET", Route.AUTH),
        (r"logout", "GET", Route.AUTH),
    )
)

IMAGE_MIMETYPES = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
                   "image/gif": (b"GIF87a", b"GIF89a")}
TEXT_RESPONSE_TYPES = ("application/json", "text/html", "text/plain")


class Refused(Exception):
    """A request or response the gateway does not forward; ``status`` and a reason for the person."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def relative_path(path: str, base_url: str) -> str:
    """The path under the workspace's base URL; refused if outside it or not normalised."""
    if not path.startswith(base_url) and path != base_url.rstrip("/"):
        raise Refused(404, "not a path of this workspace")
    rest = path[len(base_url):]
    decoded = unquote(rest)
    if "\\" in decoded or "\0" in decoded or any(part in ("..", ".") for part in decoded.split("/")) or "//" in decoded:
        raise Refused(400, "paths must be plain")
    return rest


def classify(method: str, path: str, base_url: str) -> Route:
    """The route of an allowed request; ``Refused`` for everything else."""
    rest = relative_path(path, base_url)
    for pattern, methods, route in _RULES:
        if pattern.fullmatch(rest):
            if method not in methods and method not in ("HEAD", "OPTIONS"):
                raise Refused(405, f"{method} is not allowed here")
            return route
    raise Refused(403, "this part of the workspace is not available in the enclave")


def check_credentials(headers: dict[str, str], query: str, server_token: str) -> None:
    """The workspace server's own hub token is never accepted from the browser side."""
    if not server_token:
        return
    if server_token in headers.get("Authorization", "") or server_token in query:
        raise Refused(403, "the workspace's own credential is not accepted from outside the workspace")


def is_image(mimetype: str, data: bytes) -> bool:
    """True when ``data`` starts as the image type it claims to be."""
    return any(data.startswith(magic) for magic in IMAGE_MIMETYPES.get(mimetype, ()))


def check_base64_model(model: dict, limits: Limits, destination: str | None = None) -> None:
    """A base64 file model (read or write) passes only as a real image within the image limit.

    ``destination``: for a write, the path in the request's URL, which is where the server saves
    the file; its name alone decides the type (the model's own name and mimetype are claims).
    """
    if model.get("format") != "base64" or model.get("content") is None:
        return
    try:
        data = base64.b64decode(model["content"], validate=False)
    except (binascii.Error, TypeError, ValueError):
        raise Refused(403, "binary content refused") from None
    if destination is not None:
        mimetype = _mimetype_of(destination.rsplit("/", 1)[-1])
    else:
        mimetype = model.get("mimetype") or _mimetype_of(model.get("name") or model.get("path") or "")
    if not is_image(mimetype, data[:16]):
        raise Refused(403, "binary files other than images do not leave or enter the workspace")
    if len(data) > limits.image_bytes:
        raise Refused(413, "image larger than the workspace's limit")


def _mimetype_of(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}.get(suffix, "")


def check_response_type(route: Route, content_type: str, disposition: str) -> None:
    """Only assets come back from static routes; only JSON, HTML and text from the others; no attachments."""
    if "attachment" in disposition.lower():
        raise Refused(403, "downloads are not available in the enclave")
    if route in (Route.STATIC,):
        return
    if content_type and not content_type.split(";")[0].strip().lower().startswith(TEXT_RESPONSE_TYPES):
        raise Refused(403, "this kind of content does not leave the workspace")


def body_limit(route: Route, limits: Limits) -> int:
    """The largest response body forwarded for ``route``."""
    return limits.static_body if route is Route.STATIC else limits.response_body
