"""Wheel layers: dependencies installed into cached, precompressed runs of tar members.

    site folders + wheels --read (zip directory and RECORD only)--> installed files per wheel
    --choose (who writes each path, which contents are already stored)--> one Spec per wheel
    --look up, or build the missing ones in parallel--> Layer per wheel, in archive order

A site folder (`_flashc/site`, or one per resource in `_flashc/sites/<name>` when resources need
versions that conflict) gets one layer per wheel, in distribution name order. Two choices keep
the archive from holding the same bytes twice, both made from RECORD before anything is
decompressed:

    same path, same site    the distribution later in name order writes it; the other's copy is
                            left out (a warning says so when their contents differ, where pip and
                            uv overwrite silently)
    same content            a file whose content and mode are already stored earlier in the
                            dependency layers is a hard link to that first copy (files of at
                            least `LINK_MIN` bytes: a smaller copy costs a few compressed bytes)

A layer's key covers these choices, so the same wheel in the same place gives the same layer,
reused byte for byte by every build (see `_layer` for the cache and its guarantees).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version

from .._atomic import discard, write_atomic
from ..diagnostics import Diagnostic
from ..errors import ProjectError
from ._gzip import default_workers
from ._layer import FORMAT, Layer, LayerFile, Spec, build, load, load_key
from ._names import arcname_problem
from ._tar import DEFAULT_MTIME
from ._wheel import Wheel, read_wheel

__all__ = [
    "LINK_MIN",
    "Layer",
    "LayerFile",
    "Site",
    "SiteLayers",
    "SiteWheel",
    "cached_site_layers",
    "forget",
    "site_layers",
    "wheel_layer",
]

LINK_MIN = 512
"""Smallest file stored as a hard link to an identical one; a smaller copy is a block of tar, a few bytes compressed."""


@dataclasses.dataclass(frozen=True, slots=True)
class SiteWheel:
    """A wheel to install into a site folder, as the lock gives it."""

    path: Path
    sha256: str
    """Hex digest of the wheel file, from the lock: part of the layer's key, checked when it is built."""
    name: str
    """Distribution name, for ordering and messages."""
    version: str


@dataclasses.dataclass(frozen=True, slots=True)
class Site:
    """A site folder in the archive and the wheels installed into it."""

    prefix: str
    """Its arcname, e.g. "_flashc/site"."""
    wheels: tuple[SiteWheel, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class SiteLayers:
    """What `site_layers` gives: the layers to pass to `write_archive`, and what the user should hear."""

    layers: tuple[Layer, ...]
    """In archive order: sites in the order given, wheels by distribution name within each."""
    warnings: tuple[Diagnostic, ...]
    """One per pair of distributions that write different contents to the same paths of a site."""
    built: int
    """How many layers were not in the cache and were built."""


def site_layers(
    sites: Sequence[Site], cache_root: Path, *, mtime: int = DEFAULT_MTIME, workers: int | None = None
) -> SiteLayers:
    """The layers of every wheel of `sites`, from `<cache_root>/layers/`, building the missing ones in parallel.

    Raises one ProjectError for every wheel that is damaged (not what its RECORD or sha256 says)
    and for a cache that cannot be written; layers built before the failure stay cached.
    """
    for site in sites:
        _check_prefix(site.prefix)
    wheels = _read_all(w.path for site in sites for w in site.wheels)
    specs, warnings = _plan(sites, wheels, mtime)
    layers, built = _ensure(specs, cache_root / "layers", workers or default_workers())
    _record(sites, mtime, cache_root / "layers", [spec.key for spec in specs], warnings)
    return SiteLayers(tuple(layers), tuple(warnings), built)


def forget(layer: Layer) -> None:
    """Remove a layer from the cache (a damaged one), so that the next `site_layers` builds it again."""
    for path in (layer.path, layer.path.with_suffix(".json")):
        discard(path)


def cached_site_layers(sites: Sequence[Site], cache_root: Path, *, mtime: int = DEFAULT_MTIME) -> SiteLayers | None:
    """What `site_layers` gave for the same sites (by the wheels' sha256) when every layer is still cached.

    Reads neither wheel: a rebuild whose dependencies did not change needs their layers only. None
    when the plan or one of its layers is missing or damaged; `site_layers` then does the work.
    """
    folder = cache_root / "layers"
    try:
        record = json.loads((folder / _PLANS / f"{_plan_key(sites, mtime)}.json").read_bytes())
        keys = [str(k) for k in record["layers"]]
        warnings = [
            Diagnostic(str(w[0]), None, "warning", "overwrite", str(w[1]), str(w[2])) for w in record["warnings"]
        ]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    loaded = [load_key(folder, key) for key in keys]
    layers = [layer for layer in loaded if layer is not None]
    # The record must name one layer per wheel, in archive order: a damaged record is not trusted.
    expected = [
        (site.prefix, canonicalize_name(w.name), canonicalize_version(w.version))
        for site in sites
        for w in sorted(site.wheels, key=lambda w: (canonicalize_name(w.name), w.version, str(w.path)))
    ]
    found = [
        (layer.site, canonicalize_name(layer.distribution), canonicalize_version(layer.version)) for layer in layers
    ]
    if len(layers) != len(loaded) or found != expected:
        return None
    return SiteLayers(tuple(layers), tuple(warnings), 0)


_PLANS = "plans"


def _plan_key(sites: Sequence[Site], mtime: int) -> str:
    """Identifies the choices of `_plan`: they depend on the wheels' contents, known by their sha256."""
    data = {
        "format": FORMAT,
        "mtime": mtime,
        "sites": [
            [site.prefix, sorted((w.sha256, canonicalize_name(w.name), w.version) for w in site.wheels)]
            for site in sites
        ],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _record(
    sites: Sequence[Site], mtime: int, folder: Path, keys: Sequence[str], warnings: Sequence[Diagnostic]
) -> None:
    """Remember which layers `sites` came to; a record that cannot be written only costs time."""
    document = {"layers": list(keys), "warnings": [[w.path, w.message, w.hint] for w in warnings]}
    with contextlib.suppress(OSError):
        (folder / _PLANS).mkdir(parents=True, exist_ok=True)
        write_atomic(folder / _PLANS / f"{_plan_key(sites, mtime)}.json", json.dumps(document).encode())


def wheel_layer(
    wheel: Path,
    sha256: str,
    cache_root: Path,
    *,
    site: str,
    mtime: int = DEFAULT_MTIME,
    omit: Iterable[str] = (),
    links: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> Layer:
    """The layer of one wheel installed under `site`, from the cache or built into it.

    `omit` names site-relative paths to leave out; `links` maps site-relative paths to the
    arcname of an earlier member (in another layer) holding the same content, to store them as
    hard links. `site_layers` makes both choices for whole site folders. A ProjectError if the
    wheel is damaged or the cache cannot be written.
    """
    _check_prefix(site)
    spec = Spec(read_wheel(wheel), sha256, site, mtime, frozenset(omit), dict(links or {}))
    known = {f.path for f in spec.wheel.files}
    unknown = sorted((spec.omit | spec.links.keys()) - known)
    if unknown:
        raise ValueError(f"{wheel.name} installs no file {', '.join(map(repr, unknown))}")
    layers, _ = _ensure([spec], cache_root / "layers", workers or default_workers())
    return layers[0]


def _check_prefix(prefix: str) -> None:
    problem = arcname_problem(prefix)
    if problem is not None:
        raise ValueError(f"site folder: {problem}")


def _read_all(paths: Iterable[Path]) -> dict[Path, Wheel]:
    """Every wheel read once; one ProjectError for all those that are damaged."""
    wheels: dict[Path, Wheel] = {}
    errors: list[ProjectError] = []
    for path in paths:
        if path not in wheels:
            try:
                wheels[path] = read_wheel(path)
            except ProjectError as exc:
                errors.append(exc)
    _raise_all(errors)
    return wheels


def _plan(sites: Sequence[Site], wheels: Mapping[Path, Wheel], mtime: int) -> tuple[list[Spec], list[Diagnostic]]:
    """Every layer's spec in archive order, with the paths it leaves out and the files it links."""
    specs: list[Spec] = []
    warnings: list[Diagnostic] = []
    stored: dict[tuple[str, int, bool], str] = {}  # (sha256, size, executable) -> arcname of the first copy
    for site in sites:
        ordered = sorted(site.wheels, key=lambda w: (canonicalize_name(w.name), w.version, str(w.path)))
        installed = [wheels[w.path] for w in ordered]
        winners = _winners(installed)
        warnings.extend(_overwrites(site.prefix, ordered, installed, winners))
        for index, (entry, wheel) in enumerate(zip(ordered, installed, strict=True)):
            omit = frozenset(f.path for f in wheel.files if winners[f.path] != index)
            links: dict[str, str] = {}
            for f in wheel.files:
                if f.path in omit:
                    continue
                # The mode is part of the match: hard links share one, so a link cannot change it.
                same = (f.content.sha256, f.content.size, f.executable)
                if f.content.size >= LINK_MIN and same in stored:
                    links[f.path] = stored[same]
                else:
                    stored.setdefault(same, f"{site.prefix}/{f.path}")
            specs.append(Spec(wheel, entry.sha256, site.prefix, mtime, omit, links))
    return specs, warnings


def _winners(installed: Sequence[Wheel]) -> dict[str, int]:
    """For each path of a site, the index of the wheel whose copy is kept: the last one that writes it."""
    return {f.path: index for index, wheel in enumerate(installed) for f in wheel.files}


def _overwrites(
    prefix: str, ordered: Sequence[SiteWheel], installed: Sequence[Wheel], winners: Mapping[str, int]
) -> list[Diagnostic]:
    kept = {f.path: f for index, wheel in enumerate(installed) for f in wheel.files if winners[f.path] == index}
    lost: Counter[tuple[int, int]] = Counter()
    first: dict[tuple[int, int], str] = {}
    for index, wheel in enumerate(installed):
        for f in wheel.files:
            winner = winners[f.path]
            if winner != index and kept[f.path].content != f.content:
                lost[index, winner] += 1
                first.setdefault((index, winner), f.path)
    return [
        _overwrite(prefix, ordered[loser], ordered[winner], count, first[loser, winner])
        for (loser, winner), count in sorted(lost.items())
    ]


def _overwrite(prefix: str, loser: SiteWheel, winner: SiteWheel, count: int, example: str) -> Diagnostic:
    files = "1 file" if count == 1 else f"{count} files"
    return Diagnostic(
        prefix,
        None,
        "warning",
        "overwrite",
        f"{winner.name} {winner.version} overwrites {files} of {loser.name} {loser.version} "
        f"with different content (first: '{example}')",
        f"the copy of {winner.name}, later in name order, is kept, as an installer would leave it; "
        f"exclude one of the two if the worker does not need it",
    )


def _ensure(specs: Sequence[Spec], folder: Path, workers: int) -> tuple[list[Layer], int]:
    """The layer of every spec: cached ones as they are, missing ones built on `workers` threads."""
    found: dict[str, Layer] = {}
    missing: dict[str, Spec] = {}
    for spec in specs:
        if spec.key not in found and spec.key not in missing:
            layer = load(folder, spec)
            if layer is None:
                missing[spec.key] = spec
            else:
                found[spec.key] = layer
    if missing:
        found.update(_build_all(list(missing.values()), folder, workers))
    return [found[spec.key] for spec in specs], len(missing)


def _build_all(specs: Sequence[Spec], folder: Path, workers: int) -> dict[str, Layer]:
    """Build `specs` at once, sharing `workers` compression threads; one ProjectError for all that fail."""
    stop = threading.Event()
    built: dict[str, Layer] = {}
    errors: list[ProjectError] = []
    # Each builder reads its wheel and hands chunks to the shared compression pool; builders never
    # run on that pool, so none can wait on work queued behind itself.
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="flashc-gzip") as compress,
        ThreadPoolExecutor(min(workers, len(specs)), thread_name_prefix="flashc-layer") as builders,
    ):
        futures: dict[str, Future[Layer]] = {
            spec.key: builders.submit(build, folder, spec, compress, ahead=2 * workers, cancelled=stop.is_set)
            for spec in specs
        }
        try:
            for key, future in futures.items():
                try:
                    built[key] = future.result()
                except ProjectError as exc:
                    errors.append(exc)
        except BaseException:
            stop.set()  # an interrupt: the other builders stop at their next block and clean up
            raise
    _raise_all(errors)
    return built


def _raise_all(errors: Sequence[ProjectError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ProjectError(
            f"{len(errors)} wheels cannot be installed:\n" + "\n".join(f"  {e.message}" for e in errors),
            "; ".join(dict.fromkeys(e.hint for e in errors if e.hint)),
        )
