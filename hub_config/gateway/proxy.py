"""The gateway's HTTP and websocket forwarding (tornado, already the hub's and the server's stack).

Requests arrive from the proxy (and the hub's readiness checks) on the gateway's unix socket and
go to the server's unix socket. Bodies are held in memory within the limits of ``policy``: the
request by tornado's ``max_body_size``, the response by the client's. A refusal is a small JSON
answer naming the reason; a large transfer (either way) is reported to ``on_large_transfer``.
"""
from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from tornado import httpclient, httputil, web, websocket
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from hub_config.gateway import policy

log = logging.getLogger("enclave.gateway")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host"}
UPSTREAM_HOST = "workspace"  # any name: the resolver maps it to the server's socket


class UnixResolver(Resolver):
    """Every host name resolves to one unix socket."""

    def initialize(self, socket_path: str) -> None:  # noqa: D401 - tornado's Configurable hook
        self.socket_path = socket_path

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC) -> list:
        return [(socket.AF_UNIX, self.socket_path)]

    def close(self) -> None:
        pass


class Gateway:
    """The state the handlers share: where the server is, what is allowed, whom to tell."""

    def __init__(self, upstream_socket: str, base_url: str, limits: policy.Limits, server_token: str = "",
                 on_large_transfer: Callable[[str, str, int], None] | None = None) -> None:
        self.upstream_socket = upstream_socket
        self.base_url = base_url
        self.limits = limits
        self.server_token = server_token
        self.on_large_transfer = on_large_transfer or (lambda route, direction, size: None)
        self.resolver = UnixResolver(socket_path=upstream_socket)
        self.client = SimpleAsyncHTTPClient(force_instance=True, resolver=self.resolver,
                                            max_body_size=limits.static_body, max_buffer_size=limits.static_body)

    def app(self) -> web.Application:
        return web.Application([(r"/.*/api/kernels/[^/]+/channels", ChannelsHandler, {"gateway": self}),
                                (r"/.*/api/events/subscribe", ChannelsHandler, {"gateway": self}),
                                (r"/.*", ForwardHandler, {"gateway": self})])

    def report(self, route: policy.Route, direction: str, size: int) -> None:
        if size >= self.limits.audit_threshold:
            self.on_large_transfer(route.value, direction, size)


def _refuse(handler: web.RequestHandler, refused: policy.Refused) -> None:
    handler.set_status(refused.status)
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"message": refused.reason, "reason": "refused by the enclave gateway"}))


def _forward_headers(headers: httputil.HTTPHeaders) -> dict[str, str]:
    # No Accept-Encoding: the server answers in the clear, so sizes and contents are checked as they are.
    return {k: v for k, v in headers.get_all() if k.lower() not in HOP_BY_HOP and k.lower() != "accept-encoding"}


class ForwardHandler(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def initialize(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def check_xsrf_cookie(self) -> None:
        pass  # the server checks its own; the gateway adds no cookie of its own

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        self.clear_header("Content-Type")

    async def _forward(self) -> None:
        req = self.request
        gateway = self.gateway
        try:
            route = policy.classify(req.method, req.path, gateway.base_url)
            headers = _forward_headers(req.headers)
            policy.check_credentials(headers, req.query, gateway.server_token)
            body = req.body if req.method in ("POST", "PUT", "PATCH") else None
            if body and route is policy.Route.CONTENTS:
                _check_contents_request(body, gateway.limits, unquote(req.path))
        except policy.Refused as refused:
            log.info("refused %s %s: %s", req.method, policy.Route.__name__, refused.reason)
            return _refuse(self, refused)
        if body:
            gateway.report(route, "in", len(body))
        limit = policy.body_limit(route, gateway.limits)
        upstream = httpclient.HTTPRequest(
            f"http://{UPSTREAM_HOST}{req.uri}", method=req.method, headers={**headers, "Host": req.host},
            body=body if body is not None else (b"" if req.method in ("POST", "PUT", "PATCH") else None),
            follow_redirects=False, decompress_response=False, request_timeout=300, connect_timeout=10,
            allow_nonstandard_methods=True)
        try:
            response = await gateway.client.fetch(upstream, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as failed:
            return _refuse(self, policy.Refused(502, f"the workspace server did not answer ({type(failed).__name__})"))
        if response.code == 599:
            error = response.error
            too_large = error is not None and "max_body_size" in str(error).lower() or "too large" in str(error).lower()
            return _refuse(self, policy.Refused(413 if too_large else 502, "the answer is larger than the workspace's limit"
                                                if too_large else "the workspace server did not answer"))
        data = response.body or b""
        try:
            if len(data) > limit:
                raise policy.Refused(413, "the answer is larger than the workspace's limit")
            policy.check_response_type(route, response.headers.get("Content-Type", ""),
                                       response.headers.get("Content-Disposition", ""))
            if route is policy.Route.CONTENTS and data:
                _check_contents_response(data, gateway.limits)
        except policy.Refused as refused:
            log.info("refused an answer of route %s: %s", route.value, refused.reason)
            return _refuse(self, refused)
        gateway.report(route, "out", len(data))
        self.set_status(response.code, response.reason)
        for name, value in response.headers.get_all():
            if name.lower() not in HOP_BY_HOP:
                self.add_header(name, value)
        if data and req.method != "HEAD":
            self.write(data)
        await self.finish()

    get = post = put = patch = delete = head = options = _forward


def _check_contents_request(body: bytes, limits: policy.Limits, destination: str) -> None:
    try:
        model = json.loads(body)
    except ValueError:
        raise policy.Refused(400, "the contents API takes JSON") from None
    if isinstance(model, dict):
        policy.check_base64_model(model, limits, destination)


def _check_contents_response(body: bytes, limits: policy.Limits) -> None:
    try:
        model = json.loads(body)
    except ValueError:
        raise policy.Refused(502, "the workspace server answered the contents API with something else than JSON") from None
    if isinstance(model, dict):
        policy.check_base64_model(model, limits)


class ChannelsHandler(websocket.WebSocketHandler):
    """A websocket to a kernel (or the event stream), message by message, within the message limit."""

    def initialize(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.upstream: websocket.WebSocketClientConnection | None = None
        self.route = policy.Route.CHANNELS
        self.bytes_out = 0
        self.bytes_in = 0

    def check_origin(self, origin: str) -> bool:
        return True  # forwarded with the Origin header: the server applies its own origin check

    def get_compression_options(self) -> dict[str, Any] | None:
        return None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        req = self.request
        try:
            self.route = policy.classify("GET", req.path, self.gateway.base_url)
            headers = _forward_headers(req.headers)
            policy.check_credentials(headers, req.query, self.gateway.server_token)
        except policy.Refused as refused:
            return _refuse(self, refused)
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("sec-websocket")}
        protocols = [p.strip() for p in req.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        upstream = httpclient.HTTPRequest(f"ws://{UPSTREAM_HOST}{req.uri}", headers={**headers, "Host": req.host},
                                          connect_timeout=10, request_timeout=30)
        try:
            self.upstream = await websocket.websocket_connect(
                upstream, subprotocols=protocols or None, resolver=self.gateway.resolver,
                max_message_size=self.gateway.limits.websocket_message,
                on_message_callback=self._from_server)
        except (OSError, httpclient.HTTPClientError) as failed:
            code = getattr(failed, "code", 502)
            return _refuse(self, policy.Refused(code if 400 <= code < 600 else 502, "the workspace refused the connection"))
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.upstream.selected_subprotocol if self.upstream else None

    def _from_server(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
            return
        self.bytes_out += len(message)
        if len(message) > self.gateway.limits.websocket_message:
            self.close(1009, "message larger than the workspace's limit")
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            if self.upstream:
                self.upstream.close()

    async def on_message(self, message: str | bytes) -> None:
        self.bytes_in += len(message)
        if len(message) > self.gateway.limits.websocket_message:
            self.close(1009, "message larger than the workspace's limit")
            return
        if self.upstream:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream:
            self.upstream.close()
        self.gateway.report(self.route, "out", self.bytes_out)
        self.gateway.report(self.route, "in", self.bytes_in)
