"""The manifest: the contract between the compiler and the runtime, written as `flash_manifest.json`.

    BuildPlan --build_manifest--> Manifest --manifest_json--> canonical text
    text --parse_manifest--> Manifest (or ProjectError)

Everything here is pure. The manifest holds no timestamps and no absolute paths, so the same
project built twice gives the same bytes; `source_fingerprint` identifies the shipped sources.
The runtime reads the same JSON without importing flashc; `schema_version` is how the two agree.

pydantic is imported here and nowhere on the analyzer's path (a warm `flashc analyze` must start
fast), so `analyze.py` never imports this module.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from .errors import ProjectError
from .group import BuildPlan, Group
from .models import RemoteFunction
from .profiles import image_of

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError
    from pydantic_core import ErrorDetails, core_schema

__all__ = [
    "MANIFEST_SCHEMA_VERSION",
    "SHARED_SITE",
    "Manifest",
    "ManifestFunction",
    "ManifestResource",
    "Method",
    "Param",
    "Route",
    "Target",
    "build_manifest",
    "manifest_json",
    "manifest_json_schema",
    "parse_manifest",
    "source_fingerprint",
]

MANIFEST_SCHEMA_VERSION: Literal[1] = 1
_PLATFORM: Literal["linux_x86_64"] = "linux_x86_64"
SHARED_SITE = "_flashc/site"
_MAX_SHOWN_PROBLEMS = 3
_REBUILD_HINT = "the manifest is written by `flashc build`; build again rather than editing it"


class _Pattern:
    """`Annotated[str, _Pattern(regex)]`: a string the schema and the parser hold to `regex`.

    pydantic reads this through `__get_pydantic_core_schema__` when it builds the schema or the
    parser, so defining the models costs no pydantic import: a build writes the manifest without it.
    """

    def __init__(self, regex: str, example: str | None = None) -> None:
        self.regex = regex
        self.example = example

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        from pydantic_core import core_schema

        metadata = {"pydantic_js_extra": {"examples": [self.example]}} if self.example else None
        return core_schema.str_schema(pattern=self.regex, metadata=metadata)


_SHA256 = _Pattern(r"^[0-9a-f]{64}$")
# Frozen, and no unknown key when read back: set on every model, read by pydantic.
_CONFIG = {"extra": "forbid", "frozen": True}


@dataclasses.dataclass(frozen=True)
class Target:
    """The platform the artifact's wheels are resolved for."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    python_version: Annotated[str, _Pattern(r"^3\.[0-9]+$", "3.11")]
    platform: Literal["linux_x86_64"]


@dataclasses.dataclass(frozen=True)
class Param:
    """A parameter as written in the function's signature."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    name: str
    kind: Literal["positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword"]
    has_default: bool


@dataclasses.dataclass(frozen=True)
class Method:
    """A public method of a remote class."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    name: str
    is_async: bool
    is_generator: bool
    params: list[Param]


@dataclasses.dataclass(frozen=True)
class Route:
    """The HTTP route of a function on a load-balanced resource."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
    path: str


@dataclasses.dataclass(frozen=True)
class ManifestResource:
    """One endpoint: its evaluated config, its generated handler and what it installs."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    name: str
    type: str
    kind: Literal["queue", "load_balanced"]
    compute: Literal["gpu", "cpu"]
    config: dict[str, Any]
    config_hash: str
    handler_module: str
    handler_path: str
    functions: list[str]
    dependencies: list[str]
    system_dependencies: list[str]
    # Where its installed dependencies are in the archive: `_flashc/site`, shared by every resource,
    # or `_flashc/sites/<slug>` when resources need versions that cannot be installed together.
    site: Annotated[str, _Pattern(r"^_flashc/(site|sites/[a-z0-9_]+)$")]
    # The shipped files its functions can run (their import closure) and every non-Python file:
    # a redeploy restarts the endpoint only when this changes.
    source_fingerprint: Annotated[str, _SHA256]
    # The worker image it runs on (a profile of `flashc/profiles`: Python, distributions, env).
    image: str
    # The distributions it takes from that image rather than from the archive (left out of its
    # site, or imported by its code), by name: a local endpoint's environment must have them.
    provided: list[str] = dataclasses.field(default_factory=list)
    # The ASGI app it serves instead of functions, "module:attribute" (a mothership.py's, serving
    # main.py's `app`); its handler module exposes it as `app`.
    app: str | None = None


@dataclasses.dataclass(frozen=True)
class ManifestFunction:
    """A remote function or class, keyed by its id `module:qualname`; `name` is the bare name."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    id: str
    module: str
    qualname: str
    name: str
    kind: Literal["function", "class"]
    is_async: bool
    is_generator: bool
    params: list[Param]
    methods: list[Method]
    route: Route | None
    resource: str
    calls: list[str]
    dependencies: list[str]
    system_dependencies: list[str]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What was built: resources, functions and the sources they came from.

    `function_registry` maps a bare function or class name to its resource, for the names only
    one remote function or class in the project has; a name two of them share is left out,
    since the runtime could not tell which one a call means.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = _CONFIG

    schema_version: Literal[1]
    project: str
    target: Target
    resources: dict[str, ManifestResource]
    functions: dict[str, ManifestFunction]
    function_registry: dict[str, str]
    source_fingerprint: Annotated[str, _SHA256]

    def problems(self) -> list[str]:
        """Where cross-references do not hold: a hand-edited or truncated manifest is refused, not half-used."""
        problems = []
        for key, resource in self.resources.items():
            if key != resource.name:
                problems.append(f"resource '{key}' is named '{resource.name}'")
            for fid in resource.functions:
                owner = self.functions.get(fid)
                if owner is None:
                    problems.append(f"resource '{key}' lists unknown function '{fid}'")
                elif owner.resource != key:
                    problems.append(f"resource '{key}' lists function '{fid}' of resource '{owner.resource}'")
        for key, function in self.functions.items():
            if key != function.id or function.id != f"{function.module}:{function.qualname}":
                problems.append(
                    f"function '{key}' has id '{function.id}' (module '{function.module}', "
                    f"qualname '{function.qualname}')"
                )
            home = self.resources.get(function.resource)
            if home is None:
                problems.append(f"function '{key}' runs on unknown resource '{function.resource}'")
            elif key not in home.functions:
                problems.append(f"function '{key}' is missing from resource '{function.resource}'")
            problems.extend(
                f"function '{key}' calls unknown function '{c}'" for c in function.calls if c not in self.functions
            )
        named: dict[str, list[str]] = {}
        for function in self.functions.values():
            named.setdefault(function.name, []).append(function.resource)
        for name, resource_name in self.function_registry.items():
            if named.get(name) != [resource_name]:
                problems.append(
                    f"function_registry maps '{name}' to '{resource_name}', "
                    f"but that is not the resource of the only remote function or class named '{name}'"
                )
        return problems


def build_manifest(
    plan: BuildPlan,
    *,
    python_version: str,
    source_fingerprint: str,
    resource_fingerprints: Mapping[str, str] | None = None,
    sites: Mapping[str, str] | None = None,
    provided: Mapping[str, Sequence[str]] | None = None,
) -> Manifest:
    """The manifest of a build plan. Pure; raises ValueError on a malformed version or fingerprint.

    `resource_fingerprints` gives each resource the fingerprint of the files it can run; a
    resource left out gets `source_fingerprint`, the fingerprint of everything shipped. `sites`
    gives each resource its site folder; a resource left out uses the shared `_flashc/site`.
    `provided` gives the distributions each resource takes from its worker image (none if left out).
    """
    per_resource = resource_fingerprints or {}
    site_of = sites or {}
    functions = [f for g in plan.groups for f in g.functions]
    bare_names = Counter(_bare_name(f) for f in functions)
    manifest = Manifest(
        schema_version=MANIFEST_SCHEMA_VERSION,
        project=plan.project,
        target=Target(python_version=python_version, platform=_PLATFORM),
        resources={
            g.name: _resource(
                g,
                per_resource.get(g.name, source_fingerprint),
                site_of.get(g.name, SHARED_SITE),
                sorted(set((provided or {}).get(g.name, ()))),
            )
            for g in plan.groups
        },
        functions={f.id: _function(f) for f in sorted(functions, key=lambda f: f.id)},
        function_registry={_bare_name(f): f.resource for f in functions if bare_names[_bare_name(f)] == 1},
        source_fingerprint=source_fingerprint,
    )
    # The inputs come from flashc itself, so a problem is a caller's bug: a plain ValueError.
    problems = [*_pattern_problems(manifest), *manifest.problems()]
    if problems:
        raise ValueError(f"cannot build the manifest: {'; '.join(problems[:_MAX_SHOWN_PROBLEMS])}")
    return manifest


def _pattern_problems(manifest: Manifest) -> list[str]:
    """The strings that do not match their pattern, as pydantic would check them when parsing."""
    checks: list[tuple[str, str, type, str]] = [
        ("target.python_version", manifest.target.python_version, Target, "python_version"),
        ("source_fingerprint", manifest.source_fingerprint, Manifest, "source_fingerprint"),
    ]
    for name, r in manifest.resources.items():
        checks.append((f"resources.{name}.site", r.site, ManifestResource, "site"))
        fingerprint = r.source_fingerprint
        checks.append((f"resources.{name}.source_fingerprint", fingerprint, ManifestResource, "source_fingerprint"))
    return [
        f"{where}: {value!r} does not match {_patterns(model)[field]}"
        for where, value, model, field in checks
        if not re.search(_patterns(model)[field], value)
    ]


@functools.cache
def _patterns(model: type) -> dict[str, str]:
    """Each field of `model` with a `_Pattern`, and its regex."""
    import typing

    hints = typing.get_type_hints(model, include_extras=True)
    return {
        name: meta.regex
        for name, hint in hints.items()
        for meta in getattr(hint, "__metadata__", ())
        if isinstance(meta, _Pattern)
    }


def source_fingerprint(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 of the shipped files, independent of the order they are given in.

    `files` are (POSIX path relative to the project root, content) pairs. Each file adds the
    8-byte big-endian length of its UTF-8 path, the path, the length of its content and the
    content, so no two different sets of files produce the same byte stream.
    """
    entries = sorted((path.encode("utf-8", "surrogateescape"), content) for path, content in files)
    digest = hashlib.sha256()
    previous: bytes | None = None
    for path, content in entries:
        if path == previous:
            raise ValueError(f"file {path.decode('utf-8', 'surrogateescape')!r} is given twice")
        previous = path
        digest.update(len(path).to_bytes(8, "big"))
        digest.update(path)
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()


def manifest_json(manifest: Manifest) -> str:
    """The manifest's canonical text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(dataclasses.asdict(manifest), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_manifest(text: str) -> Manifest:
    """Read a manifest back; raises ProjectError, with the problems in a line, if it is not valid."""
    from pydantic import ValidationError

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(
            f"manifest is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", _REBUILD_HINT
        ) from None
    # A manifest from another flashc version would fail on many fields; name the real cause once.
    version = data.get("schema_version") if isinstance(data, dict) else None
    # `type(...) is int`: JSON `true` and `1.0` equal 1 in Python but are not schema_version 1.
    if isinstance(data, dict) and (type(version) is not int or version != MANIFEST_SCHEMA_VERSION):
        found = "no schema_version" if "schema_version" not in data else f"schema_version {json.dumps(version)}"
        raise ProjectError(
            f"manifest has {found}, but this flashc reads schema_version {MANIFEST_SCHEMA_VERSION}",
            "build again with this version of flashc",
        )
    try:
        manifest = _adapter().validate_json(text, strict=True)
    except ValidationError as exc:
        raise ProjectError(f"manifest is not valid: {_summary(exc)}", _REBUILD_HINT) from None
    problems = manifest.problems()
    if problems:
        raise ProjectError(f"manifest is not valid: {'; '.join(problems[:_MAX_SHOWN_PROBLEMS])}", _REBUILD_HINT)
    return manifest


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of `manifest.json`."""
    document = _adapter().json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "flashc manifest"
    return document


@functools.cache
def _adapter() -> TypeAdapter[Manifest]:
    """pydantic's parser and schema of the models: built on first use, never during a build."""
    from pydantic import TypeAdapter

    return TypeAdapter(Manifest)


def _resource(g: Group, fingerprint: str, site: str, provided: list[str]) -> ManifestResource:
    return ManifestResource(
        name=g.name,
        type=g.type,
        kind=g.kind,
        compute=g.compute,
        # A JSON copy: the manifest must not share mutable data with the analysis, and must equal
        # itself after a round trip through text (no tuples where JSON has lists).
        config=json.loads(json.dumps(g.config)),
        config_hash=g.config_hash,
        handler_module=g.handler_module,
        handler_path=g.handler_path,
        functions=[f.id for f in g.functions],
        dependencies=list(g.dependencies),
        system_dependencies=list(g.system_dependencies),
        site=site,
        source_fingerprint=fingerprint,
        image=image_of(g.kind, g.compute, g.config).name,
        provided=provided,
        app=g.app,
    )


def _function(f: RemoteFunction) -> ManifestFunction:
    return ManifestFunction(
        id=f.id,
        module=f.module,
        qualname=f.qualname,
        name=_bare_name(f),
        kind=f.kind,
        is_async=f.is_async,
        is_generator=f.is_generator,
        params=[Param(name=p.name, kind=p.kind, has_default=p.has_default) for p in f.params],
        methods=[
            Method(
                name=m.name,
                is_async=m.is_async,
                is_generator=m.is_generator,
                params=[Param(name=p.name, kind=p.kind, has_default=p.has_default) for p in m.params],
            )
            for m in f.methods
        ],
        route=Route(method=f.route.method, path=f.route.path) if f.route else None,
        resource=f.resource,
        calls=list(f.calls),
        dependencies=list(f.dependencies),
        system_dependencies=list(f.system_dependencies),
    )


def _bare_name(f: RemoteFunction) -> str:
    return f.qualname.rpartition(".")[2]


def _summary(exc: ValidationError) -> str:
    """The first few problems of a validation error, one short clause each."""
    errors = exc.errors(include_url=False)
    shown = "; ".join(_problem(e) for e in errors[:_MAX_SHOWN_PROBLEMS])
    rest = len(errors) - _MAX_SHOWN_PROBLEMS
    return f"{shown}; and {rest} more" if rest > 0 else shown


def _problem(error: ErrorDetails) -> str:
    loc = list(error["loc"])
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument") and loc:
        key = loc.pop()
        where = _location(loc)
        return f"{where}: unknown key '{key}'" if where else f"unknown key '{key}'"
    message = error["msg"].removeprefix("Value error, ")
    where = _location(loc)
    return f"{where}: {message}" if where else message


def _location(loc: list[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
