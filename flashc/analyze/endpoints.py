"""The SDK's `Endpoint` API, read from source: which decorators are Endpoints, and what they declare.

    @Endpoint(name=..., gpu=...)        def / class   a queue-based resource (name: the function's)
    ep = Endpoint(...);  @ep            def / class   the same, through a module-level instance
    api = Endpoint(name=...); @api.post("/path")  def   a route of a load-balanced resource
    Endpoint(id=...) / Endpoint(image=...)          a client of an existing endpoint: no decorator

The arguments are evaluated and checked against the runtime's `EndpointParams`, and turned into
the same resource config the runtime builds (`endpoint_resource`); from there on an Endpoint
resource is like any other. The route checks (path, reserved paths) are the runtime's too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flashc_runtime.decorator import HTTP_METHODS, RemoteOptions
from flashc_runtime.endpoint import FUNCTION_PARAMS, EndpointParams, endpoint_resource
from flashc_runtime.schema import validate_params

from ..diagnostics import Note, Span
from . import ir
from .evaluate import INVALID, Evaluator, Where
from .link import Linker, SdkRef, ValueRef, dotted
from .resources import Found

__all__ = ["EndpointUse", "endpoint_definition", "endpoint_use", "named_as_the_sdk_names"]

_ROUTE_VERBS = {m.lower(): m for m in HTTP_METHODS}


@dataclasses.dataclass(frozen=True)
class EndpointUse:
    """A decorator that is an Endpoint: the `Endpoint(...)` call, where it is evaluated, how it is
    reached (`expr`, evaluated in the decorated module), and the route call for `@api.post(...)`."""

    call: ir.Call
    expr: ir.Expr  # what evaluates to the Endpoint: the call itself, or the name of its instance
    instance: tuple[str, int] | None  # (module, binding index) of `ep = Endpoint(...)`
    route: ir.Call | None
    method: str | None


def _endpoint_call(linker: Linker, module: str, expr: ir.Expr, position: int | None) -> ir.Call | None:
    """`expr` if it is a call of the SDK's Endpoint."""
    if (
        isinstance(expr, ir.Call)
        and isinstance(expr.func, (ir.Name, ir.Attr))
        and linker.resolve_expr(module, expr.func, position, None) == SdkRef("Endpoint")
    ):
        return expr
    return None


def _instance(
    linker: Linker, module: str, expr: ir.Expr, position: int | None, scope: ir.Scope | None
) -> tuple[ir.Call, tuple[str, int]] | None:
    """The `Endpoint(...)` call a name is bound to at module level (`api = Endpoint(...)`), if any."""
    if not isinstance(expr, (ir.Name, ir.Attr)):
        return None
    sym = linker.resolve_expr(module, expr, position, scope)
    if not isinstance(sym, ValueRef) or sym.binding.conditional:
        return None
    call = _endpoint_call(linker, sym.module, sym.binding.value, sym.binding.index)
    return (call, (sym.module, sym.binding.index)) if call is not None else None


def endpoint_use(
    linker: Linker, module: str, deco: ir.Expr, position: int | None, scope: ir.Scope | None
) -> EndpointUse | None:
    """The Endpoint a decorator stands for, or None when it is no Endpoint."""
    inline = _endpoint_call(linker, module, deco, position)
    if inline is not None:
        return EndpointUse(inline, inline, None, None, None)
    bound = _instance(linker, module, deco, position, scope)
    if bound is not None:
        return EndpointUse(bound[0], deco, bound[1], None, None)
    if isinstance(deco, ir.Call) and isinstance(deco.func, ir.Attr) and deco.func.attr in _ROUTE_VERBS:
        method = _ROUTE_VERBS[deco.func.attr]
        base = deco.func.base
        inline = _endpoint_call(linker, module, base, position)
        if inline is not None:
            return EndpointUse(inline, inline, None, deco, method)
        bound = _instance(linker, module, base, position, scope)
        if bound is not None:
            return EndpointUse(bound[0], base, bound[1], deco, method)
    return None


def endpoint_definition(
    evaluator: Evaluator, module: str, path: str, d: ir.DecoratedDef, deco: ir.Expr, use: EndpointUse
) -> Found | None:
    """The checked resource and options of a definition decorated with an Endpoint; None after
    reporting what is wrong."""
    linker = evaluator.linker
    params = evaluator.evaluate(module, use.expr, d.index, Where(f"the Endpoint of '{d.name}'"))
    if params is INVALID:
        return None
    assert isinstance(params, EndpointParams)
    origin = evaluator.origins.get(id(params))
    site = (origin.path, origin.span) if origin else (path, use.call.span)
    spans = _keyword_spans(use.call)
    if params.id is not None or params.image is not None:
        mode = "id" if params.id is not None else "image"
        linker.report(
            path,
            deco.span,
            "endpoint-client",
            f"Endpoint({mode}=...) is a client of an existing endpoint: it cannot decorate '{d.name}'",
            "use Endpoint(name=...) for code of your own; call a client with `await ep.run(...)`",
        )
        return None
    method = route_path = None
    if use.route is not None:
        route = _route(evaluator, module, path, d, use.route)
        if route is None:
            return None
        method, route_path = use.method, route
        spans["path"] = use.route.args[0].span
        if params.name is None:
            linker.report(
                *site,
                "endpoint-name",
                f"the Endpoint that serves route {method} {route_path} needs a name",
                'add name="...": a load-balanced endpoint is named by it',
            )
            return None
        if d.kind == "class":
            linker.report(
                path,
                d.span,
                "route",
                f"class '{d.name}' cannot be a load-balanced route",
                "routes are functions: decorate a function with @api.post(...)",
            )
            return None
    name = params.name or d.name
    config = endpoint_resource(params, name, load_balanced=use.route is not None)
    options: dict[str, Any] = {key: getattr(params, key) for key in FUNCTION_PARAMS}
    options.update(resource_config=config, method=method, path=route_path)
    values, problems = validate_params(RemoteOptions, options)
    for problem in problems:
        span = spans.get(problem.param or "", deco.span)
        if problem.param == "path" and problem.hint and problem.hint.startswith("write path="):
            decorator = dotted(use.route.func) if use.route is not None else None
            problem = dataclasses.replace(problem, hint=f"write @{decorator or 'api.post'}({problem.hint[11:]})")
        linker.report(
            path, span, "route" if problem.param in ("path", "method") else "endpoint", problem.message, problem.hint
        )
    if problems:
        return None
    named = params.name is not None
    return Found(module, path, d, config, values, deco.span, spans, site, "endpoint", use.instance, named)


def _route(evaluator: Evaluator, module: str, path: str, d: ir.DecoratedDef, call: ir.Call) -> str | None:
    """The path of `@api.post("/path")`: one argument, a string known at build time."""
    linker = evaluator.linker
    verb = call.func.attr if isinstance(call.func, ir.Attr) else "post"
    if len(call.args) != 1 or call.keywords:
        linker.report(
            path,
            call.span,
            "route",
            f"@api.{verb}(...) on '{d.name}' takes one argument, the route's path",
            f'write @api.{verb}("/path"); data= and other arguments are for client endpoints',
        )
        return None
    value = evaluator.evaluate(module, call.args[0], d.index, Where(f"the path of route '{d.name}'"))
    if value is INVALID:
        return None
    if not isinstance(value, str):
        linker.report(path, call.args[0].span, "route", f"a route's path is a string, got {type(value).__name__}")
        return None
    return value


def _keyword_spans(call: ir.Call) -> dict[str, Span]:
    spans: dict[str, Span] = {}
    for kw in call.keywords:
        if kw.name is None:
            continue
        spans[kw.name] = kw.span
        if isinstance(kw.value, ir.Seq):
            for i, item in enumerate(kw.value.items):
                spans[f"{kw.name}[{i}]"] = item.span
    if call.args:
        spans["name"] = call.args[0].span
    return spans


def named_as_the_sdk_names(linker: Linker, found: list[Found]) -> list[Found]:
    """An `ep = Endpoint(...)` without a name takes the name of the first definition it decorates
    (the SDK sets it then), so every later one joins that resource rather than getting its own.

    First is in execution order: the instance's own module runs its decorators top to bottom when it
    is imported, before any module that imports `ep` can use it. Uses only in other modules run in
    their import order, which the source does not fix when there are several: that is an error
    asking for a name."""
    uses: dict[tuple[str, int], list[Found]] = {}
    for item in found:
        if item.instance is not None and not item.named and item.options.get("path") is None:
            uses.setdefault(item.instance, []).append(item)
    renamed: dict[int, Found] = {}
    for (module, _), items in uses.items():
        if len({i.definition.name for i in items}) < 2:
            continue
        own = [i for i in items if i.module == module]
        if not own and len({i.module for i in items}) > 1:
            first_site = items[0].config_site
            linker.report(
                *first_site,
                "endpoint-name",
                f"this Endpoint has no name and decorates {', '.join(repr(i.definition.name) for i in items)} "
                "in several modules: the SDK names it after the first one decorated, which depends on import order",
                'give it a name: Endpoint(name="...", ...)',
                tuple(Note(i.path, i.decorator_span, f"decorates '{i.definition.name}'") for i in items),
            )
            continue
        first = min(own or items, key=lambda i: (i.definition.span.line, i.definition.span.col))
        name = first.definition.name
        for item in items:
            if item is not first:
                renamed[id(item)] = _renamed(item, name)
    return [renamed.get(id(i), i) for i in found]


def _renamed(item: Found, name: str) -> Found:
    config = type(item.config)(**{**_fields(item.config), "name": name})
    object.__setattr__(config, "given", item.config.given)
    options = {**item.options, "resource_config": config}
    return dataclasses.replace(item, config=config, options=options)


def _fields(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
