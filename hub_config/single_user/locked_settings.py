"""Locked JupyterLab settings: a plugin the enclave overrides cannot be changed through the settings API.

The enclave's overrides (``jupyter_config/labconfig/default_setting_overrides.json``: the upload
button removed, news and update checks off) are only defaults to JupyterLab; a user setting saved
through ``PUT /lab/api/settings/<plugin>`` would win over them. The user settings directory is
the server's own (``jupyter_server_config.py``), so nothing written into the home is read; this
extension closes the API route as well, by serving the settings API with a handler that refuses
to save settings of any overridden plugin. jupyterlab_server's settings handler has no
``@authorized`` decorator, so the authorizer never sees these requests: the handler itself is
replaced, once every extension has registered its routes.
"""
from __future__ import annotations

import os

from jupyterlab_server.settings_handler import SettingsHandler
from tornado import web


class LockedSettingsHandler(SettingsHandler):
    """JupyterLab's settings handler; saving a plugin the enclave overrides is refused."""

    @web.authenticated
    def put(self, schema_name: str) -> None:
        if schema_name in (self.overrides or {}):
            raise web.HTTPError(403, f"The settings of {schema_name} are locked in the enclave.",
                                reason="These settings are locked in the enclave.")
        return super().put(schema_name)


def _rules(router) -> list:  # noqa: ANN001 - a tornado router
    """Every routing rule under ``router``, nested routers included."""
    found = []
    for rule in getattr(router, "rules", []):
        found.append(rule)
        found.extend(_rules(rule.target))
    return found


def lock_settings_routes(web_app) -> int:  # noqa: ANN001 - the server's tornado application
    """Point every route served by SettingsHandler at LockedSettingsHandler; returns how many."""
    swapped = 0
    for rule in _rules(web_app.default_router):
        if rule.target is SettingsHandler:
            rule.target = LockedSettingsHandler
            swapped += 1
    return swapped


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "hub_config.single_user.locked_settings"}]


def _load_jupyter_server_extension(serverapp) -> None:  # noqa: ANN001
    """Nothing at load: jupyterlab registers its routes after this module (extensions load by name)."""


async def _start_jupyter_server_extension(serverapp) -> None:  # noqa: ANN001
    swapped = lock_settings_routes(serverapp.web_app)
    if not swapped:
        # Fail closed: without the lock the overrides could be undone, so the server must not serve.
        # (jupyter_server logs and ignores exceptions raised here, hence the exit.)
        serverapp.log.critical("the JupyterLab settings route was not found; stopping rather than serve unlocked")
        os._exit(1)
    serverapp.log.info("JupyterLab settings of overridden plugins locked (%s routes)", swapped)
