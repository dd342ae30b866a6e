"""The workspace gateway in front of a server that serves everything (a server replaced by the researcher's code).

No hub here: the gateway and an unrestricted stand-in server, each on a unix socket, in-process.
The stand-in answers every path with what a plain jupyter server would (raw file bytes on
/files, base64 models of binary files, a big notebook), so each refusal below is the gateway's.
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading
from pathlib import Path

import pytest
from tornado import httpclient, web, websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket

from hub_config.gateway import policy
from hub_config.gateway.proxy import Gateway, UnixResolver

BASE = "/user/alice/alpha/"
PARQUET = b"PAR1" + bytes(range(256)) * 40 + b"PAR1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
SERVER_TOKEN = "0123456789abcdef0123456789abcdef"


class EverythingServer(web.RequestHandler):
    """Answers like an unrestricted jupyter server."""

    def get(self, rest: str) -> None:
        if rest.startswith("files/"):
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", "attachment; filename=leak.parquet")
            return self.finish(PARQUET)
        if rest.startswith("api/contents/leak.png"):  # a parquet renamed to .png
            return self.finish({"name": "leak.png", "format": "base64", "mimetype": "image/png",
                                "content": base64.b64encode(PARQUET).decode(), "type": "file"})
        if rest.startswith("api/contents/plot.png"):
            return self.finish({"name": "plot.png", "format": "base64", "mimetype": "image/png",
                                "content": base64.b64encode(PNG).decode(), "type": "file"})
        if rest.startswith("api/contents/big.ipynb"):
            return self.finish({"name": "big.ipynb", "type": "notebook", "format": "json",
                                "content": {"cells": [{"source": "x" * (9 * 1024 * 1024)}]}})
        if rest.startswith("api/contents"):
            return self.finish({"name": "", "type": "directory", "content": []})
        self.set_header("Content-Type", "text/html")
        self.finish(f"<html>{rest}</html>")

    def put(self, rest: str) -> None:
        self.set_status(201)
        self.finish({"saved": rest})


class Echo(websocket.WebSocketHandler):
    def on_message(self, message):
        if message == "big":
            self.write_message("y" * (9 * 1024 * 1024))
        else:
            self.write_message(message)


def _short_socket(tmp_path: Path, name: str) -> str:
    return str(tmp_path / name)


@pytest.fixture
def gateway_url(tmp_path):
    """The stand-in server and the gateway on an event loop of their own (a thread); yields fetch, ws and the audit list."""
    audited = []
    server_sock = _short_socket(tmp_path, "s.sock")
    gateway_sock = _short_socket(tmp_path, "g.sock")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    async def setup():  # noqa: ANN202
        upstream = HTTPServer(web.Application([(BASE + r"api/kernels/k1/channels", Echo), (BASE + r"(.*)", EverythingServer)]))
        upstream.add_socket(bind_unix_socket(server_sock))
        gateway = Gateway(server_sock, BASE, policy.Limits(), server_token=SERVER_TOKEN,
                          on_large_transfer=lambda route, direction, size: audited.append((route, direction, size)))
        front = HTTPServer(gateway.app(), max_body_size=policy.Limits().request_body)
        front.add_socket(bind_unix_socket(gateway_sock))
        client = httpclient.AsyncHTTPClient(force_instance=True, resolver=UnixResolver(socket_path=gateway_sock),
                                            max_body_size=64 * 1024 * 1024)
        return upstream, front, client

    upstream, front, client = on_loop(setup())

    def fetch(path: str, **kwargs) -> httpclient.HTTPResponse:
        async def get():  # noqa: ANN202
            return await client.fetch(f"http://ws{BASE}{path}", raise_error=False, **kwargs)
        return on_loop(get())

    def ws(path: str, messages: list[str]) -> list:
        async def talk():  # noqa: ANN202
            conn = await websocket.websocket_connect(httpclient.HTTPRequest(f"ws://ws{BASE}{path}"),
                                                     resolver=UnixResolver(socket_path=gateway_sock),
                                                     max_message_size=64 * 1024 * 1024)
            answers = []
            for message in messages:
                await conn.write_message(message)
                answers.append(await conn.read_message())
            conn.close()
            return answers
        return on_loop(talk())

    yield fetch, ws, audited

    async def teardown():  # noqa: ANN202
        client.close()
        upstream.stop()
        front.stop()

    on_loop(teardown())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.mark.parametrize("path", ["files/leak.parquet", "view/leak.parquet", "nbconvert/html/a.ipynb?download=true",
                                  "api/nbconvert", "terminals/1", "api/terminals", "edit/a.csv", "tree/../files/x",
                                  "lab/..%2Ffiles/leak.parquet", "notebooks/a.ipynb", "api/contents/../../files/x"])
def test_download_routes_of_a_replaced_server_are_refused(gateway_url, path):
    fetch, _, _ = gateway_url
    answer = fetch(path)
    assert answer.code in (400, 403), (path, answer.code)
    assert PARQUET not in (answer.body or b"")


def test_binary_renamed_as_image_is_refused_and_a_real_image_passes(gateway_url):
    fetch, _, _ = gateway_url
    leak = fetch("api/contents/leak.png?format=base64&type=file")
    assert leak.code == 403 and b"PAR1" not in leak.body
    plot = fetch("api/contents/plot.png?format=base64&type=file")
    assert plot.code == 200 and json.loads(plot.body)["mimetype"] == "image/png"


def test_binary_upload_is_refused_and_a_text_save_passes(gateway_url):
    fetch, _, _ = gateway_url
    upload = {"name": "x.png", "path": "x.png", "type": "file", "format": "base64",
              "content": base64.b64encode(PARQUET).decode()}
    assert fetch("api/contents/x.png", method="PUT", body=json.dumps(upload)).code == 403
    save = {"type": "file", "format": "text", "content": "a,b\n1,2\n"}
    assert fetch("api/contents/x.csv", method="PUT", body=json.dumps(save)).code == 201


def test_an_upload_is_typed_by_where_it_is_saved_not_by_its_claims(gateway_url):
    fetch, _, _ = gateway_url
    image = {"type": "file", "format": "base64", "content": base64.b64encode(PNG).decode()}
    assert fetch("api/contents/upload.png", method="PUT", body=json.dumps(image)).code == 201  # no name in the model
    claimed = {**image, "name": "x.png", "path": "x.png", "mimetype": "image/png"}
    assert fetch("api/contents/archive.zip", method="PUT", body=json.dumps(claimed)).code == 403


def test_answers_over_the_size_limit_are_refused_and_large_ones_audited(gateway_url):
    fetch, _, audited = gateway_url
    answer = fetch("api/contents/big.ipynb")
    assert answer.code == 413 and len(answer.body) < 1000
    assert fetch("lab").code == 200
    assert not [a for a in audited if a[1] == "out" and a[2] > 8 * 1024 * 1024]


def test_the_servers_own_token_is_refused_from_outside(gateway_url):
    fetch, _, _ = gateway_url
    assert fetch("api/contents", headers={"Authorization": f"token {SERVER_TOKEN}"}).code == 403
    assert fetch(f"api/contents?token={SERVER_TOKEN}").code == 403
    assert fetch("api/contents", headers={"Authorization": "token a-user-oauth-token"}).code == 200


def test_kernel_websocket_is_forwarded_within_the_message_limit(gateway_url):
    _, ws, audited = gateway_url
    assert ws("api/kernels/k1/channels", ["hello"]) == ["hello"]
    assert ws("api/kernels/k1/channels", ["big"]) == [None]  # closed: larger than the message limit


def test_route_classes():
    assert policy.classify("GET", BASE + "lab/tree/a.ipynb", BASE) is policy.Route.PAGE
    assert policy.classify("GET", BASE + "api/kernels/abc/channels", BASE) is policy.Route.CHANNELS
    assert policy.classify("PUT", BASE + "api/contents/a%20b.ipynb", BASE) is policy.Route.CONTENTS
    with pytest.raises(policy.Refused):
        policy.classify("GET", "/user/bob/alpha/api/contents", BASE)
    with pytest.raises(policy.Refused):
        policy.classify("POST", BASE + "api/kernelspecs", BASE)
