"""Pickled calls, only when signed: how non-JSON arguments and results may travel.

A job input may carry `"pickled"`: base64 of cloudpickle's `(args, kwargs)`. Unpickling runs
code, so such an input is accepted only with `"signature"`, the hex HMAC-SHA256 keyed with the
deployment's secret (`FLASHC_PICKLE_SECRET` in the endpoint's environment, created at deploy time,
kept in `.flash/deployment.json`, never in the archive), of what is called and when:

    "call" | function | method | issued (unix seconds) | nonce | pickled

So a signed pickle cannot be replayed against another function or method, nor after
`REPLAY_WINDOW` seconds; within the window, an endpoint refuses a nonce it has seen (`NonceBook`).
A class's pickled constructor arguments are signed with the call's nonce ("init" | nonce |
pickled). The result travels back pickled and signed the same way ("result" | nonce | pickled),
and the caller unpickles only a result signed for its own call: an answer from anything but the
deployed endpoint (a process that took a dead endpoint's port) is refused before unpickling.
Anything else is refused before unpickling.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REPLAY_WINDOW",
    "SECRET_ENV",
    "NonceBook",
    "dumps",
    "loads_call",
    "result_problem",
    "sign",
    "sign_call",
    "sign_result",
    "signature_problem",
]

SECRET_ENV = "FLASHC_PICKLE_SECRET"
REPLAY_WINDOW = 300  # seconds a signed call is good for, either side of the endpoint's clock


def sign(secret: str, *parts: str) -> str:
    """The HMAC-SHA256 of `parts`, joined by a separator no part holds (base64, hex, names)."""
    return hmac.new(secret.encode(), "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def sign_call(
    secret: str, function: str, method: str | None, pickled: str, *, now: float | None = None
) -> dict[str, Any]:
    """The fields a pickled call carries: the pickle, when it was issued, a nonce, and its signature."""
    issued = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    signature = sign(secret, "call", function, method or "", str(issued), nonce, pickled)
    return {"pickled": pickled, "issued": issued, "nonce": nonce, "signature": signature}


def sign_result(secret: str, nonce: str, pickled: str) -> dict[str, str]:
    return {"pickled": pickled, "signature": sign(secret, "result", nonce, pickled)}


def result_problem(output: Mapping[str, Any], secret: str, nonce: str) -> str | None:
    """Why a pickled result must not be unpickled by the caller of the call `nonce`, or None."""
    pickled, signature = output.get("pickled"), output.get("signature")
    if not isinstance(pickled, str) or not isinstance(signature, str) or not signature.isascii():
        return "the pickled result is not signed"
    if not hmac.compare_digest(sign(secret, "result", nonce, pickled), signature):
        return "the pickled result is not signed for this call"
    return None


class NonceBook:
    """The nonces used within the replay window (calls, or requests): a second use is refused.
    Each is forgotten once the window can no longer admit it, oldest first."""

    def __init__(self, window: float = REPLAY_WINDOW) -> None:
        self._window = window
        self._seen: set[str] = set()
        self._order: collections.deque[tuple[float, str]] = collections.deque()
        self._lock = threading.Lock()

    def first_use(self, nonce: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            horizon = now - 2 * self._window
            while self._order and self._order[0][0] < horizon:
                self._seen.discard(self._order.popleft()[1])
            if nonce in self._seen:
                return False
            self._seen.add(nonce)
            self._order.append((now, nonce))
            return True

    def take(self, nonce: str) -> bool:
        """Forget `nonce` if it is there (it may be used again): whether it was."""
        with self._lock:
            if nonce in self._seen:
                self._seen.discard(nonce)
                return True
            return False

    def __len__(self) -> int:
        return len(self._seen)


def signature_problem(
    job_input: Mapping[str, Any], *, nonces: NonceBook | None = None, now: float | None = None
) -> str | None:
    """Why a pickled input must be refused, or None when it is properly signed (or not pickled).
    With `nonces`, a nonce already used is refused too (the endpoint's server keeps one)."""
    if "pickled" not in job_input:
        return None
    secret = os.environ.get(SECRET_ENV)
    pickled, signature = job_input.get("pickled"), job_input.get("signature")
    issued, nonce = job_input.get("issued"), job_input.get("nonce")
    function, method = job_input.get("function", ""), job_input.get("method") or ""
    if not secret:
        return "this endpoint accepts no pickled input"
    if not isinstance(pickled, str) or not isinstance(signature, str):
        return "a pickled input needs 'pickled' and 'signature' strings"
    if not isinstance(issued, int) or isinstance(issued, bool) or not isinstance(nonce, str):
        return "a pickled input needs 'issued' (unix seconds) and 'nonce': unsigned or old pickles are refused"
    if not isinstance(function, str) or not isinstance(method, str):
        return "'function' and 'method' must be strings"
    if not all(text.isascii() for text in (pickled, signature, nonce, function, method)):
        return "a pickled input's 'pickled' is base64 and its 'signature' hex: both ASCII"
    expected = sign(secret, "call", function, method, str(issued), nonce, pickled)
    if not hmac.compare_digest(expected, signature):
        return "the pickled input's signature is wrong: unsigned pickles are refused"
    if abs((time.time() if now is None else now) - issued) > REPLAY_WINDOW:
        return f"the pickled input was signed more than {REPLAY_WINDOW} s from now: refused as a possible replay"
    if nonces is not None and not nonces.first_use(nonce, now):
        return "the pickled input was sent before (its nonce is used): refused as a replay"
    return None


def init_problem(init: Mapping[str, Any], nonce: str) -> str | None:
    """Why a class's pickled constructor arguments must be refused, or None (signed with the call's nonce)."""
    secret = os.environ.get(SECRET_ENV)
    pickled, signature = init.get("pickled"), init.get("signature")
    if not secret:
        return "this endpoint accepts no pickled input"
    if not isinstance(pickled, str) or not isinstance(signature, str) or not signature.isascii():
        return "a pickled input needs 'pickled' and 'signature' strings"
    if not hmac.compare_digest(sign(secret, "init", nonce, pickled), signature):
        return "the pickled input's signature is wrong: unsigned pickles are refused"
    return None


def dumps(value: Any) -> str:
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(value)).decode()


def loads_call(job_input: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The arguments of a signed pickled input (check `signature_problem` first)."""
    import pickle

    args, kwargs = pickle.loads(base64.b64decode(job_input["pickled"]))
    return list(args), dict(kwargs)
