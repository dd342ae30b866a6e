"""Transfer events from a workspace's Jupyter server to the audit chain, through the hub's API.

Why this route: the server has no network and no access to the registry, but it already talks to
the hub over the hub's unix socket (activity reports) with its own server token. The hub's
``hub_config.workspace_events`` handler accepts an event only with the token of that very server
(it is the server's OAuth client secret, which the hub checks), takes the user and project from
the hub's own records, never from the event, and appends to the audit chain at once. Compared
with a spool file collected at stop, nothing waits on disk for a later collection, it works the
same way in Kubernetes (the server reaches the hub API there too), and a transfer can be made
conditional on its record: egress and ingress wait for the hub's answer and are refused if the
event could not be recorded (fail closed). Refusals are recorded best-effort.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from urllib.parse import quote

log = logging.getLogger(__name__)


class AuditUnavailable(RuntimeError):
    """The hub did not record an event."""


@dataclass(frozen=True)
class TransferEvent:
    """One transfer across the browser path (or one refused)."""

    kind: str  # "transfer.out", "transfer.in", "transfer.refused", "output.withheld"
    path: str = ""
    bytes: int = 0
    sha256: str = ""
    reason: str = ""


def events_url() -> str:
    """The hub's endpoint for this server's events (from the environment the spawner set)."""
    api = os.environ.get("JUPYTERHUB_API_URL", "")
    user = os.environ.get("JUPYTERHUB_USER", "")
    server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
    if not (api and user and server):
        return ""
    return f"{api}/enclave/workspaces/{quote(user, safe='')}/{quote(server, safe='')}/events"


async def record(event: TransferEvent, *, timeout: float = 20.0) -> None:
    """Send ``event`` to the hub; raise AuditUnavailable unless the hub recorded it."""
    import aiohttp
    from jupyterhub.httpclient import fetch

    url = events_url()
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not url or not token:
        raise AuditUnavailable("this server has no hub to record transfers with")
    try:
        response = await fetch(url, method="POST", data=json.dumps(asdict(event)),
                               timeout=aiohttp.ClientTimeout(total=timeout),
                               headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        response.release()
    except Exception as error:  # any failure means: not recorded
        raise AuditUnavailable(f"the hub did not record the transfer ({type(error).__name__})") from None


async def record_best_effort(event: TransferEvent) -> None:
    """Send ``event``; a failure is logged, not raised (for refusals, which move nothing)."""
    try:
        await record(event)
    except AuditUnavailable as error:
        log.warning("audit event %s not recorded: %s", event.kind, error)
