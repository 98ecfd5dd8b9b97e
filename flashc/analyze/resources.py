"""Resources from the definitions found: one per name, each function's record, route checks.

A resource name used by several definitions is one resource; their configs must agree. Routes of
a load-balanced resource must be distinct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from flashc_runtime.decorator import route_key
from flashc_runtime.resources import ServerlessResource

from ..diagnostics import Note
from ..models import Location, RemoteFunction, Resource, Route
from .link import DefRef, Linker

if TYPE_CHECKING:
    from .find import Found

__all__ = ["resources_of"]


def resources_of(linker: Linker, found: Sequence[Found]) -> tuple[list[RemoteFunction], list[Resource]]:
    """Check identities, resource names and routes; build the functions and resources."""
    seen_ids: dict[str, Found] = {}
    unique: list[Found] = []
    for item in found:
        fid = f"{item.module}:{item.definition.name}"
        if fid in seen_ids:
            first = seen_ids[fid]
            linker.report(
                item.path,
                item.definition.span,
                "duplicate-function",
                f"'{item.definition.name}' is defined twice in module '{item.module}' with @remote",
                "rename one of them",
                (Note(first.path, first.definition.span, "first defined here"),),
            )
            continue
        seen_ids[fid] = item
        unique.append(item)

    by_name: dict[str, tuple[Found, str]] = {}
    members: dict[str, list[Found]] = {}
    for item in unique:
        config = item.config
        name = config.name
        digest = config.config_hash()
        if name in by_name:
            first, first_digest = by_name[name]
            if first_digest != digest:
                linker.report(
                    *item.config_site,
                    "resource-conflict",
                    f"resource '{name}' is defined with a different config than before "
                    f"({_difference(first.config, config)})",
                    "give each config its own name, or define the config once and reuse it",
                    (Note(*first.config_site, "first defined here"),),
                )
                continue
            if first.config.to_dict()["env"] != config.to_dict()["env"]:
                linker.report(
                    *item.config_site,
                    "resource-env",
                    f"resource '{name}' is defined again with a different env; the env of the first definition is used",
                    "define the config once and reuse it, so that both functions see the same env",
                    (Note(*first.config_site, "first defined here"),),
                    severity="warning",
                )
        else:
            by_name[name] = (item, digest)
        members.setdefault(name, []).append(item)

    _check_routes(linker, members)
    ids = {(i.module, i.definition.name): f"{i.module}:{i.definition.name}" for i in unique}
    functions = [_function(linker, item, ids) for items in members.values() for item in items]
    resources = [_resource(by_name[name][0], items) for name, items in members.items()]
    return sorted(functions, key=lambda f: f.id), sorted(resources, key=lambda r: r.name)


def _difference(a: ServerlessResource, b: ServerlessResource) -> str:
    if type(a) is not type(b):
        return f"{type(a).__name__} vs {type(b).__name__}"
    left, right = a.to_dict(), b.to_dict()
    keys = [k for k in left if k != "env" and left[k] != right[k]]
    return ", ".join(f"{k}: {left[k]!r} vs {right[k]!r}" for k in keys)


def _check_routes(linker: Linker, members: Mapping[str, Sequence[Found]]) -> None:
    for items in members.values():
        routes: dict[tuple[str, str], Found] = {}
        for item in items:
            method, route_path = item.options["method"], item.options["path"]
            if method is None or route_path is None:
                continue
            key = route_key(method, route_path)
            if key in routes:
                first = routes[key]
                linker.report(
                    item.path,
                    item.keyword_spans.get("path", item.decorator_span),
                    "route",
                    f"route {method} {route_path} is already served by '{first.definition.name}' "
                    f"on resource '{item.config.name}'",
                    "give each function its own path",
                    (
                        Note(
                            first.path,
                            first.keyword_spans.get("path", first.decorator_span),
                            "first used here",
                        ),
                    ),
                )
            else:
                routes[key] = item


def _function(linker: Linker, item: Found, ids: Mapping[tuple[str, str], str]) -> RemoteFunction:
    d = item.definition
    own = f"{item.module}:{d.name}"
    calls = set()
    for site in d.calls:
        sym = linker.resolve_expr(item.module, site.func, None, d.scope)
        if isinstance(sym, DefRef) and (sym.module, sym.name) in ids:
            target = ids[(sym.module, sym.name)]
            if target != own:
                calls.add(target)
    options = item.options
    route = Route(options["method"], options["path"]) if options["method"] and options["path"] else None
    return RemoteFunction(
        id=own,
        module=item.module,
        qualname=d.name,
        kind=d.kind,
        location=Location(item.path, d.span.line, d.span.col),
        resource=item.config.name,
        is_async=d.is_async,
        is_generator=d.is_generator,
        params=d.params,
        methods=d.methods,
        route=route,
        dependencies=tuple(options["dependencies"] or ()),
        system_dependencies=tuple(options["system_dependencies"] or ()),
        accelerate_downloads=options["accelerate_downloads"],
        local=options["local"],
        calls=tuple(sorted(calls)),
    )


def _resource(first: Found, items: Sequence[Found]) -> Resource:
    config = first.config
    path, span = first.config_site
    return Resource(
        name=config.name,
        type=type(config).__name__,
        kind="load_balanced" if config.is_load_balanced else "queue",
        compute="cpu" if config.is_cpu else "gpu",
        config=config.to_dict(),
        config_hash=config.config_hash(),
        location=Location(path, span.line, span.col),
        functions=tuple(sorted(f"{i.module}:{i.definition.name}" for i in items)),
    )
