"""The kernel broker of the Kubernetes layout: it runs in the pod's kernel container, as the researcher.

There the container runtime has already done what bubblewrap does on one machine: the kernel
container has the researcher's uid and project gid, the extract, the home and the kernels'
volume, and no token, no server socket and no view of the server's processes (the pod does not
share its process namespace). So this broker starts each kernel as a plain child process; it
takes the same validated requests (``protocol``) on ``/run/kernels/broker.sock`` and writes the
kernel's connection file into its own private directory, which the server never sees.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from hub_config import sandbox
from hub_config.kernels import protocol
from hub_config.kernels.broker import KernelBroker

BROKER_SOCKET = f"{sandbox.KERNELS_DIR}/broker.sock"


class PodKernelBroker(KernelBroker):
    """Kernels as children of this container's process (the container is the sandbox)."""

    def __init__(self, env: dict[str, str], max_kernels: int = 8) -> None:
        super().__init__(template=None, env=env, tools={}, max_kernels=max_kernels)  # type: ignore[arg-type]
        self.private = Path(tempfile.mkdtemp(prefix="kernels-"))
        self.home = env.get("HOME", "/home")

    def launch(self, request: protocol.Launch) -> str:
        self._reap()
        if len(self.kernels) >= self.max_kernels:
            raise protocol.BadRequest(f"at most {self.max_kernels} kernels run at once in a workspace")
        handle = secrets.token_hex(16)
        connection = self.private / f"{handle}.json"
        fd = os.open(connection, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(request.connection, f)
        self.kernels[handle] = subprocess.Popen([sys.executable, "-m", "hub_config.kernels.start", "-f", str(connection)],
                                                env=self.env, cwd=request.cwd, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
        return handle

    def signal(self, handle: str, signum: int) -> None:
        proc = self.kernels.get(handle)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signum)


async def _serve() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JPY_"))}
    broker = PodKernelBroker(env)
    path = Path(os.environ.get("ENCLAVE_KERNEL_BROKER", BROKER_SOCKET))
    path.unlink(missing_ok=True)
    os.umask(0o007)  # the server (another uid, in the workspace group) connects and reads the ipc sockets
    server = await asyncio.start_unix_server(broker._handle, path=str(path))
    async with server:
        await server.serve_forever()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
