"""Exclusions over a resolved dependency graph: leave out a distribution and everything only it needed.

The worker images for GPUs ship torch, so a build must not ship it again. Dropping only the excluded distribution, as
the existing tool does, still ships what it pulled in: excluding torch leaves behind the `nvidia-*` CUDA wheels and
triton, several gigabytes that nothing else uses. `prune` works on the graph instead: whatever the roots no longer
reach once the excluded distributions are cut out goes too, and whatever another kept distribution still needs stays.

Every name is compared in its PEP 503 normal form (`Torch_Audio` and `torch-audio` are one distribution).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from packaging.utils import canonicalize_name

__all__ = ["GPU_IMAGE_PACKAGES", "Dist", "PruneResult", "default_exclusions", "prune", "size_table"]

# Preinstalled in the GPU worker images and too big to ship again; the CPU images have none of them.
GPU_IMAGE_PACKAGES = ("torch", "torchaudio", "torchvision", "triton")


@dataclass(frozen=True, slots=True)
class Dist:
    """One resolved distribution: `size` in bytes, `requires` the names it depends on for the target."""

    name: str
    version: str
    size: int
    requires: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a build ships and what it leaves out; every tuple is sorted and holds normalised names.

    `excluded` are the names asked for that are in the graph, `dropped` the distributions that only excluded ones
    needed, `freed` the bytes of both together. `unknown` are the names asked for that are not in the graph, for the
    caller to warn about (a misspelling excludes nothing).
    """

    kept: tuple[str, ...]
    excluded: tuple[str, ...]
    dropped: tuple[str, ...]
    freed: int
    unknown: tuple[str, ...]


def prune(dists: Mapping[str, Dist], roots: Iterable[str], exclude: Iterable[str]) -> PruneResult:
    """Cut the `exclude`d distributions out of the graph and drop what the `roots` then no longer reach.

    `dists` maps each distribution's name to it. A distribution is kept if a path leads to it from a root without
    passing through an excluded one; an excluded root is excluded like any other. A distribution that no root
    reached even before pruning is in no field of the result. A root or requirement missing from `dists` has
    nothing to ship and is skipped. Cycles are fine. Raises `ValueError` if two keys of `dists` normalise alike.
    """
    graph = _normalised(dists)
    start = {canonicalize_name(name) for name in roots}
    asked = {canonicalize_name(name) for name in exclude}
    excluded = asked & graph.keys()
    before = _reachable(graph, start, frozenset())
    kept = _reachable(graph, start, excluded)
    dropped = before - kept - excluded
    return PruneResult(
        kept=tuple(sorted(kept)),
        excluded=tuple(sorted(excluded)),
        dropped=tuple(sorted(dropped)),
        freed=sum(graph[name].size for name in excluded | dropped),
        unknown=tuple(sorted(asked - graph.keys())),
    )


def default_exclusions(gpu_only: bool) -> tuple[str, ...]:
    """The distributions to exclude without being asked: the GPU image's own when only GPU workers need them.

    The caller decides `gpu_only`: true when every resource whose code needs these packages runs on a GPU image.
    """
    return GPU_IMAGE_PACKAGES if gpu_only else ()


def size_table(dists: Mapping[str, Dist], names: Iterable[str], limit: int = 10) -> str:
    """A plain-text table of the `limit` largest distributions among `names`, biggest first, ties by name.

    Columns are `distribution`, `version` and `size` (1000-based units); when names are left out a last line says
    how many and how big they are together. Lines end with no spaces and the text with no newline. Raises
    `ValueError` for a negative `limit` or a name that is not in `dists`.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    graph = _normalised(dists)
    wanted = {canonicalize_name(name) for name in names}
    missing = sorted(wanted - graph.keys())
    if missing:
        raise ValueError(f"not in the graph: {', '.join(missing)}")
    ordered = sorted(wanted, key=lambda name: (-graph[name].size, name))
    shown, rest = ordered[:limit], ordered[limit:]
    rows = [("distribution", "version", "size")]
    rows += [(name, graph[name].version, _size(graph[name].size)) for name in shown]
    name_width = max(len(row[0]) for row in rows)
    version_width = max(len(row[1]) for row in rows)
    size_width = max(len(row[2]) for row in rows)
    lines = [f"{name:<{name_width}}  {version:<{version_width}}  {size:>{size_width}}" for name, version, size in rows]
    if rest:
        lines.append(f"... and {len(rest)} more ({_size(sum(graph[name].size for name in rest))})")
    return "\n".join(lines)


def _normalised(dists: Mapping[str, Dist]) -> dict[str, Dist]:
    graph: dict[str, Dist] = {}
    for key, dist in dists.items():
        name = canonicalize_name(key)
        if name in graph:
            raise ValueError(f"the graph has '{name}' twice")
        graph[name] = dist
    return graph


def _reachable(graph: Mapping[str, Dist], start: Iterable[str], cut: Set[str]) -> set[str]:
    """Names reachable from `start` through the graph, never entering a name in `cut`."""
    seen: set[str] = set()
    stack = [name for name in start if name in graph and name not in cut]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in graph[name].requires:
            required = canonicalize_name(requirement)
            if required in graph and required not in cut and required not in seen:
                stack.append(required)
    return seen


def _size(n: int) -> str:
    """A byte count in 1000-based units with one decimal, as the rest of flashc prints them."""
    if n < 1000:
        return "1 byte" if n == 1 else f"{n} bytes"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        # Choose the unit after rounding, so 999,960 bytes read "1.0 MB", not "1000.0 KB".
        text = f"{n / scale:.1f}"
        if float(text) < 1000:
            return f"{text} {unit}"
    return f"{n / 1e12:.1f} TB"
