"""The kernel broker's wire format: one JSON request and one JSON answer per unix-socket connection.

Requests come from the Jupyter server, which the broker does not trust: each is validated here
into a small frozen value before the broker acts on it.
"""
from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass

from hub_config import sandbox

MAX_REQUEST_BYTES = 16 * 1024
IPC_PREFIX = re.compile(rf"^{re.escape(sandbox.KERNELS_DIR)}/kernel-[A-Za-z0-9_-]{{1,64}}-ipc$")
KEY = re.compile(r"^[A-Za-z0-9_-]{0,128}$")
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
ALLOWED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}


class BadRequest(ValueError):
    """A request the broker refuses; the message names the field."""


@dataclass(frozen=True)
class Launch:
    connection: dict  # only the validated fields, as the kernel will read them
    cwd: str


@dataclass(frozen=True)
class Poll:
    kernel: str


@dataclass(frozen=True)
class Signal:
    kernel: str
    signum: int


def _connection(raw: object) -> dict:
    """The connection info of an ipc kernel under the kernels' directory, nothing else."""
    if not isinstance(raw, dict):
        raise BadRequest("connection: not an object")
    if raw.get("transport") != "ipc":
        raise BadRequest("connection.transport: only ipc is allowed")
    ip = raw.get("ip")
    if not isinstance(ip, str) or not IPC_PREFIX.match(ip):
        raise BadRequest("connection.ip: not a kernel socket prefix in the kernels' directory")
    key = raw.get("key")
    if not isinstance(key, str) or not KEY.match(key):
        raise BadRequest("connection.key: not a hexadecimal key")
    if raw.get("signature_scheme") != "hmac-sha256":
        raise BadRequest("connection.signature_scheme: only hmac-sha256")
    ports = {}
    for name in PORT_NAMES:
        port = raw.get(name)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise BadRequest(f"connection.{name}: not a port number")
        ports[name] = port
    kernel_name = raw.get("kernel_name", "")
    if not isinstance(kernel_name, str) or len(kernel_name) > 64:
        raise BadRequest("connection.kernel_name: not a short string")
    return {"transport": "ipc", "ip": ip, "key": key, "signature_scheme": "hmac-sha256",
            "kernel_name": kernel_name, **ports}


def _kernel_id(raw: object) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9a-f]{32}", raw):
        raise BadRequest("kernel: not a kernel handle")
    return raw


def parse(data: bytes, home: str) -> Launch | Poll | Signal:
    """Validate one request of the server."""
    if len(data) > MAX_REQUEST_BYTES:
        raise BadRequest("request too large")
    try:
        raw = json.loads(data)
    except ValueError:
        raise BadRequest("request: not JSON") from None
    if not isinstance(raw, dict):
        raise BadRequest("request: not an object")
    op = raw.get("op")
    if op == "launch":
        cwd = raw.get("cwd") or home
        if not isinstance(cwd, str) or "\0" in cwd or ".." in cwd.split("/") or not (cwd == home or cwd.startswith(home + "/")):
            raise BadRequest("cwd: not inside the home")
        return Launch(_connection(raw.get("connection")), cwd)
    if op == "poll":
        return Poll(_kernel_id(raw.get("kernel")))
    if op == "signal":
        signum = raw.get("signum")
        if signum not in {int(s) for s in ALLOWED_SIGNALS}:
            raise BadRequest("signum: not an allowed signal")
        return Signal(_kernel_id(raw.get("kernel")), int(signum))
    raise BadRequest("op: unknown operation")
