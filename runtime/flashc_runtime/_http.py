"""A small HTTP/1.1 server side for the endpoints: requests in, JSON answers out, standard library only.

`Connection` is an asyncio protocol for one client connection. It reads requests with a
`Content-Length` body, a chunked one (`Transfer-Encoding: chunked`, decoded chunk by chunk as it
comes) or none, hands each to a `Handle` callable with a `Respond` callback, and writes the
answers in order: one request is served at a time, and pipelined ones wait in the buffer.
Keep-alive is the default for HTTP/1.1, opt-in for HTTP/1.0.

Refused with an answer and a closed connection: a head over 64 KiB or one that is not HTTP (400),
a bad or repeated `Content-Length` or `Transfer-Encoding`, or both at once (400), a transfer
coding other than chunked (501), a body over `max_body` (413, answered before the body is read,
or at the first chunk that goes past it). `Expect: 100-continue` is answered.

Memory: a request's head is judged (`Admit`: the key) before any of its body is kept, and a body
is kept only within the server's budget for bodies in flight (`Limits.bodies`, reserved from its
`Content-Length` or chunk by chunk; a body that came whole with its head, in one read of at most
64 KiB, is held already): past it the client gets 503 at once. A connection holds at most a head
and one read (128 KiB) outside the budget. Reading pauses while a
request is being answered and more than a head is buffered behind it, or while the client does
not read its answers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

__all__ = [
    "HEAD_LIMIT",
    "Admit",
    "Connection",
    "Handle",
    "Limits",
    "Request",
    "Respond",
    "parse_query",
    "parse_request",
]

HEAD_LIMIT = 64 * 1024  # bytes of request line and headers
_LINGER = 2.0  # seconds a connection stays open, reading and dropping, after its last answer
_ABORT = 30.0  # seconds after that a client that still does not read its last answer is cut off
_READ_SIZE = 64 * 1024  # bytes taken from a socket at once
REASONS = {100: "Continue", 200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Content",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}  # fmt: skip

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a field name (RFC 9110 token)
Request = tuple[str, str, dict[str, str], dict[str, str], bytes]


class Limits:
    """How long a connection may sit idle or take over a request, how many may be open at once, and
    how many bytes of request bodies may be held while they arrive (one object per server: it also
    counts the open connections and the bytes reserved)."""

    def __init__(
        self, *, idle: float = 120.0, request: float = 30.0, connections: int = 1024, bodies: int = 256 * 1024 * 1024
    ) -> None:
        self.idle, self.request, self.connections, self.bodies = idle, request, connections, bodies
        self.open = 0
        self.members: set[Connection] = set()
        self.in_flight = 0  # bytes of bodies reserved by connections receiving them


# method, path, query, headers, body
# Answers the request being served: a status and a JSON payload, or bytes already encoded as JSON,
# and optionally more header lines (each ending in CRLF).
Respond = Callable[..., None]
Handle = Callable[[Request, Respond], None]
# The answer to a request refused on its head alone (method, path, query, headers; a wrong key),
# sent before its body is; or None.
Admit = Callable[[str, str, Mapping[str, str], Mapping[str, str]], "tuple[int, Any] | None"]
_CHUNK_LINE = 1024  # bytes of a chunk's size line, extensions included
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _Refused(NamedTuple):
    """The answer to a request refused before it is served."""

    status: int
    payload: Any


class _MoreBody:
    """The head has arrived (`head_size` bytes), the body not all of it yet (`length` bytes; None:
    chunked). Kept by the connection while the body comes, so the head is parsed once."""

    __slots__ = ("head_size", "headers", "keep_alive", "length", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        length: int | None,
        head_size: int,
        keep_alive: bool,
    ) -> None:
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.length, self.head_size, self.keep_alive = length, head_size, keep_alive

    def whole(self, buffer: bytearray) -> tuple[int, Request, bool] | None:
        """The request once its `Content-Length` body is all in `buffer`, else None."""
        assert self.length is not None
        size = self.head_size + self.length
        if len(buffer) < size:
            return None
        body = bytes(buffer[self.head_size : size])
        return size, (self.method, self.path, self.query, self.headers, body), self.keep_alive


class _Chunked(_MoreBody):
    """A request with a chunked body, decoded as its bytes come. Its head (`head_size` bytes) and
    then each whole chunk are taken off the connection's buffer, so that the buffer holds at most
    the chunk being received; trailer fields are read and dropped."""

    __slots__ = ("body", "trailer", "trailer_size")

    def __init__(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], head_size: int, keep_alive: bool
    ) -> None:
        super().__init__(method, path, query, headers, None, head_size, keep_alive)
        self.body = bytearray()
        self.trailer = False  # the last chunk has come; trailer fields until an empty line
        self.trailer_size = 0

    def feed(self, buffer: bytearray, room: Callable[[int], int | None]) -> tuple[int, Request, bool] | int | None:
        """Decode the chunks `buffer` holds (taking them off it). The request once its last chunk
        and trailer have come (with size 0: its bytes are off the buffer already), None while more
        must come, or an HTTP status: 400 for a malformed chunk, or what `room` (asked before a
        chunk makes the body this long) answers."""
        at = 0
        try:
            while True:
                if self.trailer:
                    eol = buffer.find(b"\r\n", at, at + HEAD_LIMIT + 2)
                    if eol < 0:
                        return 400 if len(buffer) - at > HEAD_LIMIT else None
                    self.trailer_size += eol + 2 - at
                    if self.trailer_size > HEAD_LIMIT or _bad_bytes(buffer, at, eol):
                        return 400
                    empty, at = eol == at, eol + 2
                    if empty:
                        request = (self.method, self.path, self.query, self.headers, bytes(self.body))
                        return 0, request, self.keep_alive
                    continue
                eol = buffer.find(b"\r\n", at, at + _CHUNK_LINE)
                if eol < 0:
                    return 400 if len(buffer) - at >= _CHUNK_LINE else None
                if _bad_bytes(buffer, at, eol):
                    return 400
                # chunk-size [; extensions]: the extensions mean nothing here
                size_text = bytes(buffer[at:eol]).partition(b";")[0].rstrip(b" \t")
                if not _HEX.fullmatch(size_text):
                    return 400
                size = int(size_text, 16)
                if size == 0:
                    self.trailer, at = True, eol + 2
                    continue
                refused = room(len(self.body) + size)
                if refused is not None:
                    return refused
                end = eol + 2 + size
                if len(buffer) < end + 2:
                    return None
                if buffer[end : end + 2] != b"\r\n":
                    return 400
                self.body += buffer[eol + 2 : end]
                at = end + 2
        finally:
            del buffer[:at]


class Connection(asyncio.BufferedProtocol):
    """One client connection: HTTP/1.1 requests read from the bytes as they come, answered in order.

    A buffered protocol: asyncio's plain one receives into a new 256 KiB bytes object per read,
    and allocating that much can cost the kernel an mmap and an munmap each time, more than the
    rest of a small request. Reads land in one scratch buffer instead, shared by all
    connections (the event loop runs one callback at a time), and are copied out at once.
    """

    scratch = memoryview(bytearray(_READ_SIZE))

    def __init__(self, handle: Handle, max_body: int, admit: Admit | None = None, limits: Limits | None = None) -> None:
        self.handle, self.max_body, self.admit = handle, max_body, admit
        self.limits = limits
        self.counted = False
        self.last_bytes = 0.0  # when bytes last came (loop time)
        self.head_since = 0.0  # when the first byte of the head being read came (loop time)
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False  # a request is being answered; the next waits in the buffer
        self.serving = False  # inside _serve, which goes on by itself once an answer is written
        self.keep_alive = True
        self.continued = False  # 100 Continue was sent for the request being read
        self.admitted = False  # the head of the request being read passed `admit`
        self.chunked: _Chunked | None = None  # the chunked request being read
        self.waiting: _MoreBody | None = None  # the admitted head whose Content-Length body is coming
        self.reserved = 0  # bytes of the budget for bodies this connection holds
        self.eof = False  # the client sends no more; answer what it sent, then close
        self.reading_paused = False
        self.writing_paused = False  # the client does not read its answers: take no new request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        limits = self.limits
        if limits is None:
            return
        if limits.open >= limits.connections:
            # Full. A connection that sits idle gives way (the longest idle), so that clients holding
            # connections open cannot lock others out; if every one is working, say so at once.
            idle = [c for c in limits.members if not c.busy and not c.reading() and c.transport is not None]
            if not idle:
                self.busy, self.keep_alive = True, False
                self.answer(503, {"error": f"too many connections (at most {limits.connections}): try again shortly"})
                return
            min(idle, key=lambda c: c.last_bytes)._close()
        limits.open += 1
        limits.members.add(self)
        self.counted = True
        loop = asyncio.get_running_loop()
        self.last_bytes = loop.time()
        self.timer = loop.call_later(min(limits.idle, limits.request) / 4, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # an answer that comes later is dropped
        self._release()

    def reading(self) -> bool:
        """Part of a request has come, not all of it."""
        return bool(self.buffer) or self.chunked is not None or self.waiting is not None

    def _room(self, size: int) -> int | None:
        """Reserve room for the body being read to be `size` bytes; or the status that refuses it."""
        if size > self.max_body:
            return 413
        limits = self.limits
        if limits is None or size <= self.reserved:
            return None
        if limits.in_flight + size - self.reserved > limits.bodies:
            return 503
        limits.in_flight += size - self.reserved
        self.reserved = size
        return None

    def _unreserve(self) -> None:
        if self.limits is not None:
            self.limits.in_flight -= self.reserved
        self.reserved = 0

    def _release(self) -> None:
        self._unreserve()
        if self.counted and self.limits is not None:
            self.limits.open -= 1
            self.limits.members.discard(self)
            self.counted = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self) -> None:
        """Close a connection idle too long; answer 408 to a request that stalls: a head that has
        not come whole within `limits.request` of its first byte (a client that sends it a byte
        at a time holds no slot for long), or a body that pauses that long."""
        self.timer = None
        limits, transport = self.limits, self.transport
        if limits is None or transport is None or transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self.last_bytes
        if not self.busy:
            in_head = not self.admitted
            slow_head = in_head and loop.time() - self.head_since > limits.request
            if self.reading() and (quiet > limits.request or slow_head):
                self.busy, self.keep_alive = True, False
                self.buffer.clear()
                self.chunked = self.waiting = None
                self._unreserve()
                self.answer(408, {"error": f"the request did not arrive whole within {limits.request:g} s"})
                return
            if not self.reading() and quiet > limits.idle:
                self._close()
                return
        self.timer = loop.call_later(min(limits.idle, limits.request) / 4, self._check)

    def eof_received(self) -> bool:
        self.eof = True
        if not self.busy:
            self._serve()
        return True  # keep the connection to answer; _serve closes it

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._serve()
        self._flow()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.scratch

    def buffer_updated(self, nbytes: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # answered with Connection: close; the rest is dropped
        if self.limits is not None:
            self.last_bytes = asyncio.get_running_loop().time()
            if not self.reading():  # a new request begins
                self.head_since = self.last_bytes
        self.buffer += self.scratch[:nbytes]
        self._serve()
        self._flow()

    def _serve(self) -> None:
        if self.serving:
            return  # the loop below goes on by itself
        self.serving = True
        try:
            while not self.busy and not self.writing_paused and self.transport is not None:
                try:
                    parsed = self._next()
                except Exception:  # a bug: the client gets 400 and a closed connection, the loop nothing
                    traceback.print_exc()
                    parsed = 400
                if parsed is None:
                    if self.eof:
                        self._close()  # nothing more will come, and nothing whole is left
                    return
                self.busy = True
                self.chunked = self.waiting = None
                self._unreserve()  # the body is the handler's now, or nobody's
                if isinstance(parsed, int):
                    parsed = _Refused(parsed, {"error": _ERRORS.get(parsed, REASONS[parsed])})
                if isinstance(parsed, _Refused):  # malformed, oversized or refused on its head: answer, close
                    self.keep_alive = False
                    self.buffer.clear()
                    self.answer(parsed.status, parsed.payload)
                    return
                size, request, self.keep_alive = parsed
                del self.buffer[:size]
                self.continued = self.admitted = False
                try:
                    self.handle(request, self.answer)
                except Exception:  # a bug: the client gets 500, not a dropped connection
                    traceback.print_exc()
                    if self.busy:
                        self.answer(500, {"error": "the endpoint failed to serve this request; see its log"})
        finally:
            self.serving = False

    def _next(self) -> tuple[int, Request, bool] | _Refused | int | None:
        """What the buffer holds next: a whole request (its size, the request, keep-alive), the
        answer refusing a request on its head, an HTTP status for a malformed one, or None while
        more must come."""
        if self.chunked is not None:
            return self.chunked.feed(self.buffer, self._room)
        if self.waiting is not None:
            return self.waiting.whole(self.buffer)
        parsed = parse_request(self.buffer, self.max_body) if self.buffer else None
        if not isinstance(parsed, _MoreBody):
            return parsed
        refused = self._head_refused(parsed)
        if refused is not None:
            return _Refused(*refused)
        if isinstance(parsed, _Chunked):
            del self.buffer[: parsed.head_size]
            self.chunked = parsed
            return parsed.feed(self.buffer, self._room)  # what has come of its body
        self.waiting = parsed
        return None

    def _head_refused(self, head: _MoreBody) -> tuple[int, dict[str, Any]] | None:
        """Judge a request on its head, before any of its body is kept: a request that will be
        refused (no key) makes the server buffer nothing, nor does one whose body finds no room."""
        if not self.admitted:
            refused = self.admit(head.method, head.path, head.query, head.headers) if self.admit else None
            if refused is not None:
                return refused
            self.admitted = True
        if head.length is not None:
            status = self._room(head.length)
            if status is not None:
                return status, {"error": _ERRORS.get(status, REASONS[status])}
        if head.headers.get("expect", "").lower() == "100-continue" and not self.continued:
            self.continued = True
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    def answer(self, status: int, payload: Any, headers: bytes = b"") -> None:
        """Write the answer to the request being served (the `Respond` the handler gets), with
        `headers` (lines ending in CRLF) besides its own."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if status in (401, 403):
            self.keep_alive = False  # a client refused its key holds no connection
        head = _head(status, self.keep_alive)
        transport.write(b"%s%sContent-Length: %d\r\n\r\n%s" % (head, headers, len(body), body))
        self.busy = False
        if self.limits is not None:  # idle from the answer on, however long it took; and a
            # pipelined request's head is timed from here
            self.last_bytes = self.head_since = asyncio.get_running_loop().time()
        if not self.keep_alive:
            self._close()
            return
        self._serve()
        self._flow()

    def _flow(self) -> None:
        """Read while there is room: not when the client leaves its answers unread, nor when it
        sends more than a head ahead of them (a body is read only once its head is judged)."""
        pause = self.writing_paused or (self.busy and len(self.buffer) > HEAD_LIMIT)
        if self.transport is not None and pause != self.reading_paused:
            self.reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _close(self) -> None:
        # Closing a socket with unread bytes resets it, which can destroy the answer before the
        # client reads it: end the sending side, drop what still comes, close soon.
        transport, self.transport, self.buffer = self.transport, None, bytearray()
        self._release()  # a connection that is closing holds no slot, even while it lingers
        if transport is None:
            return
        try:
            transport.write_eof()
        except OSError:  # the client has gone already
            transport.close()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(_LINGER, transport.close)  # once what is written has gone
        loop.call_later(_LINGER + _ABORT, transport.abort)  # a client that reads nothing keeps no socket


_ERRORS = {
    501: "only the chunked transfer coding is supported: send the body chunked or with a Content-Length",
    503: "the endpoint is receiving too many request bodies at once: try again shortly",
}


@functools.cache
def _head(status: int, keep_alive: bool) -> bytes:
    """An answer's status line and headers, but for its Content-Length."""
    reason = REASONS.get(status, "Error" if status >= 400 else "OK")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
    ).encode()


def parse_request(buffer: bytearray, max_body: int) -> tuple[int, Request, bool] | int | _MoreBody | None:
    """The first request in `buffer`: its size in bytes, the request and whether the connection
    stays open after it; None while the head is incomplete, `_MoreBody` while the body is (always
    `_Chunked` for a chunked one, which the connection decodes); or an HTTP status for a request
    that is refused."""
    end = buffer.find(b"\r\n\r\n", 0, HEAD_LIMIT + 4)
    if end < 0:
        if len(buffer) > HEAD_LIMIT or b"\n\n" in buffer:  # too long, or lines ended by a bare LF
            return 400
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        return 400
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return 400
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or not _TOKEN.fullmatch(name):
            return 400  # RFC 9112: no whitespace between a field's name and its colon
        name, value = name.lower(), value.strip(" \t")
        if "\r" in value or "\n" in value or "\0" in value:
            return 400  # a bare CR or LF, or NUL, in a field value (RFC 9110 5.5)
        if name in _FRAMING and headers.get(name, value) != value:
            return 400  # two different lengths or codings: which body is meant is unknowable
        headers[name] = value
    connection = headers.get("connection")
    if connection is None:
        keep_alive = version == "HTTP/1.1"
    else:
        options = {option.strip() for option in connection.lower().split(",")}
        keep_alive = "close" not in options if version == "HTTP/1.1" else "keep-alive" in options
    path, _, raw_query = target.partition("?")
    method = method.upper()
    if "transfer-encoding" in headers:
        # Both framings at once is how requests are smuggled past a proxy; HTTP/1.0 has no
        # transfer codings (RFC 9112 6.1: faulty framing).
        if "content-length" in headers or version == "HTTP/1.0":
            return 400
        if headers["transfer-encoding"].lower() != "chunked":
            return 501
        return _Chunked(method, path, parse_query(raw_query), headers, end + 4, keep_alive)
    length_text = headers.get("content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()):
        return 400
    if len(length_text) > 18 or int(length_text) > max_body:
        return 413
    length = int(length_text)
    size = end + 4 + length
    # The path goes on as sent: its segments are decoded after it is split, so that an encoded '/'
    # (%2F) stays inside its segment; in a path, unlike a query, '+' is a plus sign.
    if len(buffer) < size:
        return _MoreBody(method, path, parse_query(raw_query), headers, length, end + 4, keep_alive)
    request = (method, path, parse_query(raw_query), headers, bytes(buffer[end + 4 : size]))
    return size, request, keep_alive


_FRAMING = frozenset({"content-length", "transfer-encoding"})


def _bad_bytes(buffer: bytearray, start: int, end: int) -> bool:
    """A bare CR or LF, or NUL, in a chunk's size line or a trailer line."""
    return any(buffer.find(c, start, end) >= 0 for c in (b"\r", b"\n", b"\0"))


def parse_query(raw: str) -> dict[str, str]:
    """A query string's parameters (`+` is a space; the last of a repeated name wins)."""
    query = {}
    for pair in raw.split("&") if raw else ():
        key, _, value = pair.partition("=")
        query[unquote_plus(key)] = unquote_plus(value)
    return query
