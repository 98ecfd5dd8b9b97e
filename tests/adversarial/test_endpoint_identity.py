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
from test_runtime_server import KEY, add, serve

ENDPOINT = "ep1"  # the id test_runtime_server's endpoints run under


@pytest.fixture
def queue() -> Iterator[str]:
    yield from serve(create_handler({"m:add": add}), {"kind": "queue", "config": {"workersMax": 2}})


def test_a_request_proof_holds_for_one_endpoint_method_path_query_body_and_moment() -> None:
    path, query, body = "/v2/ep1/runsync", {"a": "1", "b": "x y"}, b'{"input": 1}'
    header, nonce = auth.request_auth(KEY, ENDPOINT, "POST", path, query, body, now=1000)
    scheme, _, credentials = header.partition(" ")
    assert scheme == auth.SCHEME and KEY not in header

    def problem(**changes: Any) -> str | None:
        args = {"key": KEY, "endpoint_id": ENDPOINT, "method": "POST", "path": path, "query": query, "body": body}
        args.update(changes)
        args.setdefault("now", 1000)
        return auth.request_problem(credentials, **args)[0]

    assert problem() is None
    assert problem(body=None) is None  # a head alone: its body is checked when it has come
    assert auth.request_problem(credentials, KEY, ENDPOINT, "POST", path, query, body, now=1000)[1] == nonce
    assert "wrong key" in str(problem(key="other"))
    assert "another endpoint" in str(problem(endpoint_id="ep2"))
    assert problem(method="GET") is not None and problem(path="/v2/ep1/run") is not None
    assert problem(query={"a": "2", "b": "x y"}) is not None and problem(query={}) is not None
    assert problem(query={"b": "x y", "a": "1"}) is None  # the parameters, however ordered
    assert "not the one" in str(problem(body=b'{"input": 2}'))
    assert "from now" in str(problem(now=1000 + auth.WINDOW + 1))
    for bad in ("", "x", "1.2.3", "1000...", "\uff11\uff10\uff10\uff10.a.b.c", "1.2.3.4.5"):
        assert auth.request_problem(bad, KEY, ENDPOINT, "POST", path, query, body)[0] == "malformed Flashc credentials"


def test_the_client_calls_an_endpoint_with_a_proof_and_checks_the_answer(queue: str) -> None:
    identity = Identity(KEY, ENDPOINT)
    body = {"input": {"function": "add", "args": [2, 3]}}
    assert _job_call(f"{queue}/v2/{ENDPOINT}", body, {}, identity) == 5
    # A proof made for another endpoint of the same deployment is refused by this one.
    with pytest.raises(RemoteCallError, match="answered 401"):
        _job_call(f"{queue}/v2/{ENDPOINT}", body, {}, Identity(KEY, "ep2"))


def test_a_captured_request_cannot_be_replayed_nor_carry_another_body(queue: str) -> None:
    url = f"{queue}/v2/{ENDPOINT}/runsync"
    body = json.dumps({"input": {"function": "add", "args": [1, 1]}}).encode()
    header, _ = auth.request_auth(KEY, ENDPOINT, "POST", f"/v2/{ENDPOINT}/runsync", {}, body)
    sent = {"Authorization": header, "Content-Type": "application/json"}
    first = httpx.post(url, content=body, headers=sent)
    assert first.status_code == 200 and first.json()["output"] == 2
    assert auth.PROOF_HEADER in first.headers  # it proves itself to flashc's client
    again = httpx.post(url, content=body, headers=sent)
    assert again.status_code == 401 and "sent before" in again.json()["error"]
    assert httpx.post(f"{queue}/v2/{ENDPOINT}/run", content=body, headers=sent).status_code == 401
    # A fresh proof, relayed with a body of one's own: refused (and used up: its first use wins).
    header, _ = auth.request_auth(KEY, ENDPOINT, "POST", f"/v2/{ENDPOINT}/runsync", {}, body)
    other = json.dumps({"input": {"function": "add", "args": [600, 66]}}).encode()
    relayed = httpx.post(url, content=other, headers={"Authorization": header})
    assert relayed.status_code == 401 and "not the one" in relayed.json()["error"]
    assert httpx.post(f"{url}?x=1", content=body, headers=sent).status_code == 401
    # A Bearer key (curl, Runpod's style) still works, and gets no proof: nothing asked for one.
    plain = httpx.post(url, content=body, headers={"Authorization": f"Bearer {KEY}"})
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


def test_one_proof_admits_one_head_however_many_connections_send_it(queue: str) -> None:
    """A body that has to be waited for is admitted on its head, which uses the proof up: a
    second head with it is refused at once, so one proof cannot hold the budget for bodies."""
    import select
    import socket
    from urllib.parse import urlsplit

    body = json.dumps({"input": {"function": "add", "args": [2, 2]}}).encode()
    path = f"/v2/{ENDPOINT}/runsync"
    header, _ = auth.request_auth(KEY, ENDPOINT, "POST", path, {}, body)
    head = f"POST {path} HTTP/1.1\r\nAuthorization: {header}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    address = urlsplit(queue).hostname, urlsplit(queue).port
    with (
        socket.create_connection(address, timeout=20) as one,
        socket.create_connection(address, timeout=20) as other,
    ):
        for sock in (one, other):  # each admitted on its head, if at all; the rest of the body comes later
            sock.sendall(head + body[:5])
        # Whichever head came second is refused at once; the other waits for its body.
        ready, _, _ = select.select([one, other], [], [], 20)
        assert len(ready) == 1, "both heads were refused, or neither"
        refused, admitted = (one, other) if ready[0] is one else (other, one)
        answer = refused.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401 ") and b"sent before" in answer
        admitted.sendall(body[5:])
        answer = admitted.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and auth.PROOF_HEADER.encode() in answer


def test_a_request_without_the_key_gets_401_and_a_closed_connection(queue: str) -> None:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(queue).hostname, urlsplit(queue).port
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(b"GET /v2/ep1/health HTTP/1.1\r\n\r\n" * 2)  # two, pipelined, without a key
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ") and answer.count(b"HTTP/1.1") == 1  # then closed: no slot held
