"""The contents API of a workspace: the browser's way in and out, with the enclave's rules on top.

Egress (every read with content, notebooks included): refused above the project's read cap
(``contents_read_cap_bytes``, set by the board, 5 MB by default); binary only for images whose
bytes decode as the image type their name claims, and then only the re-encoded image
(``content_rules``); every read of ``audit_transfer_bytes`` or more is recorded in the audit
chain before it is served.

Ingress: a save that did not come from the editor is an upload: a base64 or chunked body (how
JupyterLab uploads any file), a text file created with content in one request, or a save that
adds more than ``paste_limit_bytes`` of typed text (a pasted file). Uploads are refused unless
the board allowed ingress for the project; then each is checked by content (text, or an image
that decodes), limited to ``ingress_max_bytes`` and recorded with its sha256 before it is written.

This runs in the Jupyter server's process: once the server has a uid of its own, nothing in the
researcher's home or kernel can change it (settings come from the spawner's command line).
"""
from __future__ import annotations

import base64
import contextvars
import json
import os

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web
from traitlets import Bool, Integer

from hub_config.single_user import content_rules as rules
from hub_config.single_user import hub_events
from hub_config.single_user.hub_events import AuditUnavailable, TransferEvent

MIB = 1024 * 1024
# Set while the server copies a file inside the home (the file browser's Duplicate, a copy through
# the API): its read and write are not transfers across the browser path.
_copying_inside = contextvars.ContextVar("copying_inside", default=False)
RELEASE_HINT = "Outputs leave the enclave through a release request."


def _refusal(message: str) -> web.HTTPError:
    # reason= sets the text JupyterLab shows in its error dialog.
    return web.HTTPError(403, message, reason=message)


def is_upload_body(model: dict) -> bool:
    """A base64 or chunked body: how a file is uploaded, never how the editor saves."""
    return model.get("format") == "base64" or model.get("chunk") is not None


def model_bytes(model: dict) -> bytes:
    """The bytes a model read from disk carries to the browser."""
    content = model.get("content")
    if model.get("type") == "notebook":
        return json.dumps(content).encode("utf-8")
    if model.get("format") == "base64":
        return base64.b64decode(content or "")
    return (content or "").encode("utf-8")


class EnclaveContentsManager(AsyncLargeFileManager):
    """AsyncLargeFileManager with the egress and ingress rules above."""

    read_cap_bytes = Integer(5 * MIB, help="Largest read through the contents API (the project's condition).").tag(config=True)
    audit_transfer_bytes = Integer(MIB, help="Reads and writes this large or larger are recorded in the audit chain.").tag(config=True)
    ingress_allowed = Bool(False, help="Uploads allowed for the project (the board's condition).").tag(config=True)
    ingress_max_bytes = Integer(MIB, help="Largest upload when ingress is allowed (the project's condition).").tag(config=True)
    paste_limit_bytes = Integer(64 * 1024, help="Typed text one save may add before it counts as an upload.").tag(config=True)

    # -- egress ---------------------------------------------------------------------------------------------
    def _disk_size(self, path: str) -> int:
        try:
            os_path = self._get_os_path(path)
            return os.path.getsize(os_path) if os.path.isfile(os_path) else 0
        except (OSError, web.HTTPError):
            return 0

    async def _refuse(self, direction: rules.Direction, path: str, size: int, message: str) -> web.HTTPError:
        path = path.strip("/")
        self.log.warning("refused %s transfer of %s bytes: %s", direction.value, size, message)
        await hub_events.record_best_effort(TransferEvent("transfer.refused", path=path, bytes=size,
                                                          reason=f"{direction.value}: {message}"[:200]))
        return _refusal(message)

    async def _record_transfer(self, kind: str, path: str, data: bytes) -> None:
        """Record a transfer in the audit chain before it happens; refuse it if that fails."""
        if len(data) < self.audit_transfer_bytes and kind == "transfer.out":
            return
        path = path.strip("/")
        try:
            await hub_events.record(TransferEvent(kind, path=path, bytes=len(data), sha256=rules.sha256_hex(data)))
        except AuditUnavailable as error:
            self.log.error("transfer of %s not recorded, refused: %s", path, error)
            raise web.HTTPError(503, "The transfer could not be recorded in the audit log; try again later.") from None

    async def copy(self, from_path, to_path=None):  # noqa: ANN001
        token = _copying_inside.set(True)
        try:
            return await super().copy(from_path, to_path=to_path)
        finally:
            _copying_inside.reset(token)

    async def get(self, path, content=True, type=None, format=None, require_hash=False):  # noqa: A002, ANN001
        if not content or _copying_inside.get():
            return await super().get(path, content=content, type=type, format=format, require_hash=require_hash)
        size = self._disk_size(path)
        if size > self.read_cap_bytes:
            raise await self._refuse(rules.Direction.egress, path, size,
                                     f"Files over {self.read_cap_bytes} bytes cannot be opened in the browser. {RELEASE_HINT}")
        model = await super().get(path, content=content, type=type, format=format, require_hash=require_hash)
        if model.get("type") == "directory":
            return model
        data = model_bytes(model)
        if len(data) > self.read_cap_bytes:  # the file grew between the check and the read
            raise await self._refuse(rules.Direction.egress, path, len(data),
                                     f"Files over {self.read_cap_bytes} bytes cannot be opened in the browser. {RELEASE_HINT}")
        if model.get("format") == "base64":
            try:
                image = rules.disarm_image(data, path, max_bytes=self.read_cap_bytes)
            except rules.NotAnImage as not_image:
                raise await self._refuse(rules.Direction.egress, path, len(data),
                                         f"Binary files cannot be downloaded ({not_image}). {RELEASE_HINT}") from None
            data = image.data
            model["content"] = base64.b64encode(data).decode("ascii")
            model["mimetype"] = image.mimetype
            model["size"] = len(data)
            if require_hash:
                model["hash"], model["hash_algorithm"] = rules.sha256_hex(data), "sha256"
        await self._record_transfer("transfer.out", path, data)
        return model

    # -- ingress --------------------------------------------------------------------------------------------
    def _existing_typed_bytes(self, path: str, model: dict) -> int | None:
        """What the file on disk holds of typed text (None when it does not exist yet)."""
        try:
            os_path = self._get_os_path(path)
        except web.HTTPError:
            return None
        if not os.path.isfile(os_path):
            return None
        if model.get("type") != "notebook":
            return os.path.getsize(os_path)
        try:
            with open(os_path, "rb") as f:
                return rules.notebook_typed_bytes(json.loads(f.read(self.read_cap_bytes * 4 + 1)))
        except (OSError, ValueError):
            return 0

    def _upload_kind(self, model: dict, path: str) -> str:
        """Why a save is an upload ("" for an editor save)."""
        if is_upload_body(model):
            return "an uploaded file"
        existing = self._existing_typed_bytes(path, model)
        if model.get("type") == "file":
            new = len((model.get("content") or "").encode("utf-8"))
            if existing is None and new > 0:
                return "a new file with content (an upload, not the editor)"
            if new - (existing or 0) > self.paste_limit_bytes:
                return f"a save adding more than {self.paste_limit_bytes} bytes (a pasted file)"
        elif model.get("type") == "notebook":
            new = rules.notebook_typed_bytes(model.get("content") or {})
            if new - (existing or 0) > self.paste_limit_bytes:
                return f"a notebook save adding more than {self.paste_limit_bytes} bytes of cells (a pasted file)"
        return ""

    def _upload_bytes(self, model: dict) -> bytes:
        if model.get("type") == "notebook":
            return json.dumps(model.get("content")).encode("utf-8")
        if model.get("format") == "base64":
            try:
                return base64.b64decode(model.get("content") or "", validate=True)
            except ValueError:
                raise _refusal("The upload is not valid base64.") from None
        return (model.get("content") or "").encode("utf-8")

    async def _admit_upload(self, model: dict, path: str, why: str) -> dict:
        """The model to write for an upload the project may receive, or a refusal."""
        if not self.ingress_allowed:
            raise await self._refuse(rules.Direction.ingress, path, 0,
                                     f"Files cannot be brought into this workspace ({why}); the project has no ingress approval.")
        if model.get("chunk") is not None:
            raise await self._refuse(rules.Direction.ingress, path, 0,
                                     "Uploads in pieces are refused: each upload is checked whole.")
        data = self._upload_bytes(model)
        if len(data) > self.ingress_max_bytes:
            raise await self._refuse(rules.Direction.ingress, path, len(data),
                                     f"Uploads over {self.ingress_max_bytes} bytes are refused.")
        if rules.claimed_image_format(path) is not None and model.get("format") == "base64":
            try:
                data = rules.disarm_image(data, path, max_bytes=self.ingress_max_bytes).data
            except rules.NotAnImage as not_image:
                raise await self._refuse(rules.Direction.ingress, path, len(data),
                                         f"The upload is not an image ({not_image}).") from None
            model = {**model, "content": base64.b64encode(data).decode("ascii")}
        elif not rules.decodes_as_text(data):
            raise await self._refuse(rules.Direction.ingress, path, len(data),
                                     "Binary uploads are refused: only text and images that decode as their type.")
        await self._record_transfer("transfer.in", path, data)
        return model

    async def save(self, model, path=""):  # noqa: ANN001
        why = "" if _copying_inside.get() else self._upload_kind(model, path)
        if why:
            model = await self._admit_upload(model, path, why)
        return await super().save(model, path)
