"""The route handler factory for load-balanced endpoints: `{(method, path): user object}` in, a request handler out.

The handler is framework-free: an HTTP server calls `await handle(method, path, query=..., body=...)`
with the parsed JSON body and maps the outcome to a response. A template is made of exact segments
and `{name}` parameters, one segment each; a trailing slash is ignored, and when two templates match,
the one with a static segment further left wins (`/items/new` beats `/items/{id}`).

Arguments are keyword arguments: path parameters (strings), plus the query parameters for GET and
DELETE (strings) or the keys of the JSON object body for POST, PUT and PATCH. They are checked
against the function's signature before it is called. Sync functions run in a worker thread,
async ones on the event loop.

    LookupError
    ├── RouteNotFound       no template matches the path (404)
    └── MethodNotAllowed    a template matches, but not for this method (405)
    RequestError            the arguments do not fit the function (400)

An exception raised by user code propagates unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .handler import RequestError, in_thread

__all__ = ["MethodNotAllowed", "RouteHandler", "RouteKey", "RouteNotFound", "create_route_handler"]

RouteKey = tuple[str, str]
"""`(method, path template)`, e.g. `("GET", "/items/{item_id}")`."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RouteHandler(Protocol):
    async def __call__(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None
    ) -> Any: ...


class RouteNotFound(LookupError):
    """No route's template matches the request's path."""

    def __init__(self, method: str, path: str, routes: list[str]) -> None:
        super().__init__(f"no route for {method} {path}; routes: {', '.join(routes)}")
        self.routes = routes


class MethodNotAllowed(LookupError):
    """A route's template matches the path, but no route serves it with this method."""

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(f"method {method} not allowed for {path}; allowed: {', '.join(allowed)}")
        self.allowed = allowed


@dataclasses.dataclass(frozen=True)
class _Route:
    method: str
    template: str
    # One entry per segment: the exact text, or None for a parameter.
    segments: tuple[str | None, ...]
    params: tuple[str, ...]
    target: Callable[..., Any]
    signature: inspect.Signature

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        values = []
        for segment, part in zip(self.segments, parts, strict=True):
            if segment is None:
                if not part:
                    return None
                values.append(part)
            elif segment != part:
                return None
        return dict(zip(self.params, values, strict=True))


def create_route_handler(routes: Mapping[RouteKey, Any]) -> RouteHandler:
    """A request handler over `routes`; raises `ValueError` for a malformed or duplicate template."""
    compiled = [_compile(method, template, obj) for (method, template), obj in routes.items()]
    seen: dict[tuple[str, tuple[str | None, ...]], str] = {}
    for route in compiled:
        key = (route.method, route.segments)
        if key in seen:
            raise ValueError(f"routes {seen[key]} and {route.label} are the same route")
        seen[key] = route.label
    # Static segments before parameters, leftmost first: the first match is the most specific.
    compiled.sort(key=lambda r: (tuple(s is None for s in r.segments), r.template, r.method))
    labels = sorted(r.label for r in compiled)

    async def handle(method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None) -> Any:
        method = method.upper()
        parts = _split(path)
        matched = [(route, params) for route in compiled if (params := route.match(parts)) is not None]
        if not matched:
            raise RouteNotFound(method, path, labels)
        found = next(((r, p) for r, p in matched if r.method == method), None)
        if found is None:
            raise MethodNotAllowed(method, path, sorted({r.method for r, _ in matched}))
        route, kwargs = found
        extra = _body_arguments(route, body) if method in BODY_METHODS else dict(query or {})
        clash = sorted(kwargs.keys() & extra.keys())
        if clash:
            where = "body" if method in BODY_METHODS else "query"
            raise RequestError(
                f"{route.label}: {', '.join(repr(k) for k in clash)} given in both the path and the {where}"
            )
        kwargs.update(extra)
        try:
            route.signature.bind(**kwargs)
        except TypeError as e:
            raise RequestError(f"{route.label}: {e}") from None
        if inspect.iscoroutinefunction(route.target):
            return await route.target(**kwargs)
        result = await in_thread(route.target, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    return handle


def _compile(method: str, template: str, obj: Any) -> _Route:
    if not template.startswith("/"):
        raise ValueError(f"route template '{template}' must start with '/'")
    segments: list[str | None] = []
    params: list[str] = []
    for part in _split(template):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if not name.isidentifier() or name in params:
                raise ValueError(f"route template '{template}' has a bad or repeated parameter '{part}'")
            segments.append(None)
            params.append(name)
        elif "{" in part or "}" in part:
            raise ValueError(f"route template '{template}': a parameter must be a whole segment, not '{part}'")
        else:
            segments.append(part)
    target = getattr(obj, "__wrapped__", obj)
    if not callable(target):
        raise ValueError(f"route {method} {template} serves {type(target).__name__}, which is not callable")
    return _Route(method.upper(), template, tuple(segments), tuple(params), target, inspect.signature(target))


def _split(path: str) -> list[str]:
    # Only one slash comes off each end: `/items/` is `/items`, but `/items//` is not.
    stripped = path.removeprefix("/").removesuffix("/")
    return stripped.split("/") if stripped else []


def _body_arguments(route: _Route, body: Any) -> dict[str, Any]:
    if body is None or (isinstance(body, (str, bytes)) and not body):
        return {}
    if not isinstance(body, Mapping) or not all(isinstance(k, str) for k in body):
        raise RequestError(f"{route.label}: the JSON body must be an object, not {type(body).__name__}")
    return dict(body)
