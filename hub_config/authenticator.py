"""OAuthenticator's GenericOAuthenticator, plus the enclave's server API restrictions.

The identity provider proves who a person is (the local development provider or the city's);
what they may open comes from the registry, checked by the spawner at every start.
"""
from __future__ import annotations

from oauthenticator.generic import GenericOAuthenticator

from hub_config.handlers import (
    ACTIVITY_API_ROUTE,
    SERVER_API_ROUTE,
    TOKEN_PAGE_ROUTE,
    NoTokenPageHandler,
    WorkspaceActivityAPIHandler,
    WorkspaceServerAPIHandler,
)
from hub_config.workspace_events import EVENTS_ROUTE, WorkspaceEventsHandler


class EnclaveOAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator whose handlers also replace the server REST API (authenticator handlers come first)."""

    def get_handlers(self, app):  # noqa: ANN001, ANN201 - JupyterHub API
        return [(SERVER_API_ROUTE, WorkspaceServerAPIHandler), (ACTIVITY_API_ROUTE, WorkspaceActivityAPIHandler),
                (TOKEN_PAGE_ROUTE, NoTokenPageHandler), (EVENTS_ROUTE, WorkspaceEventsHandler),
                *super().get_handlers(app)]
