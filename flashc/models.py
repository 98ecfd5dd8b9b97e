"""The analysis: what `flashc analyze` found, as frozen data shared by the later stages.

These are plain frozen dataclasses so that a warm `flashc analyze` starts without importing
pydantic; `flashc schema analysis` builds the JSON Schema from them with pydantic on demand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from .diagnostics import Diagnostic

__all__ = [
    "ANALYSIS_SCHEMA_VERSION",
    "Analysis",
    "Location",
    "Method",
    "Param",
    "RemoteFunction",
    "Resource",
    "Route",
    "analysis_to_json",
]

ANALYSIS_SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """A place in the project: POSIX path relative to the project root, 1-based line and column."""

    path: str
    line: int
    col: int


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """The HTTP route of a function on a load-balanced resource."""

    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    """A parameter of a remote function or method, as written in its signature."""

    name: str
    kind: Literal["positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword"]
    has_default: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Method:
    """A public method of a remote class, served by the class's endpoint."""

    name: str
    is_async: bool
    is_generator: bool
    params: tuple[Param, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteFunction:
    """A function or class decorated with @remote or an Endpoint, identified by `module:qualname`."""

    id: str
    module: str
    qualname: str
    kind: Literal["function", "class"]
    location: Location
    resource: str
    is_async: bool
    is_generator: bool
    params: tuple[Param, ...]
    methods: tuple[Method, ...]
    route: Route | None
    dependencies: tuple[str, ...]
    system_dependencies: tuple[str, ...]
    accelerate_downloads: bool
    local: bool
    calls: tuple[str, ...]
    style: Literal["remote", "endpoint"] = "remote"  # @remote(...), or the SDK's Endpoint


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """A resource config and the functions that run on it.

    `config` is the full evaluated config, defaults included, as JSON data. `config_hash` leaves
    out `env`, so two configs that differ only in env are the same resource. A resource with an
    `app` has no functions: it serves the project's API app.
    """

    name: str
    type: str
    kind: Literal["queue", "load_balanced"]
    compute: Literal["gpu", "cpu"]
    config: Mapping[str, Any]
    config_hash: str
    location: Location
    functions: tuple[str, ...]
    # The ASGI app this load-balanced resource serves instead of functions, "module:attribute"
    # (the seed's mothership.py serving main.py's FastAPI `app`); None for every other resource.
    app: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Analysis:
    """Everything `flashc analyze` reports for one project."""

    schema_version: int
    project: str
    import_roots: tuple[str, ...]
    python_files: int
    parsed_files: int
    resources: tuple[Resource, ...]
    functions: tuple[RemoteFunction, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


def analysis_to_json(analysis: Analysis) -> dict[str, Any]:
    """JSON data for `--json`, in the shape of the dataclasses (and of `flashc schema analysis`)."""
    data: dict[str, Any] = _jsonable(analysis)
    return data


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
