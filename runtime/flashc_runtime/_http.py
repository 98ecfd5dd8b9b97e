"""A small HTTP/1.1 server side for the endpoints: requests in, JSON answers out, standard library only.

`Connection` is an asyncio protocol for one client connection. It reads requests with a
`Content-Length` body (or none) as the bytes come, hands each to a `Handle` callable with a
`Respond` callback, and writes the answers in order: one request is served at a time, and
pipelined ones wait in the buffer. Keep-alive is the default for HTTP/1.1, opt-in for HTTP/1.0.

Refused with an answer and a closed connection: a head over 64 KiB or one that is not HTTP (400),
a bad or repeated `Content-Length` (400), a `Transfer-Encoding` (501: send `Content-Length`),
a body over `max_body` (413, answered before the body is read). `Expect: 100-continue` is
answered. Reading pauses while a request is being answered and a lot more is buffered, or while
the client does not read its answers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import traceback
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["HEAD_LIMIT", "Admit", "Connection", "Handle", "Limits", "Request", "Respond", "parse_request"]

HEAD_LIMIT = 64 * 1024  # bytes of request line and headers
_LINGER = 2.0  # seconds a connection stays open, reading and dropping, after its last answer
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
    """How long a connection may sit idle or take over a request, and how many may be open at once
    (one object per server: it also counts the open connections)."""

    def __init__(self, *, idle: float = 120.0, request: float = 30.0, connections: int = 1024) -> None:
        self.idle, self.request, self.connections = idle, request, connections
        self.open = 0
        self.members: set[Connection] = set()


# method, path, query, headers, body
# Answers the request being served: a status and a JSON payload, or bytes already encoded as JSON.
Respond = Callable[[int, Any], None]
Handle = Callable[[Request, Respond], None]
# The answer to a request refused on its head alone (a wrong key), sent before its body is; or None.
Admit = Callable[[Mapping[str, str]], "tuple[int, Any] | None"]


class _MoreBody:
    """The head has arrived, the body not all of it yet."""

    __slots__ = ("headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


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
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False  # a request is being answered; the next waits in the buffer
        self.serving = False  # inside _serve, which goes on by itself once an answer is written
        self.keep_alive = True
        self.continued = False  # 100 Continue was sent for the request being read
        self.admitted = False  # the head of the request being read passed `admit`
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
            idle = [c for c in limits.members if not c.busy and not c.buffer and c.transport is not None]
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

    def _release(self) -> None:
        if self.counted and self.limits is not None:
            self.limits.open -= 1
            self.limits.members.discard(self)
            self.counted = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self) -> None:
        """Close a connection idle too long; answer 408 to a request that stalls (a client that
        sends a head or body a byte at a time, or stops halfway)."""
        self.timer = None
        limits, transport = self.limits, self.transport
        if limits is None or transport is None or transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self.last_bytes
        if not self.busy:
            if self.buffer and quiet > limits.request:
                self.busy, self.keep_alive = True, False
                self.buffer.clear()
                self.answer(408, {"error": f"the request did not arrive whole within {limits.request:g} s"})
                return
            if not self.buffer and quiet > limits.idle:
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
        self.buffer += self.scratch[:nbytes]
        self._serve()
        self._flow()

    def _serve(self) -> None:
        if self.serving:
            return  # the loop below goes on by itself
        self.serving = True
        try:
            while not self.busy and not self.writing_paused and self.transport is not None:
                parsed = parse_request(self.buffer, self.max_body) if self.buffer else None
                if isinstance(parsed, _MoreBody):
                    if not self.admitted:
                        # Judged on its head, before any of its body is kept: a request that will be
                        # refused (no key) makes the server buffer nothing.
                        refused = self.admit(parsed.headers) if self.admit else None
                        if refused is not None:
                            self.busy, self.keep_alive = True, False
                            self.buffer.clear()
                            self.answer(*refused)
                            return
                        self.admitted = True
                    if parsed.headers.get("expect", "").lower() == "100-continue" and not self.continued:
                        self.continued = True
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    parsed = None
                if parsed is None:
                    if self.eof:
                        self._close()  # nothing more will come, and nothing whole is left
                    return
                self.busy = True
                if isinstance(parsed, int):  # malformed or oversized: answer, then close
                    self.keep_alive = False
                    self.answer(parsed, {"error": _ERRORS.get(parsed, REASONS[parsed])})
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

    def answer(self, status: int, payload: Any) -> None:
        """Write the answer to the request being served (the `Respond` the handler gets)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        transport.write(b"%s%d\r\n\r\n%s" % (_head(status, self.keep_alive), len(body), body))
        self.busy = False
        if self.limits is not None:  # idle from the answer on, however long it took
            self.last_bytes = asyncio.get_running_loop().time()
        if not self.keep_alive:
            self._close()
            return
        self._serve()
        self._flow()

    def _flow(self) -> None:
        """Read while there is room: not when the client leaves its answers unread, nor when it
        sends far ahead of them."""
        pause = self.writing_paused or (self.busy and len(self.buffer) > HEAD_LIMIT + self.max_body)
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
        asyncio.get_running_loop().call_later(_LINGER, transport.close)


_ERRORS = {501: "Transfer-Encoding is not supported: send the body with a Content-Length"}


@functools.cache
def _head(status: int, keep_alive: bool) -> bytes:
    """An answer's head up to the value of its Content-Length."""
    reason = REASONS.get(status, "Error" if status >= 400 else "OK")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nContent-Length: "
    ).encode()


def parse_request(buffer: bytearray, max_body: int) -> tuple[int, Request, bool] | int | _MoreBody | None:
    """The first request in `buffer`: its size in bytes, the request and whether the connection
    stays open after it; None while the head is incomplete, `_MoreBody` while the body is; or an
    HTTP status for a request that is refused."""
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
        name, value = name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            return 400  # two different lengths: which body is meant is unknowable
        headers[name] = value
    if "transfer-encoding" in headers:
        return 501
    length_text = headers.get("content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()):
        return 400
    length = int(length_text)
    if length > max_body:
        return 413
    size = end + 4 + length
    if len(buffer) < size:
        return _MoreBody(headers)
    connection = headers.get("connection")
    if connection is None:
        keep_alive = version == "HTTP/1.1"
    else:
        options = {option.strip() for option in connection.lower().split(",")}
        keep_alive = "close" not in options if version == "HTTP/1.1" else "keep-alive" in options
    path, _, raw_query = target.partition("?")
    query = {}
    for pair in raw_query.split("&") if raw_query else ():
        key, _, value = pair.partition("=")
        query[unquote_plus(key)] = unquote_plus(value)
    # The path goes on as sent: its segments are decoded after it is split, so that an encoded '/'
    # (%2F) stays inside its segment; in a path, unlike a query, '+' is a plus sign.
    request = (method.upper(), path, query, headers, bytes(buffer[end + 4 : size]))
    return size, request, keep_alive
