"""The kernel broker trusts nothing the workspace server sends: each request is validated before it acts."""
from __future__ import annotations

import json
import signal

import pytest

from hub_config.kernels import protocol

HOME = "/home/alice"
GOOD = {"transport": "ipc", "ip": "/run/kernels/kernel-3f2a-ipc", "key": "a1b2-c3", "signature_scheme": "hmac-sha256",
        "kernel_name": "python3", "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


def _launch(connection: dict, cwd: str = HOME) -> bytes:
    return json.dumps({"op": "launch", "connection": connection, "cwd": cwd}).encode()


def test_a_valid_launch_keeps_only_the_validated_fields():
    request = protocol.parse(_launch({**GOOD, "extra": "ignored", "command": ["sh"]}), HOME)
    assert isinstance(request, protocol.Launch)
    assert set(request.connection) == set(GOOD) and request.cwd == HOME


@pytest.mark.parametrize(("change", "field"), [
    ({"transport": "tcp", "ip": "0.0.0.0"}, "transport"),
    ({"ip": "/run/jupyter/server"}, "ip"),
    ({"ip": "/run/kernels/../jupyter/kernel-x-ipc"}, "ip"),
    ({"key": "x; rm -rf /"}, "key"),
    ({"signature_scheme": "hmac-md5"}, "signature_scheme"),
    ({"shell_port": 0}, "shell_port"),
    ({"hb_port": True}, "hb_port"),
])
def test_connection_info_outside_the_kernels_directory_or_malformed_is_refused(change, field):
    with pytest.raises(protocol.BadRequest, match=field):
        protocol.parse(_launch({**GOOD, **change}), HOME)


@pytest.mark.parametrize("cwd", ["/", "/data", "/home/alice/../bob", "/home/alicex", "/run/jupyter"])
def test_working_directory_outside_the_home_is_refused(cwd):
    with pytest.raises(protocol.BadRequest, match="cwd"):
        protocol.parse(_launch(GOOD, cwd), HOME)


def test_signals_and_handles_are_checked():
    handle = "0" * 32
    assert protocol.parse(json.dumps({"op": "signal", "kernel": handle, "signum": int(signal.SIGINT)}).encode(), HOME)
    with pytest.raises(protocol.BadRequest, match="signum"):
        protocol.parse(json.dumps({"op": "signal", "kernel": handle, "signum": int(signal.SIGSTOP)}).encode(), HOME)
    with pytest.raises(protocol.BadRequest, match="kernel"):
        protocol.parse(json.dumps({"op": "poll", "kernel": "../x"}).encode(), HOME)
    with pytest.raises(protocol.BadRequest, match="op"):
        protocol.parse(b'{"op": "exec", "argv": ["sh"]}', HOME)
    with pytest.raises(protocol.BadRequest, match="too large"):
        protocol.parse(b" " * (protocol.MAX_REQUEST_BYTES + 1), HOME)
