"""The hub's server REST API with the enclave's restrictions on top.

JupyterHub 6 lets a user rename a named server and replace its ``user_options`` (PATCH), and
create server records under any name (PUT). A workspace is identified by its project alone, so
PATCH is refused, PUT is refused, and a start request may carry no options. The handler is
served ahead of JupyterHub's own through ``EnclaveOAuthenticator.get_handlers``.
"""
from __future__ import annotations

import inspect

from jupyterhub.apihandlers.users import ActivityAPIHandler, UserServerAPIHandler
from jupyterhub.handlers.base import BaseHandler
from tornado import web

SERVER_API_ROUTE = r"/api/users/([^/]+)/servers/([^/]*)"
TOKEN_PAGE_ROUTE = r"/token"


class WorkspaceServerAPIHandler(UserServerAPIHandler):
    """Start (POST), read (GET) and stop (DELETE) as upstream; no PUT, no PATCH, no user_options."""

    async def patch(self, user_name: str, server_name: str = "") -> None:
        raise web.HTTPError(403, "Workspaces are named after their project: renaming and changing options are disabled.")

    async def put(self, user_name: str, server_name: str = "") -> None:
        raise web.HTTPError(403, "Workspaces are created by starting a project's workspace, not by name.")

    async def post(self, user_name: str, server_name: str = "") -> None:
        body = self.get_server_json_body() or {}
        if body.get("user_options"):
            raise web.HTTPError(400, "A workspace takes no options: it is defined by its project's approval.")
        await super().post(user_name, server_name)


class NoTokenPageHandler(BaseHandler):
    """The token page is not offered: researchers hold no API tokens (their role has no token scopes),
    so JupyterHub's page would only show a form that always fails."""

    @web.authenticated
    async def get(self) -> None:
        raise web.HTTPError(404, "API tokens are not offered in the enclave.")


ACTIVITY_API_ROUTE = r"/api/users/([^/]+)/activity"


class WorkspaceActivityAPIHandler(ActivityAPIHandler):
    """Activity is reported by the workspace server through the hub's socket, never through the proxy.

    The server's token has no other scope (``SandboxSpawner.server_token_scopes``); a copy of it
    used from outside (the proxy adds ``X-Forwarded-For`` to every request it forwards) could only
    keep an idle workspace alive, and is refused.
    """

    async def post(self, user_name: str) -> None:
        if self.request.headers.get("X-Forwarded-For"):
            raise web.HTTPError(403, "Activity is reported by the workspace itself, not through the proxy.")
        result = super().post(user_name)
        if inspect.isawaitable(result):
            await result
