"""Why a request to an index failed, said the same way whether httpx or uv made it.

    httpx exception  --why_unreachable-->  "connection refused", "the host name does not resolve"...
    uv's stderr      --uv_unreachable-->   the same words, or None when the network is not to blame

A network failure is the user's machine or the index, never the requirement: callers report it as
"cannot reach ...", apart from a package the index really does not have.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    import httpx

__all__ = ["failing_url", "origin", "shown", "uv_unreachable", "why_unreachable"]

# uv's words (from reqwest, hyper, rustls and the OS) for each failure, in the order they are tested:
# a refused connection's text also holds "tcp connect error", a timed-out TLS handshake "tls".
_UV_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("connection refused", ("connection refused", "os error 111", "os error 61", "os error 10061")),
    (
        "the host name does not resolve",
        (
            "dns error",
            "failed to lookup address",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
        ),
    ),
    ("timed out", ("timed out", "deadline has elapsed")),
    ("the network is unreachable", ("network is unreachable", "os error 101", "no route to host", "os error 113")),
    ("the connection was reset", ("connection reset", "os error 104", "broken pipe", "connection closed before")),
    (
        "TLS failed",
        (
            "invalid peer certificate",
            "certificate verify failed",
            "unknownissuer",
            "received corrupt message",
            "tls handshake",
            "handshake failure",
            "ssl error",
            "tls error",
        ),
    ),
    ("the connection failed", ("tcp connect error", "error sending request", "connection error")),
)
_SERVER_ERROR = re.compile(r"http status server error \((?P<status>5\d\d[^)]*)\)", re.IGNORECASE)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s`'\")]+", re.IGNORECASE)
_QUOTED = re.compile(r"`[^`\n]*`")


def why_unreachable(exc: httpx.TransportError) -> str:
    """Why httpx could not get an answer, in a few words ("connection refused")."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS failed: the server's certificate is not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        if isinstance(cause, ConnectionResetError):
            return "the connection was reset"
        if isinstance(cause, TimeoutError):
            return "timed out"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "the network is unreachable"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def uv_unreachable(stderr: str) -> str | None:
    """Why uv could not reach an index or file server, or None if its error is not a network failure."""
    server = _SERVER_ERROR.search(stderr)
    if server is not None:
        return f"it answered {server['status'].strip()}"
    # Not the names uv quotes nor its URLs: a package or host may well be called `timeout` or `ssl`.
    text = _URL.sub(" ", _QUOTED.sub(" ", stderr)).lower()
    for reason, words in _UV_REASONS:
        if any(word in text for word in words):
            return reason
    return None


def failing_url(stderr: str) -> str | None:
    """The URL uv says it failed to fetch: the last one its error names (the innermost cause)."""
    found = [m.group(0).rstrip(".,:;") for m in _URL.finditer(stderr)]
    fetched = [url for url in found if not url.startswith("file:")]
    return fetched[-1] if fetched else None


def origin(url: str) -> str:
    """scheme://host[:port] of `url`, without credentials."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{host}{port}"


def shown(url: str) -> str:
    """A URL without its credentials, for messages (uv leaves them out of its own)."""
    parsed = urlparse(url)
    if parsed.password is None and parsed.username is None:
        return url
    host = parsed.hostname or ""
    port = f":{parsed.port}" if parsed.port is not None else ""
    return parsed._replace(netloc=f"[{host}]{port}" if ":" in host else f"{host}{port}").geturl()
