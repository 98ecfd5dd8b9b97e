"""The route handler factory for load-balanced endpoints: `{(method, path): user object}` in, a request handler out.

The handler is framework-free: an HTTP server calls `await handle(method, path, query=..., body=...)`
with the parsed JSON body and maps the outcome to a response. A template is made of exact segments
and `{name}` parameters, one segment each; a trailing slash is ignored, and when two templates match,
the one with a static segment further left wins (`/items/new` beats `/items/{id}`).

Arguments are keyword arguments: path parameters, plus the query parameters for GET and DELETE
or the keys of the JSON object body for POST, PUT and PATCH. They are checked against the
function's signature before it is called. Path and query values arrive as text and are converted
by the parameter's annotation, as FastAPI converts them: `int` (`"7"`, `" 7 "`, `"7.0"`, `"1_000"`),
`float` (`"1.5"`, `"1e3"`, `"inf"`), `bool` (true/false, 1/0, yes/no, on/off, t/f, y/n, in any case),
an `Enum` (by value), and `X | None`, `Optional[X]` or `Annotated[X, ...]` as `X`; `str`, a union
with `str`, other types and unannotated parameters keep the text. A value that does not convert is
a RequestError naming the parameter and the type. Body values stay as the JSON gave them, but for
a string sent for an `int`, `float`, `bool` or `Enum` parameter, converted by the same rules, and
an integer sent for a `float`. Sync functions run in a worker thread, async ones on the event loop.

    LookupError
    ├── RouteNotFound       no template matches the path (404)
    └── MethodNotAllowed    a template matches, but not for this method (405)
    RequestError            the arguments do not fit the function (400)

An exception raised by user code propagates unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
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
    converters: Mapping[str, _Converter]  # parameters whose text becomes another type

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
        try:
            route.signature.bind(**kwargs, **extra)
        except TypeError as e:
            raise RequestError(f"{route.label}: {e}") from None
        where = "body field" if method in BODY_METHODS else "query parameter"
        problems: list[str] = []
        kwargs = _converted(route, kwargs, "path parameter", problems) | _converted(route, extra, where, problems)
        if problems:
            raise RequestError(f"{route.label}: {'; '.join(problems)}")
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
    signature = _signature(target)
    converters = {
        name: converter
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and (converter := _converter(p.annotation))
    }
    return _Route(method.upper(), template, tuple(segments), tuple(params), target, signature, converters)


def _split(path: str) -> list[str]:
    """The segments of a path as sent (percent-encoded), each decoded after the split, so that
    `%2F` is a character of its segment, never a separator. Only one slash comes off each end:
    `/items/` is `/items`, but `/items//` is not."""
    from urllib.parse import unquote

    stripped = path.removeprefix("/").removesuffix("/")
    return [unquote(part) for part in stripped.split("/")] if stripped else []


def _body_arguments(route: _Route, body: Any) -> dict[str, Any]:
    if body is None or (isinstance(body, (str, bytes)) and not body):
        return {}
    if not isinstance(body, Mapping) or not all(isinstance(k, str) for k in body):
        raise RequestError(f"{route.label}: the JSON body must be an object, not {type(body).__name__}")
    return dict(body)


# --- converting text by annotation, as FastAPI does ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Converter:
    expected: str  # "an integer": what the message says the value must be
    convert: Callable[[str], Any]  # raises ValueError

    def body_value(self, value: Any) -> Any:
        """A body's JSON value for this parameter: text converted, an integer made a float."""
        if isinstance(value, str):
            return self.convert(value)
        if self.expected == _FLOAT and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


_INT = "an integer"
_FLOAT = "a number"
_INTEGER_TEXT = re.compile(r"([+-]?[0-9](?:_?[0-9])*)(?:\.0+)?")  # pydantic's: `7.00` is 7, `7.5` is not
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _to_int(text: str) -> int:
    match = _INTEGER_TEXT.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    return int(match.group(1))


def _to_float(text: str) -> float:
    if not text.isascii():  # float() takes other scripts' digits; FastAPI does not
        raise ValueError(text)
    return float(text)


def _to_bool(text: str) -> bool:
    word = text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(text)


_SCALARS: dict[Any, _Converter] = {
    int: _Converter(_INT, _to_int),
    float: _Converter(_FLOAT, _to_float),
    bool: _Converter("a boolean (true or false, 1 or 0, yes or no, on or off)", _to_bool),
}
_SCALAR_NAMES = {"int": int, "float": float, "bool": bool, "str": str}


def _signature(target: Callable[..., Any]) -> inspect.Signature:
    """The signature with its annotations evaluated where they can be (`from __future__ import annotations`)."""
    try:
        return inspect.signature(target, eval_str=True)
    except Exception:  # a name only imported for type checkers: the annotations stay text
        return inspect.signature(target)


def _converter(annotation: Any) -> _Converter | None:
    """How text becomes a value of `annotation`; None where the text is passed as it is."""
    if isinstance(annotation, str):
        return _converter(_annotation_from_text(annotation))
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _converter(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return _converter(members[0])
        converters = [_converter(m) for m in members]
        if any(c is None for c in converters):
            return None  # str, or a type flashc does not convert, is one of them: the text fits
        return _union([c for c in converters if c is not None])
    if isinstance(annotation, type) and annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum(annotation)
    return None


def _annotation_from_text(text: str) -> Any:
    """The scalar type an annotation left as text names (`int`, `Optional[int]`, `int | None`), else None."""
    text = text.strip()
    for prefix in ("Optional[", "typing.Optional["):
        if text.startswith(prefix) and text.endswith("]"):
            text = text[len(prefix) : -1].strip()
    parts = [p.strip() for p in text.split("|")]
    named = [p for p in parts if p != "None"]
    return _SCALAR_NAMES.get(named[0]) if len(named) == 1 else None


def _enum(cls: type[enum.Enum]) -> _Converter:
    members = list(cls)
    by_text = {m.value: m for m in members if isinstance(m.value, str)}
    numeric = issubclass(cls, int)  # an IntEnum takes "1" as 1, as pydantic's lax mode does

    def convert(text: str) -> enum.Enum:
        if text in by_text:
            return by_text[text]
        if numeric:
            number = _to_int(text)
            for m in members:
                if m.value == number:
                    return m
        raise ValueError(text)

    listed = ", ".join(repr(m.value) for m in members)
    return _Converter(f"one of {listed}" if len(members) > 1 else listed, convert)


def _union(converters: list[_Converter]) -> _Converter:
    def convert(text: str) -> Any:
        for c in converters:
            try:
                return c.convert(text)
            except ValueError:
                continue
        raise ValueError(text)

    return _Converter(" or ".join(c.expected for c in converters), convert)


def _converted(route: _Route, values: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """`values` with each converted by its parameter's annotation; those that do not convert are
    added to `problems`, naming the parameter and the type."""
    out = dict(values)
    for name, value in values.items():
        converter = route.converters.get(name)
        if converter is None:
            continue
        try:
            out[name] = converter.body_value(value) if where == "body field" else converter.convert(value)
        except ValueError:
            problems.append(f"{where} '{name}' must be {converter.expected}, not {value!r}")
    return out
