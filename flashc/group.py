"""Stage 2, group: one deployable unit per resource, with its functions, dependencies and handler.

    Analysis --group--> BuildPlan (one Group per resource, sorted by resource name)

Pure: no I/O. Each resource becomes one endpoint, served by one generated handler module whose
name is derived from the resource name (`handler_module`, `handler_path`). Resource names are
free text, so they are turned into identifiers, and names that turn into the same identifier
get `_2`, `_3`... in the sorted order of the resource names, so the result does not depend on
the order in which the analysis listed them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .models import Analysis, RemoteFunction

__all__ = ["HANDLER_PACKAGE", "BuildPlan", "Group", "group", "handler_slugs"]

# The package of generated handlers inside the artifact; `_flashc/` is the folder that holds it.
HANDLER_PACKAGE = "flashc_handlers"
_HANDLER_DIR = "_flashc/" + HANDLER_PACKAGE
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    """A resource and everything that is deployed to it.

    `dependencies` keeps the order in which the functions (sorted by id) list them, because pip
    resolves in that order; `system_dependencies` are apt names, so their order carries nothing
    and they are sorted.
    """

    name: str
    type: str
    kind: Literal["queue", "load_balanced"]
    compute: Literal["gpu", "cpu"]
    config: Mapping[str, Any]
    config_hash: str
    functions: tuple[RemoteFunction, ...]
    handler_module: str
    handler_path: str
    dependencies: tuple[str, ...]
    system_dependencies: tuple[str, ...]
    app: str | None = None  # "module:attribute" of the ASGI app it serves instead of functions

    @property
    def modules(self) -> set[str]:
        """The project modules the endpoint imports: its functions', and its app's."""
        return {f.module for f in self.functions} | ({self.app.partition(":")[0]} if self.app else set())


@dataclasses.dataclass(frozen=True, slots=True)
class BuildPlan:
    """What `flashc build` will produce for a project: its groups, sorted by resource name."""

    project: str
    groups: tuple[Group, ...]


def group(analysis: Analysis) -> BuildPlan:
    """Group the analysis's functions by resource.

    Raises ValueError if the analysis has errors: the CLI stops after analyze then, so calling
    this anyway is a bug in the caller, not a mistake in the project.
    """
    if analysis.has_errors:
        raise ValueError("group() needs an analysis without errors")
    by_id = {f.id: f for f in analysis.functions}
    resources = sorted(analysis.resources, key=lambda r: r.name)
    slugs = handler_slugs(r.name for r in resources)
    groups = []
    for resource in resources:
        try:
            functions = tuple(sorted((by_id[i] for i in resource.functions), key=lambda f: f.id))
        except KeyError as exc:
            raise ValueError(f"resource '{resource.name}' lists unknown function {exc}") from None
        slug = slugs[resource.name]
        groups.append(
            Group(
                name=resource.name,
                type=resource.type,
                kind=resource.kind,
                compute=resource.compute,
                config=resource.config,
                config_hash=resource.config_hash,
                functions=functions,
                handler_module=f"{HANDLER_PACKAGE}.handler_{slug}",
                handler_path=f"{_HANDLER_DIR}/handler_{slug}.py",
                dependencies=tuple(dict.fromkeys(d for f in functions for d in f.dependencies)),
                system_dependencies=tuple(sorted({d for f in functions for d in f.system_dependencies})),
                app=resource.app,
            )
        )
    return BuildPlan(project=analysis.project, groups=tuple(groups))


def handler_slugs(names: Iterable[str]) -> dict[str, str]:
    """A distinct identifier-safe slug for each resource name.

    Later names (in sorted order) whose slug is taken get the first free `_2`, `_3`...
    """
    taken: set[str] = set()
    slugs: dict[str, str] = {}
    for name in sorted(set(names)):
        base = _slug(name)
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}_{n}", n + 1
        taken.add(slug)
        slugs[name] = slug
    return slugs


def _slug(name: str) -> str:
    slug = _NOT_SLUG.sub("_", name.lower()).strip("_")
    if not slug or slug[0].isdigit():
        slug = "r_" + slug
    return slug
