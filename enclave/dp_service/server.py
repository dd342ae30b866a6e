"""The DP budget service on a unix socket: one JSON line in, one JSON line out per connection.

The socket is bound into every workspace sandbox (``hub_config.spawner``). Who is calling is
read from the connection's peer credentials (``SO_PEERCRED``: set by the kernel at connect, not
by the caller), so a workspace cannot speak for another project or person.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import struct
import sys
from pathlib import Path

from enclave.dp_service import service

MAX_REQUEST_BYTES = 64 * 1024
READ_TIMEOUT_SECONDS = 30


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket, as the kernel recorded them."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(READ_TIMEOUT_SECONDS)
        _, uid, gid = peer_credentials(self.request)
        try:
            line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        except OSError:
            return
        if len(line) > MAX_REQUEST_BYTES:
            response = {"ok": False, "error": f"request over {MAX_REQUEST_BYTES} bytes", "kind": "refused"}
        else:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            try:
                response = service.handle(uid, gid, message, url=self.server.registry_url)
            except Exception as exc:  # never a traceback (or a data value) to the caller
                print(f"dp-service: error answering uid {uid}: {type(exc).__name__}", file=sys.stderr, flush=True)
                response = {"ok": False, "error": "the DP service failed; the query was not charged", "kind": "error"}
        try:
            self.wfile.write(json.dumps(response).encode() + b"\n")
        except OSError:
            pass


class DPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: Path, registry_url: str | None = None):
        self.registry_url = registry_url
        socket_path = Path(socket_path)
        socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if socket_path.is_socket():
            socket_path.unlink()  # left by a service that did not stop cleanly
        super().__init__(str(socket_path), _Handler)
        # Every workspace uid connects; who it is comes from SO_PEERCRED, not from the file mode.
        os.chmod(socket_path, 0o666)
