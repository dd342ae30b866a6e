"""Serving the public catalogue without sign-in: a static-file handler for the console (and any
Tornado app), with the same headers the pages declare. Nothing but the public zone is reachable."""
from __future__ import annotations

from tornado import web

from enclave.findings.publish import public_dir

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class CatalogueHandler(web.StaticFileHandler):
    """``<prefix>catalogue/<path>``: files of ``ENCLAVE_HOME/public`` (hidden staging folders refused)."""

    def initialize(self) -> None:  # noqa: D401 - tornado hook
        super().initialize(path=str(public_dir()), default_filename="index.html")

    def validate_absolute_path(self, root: str, absolute_path: str):  # noqa: ANN201
        if any(part.startswith(".") for part in absolute_path[len(root):].split("/") if part):
            raise web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def set_extra_headers(self, path: str) -> None:
        for name, value in HEADERS.items():
            self.set_header(name, value)
