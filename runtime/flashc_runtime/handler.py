"""The handler factory that generated handler modules call: a registry of user objects in, a job handler out.

A job is Runpod's envelope, `{"id": ..., "input": {...}}`, and the input names what to call:

    {"function": "process" | "workers.gpu:process", "args": [...], "kwargs": {...}}
    {"function": "Embedder", "method": "embed", "args": [...], "init": {"args": [...], "kwargs": {...}}}

`function` may be left out when the endpoint serves a single function or class; there, an input
without any of these keys is the function's keyword arguments, as the Flash SDK sends them
(`{"input_data": {...}}`). `method` picks a public method of a class (and may be left out when the
class has one); `init` holds the arguments its constructor takes (none when left out). The handler
is a coroutine function, as Runpod's worker loop accepts: sync functions run in a worker thread,
async ones on the event loop.

A class is instantiated on first use and kept: one instance per worker process for each distinct
`init`, the least recently used dropped past `MAX_INSTANCES` of one class. So the handle local
code gets from `Embedder(dims=8)` reaches the same instance call after call. In a signed pickled
input (see `signing.py`), `init` is `{"pickled": ..., "signature": ...}` itself, signed alike:
`(args, kwargs)` of the constructor.

Problems with the request raise `RequestError` (the caller answers 400 or fails the job); an
exception raised by user code propagates unchanged, so the job ends FAILED with its traceback.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .signing import dumps, init_problem, loads_call, signature_problem

__all__ = [
    "MAX_INSTANCES",
    "Call",
    "RequestError",
    "create_handler",
    "create_resolver",
    "drain",
    "failure_text",
    "in_thread",
    "strict_json",
]

Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]
_ENVELOPE = frozenset({"function", "args", "kwargs", "method", "init", "pickled", "signature", "issued", "nonce"})
MAX_INSTANCES = 8  # instances of one class a worker keeps, for as many distinct constructor arguments
_NO_INIT = ("json", "[[], {}]")  # the instance key of a class built without arguments


class RequestError(ValueError):
    """The job's input does not say what to call, or how to call it."""


@dataclasses.dataclass(frozen=True)
class Call:
    """A job's input, resolved: the user callable to run, its arguments, and how its result travels."""

    target: Callable[..., Any]
    args: list[Any]
    kwargs: Mapping[str, Any]
    pickled: bool  # the arguments came pickled, so the result goes back pickled
    nonce: str = ""  # of a pickled call: the result is signed for it

    def wrap(self, result: Any) -> Any:
        if not self.pickled:
            return result
        import os

        from .signing import SECRET_ENV, sign_result

        return sign_result(os.environ.get(SECRET_ENV, ""), self.nonce, dumps(result))


def create_resolver(registry: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Call]:
    """What a job asks to call in `registry` (function ids, `module:qualname`, to user objects).

    The returned function raises `RequestError` or `LookupError` for an input that names nothing
    it can call. A class is instantiated on the first job that uses it with its `init`, and kept.
    """
    from collections import OrderedDict

    targets = {fid: getattr(obj, "__wrapped__", obj) for fid, obj in registry.items()}
    by_name: dict[str, list[str]] = {}
    for fid in targets:
        by_name.setdefault(fid.rpartition(":")[2], []).append(fid)
    instances: dict[str, OrderedDict[tuple[str, str], Any]] = {}
    lock = threading.Lock()

    def instance(fid: str, cls: type, init: Any, nonce: str) -> Any:
        key, build = _constructor(fid, init, nonce)
        with lock:  # one instance per init, even when jobs arrive together
            kept = instances.setdefault(fid, OrderedDict())
            if key in kept:
                kept.move_to_end(key)
                return kept[key]
            args, kwargs = build()
            kept[key] = obj = cls(*args, **kwargs)
            if len(kept) > MAX_INSTANCES:
                kept.popitem(last=False)
            return obj

    def pick(job_input: Mapping[str, Any]) -> str:
        name = job_input.get("function")
        if name is None:
            if len(targets) == 1:
                return next(iter(targets))
            raise RequestError(f"input has no 'function'; this endpoint serves: {', '.join(sorted(targets))}")
        if not isinstance(name, str):
            raise RequestError("'function' must be a string")
        if name in targets:
            return name
        matches = by_name.get(name, [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RequestError(f"'{name}' is ambiguous here: use one of {', '.join(sorted(matches))}")
        raise LookupError(f"unknown function '{name}'; this endpoint serves: {', '.join(sorted(targets))}")

    def resolve(job: Mapping[str, Any]) -> Call:
        job_input = job.get("input") if isinstance(job, Mapping) else None
        if job_input is None:
            job_input = {}
        if not isinstance(job_input, Mapping):
            raise RequestError(f"'input' must be an object, not {type(job_input).__name__}")
        problem = signature_problem(job_input)
        if problem is not None:
            raise RequestError(problem)
        pickled = "pickled" in job_input
        args: Any
        kwargs: Any
        if len(targets) == 1 and job_input and not _ENVELOPE.intersection(job_input):
            # The SDK's own form, {"input": {"input_data": {...}}}: the input is the keyword arguments.
            args, kwargs = [], dict(job_input)
        elif pickled:
            args, kwargs = loads_call(job_input)
        else:
            args, kwargs = job_input.get("args", []), job_input.get("kwargs", {})
        if not isinstance(args, list):
            raise RequestError("'args' must be a list")
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise RequestError("'kwargs' must be an object with string keys")
        fid = pick(job_input)
        target = targets[fid]
        if inspect.isclass(target):
            nonce = str(job_input.get("nonce", ""))
            target = _method(instance(fid, target, job_input.get("init"), nonce), fid, job_input.get("method"))
        elif job_input.get("method") is not None:
            raise RequestError(f"'{fid}' is a function: 'method' does not apply")
        elif job_input.get("init") is not None:
            raise RequestError(f"'{fid}' is a function: 'init' does not apply")
        return Call(target, args, kwargs, pickled, str(job_input.get("nonce", "")))

    return resolve


def create_handler(registry: Mapping[str, Any]) -> Handler:
    """A job handler over `registry`, which maps function ids (`module:qualname`) to user objects."""
    resolve = create_resolver(registry)

    async def handler(job: Mapping[str, Any]) -> Any:
        call = resolve(job)
        if inspect.iscoroutinefunction(call.target):
            result = await call.target(*call.args, **call.kwargs)
        else:
            result = await in_thread(call.target, *call.args, **call.kwargs)
            if inspect.isawaitable(result):
                result = await result
        return call.wrap(result)

    return handler


async def drain(output: Any, emit: Callable[[Any], None]) -> Any:
    """A generator's items, each passed to `emit` as it comes and all returned as a list;
    anything else is returned as it is. Sync generators advance in a worker thread."""
    if inspect.isasyncgen(output):
        items = []
        async for item in output:
            emit(item)
            items.append(item)
        return items
    if inspect.isgenerator(output):
        done = object()
        items = []
        while (item := await in_thread(next, output, done)) is not done:
            emit(item)
            items.append(item)
        return items
    return output


def failure_text(exc: BaseException) -> str:
    """The error a failed job or route carries: type, message and the traceback text."""
    import traceback  # only when something failed: it is not needed to start

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{text}"


async def in_thread(target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run sync user code off the event loop. asyncio is imported here, on the first job, because
    importing it costs a third of the runtime's cold start and a worker only needs it to serve."""
    import asyncio

    return await asyncio.to_thread(target, *args, **kwargs)


def _constructor(
    fid: str, init: Any, nonce: str
) -> tuple[tuple[str, str], Callable[[], tuple[list[Any], dict[str, Any]]]]:
    """The key of the instance `init` asks for, and how to get its constructor's arguments.

    Equal JSON arguments are one key; a pickle is keyed by its text and unpickled only when its
    instance is made, after its signature is checked."""
    if init is None:
        return _NO_INIT, lambda: ([], {})
    if not isinstance(init, Mapping):
        raise RequestError(f"'init' of '{fid}' must be an object, not {type(init).__name__}")
    if "pickled" in init:
        problem = init_problem(init, nonce)
        if problem is not None:
            raise RequestError(f"'init': {problem}")
        pickled = init["pickled"]
        return ("pickled", pickled), lambda: loads_call({"pickled": pickled})
    unknown = sorted(set(init) - {"args", "kwargs"})
    if unknown:
        raise RequestError(f"'init' takes 'args' and 'kwargs', not {', '.join(map(repr, unknown))}")
    args, kwargs = init.get("args", []), init.get("kwargs", {})
    if not isinstance(args, list):
        raise RequestError("'init' 'args' must be a list")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise RequestError("'init' 'kwargs' must be an object with string keys")
    import json

    try:
        key = json.dumps([args, kwargs], sort_keys=True)
    except (TypeError, ValueError):
        raise RequestError("'init' must hold JSON values, or be a signed pickle") from None
    return ("json", key), lambda: (list(args), dict(kwargs))


def _method(obj: Any, fid: str, name: Any) -> Callable[..., Any]:
    public = sorted(
        n
        for n, member in inspect.getmembers(type(obj))
        if not n.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
    )
    if name is None:
        if len(public) == 1:
            name = public[0]
        else:
            raise RequestError(f"'{fid}' is a class: say which 'method' to call ({', '.join(public)})")
    if not isinstance(name, str) or name not in public:
        raise LookupError(f"'{fid}' has no public method '{name}'; it has: {', '.join(public)}")
    method: Callable[..., Any] = getattr(obj, name)
    return method


def strict_json(value: Any) -> bytes:
    """`value` as strict JSON: NaN and the infinities have no JSON form (strict parsers refuse them),
    so a result holding one fails with a ValueError that says so."""
    try:
        return json.dumps(value, allow_nan=False).encode()
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        raise ValueError(
            "the result holds NaN or Infinity, which JSON cannot carry (strict parsers refuse them): "
            "return None or a string such as 'nan' in their place"
        ) from None
