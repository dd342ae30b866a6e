"""The gateway alone, as the sidecar container of a workspace pod (Kubernetes layout).

``python -m hub_config.gateway --port 8888 --upstream /run/jupyter/server.sock --base-url /user/a/p/``:
listens on the pod's port (the proxy's target) and forwards to the server container's unix
socket, a volume shared by those two containers only. The server's token (``ENCLAVE_SERVER_TOKEN``,
set by the spawner on this container) is refused from outside.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os

from tornado.httpserver import HTTPServer

from hub_config.gateway import policy
from hub_config.gateway.proxy import Gateway


async def serve(port: int, upstream: str, base_url: str) -> None:
    limits = policy.Limits()
    gateway = Gateway(upstream, base_url, limits, server_token=os.environ.get("ENCLAVE_SERVER_TOKEN", ""))
    http = HTTPServer(gateway.app(), max_body_size=limits.request_body)
    http.listen(port)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hub_config.gateway")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--upstream", required=True, help="the server's unix socket")
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(args.port, args.upstream, args.base_url))


if __name__ == "__main__":
    main()
