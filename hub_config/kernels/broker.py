"""The kernel broker: on the host, outside every sandbox, it starts each kernel sandbox for the server.

It listens on a unix socket inside the server's socket directory, which only the server's
sandbox sees (the kernels never do). Each request is validated (``protocol``); the kernel's
command, environment, uid and binds come from the broker's own template, never from the
request: the server can only choose the connection info of an ipc kernel and a working
directory inside the home. At most ``max_kernels`` run at once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import psutil

from hub_config import sandbox, seccomp_filter
from hub_config.kernels import protocol

log = logging.getLogger("enclave.kernels")


class KernelBroker:
    """Start, poll and signal the kernel sandboxes of one workspace."""

    def __init__(self, template: sandbox.SandboxSpec, env: dict[str, str], tools: dict[str, str],
                 max_kernels: int = 8) -> None:
        self.template = template
        self.env = env
        self.tools = tools
        self.max_kernels = max_kernels
        self.kernels: dict[str, subprocess.Popen] = {}

    # -- the socket --------------------------------------------------------------------------------
    async def serve(self, path: Path, owner_uid: int) -> asyncio.AbstractServer:
        """Listen on ``path``, connectable by ``owner_uid`` (the server) alone."""
        path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._handle, path=str(path))
        os.chown(path, owner_uid, owner_uid)
        os.chmod(path, 0o600)
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await asyncio.wait_for(reader.readline(), 10)
            answer = self.answer(protocol.parse(data, self.template.home_in_sandbox))
        except protocol.BadRequest as refused:
            log.warning("kernel broker refused a request: %s", refused)
            answer = {"error": str(refused)}
        except (asyncio.TimeoutError, OSError, ValueError) as failed:
            answer = {"error": f"{type(failed).__name__}"}
        try:
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    def answer(self, request: protocol.Launch | protocol.Poll | protocol.Signal) -> dict:
        if isinstance(request, protocol.Launch):
            return {"kernel": self.launch(request)}
        if isinstance(request, protocol.Poll):
            return {"exit": self.poll(request.kernel)}
        self.signal(request.kernel, request.signum)
        return {"ok": True}

    # -- kernels -------------------------------------------------------------------------------------
    def argv(self, seccomp_fd: int, connection_fd: int, cwd: str) -> list[str]:
        spec = replace(self.template, seccomp_fd=seccomp_fd, data_files=((connection_fd, sandbox.KERNEL_CONNECTION_FILE),),
                       chdir=cwd)
        return sandbox.bwrap_argv(spec, **self.tools)

    def launch(self, request: protocol.Launch) -> str:
        self._reap()
        if len(self.kernels) >= self.max_kernels:
            raise protocol.BadRequest(f"at most {self.max_kernels} kernels run at once in a workspace")
        seccomp_fd = seccomp_filter.bpf_fd()
        read_end, write_end = os.pipe()
        os.write(write_end, json.dumps(request.connection).encode())
        os.close(write_end)
        try:
            proc = subprocess.Popen(self.argv(seccomp_fd, read_end, request.cwd), env=self.env,
                                    stdin=subprocess.DEVNULL, cwd="/", pass_fds=(seccomp_fd, read_end),
                                    start_new_session=True)
        finally:
            os.close(seccomp_fd)
            os.close(read_end)
        handle = secrets.token_hex(16)
        self.kernels[handle] = proc
        log.info("kernel sandbox started, pid %s", proc.pid)
        return handle

    def _reap(self) -> None:
        for handle, proc in list(self.kernels.items()):
            if proc.poll() is not None:
                del self.kernels[handle]

    def poll(self, handle: str) -> int | None:
        proc = self.kernels.get(handle)
        if proc is None:
            return 0
        code = proc.poll()
        if code is not None:
            del self.kernels[handle]
        return code

    def signal(self, handle: str, signum: int) -> None:
        proc = self.kernels.get(handle)
        if proc is None or proc.poll() is not None:
            return
        if signum in (signal.SIGKILL, signal.SIGTERM):
            # The sandbox's pid 1 dies with bwrap, and with it every process of the kernel's pid namespace.
            proc.send_signal(signal.SIGKILL if signum == signal.SIGKILL else signal.SIGTERM)
            return
        # An interrupt is for the kernel itself: the processes of the researcher's uid in that sandbox.
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                if child.uids().real == self.template.uid:
                    child.send_signal(signum)
        except psutil.Error:
            pass

    def kill_all(self) -> None:
        for proc in self.kernels.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.kernels.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kernels.clear()
