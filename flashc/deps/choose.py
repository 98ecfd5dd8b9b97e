"""What each site ships, and what it leaves out and why.

    Resolution + each resource's worker image + exclusions --choose--> SitePlan per site

A worker image comes with distributions of its own (every Runpod worker image has fastapi, pydantic,
requests and a hundred more; the GPU ones torch too, see `flashc/profiles`). A pin is left out of a
site when the image of every resource of the site that needs it provides that very version: the
resolver was asked to prefer those versions, so this is the rule, not the exception. When the
project needs another version, the pin ships (it comes first on the worker's `sys.path`) and
`shadowed` says so. `--exclude` leaves out more, and `--keep-gpu-packages` ships torch and its
companions anyway. Whatever only a left-out distribution needed goes too (`prune`), and what
something else still needs stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from .models import Pin, Resolution, Site
from .prune import GPU_IMAGE_PACKAGES, Dist, prune
from .requirements import RequirementSet

__all__ = ["Image", "Shadowed", "SitePlan", "choose", "provided_reason"]

EXCLUDED = "--exclude"


class Provided(Protocol):
    @property
    def version(self) -> str: ...


class Image(Protocol):
    """What a resource's worker image has installed (a `flashc.profiles.Profile`)."""

    @property
    def description(self) -> str: ...

    def provides(self, name: str) -> Provided | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Shadowed:
    """A pin that ships although an image of its site has the distribution, in another version."""

    name: str
    version: str
    image_version: str
    image: str  # the image's label
    resources: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SitePlan:
    """A site and the decision about each of its pins: `left_out` maps a name to the reason."""

    site: Site
    left_out: tuple[tuple[str, str], ...]
    shadowed: tuple[Shadowed, ...] = ()

    @property
    def ships(self) -> tuple[Pin, ...]:
        gone = dict(self.left_out)
        return tuple(p for p in self.site.pins if p.name not in gone)

    @property
    def left_out_pins(self) -> tuple[tuple[Pin, str], ...]:
        gone = dict(self.left_out)
        return tuple((p, gone[p.name]) for p in self.site.pins if p.name in gone)


def provided_reason(labels: Iterable[str]) -> str:
    """The left-out reason of a pin the images of these labels provide."""
    return f"provided by {' and '.join(sorted(set(labels)))}"


def choose(
    resolution: Resolution,
    reqs: RequirementSet,
    images: Mapping[str, Image],
    *,
    exclude: Iterable[str] = (),
    keep_gpu_packages: bool = False,
) -> tuple[SitePlan, ...]:
    """The plan of every site: roots are the requirements of its resources and the project's files;
    `images` gives each resource's worker image."""
    excluded = frozenset(exclude)
    return tuple(_plan(site, reqs, images, excluded, keep_gpu_packages) for site in resolution.sites)


def _plan(
    site: Site, reqs: RequirementSet, images: Mapping[str, Image], excluded: frozenset[str], keep_gpu: bool
) -> SitePlan:
    graph = {p.name: p for p in site.pins}
    project = {r.name for r in reqs.for_resource(None)}
    needs = {name: _reachable(graph, project | {r.name for r in reqs.for_resource(name)}) for name in site.resources}
    roots = {r.name for n in [None, *site.resources] for r in reqs.for_resource(n)} & graph.keys()
    provided: dict[str, str] = {}
    shadowed: list[Shadowed] = []
    for pin in site.pins:
        users = [name for name in site.resources if pin.name in needs[name]]
        if not users or (keep_gpu and pin.name in GPU_IMAGE_PACKAGES):
            continue
        found = [(images[name], images[name].provides(pin.name)) for name in users]
        if all(have is not None and have.version == pin.version for _, have in found):
            provided[pin.name] = provided_reason(image.description for image, _ in found)
            continue
        for image, have in found:
            if have is not None and have.version != pin.version:
                who = tuple(n for n in users if images[n].description == image.description)
                shadowed.append(Shadowed(pin.name, pin.version, have.version, image.description, who))
    skip = excluded | provided.keys()
    dists = {p.name: Dist(p.name, p.version, p.wheel.size or 0, p.requires) for p in site.pins}
    pruned = prune(dists, roots, skip)
    reasons: dict[str, str] = {}
    for name in pruned.excluded:
        reasons[name] = EXCLUDED if name in excluded else provided[name]
    for name in pruned.dropped:
        reasons[name] = f"needed only by {', '.join(_left_out_parents(name, graph, pruned.excluded))}"
    # A pin no root reaches cannot happen in a resolution of these roots; left as is if it does.
    kept = {s for s in shadowed if s.name not in reasons}
    return SitePlan(site, tuple(sorted(reasons.items())), tuple(sorted(kept, key=lambda s: (s.name, s.image))))


def _reachable(graph: Mapping[str, Pin], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = [name for name in roots if name in graph]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(r for r in graph[name].requires if r in graph)
    return seen


def _left_out_parents(name: str, graph: Mapping[str, Pin], excluded: Sequence[str]) -> list[str]:
    """The excluded distributions through which `name` was needed (for the reason shown)."""
    return sorted(e for e in excluded if name in _reachable(graph, [e])) or ["what is left out"]
