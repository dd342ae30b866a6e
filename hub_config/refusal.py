"""The one error a spawner raises when the registry refuses a workspace."""
from __future__ import annotations

from tornado import web


class WorkspaceRefused(web.HTTPError):
    """A refused start: HTTP 403 for the API, and a readable reason on the hub's error page."""

    def __init__(self, project: str, reason: str) -> None:
        super().__init__(403, "workspace %s refused: %s", project, reason)
        self.reason = reason
        self.jupyterhub_message = f"The workspace of project {project} cannot be opened: {reason}"


class WorkspaceFailed(RuntimeError):
    """A start that failed after it was allowed: the cause is shown on the hub's page and audited."""

    def __init__(self, project: str, cause: str) -> None:
        super().__init__(f"the workspace of project {project} stopped while starting: {cause}")
        self.cause = cause
        self.jupyterhub_message = f"The workspace of project {project} could not start: {cause}"
