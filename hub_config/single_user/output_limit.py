"""A cap on what kernels send to the browser: bytes per message and bytes per time window.

jupyter_server's own ``iopub_data_rate_limit`` counts only stream output and forgets everything
when the kernel goes idle, so 10,000 printed rows reach the browser in half a second. Here every
message from a kernel to the browser (any channel: outputs, errors, comm messages, inspection
and debugger replies) counts against one budget shared by all kernels of the server: a token
bucket holding ``window_bytes`` that refills over ``window_seconds``. A message over
``max_message_bytes`` or over the budget is withheld: an output is dropped, a reply to the
browser's request is replaced by an error reply the server writes itself (so the notebook does
not hang), and the notebook shows a notice saying why. Small protocol messages (status, execute
replies) may pass on a small reserve, so a notebook still sees its cells finish. The kernel is hostile code: nothing
in a message is trusted to say what it is except its size.

Each time the limit trips, a ``output.withheld`` event is recorded in the audit chain.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass

from jupyter_client.jsonutil import json_default
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from traitlets import Float, Integer

from hub_config.single_user import hub_events
from hub_config.single_user.hub_events import TransferEvent

KIB = 1024
NOTICE = ("[enclave] Output withheld: this workspace shows at most {window} bytes of output every {seconds:g} s "
          "and {message} bytes in one message ({withheld} bytes withheld so far). Outputs leave the enclave "
          "through a release request.")
# What a notebook needs to see its cells finish and its kernel idle again (small ones use the reserve).
PROTOCOL_TYPES = frozenset({"status", "execute_input", "execute_reply", "kernel_info_reply", "comm_info_reply",
                            "is_complete_reply", "interrupt_reply", "shutdown_reply"})
REMEMBERED_REQUESTS = 256  # headers of the browser's recent requests, to answer a withheld reply
_pending_audits: set[asyncio.Task] = set()


@dataclass
class OutputBudget:
    """A token bucket: ``capacity`` bytes, refilled at capacity / window_seconds per second."""

    capacity: int
    window_seconds: float
    reserve_capacity: int
    tokens: float = -1.0
    reserve: float = -1.0
    updated: float = 0.0
    withheld: int = 0
    last_notice: float = float("-inf")
    last_noticed_request: str | None = None

    def _refill(self, now: float) -> None:
        if self.tokens < 0:
            self.tokens, self.reserve, self.updated = float(self.capacity), float(self.reserve_capacity), now
            return
        rate = (now - self.updated) / self.window_seconds
        self.tokens = min(float(self.capacity), self.tokens + rate * self.capacity)
        self.reserve = min(float(self.reserve_capacity), self.reserve + rate * self.reserve_capacity)
        self.updated = now

    def spend(self, size: int, *, protocol: bool, now: float) -> bool:
        """Take ``size`` bytes from the budget (a protocol message may use the reserve); False if withheld."""
        self._refill(now)
        if size <= self.tokens:
            self.tokens -= size
            return True
        if protocol and size <= self.reserve:
            self.reserve -= size
            return True
        self.withheld += size
        return False


def withheld_reply_content(msg_type: str, reason: str) -> dict:
    """The content the server sends instead of a withheld reply: an error with no kernel data in it."""
    return {"status": "error", "ename": "OutputWithheld", "evalue": reason, "traceback": [reason]} if msg_type else {}


class EnclaveKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    """ZMQChannelsWebsocketConnection whose kernel-to-browser messages are capped as described above."""

    max_message_bytes = Integer(512 * KIB, help="Largest single message from a kernel to the browser.").tag(config=True)
    window_bytes = Integer(512 * KIB, help="Bytes from kernels to the browser per window (all kernels together).").tag(config=True)
    window_seconds = Float(10.0, help="The window of window_bytes.").tag(config=True)
    protocol_reserve_bytes = Integer(64 * KIB, help="Reserve per window for small status messages.").tag(config=True)
    protocol_message_bytes = Integer(2 * KIB, help="Largest status message that may use the reserve.").tag(config=True)
    notice_every_seconds = Float(5.0, help="At most one notice (and one audit event) per request this often.").tag(config=True)

    _budget: OutputBudget | None = None  # one per server process, shared by every connection

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._requests: OrderedDict[str, dict] = OrderedDict()

    def _shared_budget(self) -> OutputBudget:
        cls = EnclaveKernelWebsocketConnection
        if cls._budget is None:
            cls._budget = OutputBudget(self.window_bytes, self.window_seconds, self.protocol_reserve_bytes)
        return cls._budget

    def handle_incoming_message(self, incoming_msg) -> None:  # noqa: ANN001 - jupyter_server API
        """Remember the header of each request from the browser, then pass it on."""
        try:
            if self.subprotocol == "v1.kernel.websocket.jupyter.org":
                header = self.session.unpack(deserialize_msg_from_ws_v1(incoming_msg)[1][0])
            else:
                header = json.loads(incoming_msg).get("header") or {}
            if isinstance(header, dict) and isinstance(header.get("msg_id"), str):
                self._requests[header["msg_id"]] = header
                while len(self._requests) > REMEMBERED_REQUESTS:
                    self._requests.popitem(last=False)
        except Exception:  # noqa: BLE001 - a request we cannot read is still passed on as upstream does
            pass
        super().handle_incoming_message(incoming_msg)

    def handle_outgoing_message(self, stream, outgoing_msg):  # noqa: ANN001 - jupyter_server API
        _, fed = self.session.feed_identities(outgoing_msg)
        parts = [getattr(p, "bytes", p) for p in fed[1:]]  # header, parent header, metadata, content, buffers
        size = sum(len(p) for p in parts)
        channel_stream = self.channels[stream] if isinstance(stream, str) else stream
        channel = getattr(channel_stream, "channel", None)
        try:
            header = self.session.unpack(parts[0])
            msg_type = str(header.get("msg_type", ""))
        except Exception:  # a kernel that sends garbage gets nothing through
            self.log.warning("malformed kernel message withheld")
            return
        protocol = msg_type in PROTOCOL_TYPES and size <= self.protocol_message_bytes
        budget = self._shared_budget()
        if size <= self.max_message_bytes and budget.spend(size, protocol=protocol, now=time.monotonic()):
            super().handle_outgoing_message(stream, outgoing_msg)
            return
        if size > self.max_message_bytes:
            budget.withheld += size
        self._withhold(channel, msg_type, parts)

    def _withhold(self, channel: str | None, msg_type: str, parts: list) -> None:
        budget = self._shared_budget()
        text = NOTICE.format(window=self.window_bytes, seconds=self.window_seconds, message=self.max_message_bytes,
                             withheld=budget.withheld)
        parent = self._browser_request(parts)
        if channel in ("shell", "control") and msg_type.endswith("_reply") and parent is not None:
            reply = self.session.msg(msg_type, content=withheld_reply_content(msg_type, text), parent=parent)
            self._send_own(reply, channel)
        now = time.monotonic()
        request = (parent or {}).get("msg_id")
        if request != budget.last_noticed_request or now - budget.last_notice >= self.notice_every_seconds:
            budget.last_notice, budget.last_noticed_request = now, request
            self._send_own(self.session.msg("stream", content={"name": "stderr", "text": text + "\n"},
                                            parent=parent or {}), "iopub")
            self.log.warning("kernel output withheld (%s bytes so far)", budget.withheld)
            task = asyncio.get_event_loop().create_task(hub_events.record_best_effort(
                TransferEvent("output.withheld", bytes=budget.withheld, reason="kernel output over the limit")))
            _pending_audits.add(task)
            task.add_done_callback(_pending_audits.discard)

    def _browser_request(self, parts: list) -> dict | None:
        """The browser's own header of the request a kernel message answers (never the kernel's copy of it)."""
        if len(parts) < 2 or len(parts[1]) > 4 * KIB:
            return None
        try:
            parent = self.session.unpack(parts[1])
        except Exception:  # noqa: BLE001 - the kernel's bytes are untrusted
            return None
        return self._requests.get(parent.get("msg_id")) if isinstance(parent, dict) else None

    def _send_own(self, msg: dict, channel: str) -> None:
        """Send a message the server wrote (not counted: it carries no kernel data)."""
        if self.subprotocol == "v1.kernel.websocket.jupyter.org":
            self.write_message(serialize_msg_to_ws_v1(msg, channel, self.session.pack), binary=True)
        else:
            msg["channel"] = channel
            self.write_message(json.dumps(msg, default=json_default))
