"""The single choke point for browser download paths inside a workspace.

jupyter_server asks the authorizer before every handler runs, so denying here closes the
``/files`` and ``/view`` download handlers, both nbconvert routes (``/nbconvert/...`` and
``/api/nbconvert``) and the terminals, whatever the frontend shows.
"""
from __future__ import annotations

from jupyterhub.singleuser.extension import JupyterHubAuthorizer
from traitlets import Bool

# Handler classes that hand a file's bytes to the browser (matched by name so that the
# check does not depend on where jupyter_server defines them).
DOWNLOAD_HANDLERS = frozenset({"FilesHandler", "AuthenticatedFileHandler", "ViewHandler"})
DENIED_RESOURCES = frozenset({"nbconvert"})


class EnclaveAuthorizer(JupyterHubAuthorizer):
    """JupyterHub's scope check, then the enclave's: no downloads, no nbconvert, terminals only if enabled."""

    terminals_enabled = Bool(False, help="Let workspace users open terminals.").tag(config=True)

    def is_authorized(self, handler, user, action, resource) -> bool:  # noqa: ANN001 - jupyter_server API
        if type(handler).__name__ in DOWNLOAD_HANDLERS or any(
            cls.__name__ in DOWNLOAD_HANDLERS for cls in type(handler).__mro__
        ):
            self.log.warning("refused download handler %s", type(handler).__name__)
            return False
        if resource in DENIED_RESOURCES:
            self.log.warning("refused %s on %s", action, resource)
            return False
        if resource == "terminals" and not self.terminals_enabled:
            self.log.warning("refused terminals (disabled)")
            return False
        return super().is_authorized(handler, user, action, resource)
