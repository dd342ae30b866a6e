"""The kernel provisioner of the workspace server: kernels are started by the broker, not by the server.

Registered as ``enclave-sandbox`` in the ``jupyter_client.kernel_provisioners`` entry point group
and made the default with ``KernelProvisionerFactory.default_provisioner_name``. The server (its
own uid, no capabilities) cannot start a process as the researcher: it writes the connection
file as usual (ZeroMQ over ``ipc`` sockets in the kernels' directory, since the kernel has a
network namespace of its own) and asks the broker on ``ENCLAVE_KERNEL_BROKER`` for the rest.
The kernel's command and environment are the broker's: nothing of the server's environment
(its hub token above all) reaches a kernel.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

from hub_config import sandbox


class BrokerError(RuntimeError):
    """The broker refused or could not be reached."""


async def ask_broker(request: dict, path: str | None = None) -> dict:
    """One request to the kernel broker, one answer."""
    path = path or os.environ.get("ENCLAVE_KERNEL_BROKER", sandbox.KERNEL_BROKER_SOCKET)
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await asyncio.wait_for(reader.readline(), 30))
    finally:
        writer.close()
    if "error" in answer:
        raise BrokerError(f"the kernel broker refused: {answer['error']}")
    return answer


class SandboxProvisioner(KernelProvisionerBase):
    """Start each kernel in a sandbox of its own, as the researcher, through the kernel broker."""

    handle: str | None = None
    exit_code: int | None = None

    @property
    def has_process(self) -> bool:
        return self.handle is not None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        if km.transport != "ipc":
            raise BrokerError("kernels of a workspace use the ipc transport (KernelManager.transport)")
        kwargs.pop("extra_arguments", None)
        # The server's runtime directory (its cookie secret, its jpserver file) stays private: the
        # connection file and the ipc sockets go to the kernels' directory, which the kernel sandbox sees.
        stem = Path(km.connection_file).stem
        km.connection_file = f"{sandbox.KERNELS_DIR}/{stem}.json"
        km.ip = f"{sandbox.KERNELS_DIR}/{stem}-ipc"
        km.write_connection_file()
        self.connection_info = km.get_connection_info()
        return await super().pre_launch(cmd=km.format_kernel_cmd(), **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        info = dict(self.connection_info)
        key = info.get("key", b"")
        info["key"] = key.decode() if isinstance(key, bytes) else key
        info.pop("session", None)
        answer = await ask_broker({"op": "launch", "connection": info, "cwd": str(kwargs.get("cwd") or "")})
        self.handle = answer["kernel"]
        self.exit_code = None
        return self.connection_info

    async def poll(self) -> int | None:
        if self.handle is None:
            return self.exit_code if self.exit_code is not None else 0
        try:
            code = (await ask_broker({"op": "poll", "kernel": self.handle}))["exit"]
        except (OSError, BrokerError):
            code = -1  # no broker, no kernel: the workspace is going down
        if code is not None:
            self.exit_code, self.handle = code, None
        return code

    async def wait(self) -> int | None:
        while (code := await self.poll()) is None:
            await asyncio.sleep(0.1)
        return code

    async def send_signal(self, signum: int) -> None:
        if self.handle is not None:
            await ask_broker({"op": "signal", "kernel": self.handle, "signum": int(signum)})

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        pass  # the connection file is the kernel manager's; the sockets go with the kernel's directory

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["handle"] = self.handle
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.handle = provisioner_info.get("handle")
