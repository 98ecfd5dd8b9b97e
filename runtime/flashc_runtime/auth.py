"""How a caller and an endpoint flashc runs on this machine prove themselves to each other.

An endpoint takes `Authorization: Bearer <key>`, as Runpod's do. flashc's own client (local code
calling a deployed function, one endpoint calling another) never sends the key, though: a process
that took a dead endpoint's port would receive it. It sends a proof that it holds the key instead,
good for one request:

    Authorization: Flashc <issued>.<nonce>.<body sha256>.<mac>
    mac = HMAC-SHA256(key, "request" | endpoint id | method | path | query | body sha256 | issued | nonce)

(the query as its parameters, sorted, in JSON: however it was encoded). The endpoint checks the
MAC on the request's head, then the body against its hash once it has come, that `issued` (unix
seconds) is within `WINDOW` of its clock, and that the nonce is new (`signing.NonceBook`, used
up when the head is admitted); so a captured header serves nothing, and no other endpoint,
method, path, query or body takes it. To such a request the endpoint answers with

    X-Flashc-Proof: HMAC-SHA256(key, "answer" | endpoint id | nonce | status | SHA-256 of the body)

and the client reads an answer only when its proof holds: whatever answers in place of the
endpoint it deployed (another process on the port, an endpoint of another deployment) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping

from .signing import sign

__all__ = ["PROOF_HEADER", "SCHEME", "WINDOW", "answer_problem", "answer_proof", "request_auth", "request_problem"]

SCHEME = "Flashc"
PROOF_HEADER = "X-Flashc-Proof"
WINDOW = 60  # seconds a request's proof is good for, either side of the endpoint's clock


def _canonical(query: Mapping[str, str]) -> str:
    return json.dumps(sorted(query.items()))


def request_auth(
    key: str,
    endpoint_id: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> tuple[str, str]:
    """The `Authorization` value for one request, and its nonce (which the answer's proof names)."""
    issued = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    digest = hashlib.sha256(body).hexdigest()
    mac = sign(key, "request", endpoint_id, method.upper(), path, _canonical(query), digest, issued, nonce)
    return f"{SCHEME} {issued}.{nonce}.{digest}.{mac}", nonce


def request_problem(
    credentials: str,
    key: str,
    endpoint_id: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes | None,
    *,
    now: float | None = None,
) -> tuple[str | None, str]:
    """Why the credentials of a `Flashc` Authorization header (what follows the scheme) are refused,
    or None; and the request's nonce, whose single use the caller sees to. With `body` None (a
    head whose body has not come), its hash is not checked yet."""
    parts = credentials.strip().split(".")
    if len(parts) != 4 or not all(p and p.isascii() for p in parts) or not parts[0].isdigit():
        return "malformed Flashc credentials", ""
    issued, nonce, digest, mac = parts
    expected = sign(key, "request", endpoint_id, method.upper(), path, _canonical(query), digest, issued, nonce)
    if not hmac.compare_digest(expected, mac):
        return "wrong key, or meant for another endpoint or request", ""
    if body is not None and not hmac.compare_digest(hashlib.sha256(body).hexdigest(), digest):
        return "the body is not the one the credentials were made for", ""
    when = time.time() if now is None else now
    if abs(when - int(issued)) > WINDOW:
        return f"issued more than {WINDOW} s from now", ""
    return None, nonce


def answer_proof(key: str, endpoint_id: str, nonce: str, status: int, body: bytes) -> str:
    return sign(key, "answer", endpoint_id, nonce, str(status), hashlib.sha256(body).hexdigest())


def answer_problem(proof: str | None, key: str, endpoint_id: str, nonce: str, status: int, body: bytes) -> str | None:
    """Why an answer must not be read as the endpoint's, or None."""
    if not proof:
        return "it carries no proof that it comes from the deployed endpoint"
    if not proof.isascii() or not hmac.compare_digest(answer_proof(key, endpoint_id, nonce, status, body), proof):
        return "its proof is wrong: it does not come from the deployed endpoint"
    return None
