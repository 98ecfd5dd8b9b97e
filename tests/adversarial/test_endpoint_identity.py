"""flashc's client and a local endpoint prove themselves to each other (`flashc_runtime.auth`): the
deployment's key never leaves the caller, a captured request serves nothing, and an answer from
anything but the deployed endpoint (a process that took a dead endpoint's port) is refused unread."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flashc_runtime import auth
from flashc_runtime.client import Identity, RemoteCallError, _job_call, _request
from flashc_runtime.handler import create_handler
from flashc_runtime.signing import NonceBook
from test_runtime_server import KEY, add, serve

ENDPOINT = "ep1"  # the id test_runtime_server's endpoints run under


@pytest.fixture
def queue() -> Iterator[str]:
    yield from serve(create_handler({"m:add": add}), {"kind": "queue", "config": {"workersMax": 2}})


def test_a_request_proof_holds_for_one_endpoint_method_path_and_moment() -> None:
    header, nonce = auth.request_auth(KEY, ENDPOINT, "POST", "/v2/ep1/runsync", now=1000)
    scheme, _, credentials = header.partition(" ")
    assert scheme == auth.SCHEME and KEY not in header

    def problem(**changes: Any) -> str | None:
        args = {"key": KEY, "endpoint_id": ENDPOINT, "method": "POST", "path": "/v2/ep1/runsync", "now": 1000}
        args.update(changes)
        return auth.request_problem(credentials, nonces=NonceBook(), **args)[0]

    assert problem() is None
    assert "wrong key" in str(problem(key="other"))
    assert "another endpoint" in str(problem(endpoint_id="ep2"))
    assert problem(method="GET") is not None and problem(path="/v2/ep1/run") is not None
    assert "from now" in str(problem(now=1000 + auth.WINDOW + 1))
    book = NonceBook()
    args = {"key": KEY, "endpoint_id": ENDPOINT, "method": "POST", "path": "/v2/ep1/runsync", "now": 1000}
    assert auth.request_problem(credentials, nonces=book, consume=False, **args) == (None, nonce)  # a head only
    assert auth.request_problem(credentials, nonces=book, **args) == (None, nonce)
    assert "sent before" in str(auth.request_problem(credentials, nonces=book, **args)[0])
    for bad in ("", "x", "1.2", "1000..", "\uff11\uff10\uff10\uff10.a.b"):
        assert auth.request_problem(bad, nonces=NonceBook(), **args)[0] == "malformed Flashc credentials"


def test_the_client_calls_an_endpoint_with_a_proof_and_checks_the_answer(queue: str) -> None:
    identity = Identity(KEY, ENDPOINT)
    body = {"input": {"function": "add", "args": [2, 3]}}
    assert _job_call(f"{queue}/v2/{ENDPOINT}", body, {}, identity) == 5
    # A proof made for another endpoint of the same deployment is refused by this one.
    with pytest.raises(RemoteCallError, match="answered 401"):
        _job_call(f"{queue}/v2/{ENDPOINT}", body, {}, Identity(KEY, "ep2"))


def test_a_captured_request_cannot_be_replayed(queue: str) -> None:
    url = f"{queue}/v2/{ENDPOINT}/runsync"
    header, _ = auth.request_auth(KEY, ENDPOINT, "POST", f"/v2/{ENDPOINT}/runsync")
    body = {"input": {"function": "add", "args": [1, 1]}}
    first = httpx.post(url, json=body, headers={"Authorization": header})
    assert first.status_code == 200 and first.json()["output"] == 2
    assert auth.PROOF_HEADER in first.headers  # it proves itself to flashc's client
    again = httpx.post(url, json=body, headers={"Authorization": header})
    assert again.status_code == 401 and "sent before" in again.json()["error"]
    other_path = httpx.post(f"{queue}/v2/{ENDPOINT}/run", json=body, headers={"Authorization": header})
    assert other_path.status_code == 401
    # A Bearer key (curl, Runpod's style) still works, and gets no proof: nothing asked for one.
    plain = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert plain.status_code == 200 and auth.PROOF_HEADER not in plain.headers


class _Squatter(http.server.BaseHTTPRequestHandler):
    """A process on a dead endpoint's port, answering what a caller would like to hear."""

    seen: list[dict[str, str]] = []
    answer: dict[str, Any] = {}

    def _reply(self) -> None:
        self.seen.append(dict(self.headers))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(auth.PROOF_HEADER, "0" * 64)  # a guess
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _reply

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def squatter() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Squatter)
    _Squatter.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)
    server.server_close()


def test_a_process_on_the_endpoints_port_gets_no_key_and_is_not_believed(squatter: str) -> None:
    _Squatter.answer = {"id": "j", "status": "COMPLETED", "output": {"pickled": "gASVBAAAAAAAAACMAXiULg=="}}
    with pytest.raises(RemoteCallError, match="refused unread: its proof is wrong") as failure:
        _job_call(f"{squatter}/v2/{ENDPOINT}", {"input": {"function": "add"}}, {}, Identity(KEY, ENDPOINT))
    assert "flashc status" in str(failure.value)
    (headers,) = _Squatter.seen
    assert KEY not in json.dumps(headers)  # what it received proves the key to the endpoint only
    # A route call (load-balanced) is refused the same way.
    with pytest.raises(RemoteCallError, match="refused unread"):
        _request(f"{squatter}/items/1", None, {}, "GET", identity=Identity(KEY, ENDPOINT))
