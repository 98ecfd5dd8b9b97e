"""The project's own ASGI app as an endpoint: a seed-era mothership serving main.py's FastAPI `app`.

Such a resource has no functions: its generated handler module exposes the app as `app`. On
Runpod's load-balanced image the entry module hands the image that app itself (`stock.project_app`);
on this machine, `python -m flashc_runtime.server` serves it with uvicorn (the image's server),
behind the same `Authorization: Bearer <key>` check as every other local endpoint. Either way the
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


def guarded(app: ASGIApp, api_key: str) -> ASGIApp:
    """`app` behind `Authorization: Bearer <api_key>`: any other request is refused with 401 (an
    HTTP request) or a closed socket (a WebSocket); lifespan events pass."""
    key = api_key.encode()

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = dict(scope.get("headers") or ()).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), key):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_REFUSED)).encode())]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": _REFUSED})
                return
        await app(scope, receive, send)

    return guard


def serve_app(app: Any, api_key: str, host: str, port: int) -> None:
    """Serve `app` (with /ping) on host:port with uvicorn, behind the key; returns when it stops."""
    import uvicorn

    uvicorn.run(guarded(with_ping(app), api_key), host=host, port=port, timeout_keep_alive=600)
