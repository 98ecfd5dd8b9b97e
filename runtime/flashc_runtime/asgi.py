"""The project's own ASGI app as an endpoint: a seed-era mothership serving main.py's FastAPI `app`.

Such a resource has no functions: its generated handler module exposes the app as `app`. On
Runpod's load-balanced image the entry module hands the image that app itself (`stock.project_app`);
on this machine, `python -m flashc_runtime.server` serves it with uvicorn (the image's server),
behind the same `Authorization: Bearer <key>` check as every other local endpoint (or flashc's
proof of the key, whose answers prove themselves in turn: `auth.py`). Either way the
app answers `GET /ping` (Runpod's load balancer asks it): its own route if it has one, else
`{"status": "healthy"}`. Its routes' calls to remote functions go to their resources' endpoints,
as any caller's do.

The images provide fastapi and uvicorn; they are imported only here, when such a resource runs.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import auth
from ._http import parse_query
from .signing import NonceBook

__all__ = ["guarded", "serve_app", "with_ping"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REFUSED = json.dumps({"error": "missing or wrong API key: send Authorization: Bearer <key>"}).encode()


def with_ping(app: Any) -> Any:
    """`app` itself, given a `GET /ping` route when it is a Starlette (FastAPI) app that has none."""
    router = getattr(app, "router", None)
    if router is None or not hasattr(app, "add_route"):
        return app  # a bare ASGI callable: its /ping is its own business
    from starlette.responses import JSONResponse
    from starlette.routing import Match

    probe = {"type": "http", "path": "/ping", "method": "GET", "root_path": "", "headers": []}
    if any(route.matches(probe)[0] == Match.FULL for route in router.routes):
        return app

    async def ping(request: Any) -> Any:
        return JSONResponse({"status": "healthy"})

    app.add_route("/ping", ping, methods=["GET"], include_in_schema=False)
    return app


def guarded(app: ASGIApp, api_key: str, endpoint_id: str = "") -> ASGIApp:
    """`app` behind `Authorization: Bearer <api_key>` (or flashc's proof of it for `endpoint_id`):
    any other request is refused with 401 (an HTTP request) or a closed socket (a WebSocket);
    lifespan events pass. The answer to a request with flashc's proof is held until whole, then
    sent with its own proof; its body is read whole first, to check it against its hash
    (flashc's own requests are small: `/ping`)."""
    key = api_key.encode()
    nonces = NonceBook(auth.WINDOW)

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
            await app(scope, receive, send)
            return
        if scheme == auth.SCHEME.encode() and scope["type"] == "http":
            body, receive = await _whole_body(receive)
            path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            query = parse_query(scope.get("query_string", b"").decode("latin-1"))
            credentials = token.decode("latin-1")
            problem, nonce = auth.request_problem(credentials, api_key, endpoint_id, scope["method"], path, query, body)
            if problem is None and nonces.first_use(nonce):
                await app(scope, receive, _proving(send, api_key, endpoint_id, nonce))
                return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_REFUSED)).encode())]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": _REFUSED})

    return guard


async def _whole_body(receive: Receive) -> tuple[bytes, Receive]:
    """The request's body, read whole (its hash is in the credentials), and a `receive` that gives
    it to the app again."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body), receive  # the client left: the app sees that itself
        body.extend(message.get("body", b""))
        if not message.get("more_body"):
            break
    sent = False

    async def again() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await receive()

    return bytes(body), again


def _proving(send: Send, api_key: str, endpoint_id: str, nonce: str) -> Send:
    """`send`, holding the answer until its body is whole, then sending it with its proof."""
    start: MutableMapping[str, Any] = {}
    body = bytearray()

    async def proven(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        proof = auth.answer_proof(api_key, endpoint_id, nonce, start["status"], bytes(body))
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        headers += [(b"content-length", str(len(body)).encode()), (auth.PROOF_HEADER.lower().encode(), proof.encode())]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": bytes(body)})

    return proven


def serve_app(app: Any, api_key: str, endpoint_id: str, host: str, port: int) -> None:
    """Serve `app` (with /ping) on host:port with uvicorn, behind the key; returns when it stops."""
    import uvicorn

    uvicorn.run(guarded(with_ping(app), api_key, endpoint_id), host=host, port=port, timeout_keep_alive=600)
