"""When idle workspaces are stopped, derived from one setting for both deployments.

``enclave.settings.idle_cull_seconds`` decides it; the local hub (``jupyterhub_config.py``) and
the Kubernetes chart values (``kubernetes/values.yaml``'s ``cull:`` section and the activity
intervals) are both derived here, and a test keeps the chart values equal to this derivation.
What counts as activity: kernel messages, API requests, browser traffic, and a busy kernel up
to the project's ``max_kernel_run_seconds`` (``single_user.busy_activity``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CullPolicy:
    """The idle culler's timeout and check interval, and how often activity reaches the hub."""

    timeout: int  # seconds without activity before a workspace is stopped
    every: int  # seconds between two passes of the culler
    activity_interval: int  # seconds between two activity reports (server -> hub, proxy -> hub)

    def chart_values(self) -> dict:
        """The Zero to JupyterHub ``cull:`` section for this policy."""
        return {"enabled": True, "timeout": self.timeout, "every": self.every, "users": False,
                "removeNamedServers": False}


def cull_policy(idle_cull_seconds: int) -> CullPolicy:
    """The policy for an idle limit.

    Activity reaches the hub at intervals: each workspace server reports its own every
    JUPYTERHUB_ACTIVITY_INTERVAL, and the hub reads the proxy's per-route activity every
    last_activity_interval (both 300 s by default). With a limit not well above that, a workspace
    in continuous use looks idle between two reports and is culled (seen with 30 s), so both report
    at a third of the limit, at most the 300 s default. The culler looks at a quarter of the limit,
    at least every 30 s and at most every 300 s.
    """
    return CullPolicy(
        timeout=idle_cull_seconds,
        every=max(30, min(300, idle_cull_seconds // 4)),
        activity_interval=max(5, min(300, idle_cull_seconds // 3)),
    )
