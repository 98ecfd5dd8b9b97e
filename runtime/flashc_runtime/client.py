"""Calling a @remote function: from local code to its deployed endpoint, or in-process on its own.

Local code (`await gpu_compute([1, 2, 3])`) finds the deployment of its project by walking up
from the function's source file to `.flash/deployment.json`, and sends the call to the
resource's endpoint: `/runsync` for queue-based resources (polling `/status` if the job outlives
the wait), the function's route for load-balanced ones. A failed job raises RemoteCallError with
the remote traceback text. Inside an endpoint, a function of the same resource is called
directly; one of another resource goes to that resource's endpoint the same way. On Runpod's
stock worker images there is no deployment file: there, `FLASHC_ENDPOINTS` says where each other
resource is served, and `RUNPOD_API_KEY` authorizes the call (the contract is in `stock.py`).
To an endpoint flashc runs on this machine, a call sends a proof of the deployment's key rather
than the key, and reads an answer only when it proves it comes from that endpoint (`auth.py`).

A remote class instantiated in local code (`e = Embedder(dims=8)`) is a `RemoteInstance`: its
public methods are awaitable calls to one instance on the endpoint, the constructor's arguments
travelling with each job (`"init"`, see `handler.py`). Arguments are bound as a local call binds
them: a route's positional arguments are named by its signature (`await get_item(7)` is
`GET /items/7`).

Before the first call leaves the process, the Flash SDK's module names (`tetra_rp`,
`runpod_flash`) must lead to this runtime: where the SDK itself is installed beside flashc, code
importing them would call Runpod's cloud, so nothing is sent and RemoteCallError says what to do.

Only the standard library is used (urllib in a worker thread), so the runtime stays light.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .decorator import RemoteCallError

__all__ = [
    "ENDPOINTS_ENV",
    "RESOURCE_ENV",
    "SDK_MODULE_NAMES",
    "RemoteCallError",
    "RemoteInstance",
    "call_remote",
    "endpoints",
    "ensure_sdk_is_this_runtime",
    "route_arguments",
    "runpod_target",
    "sdk_problem",
]

RESOURCE_ENV = "FLASHC_RESOURCE"  # set by the endpoint process: the resource it serves
ENDPOINTS_ENV = "FLASHC_ENDPOINTS"  # on Runpod's images: {resource name: endpoint id or base URL}
_RUNPOD_QUEUE_BASE = "https://api.runpod.ai/v2"


@dataclasses.dataclass(frozen=True)
class Identity:
    """An endpoint flashc runs on this machine, as its deployment knows it: each request carries a
    proof of `key` for this endpoint, and each answer must prove it comes from it."""

    key: str
    endpoint_id: str


_DEPLOYMENT = Path(".flash") / "deployment.json"
_POLL = 0.2
TRACE_ENV = "FLASHC_TRACE_CALLS"  # set by `flashc run` in its app server: each remote call on stderr
SDK_MODULE_NAMES = ("tetra_rp", "runpod_flash")  # the Flash SDK's names, which flashc makes this runtime's
_SDK_DISTRIBUTIONS = {"tetra_rp": "tetra-rp", "runpod_flash": "runpod-flash"}
_sdk_checked = False


async def call_remote(
    obj: Any,
    options: Mapping[str, Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    method: str | None = None,
    init: tuple[tuple[Any, ...], Mapping[str, Any]] = ((), {}),
) -> Any:
    """Run `obj` (the decorated function) where it is deployed, and return its result; for a class,
    its `method` on the endpoint's instance made with the constructor arguments `init`."""
    config = options["resource_config"]
    if inspect.isclass(obj) and method is None:
        raise RemoteCallError(f"{obj.__qualname__} is a remote class: call a method of an instance, {obj.__name__}()")
    if os.environ.get(RESOURCE_ENV) == config.name and method is None:
        result = obj(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result
    ensure_sdk_is_this_runtime(f"the call to {getattr(obj, '__qualname__', obj)}")
    if os.environ.get(TRACE_ENV):
        return await _traced(obj, config.name, method, _call_endpoint(obj, options, args, kwargs, method, init))
    return await _call_endpoint(obj, options, args, kwargs, method, init)


async def _traced(obj: Any, resource: str, method: str | None, call: Any) -> Any:
    """Await `call`, and say on stderr what it was, how it ended and how long it took (`flashc run`)."""
    import sys

    what = f"{resource}: {getattr(obj, '__name__', obj)}{'.' + method if method else ''}()"
    started = time.monotonic()
    try:
        result = await call
    except BaseException as exc:
        print(f"  -> {what} FAILED in {time.monotonic() - started:.2f} s: {exc}", file=sys.stderr, flush=True)
        raise
    print(f"  -> {what} COMPLETED in {time.monotonic() - started:.2f} s", file=sys.stderr, flush=True)
    return result


async def _call_endpoint(
    obj: Any,
    options: Mapping[str, Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    method: str | None,
    init: tuple[tuple[Any, ...], Mapping[str, Any]],
) -> Any:
    config = options["resource_config"]
    route = bool(options.get("method") and options.get("path"))
    url, headers, secret, identity = _endpoint_of(obj, config.name, load_balanced=route)
    if route:
        named = route_arguments(obj, options["path"], args, kwargs)
        return await asyncio.to_thread(_route_call, url, options["method"], options["path"], named, headers, identity)
    job_input: dict[str, Any] = {"function": getattr(obj, "__name__", str(obj))}
    if method is not None:
        job_input["method"] = method
    init_args, init_kwargs = init
    if secret:  # signed pickles: any Python value travels, both ways
        from .signing import dumps, sign, sign_call

        pickled = dumps((args, dict(kwargs)))
        job_input.update(sign_call(secret, job_input["function"], method, pickled))
        if init_args or init_kwargs:
            made = dumps((init_args, dict(init_kwargs)))
            job_input["init"] = {"pickled": made, "signature": sign(secret, "init", job_input["nonce"], made)}
        output = await asyncio.to_thread(_job_call, url, {"input": job_input}, headers, identity)
        return _unpickle(output, secret, job_input["nonce"])
    job_input.update(args=list(args), kwargs=dict(kwargs))
    if init_args or init_kwargs:
        job_input["init"] = {"args": list(init_args), "kwargs": dict(init_kwargs)}
    return await asyncio.to_thread(_job_call, url, {"input": job_input}, headers, identity)


class RemoteInstance:
    """What `Embedder(dims=8)` gives local code for a remote class: each public method is an awaitable
    call (`await e.embed("abc")`) to one instance on the endpoint, made there with these constructor
    arguments and kept (one per distinct arguments, see `handler.py`). Arguments are checked against
    the signatures here, as a local call would check them. Inside an endpoint of the class's own
    resource, the handle holds a local instance instead."""

    def __init__(self, cls: type, options: Mapping[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        try:
            bound = inspect.signature(cls).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}(): {exc}") from None
        self._cls = cls
        self._options = options
        # As bound, so that `Embedder(8)` and `Embedder(dims=8)` name one instance on the endpoint.
        self._init = (bound.args, bound.kwargs)
        self._methods = _public_methods(cls)
        self._here: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # private names, and ours before __init__ set them (copy, pickle)
            raise AttributeError(name)
        if name not in self._methods:
            raise AttributeError(
                f"a remote {self._cls.__name__} has no method '{name}' to call "
                f"(its public methods: {', '.join(self._methods)}); its attributes stay on the endpoint"
            )
        return _RemoteMethod(self, name)

    def __repr__(self) -> str:
        args, kwargs = self._init
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        return f"<remote {self._cls.__name__}({shown}) on '{self._options['resource_config'].name}'>"

    async def _call(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if os.environ.get(RESOURCE_ENV) == self._options["resource_config"].name:
            if self._here is None:
                self._here = self._cls(*self._init[0], **self._init[1])
            result = getattr(self._here, method)(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        return await call_remote(self._cls, self._options, args, kwargs, method=method, init=self._init)


class _RemoteMethod:
    """`handle.embed`: calling it checks the arguments at once and returns the remote call to await."""

    def __init__(self, handle: RemoteInstance, name: str) -> None:
        self._handle = handle
        self.__name__ = name
        member = inspect.getattr_static(handle._cls, name)
        function = getattr(handle._cls, name)
        signature = inspect.signature(function)
        if not isinstance(member, (staticmethod, classmethod)):  # the instance is bound on the endpoint
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        self._signature = signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self._handle._cls.__name__}.{self.__name__}(): {exc}") from None
        return self._handle._call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._handle._cls.__name__}.{self.__name__} of {self._handle!r}>"


def _public_methods(cls: type) -> list[str]:
    """The methods a job may name, as the handler serves them."""
    return sorted(
        n
        for n, member in inspect.getmembers(cls)
        if not n.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
    )


def ensure_sdk_is_this_runtime(what: str) -> None:
    """RemoteCallError, before `what` is sent anywhere, where the Flash SDK's module names lead to the
    SDK itself rather than to this runtime: code importing them would call Runpod's cloud. Checked
    until it passes once; inside an endpoint the runtime has put its own names in place."""
    global _sdk_checked
    if _sdk_checked or os.environ.get(RESOURCE_ENV):
        return
    problem = sdk_problem()
    if problem is not None:
        message, remedy = problem
        raise RemoteCallError(f"{what} was not sent: {message}; {remedy}")
    _sdk_checked = True


def sdk_problem() -> tuple[str, str] | None:
    """Why the Flash SDK's module names (`tetra_rp`, `runpod_flash`) do not lead to this runtime here,
    and what to do about it; None when they do, or are not there at all.

    Nothing of the SDK is imported: a name already imported must be this runtime, and a name not
    imported yet must be found in one of flashc's alias modules (a file naming `flashc_runtime`).
    """
    import sys

    this = sys.modules[__package__ or "flashc_runtime"]
    found: list[tuple[str, str]] = []  # (module name, where Python gets it)
    for name in SDK_MODULE_NAMES:
        module = sys.modules.get(name)
        if module is this:
            continue
        if module is not None:
            found.append((name, str(getattr(module, "__file__", None) or module)))
            continue
        import importlib.util

        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or (spec.origin and _is_alias(spec.origin)):
            continue
        found.append((name, spec.origin or ", ".join(spec.submodule_search_locations or ()) or name))
    if not found:
        return None
    import importlib.metadata

    distributions = []
    for name, _ in found:
        try:
            dist = importlib.metadata.distribution(_SDK_DISTRIBUTIONS[name])
        except importlib.metadata.PackageNotFoundError:
            continue
        distributions.append((dist.metadata["Name"] or _SDK_DISTRIBUTIONS[name], dist.version))
    shown = "; ".join(f"`import {name}` gives {where}" for name, where in found)
    installed = ", ".join(f"{name} {version}" for name, version in distributions)
    message = (
        f"the Flash SDK{f' ({installed})' if installed else ''} is installed in this Python environment and replaces "
        f"flashc's own module names ({shown}), so local calls of @remote functions would go to Runpod's cloud, "
        "not to flashc's endpoints"
    )
    python = sys.executable or "python"
    if distributions:
        remedy = (
            f"uninstall it from this environment ({sys.prefix}): `{python} -m pip uninstall "
            f"{' '.join(name for name, _ in distributions)}`, or keep the Flash SDK in a separate virtual environment"
        )
    else:
        folders = sorted({str(Path(where).parent.parent) for _, where in found if Path(where).is_absolute()})
        remedy = (
            f"take {', '.join(folders)} off the module search path (PYTHONPATH), or out of this environment"
            if folders
            else "remove it from this environment, or keep the Flash SDK in a separate virtual environment"
        )
    runtime_home = Path(this.__file__ or ".").resolve().parent.parent
    if any(Path(where).is_absolute() and Path(where).resolve().parent.parent == runtime_home for _, where in found):
        remedy += "; then reinstall flashc, whose alias modules the SDK's files overwrote"
    return message, remedy


def _is_alias(origin: str) -> bool:
    """Whether the module file at `origin` is one of flashc's aliases (`sys.modules[__name__] = flashc_runtime`)."""
    try:
        return b"flashc_runtime" in Path(origin).read_bytes()
    except OSError:
        return False


def route_arguments(func: Any, path: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The named values a call of the route function `func` sends, bound as a local call binds them.

    A route takes only named values, so positional arguments are named by the signature and
    `**kwargs` are spread; a path parameter left out takes its default. TypeError, as a local call
    would raise it, for arguments that do not fit.
    """
    name = getattr(func, "__name__", "route")
    signature = inspect.signature(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}(): {exc}") from None
    named: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(f"{name}(): a route takes named values only, so *{key} cannot travel")
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[key] = value
    for key, parameter in signature.parameters.items():
        if "{" + key + "}" in path and key not in named:
            if parameter.default is inspect.Parameter.empty:
                raise TypeError(f"{name}(): path parameter '{key}' of {path} has no value")
            named[key] = parameter.default
    return named


def _endpoint_of(
    obj: Any, resource: str, *, load_balanced: bool
) -> tuple[str, dict[str, str], str | None, Identity | None]:
    """The base URL of `resource`'s endpoint, the headers a call sends, the secret that signs
    pickles (None: calls travel as JSON), and the endpoint's identity where flashc runs it on this
    machine. From `FLASHC_ENDPOINTS` where it is set (Runpod's stock images), else from the
    deployment flashc made for the project of `obj`."""
    known = endpoints()
    if known is not None:
        target = known.get(resource)
        if target is None:
            raise RemoteCallError(
                f"{ENDPOINTS_ENV} does not say where resource '{resource}' is served "
                f"(it names {', '.join(map(repr, sorted(known))) or 'none'}): the deploy sets it on every endpoint"
            )
        from .signing import SECRET_ENV

        return (*runpod_target(target, load_balanced=load_balanced), os.environ.get(SECRET_ENV) or None, None)
    deployment, root = _find_deployment(obj)
    endpoint = deployment.get("endpoints", {}).get(resource)
    if endpoint is None:
        raise RemoteCallError(
            f"resource '{resource}' is not part of the deployment of {root}: run `flashc deploy` there"
        )
    if deployment.get("target") == "runpod":  # the file holds no key: the caller's RUNPOD_API_KEY is it
        if not os.environ.get("RUNPOD_API_KEY"):
            raise RemoteCallError(f"set RUNPOD_API_KEY to call resource '{resource}' on Runpod")
        return (*runpod_target(endpoint["endpoint_id"], load_balanced=load_balanced), None, None)
    identity = Identity(deployment["key"], endpoint["endpoint_id"])
    return endpoint["url"], {"Content-Type": "application/json"}, deployment.get("secret"), identity


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


def _unpickle(output: Any, secret: str, nonce: str) -> Any:
    """The result of a signed pickled call: unpickled only when it is signed for that call."""
    import base64
    import pickle

    from .signing import result_problem

    if isinstance(output, dict) and "pickled" in output:
        problem = result_problem(output, secret, nonce)
        if problem is not None:
            raise RemoteCallError(
                f"{problem}: refused unread; the endpoint that answered may not be the one deployed "
                "(`flashc status`, then `flashc deploy`)"
            )
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


def _request(
    url: str, data: Any, headers: Mapping[str, str], method: str, timeout: float = 600, identity: Identity | None = None
) -> Any:
    import http.client
    import urllib.error
    import urllib.request

    body = None if data is None else json.dumps(data).encode()
    sent = dict(headers)
    nonce = ""
    if identity is not None:
        from urllib.parse import urlsplit

        from ._http import parse_query
        from .auth import request_auth

        parts = urlsplit(url)
        sent["Authorization"], nonce = request_auth(
            identity.key, identity.endpoint_id, method, parts.path, parse_query(parts.query), body or b""
        )
    request = urllib.request.Request(url, data=body, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, answer, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, answer, answer_headers = exc.code, exc.read(), exc.headers
    except urllib.error.URLError as exc:
        raise RemoteCallError(
            f"cannot reach {url}: {exc.reason}; is the deployment running? (`flashc status`)"
        ) from None
    except (http.client.HTTPException, OSError) as exc:  # cut off mid-answer, or a reset
        raise RemoteCallError(f"{method} {url}: the answer did not arrive whole ({exc!r})") from None
    if identity is not None:
        _check_answer(identity, nonce, url, method, status, answer, answer_headers)
    if status >= 400:
        detail = answer.decode(errors="replace")
        raise RemoteCallError(f"{method} {url} answered {status}: {detail}")
    return json.loads(answer or b"null")


def _check_answer(
    identity: Identity, nonce: str, url: str, method: str, status: int, answer: bytes, headers: Any
) -> None:
    """Read an answer only when it proves it comes from the endpoint `identity` names. Refusals the
    HTTP layer sends before a request is read whole (a full server, a body too large) carry no
    proof and are reported as they are; a 401 means the endpoint there does not hold the key."""
    from .auth import PROOF_HEADER, answer_problem

    problem = answer_problem(headers.get(PROOF_HEADER), identity.key, identity.endpoint_id, nonce, status, answer)
    if problem is None or (status >= 400 and status not in (401, 403)):
        return
    raise RemoteCallError(
        f"{method} {url} answered {status}, and the answer was refused unread: {problem} "
        f"({identity.endpoint_id}); another process may hold its port: `flashc status`, then `flashc deploy`"
    )


def _job_call(base: str, body: Mapping[str, Any], headers: Mapping[str, str], identity: Identity | None = None) -> Any:
    job = _request(f"{base}/runsync", body, headers, "POST", identity=identity)
    status = None
    while job.get("status") in ("IN_QUEUE", "IN_PROGRESS"):
        if os.environ.get(TRACE_ENV) and job["status"] != status:  # the job's progress, as the seed shows it
            import sys

            status = job["status"]
            print(f"     job {job.get('id')} {status}", file=sys.stderr, flush=True)
        time.sleep(_POLL)
        job = _request(f"{base}/status/{job['id']}", None, headers, "GET", identity=identity)
    if job.get("status") == "COMPLETED":
        return job.get("output")
    raise RemoteCallError(f"the job ended {job.get('status')}: {job.get('error', '')}".rstrip(": "))


def _route_call(
    base: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    headers: Mapping[str, str],
    identity: Identity | None = None,
) -> Any:
    from urllib.parse import quote, urlencode

    rest = dict(kwargs)
    for key in list(rest):
        if "{" + key + "}" in path:
            path = path.replace("{" + key + "}", quote(_as_text(rest.pop(key)), safe=""))
    if method in ("GET", "DELETE"):
        # None is no value: the route's default applies, as FastAPI's would for a missing parameter.
        sent = {k: _as_text(v) for k, v in rest.items() if v is not None}
        query = f"?{urlencode(sent)}" if sent else ""
        return _request(f"{base}{path}{query}", None, headers, method, identity=identity)
    return _request(f"{base}{path}", {k: _as_json(v) for k, v in rest.items()}, headers, method, identity=identity)


def _as_text(value: Any) -> str:
    """A path or query value as the route reads it back: `true` for True, an Enum by its value."""
    import enum

    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_json(value: Any) -> Any:
    import enum

    return value.value if isinstance(value, enum.Enum) else value
