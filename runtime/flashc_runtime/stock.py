"""flashc's archive on Runpod's stock worker images: what the generated entry modules hand over to.

Runpod's Flash worker images unpack the archive into `/app` (their working folder, first on
`sys.path`) and, with `FLASH_RESOURCE_NAME` set, load `/app/handler_<resource name>.py` by path:

| image          | runs                                                | takes from the entry module            |
|----------------|-----------------------------------------------------|----------------------------------------|
| queue-based    | `python handler.py`                                 | `handler`, for `runpod.serverless.start` |
| load-balanced  | `uvicorn lb_handler:app`, with `FLASH_ENDPOINT_TYPE=lb` | `app`, a FastAPI application       |

flashc writes one entry module per resource at the archive root, named with the resource's name
as it is (`handler_my-model.py`; a name with `/`, a backslash or NUL gets none, since no file can
be called so). It puts the archive's `_flashc/` first on `sys.path` and calls `queue_handler` or
`load_balanced_app` here, which set the resource up as flashc's own endpoint does: the archive
root, `src/` and the resource's site folder come next on `sys.path` (the runtime's vendored
packages last), the Flash SDK's module names (`runpod_flash`, `tetra_rp`) are this runtime even
where the image imported its own copy before, `FLASHC_RESOURCE` names the resource, and its
generated handler is imported from `_flashc/flashc_handlers/`. Run as a program (`python
handler_<name>.py`), an entry module starts runpod-python's worker, which takes its flags
(`--test_input '{"input": {...}}'`, `--rp_serve_api`), or serves `app` with uvicorn on `$PORT`
(80), as the image would.

What the deploy sets on each endpoint:

| variable               | value                                                                       |
|------------------------|-----------------------------------------------------------------------------|
| `FLASH_RESOURCE_NAME`  | the resource's name, as the manifest has it: the image loads `handler_<it>.py` |
| `FLASH_ENDPOINT_TYPE`  | `lb` for a load-balanced resource, so that the image takes its `app`        |
| `FLASHC_ENDPOINTS`     | a JSON object: each resource this one calls, by name, and its endpoint id   |
| `RUNPOD_API_KEY`       | sent as `Authorization: Bearer` with every call to another endpoint         |
| `FLASHC_PICKLE_SECRET` | optional; one random value for every endpoint of the deployment (below)     |

Calls between resources: a function of the resource itself runs in-process; one of another
resource goes to the endpoint `FLASHC_ENDPOINTS` gives for its resource, as on the local target
(`/runsync` for queue-based resources, polling `/status`; the function's route for load-balanced
ones). With `FLASHC_PICKLE_SECRET`, a call to a queue-based resource travels as a pickle signed with
it, so that any Python value goes and comes back, as on the local target (an endpoint unpickles
only what that secret signed); without it, as JSON. An endpoint id becomes `https://api.runpod.ai/v2/<id>` or `https://<id>.api.runpod.ai`
(`RUNPOD_ENDPOINT_BASE_URL` moves both, as in runpod-python); a value starting with `http://` or
`https://` is the endpoint's base URL as it is. The manifest says which resources a resource's
functions call: an entry module warns on stderr at start-up about any that `FLASHC_ENDPOINTS`
leaves out. `Endpoint(id=...)` and `Endpoint(name=..., image=...)` clients look there too. Where
`FLASHC_ENDPOINTS` is not set, calls go to the deployment flashc made locally, as before.

Jobs behave as on the local target: the same input forms, the same errors for an input that names
nothing, one instance of a class per worker, a generator's items as a list, and a job that raises
ends FAILED with the same error text (type, message, traceback; printed on stderr as well). A
result that is not JSON fails the job (runpod-python would drop it and never answer). Three rules
of runpod-python apply to every output there and cannot be undone here: a dict's truthy `error`
key fails the job (the rest of the dict is its output), its `refresh_worker` key is removed, and an
empty dict is no output at all. The images start the worker with a plain handler, so a
generator's items come all at once, as its output; `/stream` has none.

Routes behave as on the local target by construction: `app` has `GET /ping` and one catch-all
route that hands every request to the same router, answered as flashc's server answers it
(`server.route_answer`): path parameters, the query (GET, DELETE) or the JSON body's keys (POST,
PUT, PATCH) as keyword arguments; 404, 405 and 400 with `{"error": ...}`; an HTTPException's
status with `{"detail": ...}`; 500 with the error text. FastAPI's `/docs` and `/openapi.json`
are off, so no route of the project is hidden behind them.

A resource that serves the project's own app (a seed-era mothership.py serving main.py's `app`)
has an entry module that hands the image that app itself (`project_app`), with `GET /ping` added
when it has none; its routes answer as the app answers them.

The images provide runpod, fastapi and uvicorn; they are imported only when needed here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .client import ENDPOINTS_ENV, RESOURCE_ENV, RemoteCallError, endpoints
from .handler import drain, failure_text
from .manifest import load_manifest

__all__ = ["load_balanced_app", "project_app", "queue_handler", "run_server", "run_worker"]

# Every method a route may have, and those a client may send anyway: the router answers them all.
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

Job = Mapping[str, Any]


def queue_handler(entry_file: str, resource: str) -> Callable[[Job], Awaitable[Any]]:
    """The job handler of the queue-based `resource` of the archive that holds `entry_file`, for
    `runpod.serverless.start`."""
    serve = _load(entry_file, resource).handler

    async def handler(job: Job) -> Any:
        try:
            output = await drain(await serve(job), _drop)
            json.dumps(output)  # an output runpod-python cannot send would leave the job unanswered
        except (Exception, SystemExit) as exc:  # user code, or an input that names nothing: the job fails
            text = failure_text(exc)
            print(f"flashc_runtime: job {job.get('id')} failed: {text}", file=sys.stderr, flush=True)
            return {"error": text}  # runpod-python fails the job with this error, as the local target does
        return output

    return handler


def load_balanced_app(entry_file: str, resource: str) -> Any:
    """The FastAPI application of the load-balanced `resource` of the archive that holds `entry_file`."""
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from .server import route_answer

    route = _load(entry_file, resource).handler

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def answer(request: Request) -> Response:
        body = await request.body()
        # The path as sent (its segments are decoded after the split, so %2F stays in its segment).
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        status, payload = await route_answer(route, request.method, path, dict(request.query_params), body)
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return Response(content, status_code=status, media_type="application/json")

    app = FastAPI(title=resource, docs_url=None, redoc_url=None, openapi_url=None)
    # Plain Starlette routes: the request goes to flashc's router as it came, unparsed by FastAPI.
    app.add_route("/ping", ping, methods=["GET"], include_in_schema=False)
    app.add_route("/{path:path}", answer, methods=list(_METHODS), include_in_schema=False)
    return app


def project_app(entry_file: str, resource: str) -> Any:
    """The project's own app that the load-balanced `resource` serves (a mothership's), itself, with
    a `GET /ping` added when it has none (`asgi.with_ping`)."""
    from .asgi import with_ping

    return with_ping(_load(entry_file, resource).app)


def run_worker(handler: Callable[[Job], Awaitable[Any]]) -> None:
    """Start runpod-python's worker with `handler`, as the queue-based image does (flags from `sys.argv`)."""
    import runpod

    runpod.serverless.start({"handler": handler})


def run_server(app: Any) -> None:
    """Serve `app` with uvicorn on all interfaces, port `$PORT` (80), as the load-balanced image does."""
    import uvicorn

    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "80")))


def _load(entry_file: str, resource: str) -> ModuleType:
    """Import `resource`'s generated handler module from the archive around `entry_file`."""
    import flashc_runtime

    from .server import import_resource

    root = Path(entry_file).resolve().parent
    # The image may have imported its own Flash SDK already: user code must get this runtime.
    for name in flashc_runtime.SDK_MODULES:
        sys.modules[name] = flashc_runtime
    os.environ[RESOURCE_ENV] = resource  # its own functions are called in-process
    module, _ = import_resource(root, resource)
    _warn_unreachable(root, resource)
    return module


def _warn_unreachable(root: Path, resource: str) -> None:
    """Say on stderr which resources the functions of `resource` call that `FLASHC_ENDPOINTS` does not place."""
    manifest = load_manifest(root / "flash_manifest.json")
    functions = manifest["functions"]
    called = {
        functions[callee]["resource"]
        for fid in manifest["resources"][resource]["functions"]
        for callee in functions[fid]["calls"]
    } - {resource}
    try:
        known = endpoints()
    except RemoteCallError as exc:
        print(f"flashc_runtime: {exc}", file=sys.stderr, flush=True)
        return
    missing = sorted(called - set(known or ()))
    if missing:
        print(
            f"flashc_runtime: resource '{resource}' calls functions of {', '.join(map(repr, missing))}, but "
            f"{ENDPOINTS_ENV} does not say where {'it is' if len(missing) == 1 else 'they are'} served: "
            "those calls will fail",
            file=sys.stderr,
            flush=True,
        )


def _drop(item: Any) -> None:
    """A generator's item as it comes: nothing streams on the stock images, the output is them all."""
