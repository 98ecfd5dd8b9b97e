"""What each site ships, and what it leaves out and why.

    Resolution + each resource's compute + exclusions --choose--> SitePlan per site

GPU worker images come with torch, torchvision, torchaudio and triton; shipping them again would
cost gigabytes. They are left out of a site when only GPU resources need them: when a CPU
resource of that site needs one (its functions' requirements, or the project's own files,
directly or through another distribution), it ships. `--exclude` leaves out more. Whatever only a
left-out distribution needed goes too (`prune`), and what something else still needs stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from .models import Pin, Resolution, Site
from .prune import GPU_IMAGE_PACKAGES, Dist, prune
from .requirements import RequirementSet

__all__ = ["GPU_IMAGE", "SitePlan", "choose"]

GPU_IMAGE = "provided by the GPU worker image"
EXCLUDED = "--exclude"


@dataclasses.dataclass(frozen=True, slots=True)
class SitePlan:
    """A site and the decision about each of its pins: `left_out` maps a name to the reason."""

    site: Site
    left_out: tuple[tuple[str, str], ...]

    @property
    def ships(self) -> tuple[Pin, ...]:
        gone = dict(self.left_out)
        return tuple(p for p in self.site.pins if p.name not in gone)

    @property
    def left_out_pins(self) -> tuple[tuple[Pin, str], ...]:
        gone = dict(self.left_out)
        return tuple((p, gone[p.name]) for p in self.site.pins if p.name in gone)


def choose(
    resolution: Resolution,
    reqs: RequirementSet,
    computes: Mapping[str, Literal["gpu", "cpu"]],
    *,
    exclude: Iterable[str] = (),
    keep_gpu_packages: bool = False,
) -> tuple[SitePlan, ...]:
    """The plan of every site: roots are the requirements of its resources and the project's files."""
    excluded = frozenset(exclude)
    return tuple(_plan(site, reqs, computes, excluded, keep_gpu_packages) for site in resolution.sites)


def _plan(
    site: Site,
    reqs: RequirementSet,
    computes: Mapping[str, Literal["gpu", "cpu"]],
    excluded: frozenset[str],
    keep_gpu: bool,
) -> SitePlan:
    graph = {p.name: p for p in site.pins}
    own = {r.name for name in site.resources for r in reqs.for_resource(name)}
    roots = ({r.name for r in reqs.for_resource(None)} | own) & graph.keys()
    gpu = {} if keep_gpu else _gpu_only(site, reqs, computes, graph)
    skip = excluded | gpu.keys()
    dists = {p.name: Dist(p.name, p.version, p.wheel.size or 0, p.requires) for p in site.pins}
    pruned = prune(dists, roots, skip)
    reasons: dict[str, str] = {}
    for name in pruned.excluded:
        reasons[name] = EXCLUDED if name in excluded else GPU_IMAGE
    for name in pruned.dropped:
        reasons[name] = f"needed only by {', '.join(_left_out_parents(name, graph, pruned.excluded))}"
    # A pin no root reaches cannot happen in a resolution of these roots; left as is if it does.
    return SitePlan(site, tuple(sorted(reasons.items())))


def _gpu_only(
    site: Site, reqs: RequirementSet, computes: Mapping[str, Literal["gpu", "cpu"]], graph: Mapping[str, Pin]
) -> dict[str, None]:
    """The GPU image's packages that no CPU resource of this site needs."""
    if all(computes.get(name) != "gpu" for name in site.resources):
        return {}
    cpu_roots = {r.name for r in reqs.for_resource(None)}
    for name in site.resources:
        if computes.get(name) != "gpu":
            cpu_roots |= {r.name for r in reqs.for_resource(name)}
    needed = _reachable(graph, cpu_roots)
    return {name: None for name in GPU_IMAGE_PACKAGES if name in graph and name not in needed}


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
