"""A contents manager that refuses the browser's upload and download path for anything but images.

JupyterLab uploads every file (notebooks included) as a base64 ``PUT`` through the contents
API, and a base64 ``GET`` hands any binary to the browser. Text and notebook models are
what the editor needs; base64 is allowed only for the image types the image viewer shows.
Large text reads are refused too: the way out of the enclave is the airlock, not the screen.
"""
from __future__ import annotations

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Integer, List, Unicode

IMAGE_SUFFIXES = [".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"]


class EnclaveContentsManager(AsyncLargeFileManager):
    """AsyncLargeFileManager with the base64 and size rules above."""

    base64_allowed_suffixes = List(Unicode(), default_value=IMAGE_SUFFIXES,
                                   help="File suffixes that may be read or written as base64.").tag(config=True)
    max_text_read_bytes = Integer(20 * 1024 * 1024, help="Largest text file the browser may open.").tag(config=True)

    def _base64_allowed(self, path: str) -> bool:
        return any(path.lower().endswith(suffix) for suffix in self.base64_allowed_suffixes)

    async def get(self, path, content=True, type=None, format=None, require_hash=False):  # noqa: A002, ANN001
        if content and format == "base64" and not self._base64_allowed(path):
            raise web.HTTPError(403, "Binary download is disabled in the enclave; use an output release request.")
        model = await super().get(path, content=content, type=type, format=format, require_hash=require_hash)
        if content and model.get("format") == "base64" and not self._base64_allowed(path):
            raise web.HTTPError(403, "Binary download is disabled in the enclave; use an output release request.")
        if content and model.get("type") == "file" and (model.get("size") or 0) > self.max_text_read_bytes:
            raise web.HTTPError(403, "File too large to open in the browser.")
        return model

    async def save(self, model, path=""):  # noqa: ANN001
        if model.get("format") == "base64" and not self._base64_allowed(path):
            raise web.HTTPError(403, "Uploads into the enclave are disabled.")
        if model.get("chunk") is not None and not self._base64_allowed(path):
            raise web.HTTPError(403, "Uploads into the enclave are disabled.")
        return await super().save(model, path)
