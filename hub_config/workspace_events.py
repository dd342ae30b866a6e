"""The hub's endpoint for a workspace server's transfer events, appended to the audit chain.

A workspace's Jupyter server has no network and no registry; it reaches the hub over the hub's
unix socket with its own server token (``hub_config.single_user.hub_events``). This handler
accepts an event only when the token presented is *that server's* token: JupyterHub makes the
server token the secret of the server's OAuth client, and the hub compares the two. The actor
(the server's user) and the project (the server's name) come from the hub's records, never from
the event; the event itself is validated strictly (unknown fields, long text, bad hashes refused).
A user's browser session, another user's server or another workspace of the same user cannot
record events here.
"""
from __future__ import annotations

import asyncio
import enum

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import compare_token
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado import web

EVENTS_ROUTE = r"/api/enclave/workspaces/([^/]+)/([^/]+)/events"


class EventKind(str, enum.Enum):
    transfer_out = "transfer.out"
    transfer_in = "transfer.in"
    transfer_refused = "transfer.refused"
    output_withheld = "output.withheld"


class WorkspaceEvent(BaseModel):
    """What a server may say about one transfer."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    path: str = Field("", max_length=1024)
    bytes: int = Field(0, ge=0)
    sha256: str = Field("", pattern=r"^([0-9a-f]{64})?$")
    reason: str = Field("", max_length=200)


def _append(user: str, project: str, extract_version: int | None, event: WorkspaceEvent) -> None:
    from enclave import audit
    from enclave.registry.base import session_scope

    details = {"extract_version": extract_version, "bytes": event.bytes}
    for name in ("path", "sha256", "reason"):
        if getattr(event, name):
            details[name] = getattr(event, name)
    with session_scope() as session:
        audit.append(session, actor=user, action=f"workspace.{event.kind.value}", project=project,
                     subject=f"user:{user}", details=details)


class WorkspaceEventsHandler(APIHandler):
    """POST one event of a running workspace server, authenticated by that server's own token."""

    @needs_scope("users:activity")
    async def post(self, user_name: str, server_name: str) -> None:
        user = self.find_user(user_name)
        token = self.get_auth_token()
        spawner = user.spawners.get(server_name) if user is not None and server_name in user.orm_spawners else None
        client = spawner.orm_spawner.oauth_client if spawner is not None else None
        if not (token and client is not None and client.secret and compare_token(client.secret, token)):
            raise web.HTTPError(403, "only the workspace's own server records its transfers")
        try:
            event = WorkspaceEvent.model_validate(self.get_json_body() or {})
        except ValidationError:
            raise web.HTTPError(400, "not a valid workspace event") from None
        version = getattr(spawner, "extract_version", None) or None
        await asyncio.to_thread(_append, user.name, server_name, version, event)
        self.set_status(201)
        self.finish()
