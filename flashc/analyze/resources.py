"""Resources from the definitions found: one per name, each function's record, route checks.

A resource name used by several definitions is one resource: their configs merge where every
field set explicitly on one agrees with the other (`_Merged`). An Endpoint instance is a decorator
or a set of routes, not both. Routes of a load-balanced resource must be distinct.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from flashc_runtime.decorator import route_key
from flashc_runtime.resources import ServerlessResource
from flashc_runtime.schema import ConfigError, SchemaModel

from ..diagnostics import Note, Span
from ..entry import entry_problem
from ..models import Location, RemoteFunction, Resource, Route
from . import ir
from .link import DefRef, Linker

__all__ = ["Found", "resources_of"]


@dataclasses.dataclass
class Found:
    """A @remote definition, checked, before resources are grouped."""

    module: str
    path: str
    definition: ir.DecoratedDef
    config: ServerlessResource
    options: Mapping[str, Any]
    decorator_span: Span
    keyword_spans: Mapping[str, Span]
    config_site: tuple[str, Span]  # where the config was constructed
    style: str = "remote"  # "remote", or "endpoint" for the SDK's Endpoint
    instance: tuple[str, int] | None = None  # the `ep = Endpoint(...)` binding used, if any
    named: bool = True  # False: an Endpoint without name=, named after the definition


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

    unique = _check_forms(linker, unique)
    merged: dict[str, _Merged] = {}
    members: dict[str, list[Found]] = {}
    for item in unique:
        name = item.config.name
        if name in merged:
            if not merged[name].absorb(linker, item):
                continue
        else:
            merged[name] = _Merged(item)
        members.setdefault(name, []).append(item)

    _check_routes(linker, members)
    for name, items in members.items():
        problem = entry_problem(name)
        if problem is not None:
            path, span = items[0].config_site
            linker.report(
                path,
                span,
                "name-not-a-file",
                f"resource name {name!r} cannot be part of a file name ({problem}): Runpod's worker images "
                "load handler_<name>.py, so only flashc's local endpoints can serve this resource",
                "to deploy it on Runpod, name it with letters, digits, '-' and '_'",
                severity="warning",
            )
    ids = {(i.module, i.definition.name): f"{i.module}:{i.definition.name}" for i in unique}
    functions = [_function(linker, item, ids) for items in members.values() for item in items]
    resources = [_resource(merged[name], items) for name, items in members.items()]
    return sorted(functions, key=lambda f: f.id), sorted(resources, key=lambda r: r.name)


def _given(config: ServerlessResource) -> frozenset[str]:
    """The fields of a config set explicitly (every field, for a config of unknown origin)."""
    return getattr(config, "given", frozenset(f.name for f in dataclasses.fields(config)))  # type: ignore[arg-type]


class _Merged:
    """One resource declared by several definitions: each field set explicitly by one of them must
    agree with every other that sets it; fields one leaves at their default take the other's value.

    The Flash SDK keeps the config of the alphabetically first function instead, silently: the others'
    settings are lost. Here nothing is lost, and a real disagreement is an error at both places.
    """

    def __init__(self, first: Found) -> None:
        self.first = first
        self.config = first.config
        self.setters = {field: first for field in _given(first.config)}

    def absorb(self, linker: Linker, item: Found) -> bool:
        """Merge `item`'s config in; False after reporting a conflict."""
        config = item.config
        name = config.name
        if type(config) is not type(self.config):
            linker.report(
                *item.config_site,
                "resource-conflict",
                f"resource '{name}' is declared again as a {_kind(config)}, but it is a {_kind(self.config)}",
                "give each its own name",
                (Note(*self.first.config_site, "first declared here"),),
            )
            return False
        mine, theirs = SchemaModel.to_dict(self.config), SchemaModel.to_dict(config)
        given = _given(config)
        for field in sorted(given & self.setters.keys()):
            if field != "name" and mine[field] != theirs[field]:
                other = self.setters[field]
                linker.report(
                    *item.config_site,
                    "resource-conflict",
                    f"resource '{name}' is declared again with {field} {theirs[field]!r}, "
                    f"but it was declared with {mine[field]!r}",
                    "make the two agree, set it in one place only, or give each its own name",
                    (Note(*other.config_site, f"{field} is set to {mine[field]!r} here"),),
                )
                return False
        if mine == theirs:  # the same config again (one object used twice, say): nothing to merge
            self.setters.update({field: item for field in given if field not in self.setters})
            return True
        values = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}  # type: ignore[arg-type]
        values.update({field: getattr(config, field) for field in given})
        union = self.setters.keys() | given
        # Built from the fields someone set, and those that differ from the class's defaults (an
        # Endpoint's own defaults): cross-field rules then judge what was written, as at run time.
        kwargs = {k: v for k, v in values.items() if k in union or v != _default(type(self.config), k)}
        try:
            combined = type(self.config)(**kwargs)
        except ConfigError as exc:
            linker.report(
                *item.config_site,
                "resource-conflict",
                f"resource '{name}' declared here and before does not hold together: "
                + "; ".join(p.message for p in exc.problems),
                "make the two declarations agree",
                (Note(*self.first.config_site, "first declared here"),),
            )
            return False
        object.__setattr__(combined, "given", frozenset(self.setters.keys() | given))
        for field in given:
            self.setters.setdefault(field, item)
        self.config = combined
        return True


def _default(cls: type[ServerlessResource], name: str) -> Any:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _kind(config: ServerlessResource) -> str:
    return (
        f"{'load-balanced' if config.is_load_balanced else 'queue-based'} "
        f"{'CPU' if config.is_cpu else 'GPU'} resource ({type(config).__name__})"
    )


def _check_forms(linker: Linker, items: Sequence[Found]) -> list[Found]:
    """One Endpoint instance is used either as a decorator or for routes, as the SDK requires; the
    definitions that use it the second way are reported and left out."""
    first_of: dict[tuple[tuple[str, int], bool], Found] = {}
    kept = []
    for item in items:
        if item.instance is None:
            kept.append(item)
            continue
        is_route = item.options["method"] is not None
        first_of.setdefault((item.instance, is_route), item)
        other = first_of.get((item.instance, not is_route))
        if other is not None:
            linker.report(
                item.path,
                item.decorator_span,
                "endpoint-forms",
                "this Endpoint is used both as a decorator (@ep) and for routes (@ep.post(...))",
                "an Endpoint is one or the other: make a second Endpoint with its own name",
                (Note(other.path, other.decorator_span, "used the other way here"),),
            )
        else:
            kept.append(item)
    return kept


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
        style="endpoint" if item.style == "endpoint" else "remote",
    )


def _resource(merged: _Merged, items: Sequence[Found]) -> Resource:
    config = merged.config
    path, span = merged.first.config_site
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
