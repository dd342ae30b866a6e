"""The workspace side of the DP budget service: send one query, get the noisy answer and its receipt."""
from __future__ import annotations

import json
import socket
from typing import Any

# Where the service's socket appears inside every workspace sandbox (the spawner binds its folder
# at /run/enclave, so the host socket must be named dp.sock).
SANDBOX_SOCKET = "/run/enclave/dp.sock"
TIMEOUT_SECONDS = 120


class DPServiceError(RuntimeError):
    """The service refused the query (or could not be reached); the message says why."""

    def __init__(self, message: str, kind: str = "refused"):
        super().__init__(message)
        self.kind = kind


def socket_path() -> str:
    """The service's socket: the sandbox's fixed path (``ENCLAVE_DP_SOCKET`` outside a sandbox)."""
    from enclave.settings import get_settings

    return get_settings().dp_socket or SANDBOX_SOCKET


def ask(query: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """Send ``query`` and return ``{"receipt": ..., "remaining": ...}``; ``DPServiceError`` on refusal."""
    path = path or socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT_SECONDS)
        try:
            sock.connect(path)
        except OSError as exc:
            raise DPServiceError(f"the DP service is not reachable at {path} ({exc.strerror})", "unreachable") from None
        sock.sendall(json.dumps({"query": query}).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    try:
        response = json.loads(line)
    except ValueError:
        raise DPServiceError("the DP service gave no answer", "error") from None
    if not response.get("ok"):
        raise DPServiceError(response.get("error", "refused"), response.get("kind", "refused"))
    return response
