"""A busy kernel is activity: a jupyter_server extension that reports a silently computing kernel as active.

The hub's idle culler sees only the activity the server reports, and jupyter_server counts a
kernel's messages: a cell that computes for an hour without printing looks idle and its
workspace is culled with the computation. Every ``check_seconds`` this extension looks at the
kernels' execution state; while one is busy, and for at most ``max_kernel_run_seconds`` (the
board's per-project condition) since it was first seen busy, it sets the server's
``last_activity_times["enclave-busy-kernel"]``, which ``ServerWebApplication.last_activity()``
includes and the JupyterHub extension reports to the hub. A kernel busy longer than that earns
no more activity, so the normal idle rule applies again.
"""
from __future__ import annotations

import datetime as dt
import time

from tornado.ioloop import PeriodicCallback
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

ACTIVITY_KEY = "enclave-busy-kernel"


class BusyKernelActivity(LoggingConfigurable):
    """Turns busy kernels into activity, up to a maximum run time."""

    max_kernel_run_seconds = Integer(8 * 3600, help="A busy kernel counts as activity for at most this long.").tag(config=True)
    check_seconds = Float(5.0, help="How often the kernels' state is looked at.").tag(config=True)

    def __init__(self, serverapp, **kwargs) -> None:  # noqa: ANN001
        super().__init__(parent=serverapp, **kwargs)
        self.serverapp = serverapp
        self.busy_since: dict[str, float] = {}

    def credited(self, kernel_id: str, busy: bool, now: float) -> bool:
        """Whether this kernel's state earns activity now (and remember when it went busy)."""
        if not busy:
            self.busy_since.pop(kernel_id, None)
            return False
        since = self.busy_since.setdefault(kernel_id, now)
        return now - since < self.max_kernel_run_seconds

    def check(self) -> None:
        manager = self.serverapp.kernel_manager
        now = time.monotonic()
        credited = False
        for kernel_id in list(manager.list_kernel_ids()):
            try:
                state = manager.get_kernel(kernel_id).execution_state
            except KeyError:
                continue
            credited = self.credited(kernel_id, state == "busy", now) or credited
        for gone in set(self.busy_since) - set(manager.list_kernel_ids()):
            self.busy_since.pop(gone, None)
        if credited:
            self.serverapp.web_app.settings["last_activity_times"][ACTIVITY_KEY] = dt.datetime.now(dt.UTC)

    def start(self) -> None:
        PeriodicCallback(self.check, self.check_seconds * 1000).start()


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "hub_config.single_user.busy_activity"}]


def _load_jupyter_server_extension(serverapp) -> None:  # noqa: ANN001
    activity = BusyKernelActivity(serverapp)
    activity.start()
    serverapp.log.info("busy kernels count as activity for up to %s s", activity.max_kernel_run_seconds)
