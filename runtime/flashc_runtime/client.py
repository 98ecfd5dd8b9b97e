"""Calling a @remote function: from local code to its deployed endpoint, or in-process on its own.

Local code (`await gpu_compute([1, 2, 3])`) finds the deployment of its project by walking up
from the function's source file to `.flash/deployment.json`, and sends the call to the
resource's endpoint: `/runsync` for queue-based resources (polling `/status` if the job outlives
the wait), the function's route for load-balanced ones. A failed job raises RemoteCallError with
the remote traceback text. Inside an endpoint, a function of the same resource is called
directly; one of another resource goes to that resource's endpoint the same way. On Runpod's
stock worker images there is no deployment file: there, `FLASHC_ENDPOINTS` says where each other
resource is served, and `RUNPOD_API_KEY` authorizes the call (the contract is in `stock.py`).

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

__all__ = ["ENDPOINTS_ENV", "RESOURCE_ENV", "RemoteCallError", "call_remote", "endpoints", "runpod_target"]

RESOURCE_ENV = "FLASHC_RESOURCE"  # set by the endpoint process: the resource it serves
ENDPOINTS_ENV = "FLASHC_ENDPOINTS"  # on Runpod's images: {resource name: endpoint id or base URL}
_RUNPOD_QUEUE_BASE = "https://api.runpod.ai/v2"
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
    route = bool(options.get("method") and options.get("path"))
    url, headers, secret = _endpoint_of(obj, config.name, load_balanced=route)
    name = getattr(obj, "__name__", str(obj))
    if route:
        try:  # a route takes named values: positional arguments are named by the signature
            named = dict(inspect.signature(obj).bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        return await asyncio.to_thread(_route_call, url, options["method"], options["path"], named, headers)
    if secret:  # signed pickles: any Python value travels, both ways
        from .signing import dumps, sign

        pickled = dumps((args, kwargs))
        job_input = {"function": name, "pickled": pickled, "signature": sign(secret, pickled)}
        output = await asyncio.to_thread(_job_call, url, {"input": job_input}, headers)
        return _unpickle(output)
    body = {"input": {"function": name, "args": list(args), "kwargs": kwargs}}
    return await asyncio.to_thread(_job_call, url, body, headers)


def _endpoint_of(obj: Any, resource: str, *, load_balanced: bool) -> tuple[str, dict[str, str], str | None]:
    """The base URL of `resource`'s endpoint, the headers a call sends, and the secret that signs
    pickles (None: calls travel as JSON). From `FLASHC_ENDPOINTS` where it is set (Runpod's stock
    images), else from the deployment flashc made for the project of `obj`."""
    known = endpoints()
    if known is not None:
        target = known.get(resource)
        if target is None:
            raise RemoteCallError(
                f"{ENDPOINTS_ENV} does not say where resource '{resource}' is served "
                f"(it names {', '.join(map(repr, sorted(known))) or 'none'}): the deploy sets it on every endpoint"
            )
        from .signing import SECRET_ENV

        return (*runpod_target(target, load_balanced=load_balanced), os.environ.get(SECRET_ENV) or None)
    deployment, root = _find_deployment(obj)
    endpoint = deployment.get("endpoints", {}).get(resource)
    if endpoint is None:
        raise RemoteCallError(
            f"resource '{resource}' is not part of the deployment of {root}: run `flashc deploy` there"
        )
    if deployment.get("target") == "runpod":  # the file holds no key: the caller's RUNPOD_API_KEY is it
        if not os.environ.get("RUNPOD_API_KEY"):
            raise RemoteCallError(f"set RUNPOD_API_KEY to call resource '{resource}' on Runpod")
        return (*runpod_target(endpoint["endpoint_id"], load_balanced=load_balanced), None)
    headers = {"Authorization": f"Bearer {deployment['key']}", "Content-Type": "application/json"}
    return endpoint["url"], headers, deployment.get("secret")


def endpoints() -> dict[str, str] | None:
    """`FLASHC_ENDPOINTS`, the endpoint id or base URL of each resource by name; None where it is not set."""
    text = os.environ.get(ENDPOINTS_ENV)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
        raise RemoteCallError(
            f'{ENDPOINTS_ENV} must be a JSON object of resource names and endpoint ids, like {{"gpu": "abc123"}}; '
            f"it is {text[:200]!r}"
        )
    return data


def runpod_target(target: str, *, load_balanced: bool) -> tuple[str, dict[str, str]]:
    """The base URL of a Runpod endpoint given by id (or by its URL already) and the headers a call sends.

    A queue-based endpoint is `https://api.runpod.ai/v2/<id>`, a load-balanced one `https://<id>.api.runpod.ai`;
    `RUNPOD_ENDPOINT_BASE_URL` moves both, as in runpod-python. `RUNPOD_API_KEY` is the bearer token.
    """
    base = os.environ.get("RUNPOD_ENDPOINT_BASE_URL", _RUNPOD_QUEUE_BASE).rstrip("/")
    if target.startswith(("http://", "https://")):
        url = target.rstrip("/")
    elif load_balanced:
        from urllib.parse import urlsplit

        url = f"https://{target}.{urlsplit(base).netloc}"
    else:
        url = f"{base}/{target}"
    headers = {"Content-Type": "application/json"}
    key = os.environ.get("RUNPOD_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return url, headers


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
