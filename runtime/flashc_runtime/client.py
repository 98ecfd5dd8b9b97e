"""Calling a @remote function: from local code to its deployed endpoint, or in-process on its own.

Local code (`await gpu_compute([1, 2, 3])`) finds the deployment of its project by walking up
from the function's source file to `.flash/deployment.json`, and sends the call to the
resource's endpoint: `/runsync` for queue-based resources (polling `/status` if the job outlives
the wait), the function's route for load-balanced ones. A failed job raises RemoteCallError with
the remote traceback text. Inside an endpoint, a function of the same resource is called
directly; one of another resource goes to that resource's endpoint the same way.

Only the standard library is used (urllib in a worker thread), so the runtime stays light.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .decorator import RemoteCallError

__all__ = ["RESOURCE_ENV", "RemoteCallError", "call_remote"]

RESOURCE_ENV = "FLASHC_RESOURCE"  # set by the endpoint process: the resource it serves
_DEPLOYMENT = Path(".flash") / "deployment.json"
_POLL = 0.2


async def call_remote(obj: Any, options: Mapping[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run `obj` (the decorated function or class) where it is deployed, and return its result."""
    config = options["resource_config"]
    if inspect.isclass(obj):
        raise RemoteCallError(
            f"{obj.__qualname__} is a remote class: send jobs naming its method to endpoint '{config.name}' "
            '({"input": {"function": ..., "method": ..., "args": [...]}}); local instances are not proxied yet'
        )
    if os.environ.get(RESOURCE_ENV) == config.name:
        result = obj(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result
    deployment, root = _find_deployment(obj)
    endpoint = deployment.get("endpoints", {}).get(config.name)
    if endpoint is None:
        raise RemoteCallError(
            f"resource '{config.name}' is not part of the deployment of {root}: run `flashc deploy` there"
        )
    headers = {"Authorization": f"Bearer {deployment['key']}", "Content-Type": "application/json"}
    name = getattr(obj, "__name__", str(obj))
    if options.get("method") and options.get("path"):
        try:  # a route takes named values: positional arguments are named by the signature
            named = dict(inspect.signature(obj).bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        return await asyncio.to_thread(_route_call, endpoint["url"], options["method"], options["path"], named, headers)
    secret = deployment.get("secret")
    if secret:  # signed pickles: any Python value travels, both ways
        from .signing import dumps, sign

        pickled = dumps((args, kwargs))
        job_input = {"function": name, "pickled": pickled, "signature": sign(secret, pickled)}
        output = await asyncio.to_thread(_job_call, endpoint["url"], {"input": job_input}, headers)
        return _unpickle(output)
    body = {"input": {"function": name, "args": list(args), "kwargs": kwargs}}
    return await asyncio.to_thread(_job_call, endpoint["url"], body, headers)


def _unpickle(output: Any) -> Any:
    import base64
    import pickle

    if isinstance(output, dict) and set(output) == {"pickled"}:
        return pickle.loads(base64.b64decode(output["pickled"]))
    return output


def _find_deployment(obj: Any) -> tuple[dict[str, Any], Path]:
    try:
        source = Path(inspect.getfile(obj)).resolve()
    except TypeError:
        source = Path.cwd() / "_"
    for folder in source.parents:
        path = folder / _DEPLOYMENT
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data, folder
    raise RemoteCallError(
        f"{getattr(obj, '__qualname__', obj)} is not deployed: no .flash/deployment.json above {source.parent}; "
        "run `flashc deploy` in the project first"
    )


def _request(url: str, data: Any, headers: Mapping[str, str], method: str, timeout: float = 600) -> Any:
    import urllib.error
    import urllib.request

    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise RemoteCallError(f"{method} {url} answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise RemoteCallError(
            f"cannot reach {url}: {exc.reason}; is the deployment running? (`flashc status`)"
        ) from None


def _job_call(base: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> Any:
    job = _request(f"{base}/runsync", body, headers, "POST")
    while job.get("status") in ("IN_QUEUE", "IN_PROGRESS"):
        time.sleep(_POLL)
        job = _request(f"{base}/status/{job['id']}", None, headers, "GET")
    if job.get("status") == "COMPLETED":
        return job.get("output")
    raise RemoteCallError(f"the job ended {job.get('status')}: {job.get('error', '')}".rstrip(": "))


def _route_call(base: str, method: str, path: str, kwargs: dict[str, Any], headers: Mapping[str, str]) -> Any:
    from urllib.parse import quote, urlencode

    rest = dict(kwargs)
    for key in list(rest):
        if "{" + key + "}" in path:
            path = path.replace("{" + key + "}", quote(str(rest.pop(key)), safe=""))
    if method in ("GET", "DELETE"):
        query = f"?{urlencode(rest)}" if rest else ""
        return _request(f"{base}{path}{query}", None, headers, method)
    return _request(f"{base}{path}", rest, headers, method)
