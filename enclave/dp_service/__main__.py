"""``python -m enclave.dp_service --socket PATH``: run the DP budget service until SIGTERM."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from enclave.dp_service import receipts
from enclave.dp_service.server import DPServer
from enclave.registry.base import ensure_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enclave.dp_service", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path, help="unix socket to listen on")
    args = parser.parse_args(argv)
    url = ensure_schema(None)
    receipts.signing_key()  # create the host key now, not under the first query
    server = DPServer(args.socket, url)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"dp-service: listening on {args.socket}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        args.socket.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
