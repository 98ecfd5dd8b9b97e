"""The endpoints' HTTP/1.1 layer (`flashc_runtime._http`), spoken to over raw loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from flashc_runtime._http import Connection, Limits, Request, Respond

MAX_BODY = 1_000_000


def serving(protocol: Callable[[], asyncio.BaseProtocol]) -> Iterator[tuple[str, int]]:
    """A server of `protocol` connections on a loopback port, its loop on a thread; stopped after."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    servers: list[asyncio.Server] = []

    async def run() -> None:
        server = await loop.create_server(protocol, "127.0.0.1", 0)
        servers.append(server)
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(5)
    yield servers[0].sockets[0].getsockname()[:2]
    loop.call_soon_threadsafe(servers[0].close)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    """A server whose handler answers with what it got; `/slow` answers 0.2 s later."""

    def handle(request: Request, respond: Respond) -> None:
        method, path, query, _, body = request
        answer = {"method": method, "path": path, "query": query, "body": body.decode()}
        if path == "/slow":
            asyncio.get_running_loop().call_later(0.2, respond, 200, answer)
        else:
            respond(200, answer)

    def admit(method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any] | None:
        return (401, {"error": "refused"}) if "x-refuse" in headers else None

    yield from serving(lambda: Connection(handle, MAX_BODY, admit))


def exchange(
    address: tuple[str, int], data: bytes, *, pieces: int = 1, half_close: bool = False, wanted: int | None = None
) -> tuple[list[bytes], bool]:
    """Send `data` on one connection (in `pieces` writes, then maybe shut the sending side); the
    answers read until `wanted` (default: one per request) have come or the server closes, and
    whether it closed."""
    wanted = data.count(b" HTTP/1.") if wanted is None else wanted
    with socket.create_connection(address, timeout=5) as sock:
        step = max(1, len(data) // pieces)
        for start in range(0, len(data), step):
            sock.sendall(data[start : start + step])
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received, answers = b"", []
        while True:
            end = received.find(b"\r\n\r\n")
            if end >= 0 and received.startswith(b"HTTP/1.1 100 "):
                answers.append(received[: end + 4])
                received = received[end + 4 :]
                continue
            if end >= 0:
                length = int(received[:end].lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(received) >= end + 4 + length:
                    answers.append(received[: end + 4 + length])
                    received = received[end + 4 + length :]
                    continue
            if len(answers) >= wanted:
                sock.settimeout(0.3)  # closed right after its last answer, or kept open?
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return answers, False
            if not chunk:
                return answers, True
            received += chunk


def request(method: str, path: str, body: bytes = b"", *, version: str = "HTTP/1.1", headers: str = "") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} {version}\r\nHost: x\r\n{length}{headers}\r\n".encode() + body


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def test_keep_alive_pipelining_and_trickling(address: tuple[str, int]) -> None:
    answers, closed = exchange(address, request("POST", "/slow", b"1") + request("GET", "/b?x=1&y=a+b"))
    assert [status(a) for a in answers] == [200, 200] and not closed
    assert b'"path": "/slow"' in answers[0] and b'"query": {"x": "1", "y": "a b"}' in answers[1]  # in order
    one = request("POST", "/%7Eitems", b'{"a": 1}')
    (answer,), _ = exchange(address, one, pieces=len(one))  # a byte per write
    assert b'"path": "/%7Eitems"' in answer and b'"body": "{\\"a\\": 1}"' in answer  # decoded by the router


def test_http_1_0_closes_unless_asked_and_connection_close_is_honoured(address: tuple[str, int]) -> None:
    answers, closed = exchange(address, request("GET", "/a", version="HTTP/1.0"))
    assert status(answers[0]) == 200 and b"Connection: close" in answers[0] and closed
    answers, closed = exchange(address, request("GET", "/a", version="HTTP/1.0", headers="Connection: keep-alive\r\n"))
    assert b"Connection: keep-alive" in answers[0] and not closed
    answers, closed = exchange(address, request("GET", "/a", headers="Connection: close\r\n"))
    assert b"Connection: close" in answers[0] and closed
    answers, closed = exchange(address, request("GET", "/a", headers="Connection: keep-alive, Close\r\n"))
    assert b"Connection: close" in answers[0] and closed


def test_a_client_that_stops_sending_still_gets_every_answer(address: tuple[str, int]) -> None:
    answers, closed = exchange(address, request("GET", "/slow") + request("GET", "/a"), half_close=True)
    assert [status(a) for a in answers] == [200, 200] and closed


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GET /a HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 400),  # a head over 64 KiB
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /a HTTP/2.0\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\nHost: x\n\n", 400),  # lines ended by a bare LF
        (b"GET /a HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n0123456789", 400),
        (b"POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501),
        # both framings: how a request is smuggled past a proxy that reads the other one
        (b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),  # not hex
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400),  # too long
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000 + b"\r\n", 400),  # size line
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n", 400),
        (b"POST /a HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),  # refused before the body is sent
        (b"POST /a HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 413),  # past int()'s digits
        (b"POST /a HTTP/1.1\r\nContent-Length: 3\x0b\r\n\r\nabc", 400),  # only space and tab around a value
        (b"GET /a HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n", 400),  # a bare CR inside a value
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFF\r\n", 413),  # at the chunk's size line
    ],
    ids=[
        "huge-head",
        "no-version",
        "http2",
        "bare-lf",
        "no-colon",
        "negative",
        "underscore",
        "two-lengths",
        "gzip",
        "gzip-chunked",
        "length-and-chunked",
        "two-codings",
        "chunked-http10",
        "chunk-not-hex",
        "chunk-overrun",
        "chunk-line-long",
        "chunk-size-huge",
        "too-big",
        "length-digits",
        "vertical-tab",
        "bare-cr",
        "chunk-line-lf",
        "chunks-too-big",
    ],
)
def test_refused_requests_get_their_status_and_the_connection_closes(
    address: tuple[str, int], data: bytes, code: int
) -> None:
    answers, closed = exchange(address, data, wanted=1)
    assert [status(a) for a in answers] == [code] and closed
    assert b"Connection: close" in answers[0]


def chunked(path: str, chunks: list[bytes], trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    return b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n%s\r\n" % (
        path.encode(),
        body,
        trailer,
    )


@pytest.mark.parametrize("pieces", [1, 7, 10_000])
def test_chunked_bodies_are_decoded_however_they_arrive(address: tuple[str, int], pieces: int) -> None:
    chunks = [b'{"in', b'put": ', b'"' + b"x" * 300 + b'"}']
    data = chunked("/a", chunks, trailer=b"X-Checksum: 1\r\n") + request("GET", "/b")
    answers, closed = exchange(address, data, pieces=min(pieces, len(data)))
    assert [status(a) for a in answers] == [200, 200] and not closed
    assert json.loads(body(answers[0]))["body"] == b"".join(chunks).decode()
    assert json.loads(body(answers[1]))["path"] == "/b"  # the next request, after the trailer


def test_a_chunked_body_is_read_only_after_its_head_is_admitted(address: tuple[str, int]) -> None:
    head = b"POST /a HTTP/1.1\r\nX-Refuse: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    answers, closed = exchange(address, head, wanted=1)  # the body never comes: answered anyway
    assert [status(a) for a in answers] == [401] and closed


def test_expect_100_continue_is_answered_before_the_body(address: tuple[str, int]) -> None:
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        answer = sock.recv(65536)
    assert status(answer) == 200 and b'"body": "abc"' in answer


def test_a_client_that_reads_no_answers_is_not_read_without_end(address: tuple[str, int]) -> None:
    # Pipelined requests whose answers it never reads: the server stops reading once its answers
    # back up, so the client's sends block instead of the server's memory growing.
    flood = request("GET", "/" + "a" * 8000) * 2000  # 16 MB of requests, 16 MB of answers
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < len(flood):
                sent += sock.send(flood[sent : sent + 65536])
    assert sent < len(flood) // 2
    answers, _ = exchange(address, request("GET", "/after"))
    assert status(answers[0]) == 200


def test_a_request_refused_on_its_head_gets_no_100_continue(address: tuple[str, int]) -> None:
    head = b"POST /a HTTP/1.1\r\nX-Refuse: 1\r\nContent-Length: 900000\r\nExpect: 100-continue\r\n\r\n"
    answers, closed = exchange(address, head, wanted=1)
    assert [status(a) for a in answers] == [401] and closed


def test_the_path_goes_on_as_sent_and_a_plus_in_a_query_is_a_space(address: tuple[str, int]) -> None:
    # The router decodes each segment after splitting, so %2F never becomes a separator.
    (answer,), _ = exchange(address, request("GET", "/items/a+b%20c%2Fd?q=x+y"))
    assert b'"path": "/items/a+b%20c%2Fd"' in answer and b'"query": {"q": "x y"}' in answer


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length : 3\r\n",  # RFC 9112: no whitespace before the colon
        b" Content-Length: 3\r\n",  # nor a line that starts with whitespace (obsolete folding)
        b"Bad Name: 1\r\n",
        b"Na(me: 1\r\n",
    ],
)
def test_a_malformed_field_name_is_refused(address: tuple[str, int], head: bytes) -> None:
    data = b"POST /x HTTP/1.1\r\nHost: x\r\n" + head + b"\r\nabc"
    answers, closed = exchange(address, data, wanted=1)
    assert [status(a) for a in answers] == [400] and closed


def test_every_status_has_its_own_reason_phrase() -> None:
    from flashc_runtime._http import _head

    assert _head(503, True).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert _head(429, True).startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b" OK\r\n" not in _head(599, True)


def test_a_refused_request_is_answered_on_its_head_and_its_body_never_kept(address: tuple[str, int]) -> None:
    # No Expect: 100-continue, a 0.9 MB Content-Length and only the first bytes of the body: the
    # answer (the fixture's admit refuses x-refuse) comes at once, before the body, and the
    # connection is closed; without the check the server would wait for, and keep, the whole body.
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nX-Refuse: 1\r\nContent-Length: 900000\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head + b"a" * 1000)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, "closed without an answer"
            answer += chunk
        assert status(answer) == 401
        rest = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                rest += chunk
        assert b"HTTP/1.1" not in rest  # one answer, then the close


@pytest.fixture
def limited() -> Iterator[tuple[tuple[str, int], Any]]:
    """A server with small limits: idle 0.5 s, a request must arrive within 0.5 s, 3 connections."""
    yield from _limited_server(Limits(idle=0.5, request=0.5, connections=3))


def _limited_server(limits: Limits) -> Iterator[tuple[tuple[str, int], Any]]:
    def handle(request: Request, respond: Respond) -> None:
        respond(200, {"path": request[1]})

    for address in serving(lambda: Connection(handle, MAX_BODY, None, limits)):
        yield address, limits


def _closed_by_server(sock: socket.socket) -> bytes:
    """What the server sent until it closed the connection (waits up to the socket's timeout)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_an_idle_connection_is_closed_and_its_slot_freed(limited: tuple[tuple[str, int], Any]) -> None:
    address, limits = limited
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(request("GET", "/a"))
        assert status(sock.recv(65536)) == 200
        assert _closed_by_server(sock) == b""  # kept alive, then closed once idle
    deadline = time.monotonic() + 20
    while limits.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert limits.open == 0


def test_a_request_that_stalls_gets_408(limited: tuple[tuple[str, int], Any]) -> None:
    address, _ = limited
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        answer = _closed_by_server(sock)
    assert status(answer) == 408


def test_a_head_sent_a_byte_at_a_time_gets_408_though_bytes_keep_coming(limited: tuple[tuple[str, int], Any]) -> None:
    address, _ = limited  # a head must come whole within 0.5 s of its first byte
    head = b"GET /a HTTP/1.1\r\nX-Slow: " + b"a" * 10_000
    answer = b""
    with socket.create_connection(address, timeout=20) as sock:
        sock.settimeout(0.05)
        for byte in head:  # one every 50 ms at most: never quiet for the 0.5 s a stall takes
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
    assert status(answer) == 408  # long before the 10,000 bytes (500 s) were sent


def test_past_the_connection_cap_an_idle_connection_gives_way_else_503(limited: tuple[tuple[str, int], Any]) -> None:
    address, limits = limited
    limits.idle = limits.request = 60.0  # the held connections must not time out while the test runs
    held = [socket.create_connection(address, timeout=20) for _ in range(3)]
    try:
        for sock in held:  # each is served, so each holds its slot, idle
            sock.sendall(request("GET", "/x"))
            assert status(sock.recv(65536)) == 200
        # A fourth client is served: the longest-idle connection is closed to make room.
        with socket.create_connection(address, timeout=20) as fourth:
            fourth.sendall(request("GET", "/y"))
            assert status(fourth.recv(65536)) == 200
        assert _closed_by_server(held[0]) == b""
        # With every slot busy mid-request, the next client is told at once.
        busy = [socket.create_connection(address, timeout=20) for _ in range(3)]
        for sock in busy:
            sock.sendall(b"GET /part HTTP/1.1\r\n")  # a head that has begun
        deadline = time.monotonic() + 20  # until the server holds the three begun heads
        while not (len(limits.members) == 3 and all(c.buffer for c in list(limits.members))):
            assert time.monotonic() < deadline, "the begun heads never arrived"
            time.sleep(0.02)
        with socket.create_connection(address, timeout=20) as extra:
            answer = _closed_by_server(extra)
        assert status(answer) == 503 and b"too many connections" in answer
        for sock in busy:
            sock.close()
    finally:
        for sock in held:
            sock.close()


@pytest.fixture
def budgeted() -> Iterator[tuple[tuple[str, int], Any]]:
    yield from _limited_server(Limits(bodies=1000))


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_bodies_in_flight_stay_within_the_budget(budgeted: tuple[tuple[str, int], Any]) -> None:
    address, limits = budgeted
    with socket.create_connection(address, timeout=20) as first:
        first.sendall(b"POST /a HTTP/1.1\r\nContent-Length: 800\r\n\r\n" + b"x" * 100)  # 800 reserved
        _wait_for(lambda: limits.in_flight == 800, "the first body was never reserved")
        # A body that comes whole with its head, in one read, is held already; one that must be
        # waited for is judged on its head (its Content-Length), a chunked one chunk by chunk.
        for second in (b"POST /b HTTP/1.1\r\nContent-Length: 300\r\n\r\n", chunked("/b", [b"y" * 150, b"y" * 150])):
            with socket.create_connection(address, timeout=20) as other:
                other.sendall(second)
                answer = _closed_by_server(other)
            assert status(answer) == 503 and b"too many request bodies" in answer
        first.sendall(b"x" * 700)
        assert status(first.recv(65536)) == 200
    _wait_for(lambda: limits.in_flight == 0, "the first body's reservation was never released")
    answers, _ = exchange(address, chunked("/b", [b"y" * 150, b"y" * 150]))
    assert [status(a) for a in answers] == [200]  # room again
    with socket.create_connection(address, timeout=20) as dropped:  # a client gone mid-body frees its room
        dropped.sendall(b"POST /a HTTP/1.1\r\nContent-Length: 900\r\n\r\nabc")
        _wait_for(lambda: limits.in_flight == 900, "the body was never reserved")
    _wait_for(lambda: limits.in_flight == 0, "a closed connection kept its reservation")


def test_a_client_that_never_reads_its_last_answer_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the last answer the server stops sending, drops what comes, and closes once what it
    wrote has gone; a client that reads nothing would keep the socket for ever: it is aborted."""
    from flashc_runtime import _http

    monkeypatch.setattr(_http, "_LINGER", 0.1)
    monkeypatch.setattr(_http, "_ABORT", 0.5)
    big = {"x": "y" * 4_000_000}
    loop = asyncio.new_event_loop()
    connections: list[Connection] = []

    def handle(request: Request, respond: Respond) -> None:
        respond(200, big)

    def made() -> Connection:
        connections.append(Connection(handle, MAX_BODY))
        return connections[-1]

    server = loop.run_until_complete(loop.create_server(made, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request("GET", "/a", headers="Connection: close\r\n"))  # then reads nothing
        deadline = time.monotonic() + 20
        while not (connections and connections[0].transport is None and _closed(loop, connections[0])):
            assert time.monotonic() < deadline, "the server kept the socket of a client that reads nothing"
            loop.run_until_complete(asyncio.sleep(0.05))
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def _closed(loop: asyncio.AbstractEventLoop, connection: Connection) -> bool:
    """The server holds no socket any more: its selector watches none but the listening one."""
    selector = loop._selector  # type: ignore[attr-defined]
    return len(selector.get_map()) <= 2  # the listening socket and the loop's self-pipe
