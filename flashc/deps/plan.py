"""The dependency stage of `flashc build`: requirements in, verified wheels per site folder out.

    module       input                                   output                      side effects
    requirements Analysis, requirements.txt, pyproject   RequirementSet              none (reads via the snapshot)
    resolve      RequirementSet, Target                  Resolution (sites of pins)  runs uv; resolution cache
    choose       Resolution, computes, exclusions        SitePlan per site           none
    lock         SitePlan per site                       pylock.toml                 writes the lock (`flashc lock`)
    fetch        the wheels the plans ship               {sha256: cached wheel}      downloads; wheel cache

With a `pylock.toml` written by `flashc lock`, resolve and choose are replaced by the lock: the
build installs exactly what it lists, and a lock resolved from other inputs is refused as stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..config import Config
from ..diagnostics import Diagnostic, Note
from ..errors import DiagnosticsError, ProjectError
from ..imports import ProjectImports
from ..models import Analysis
from ..profiles import Profile, image_of
from ..sources import Snapshot
from .choose import Shadowed, SitePlan, choose
from .fetch import WheelCache, fetch_wheels
from .implied import implied_requirements
from .lock import LOCK_FILE, ForeignLock, Lock, read_lock
from .models import Pin, Site
from .requirements import IndexOptions, Requirement, RequirementSet, origin_span, read_project_requirements
from .resolve import ResolutionCache, mentioned, resolution_key, resolve_project
from .target import Target
from .uv import UvRunner, default_uv

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Dependencies",
    "fetch_shipped",
    "images_of",
    "lock_inputs",
    "lock_project",
    "lock_warnings",
    "plan_dependencies",
    "preferred_versions",
    "project_imports",
    "read_requirements",
]

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Dependencies:
    """The dependencies of a build: what each site ships, and where its wheels come from."""

    target: Target
    requirements: RequirementSet
    index: IndexOptions  # where the wheels come from: requirements.txt's options over the environment's
    plans: tuple[SitePlan, ...]
    split: str | None
    locked: bool  # the plans come from pylock.toml
    warnings: tuple[Diagnostic, ...]

    @property
    def shipped(self) -> tuple[Pin, ...]:
        """Every distinct pin the archive ships, by name then version."""
        pins = {(p.name, p.version): p for plan in self.plans for p in plan.ships}
        return tuple(pins[k] for k in sorted(pins))

    @property
    def left_out(self) -> tuple[Pin, ...]:
        """Every distinct pin no site ships though some site needs it, by name then version."""
        shipped = {(p.name, p.version) for plan in self.plans for p in plan.ships}
        pins = {(p.name, p.version): p for plan in self.plans for p, _ in plan.left_out_pins}
        return tuple(pins[k] for k in sorted(pins) if k not in shipped)

    @property
    def saved(self) -> int:
        """Bytes of wheels not shipped, by the sizes the lock or the index gave."""
        return sum(p.wheel.size or 0 for p in self.left_out)

    def site_of(self, resource: str) -> str:
        return next(plan.site.path for plan in self.plans if resource in plan.site.resources)


def read_requirements(
    snapshot: Snapshot, config: Config, analysis: Analysis, project: ProjectImports | None = None
) -> tuple[RequirementSet, tuple[str, ...]]:
    """The project's requirements: its functions', `requirements.txt` (with `-r`), `[project.dependencies]`
    and what each resource's code imports from its worker image undeclared (`implied.py`); and the
    files read that are not in the snapshot (an include that the ignore rules leave out of the
    archive, or one outside the project), which the up-to-date check must watch too. `project`
    holds the parsed sources when the caller has them already.

    Raises DiagnosticsError when a requirement is invalid or two that one resource installs
    together cannot both hold.
    """
    outside: list[str] = []

    def read(path: str) -> str | None:
        if path in snapshot.files:
            return snapshot.read(path).decode("utf-8-sig")
        try:
            text = (snapshot.root / path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return None
        outside.append(path)
        return text

    pyproject = (config.pyproject.data, config.pyproject.text) if config.pyproject is not None else None
    reqs = read_project_requirements(analysis.functions, read, pyproject, config.target)
    if reqs.has_errors:
        raise DiagnosticsError(reqs.problems, snapshot.root)
    project = project or project_imports(snapshot, config.python_version)
    implied = implied_requirements(project, analysis, images_of(analysis), reqs)
    if implied:
        every = sorted({*reqs.requirements, *implied}, key=lambda r: (r.name, r.text, r.resource or ""))
        reqs = dataclasses.replace(reqs, requirements=tuple(every))
    return reqs, tuple(outside)


def project_imports(snapshot: Snapshot, python_version: str) -> ProjectImports:
    """The project's Python sources (and compiled modules), for the import check and the requirements it implies."""
    from ..importcheck import native_modules

    sources = {p: snapshot.read(p) for p in snapshot.files if p.endswith(".py")}
    return ProjectImports(sources, python_version, native=native_modules(snapshot.files))


def _options(reqs: RequirementSet, config: Config, root: Path) -> IndexOptions:
    """requirements.txt's index options over the environment's; find-links folders made absolute."""
    own, env = reqs.options, config.index
    links = [link if "://" in link else str((root / link).resolve()) for link in (*own.find_links, *env.find_links)]
    return dataclasses.replace(
        own,
        index_url=own.index_url or env.index_url,
        extra_index_urls=tuple(dict.fromkeys((*own.extra_index_urls, *env.extra_index_urls))),
        find_links=tuple(dict.fromkeys(links)),
        no_index=own.no_index or env.no_index,
    )


def lock_inputs(reqs: RequirementSet, analysis: Analysis, config: Config) -> str:
    """Identifies what a lock was made from: requirements per resource, computes, target, exclusions.

    Not where the wheels come from: the lock names every wheel, with its sha256, so a build from
    it asks no index, and the same lock holds in another checkout or shell (another find-links
    folder, `PIP_INDEX_URL` set or not).
    """
    resources = sorted(r.name for r in analysis.resources)
    images = images_of(analysis)
    data = {
        "resolution": resolution_key(
            reqs, resources, config.target, IndexOptions(), config.no_deps, preferred_versions(images.values())
        ),
        "images": {name: image.image for name, image in images.items()},
        "exclude": sorted(config.exclude),
        "keep_gpu_packages": config.keep_gpu_packages,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def images_of(analysis: Analysis) -> dict[str, Profile]:
    """Each resource's worker image: Runpod's for its kind (queue or load-balanced) and compute, or
    the image its config names, of which flashc knows nothing."""
    return {r.name: image_of(r.kind, r.compute, r.config) for r in analysis.resources}


def preferred_versions(images: Iterable[Profile]) -> dict[str, str]:
    """The versions the resolver prefers: what the images have installed (the first image's, where two differ)."""
    preferred: dict[str, str] = {}
    for image in sorted(set(images), key=lambda i: i.name):
        for dist in image.distributions.values():
            preferred.setdefault(dist.name, dist.version)
    return preferred


def lock_project(
    root: Path,
    reqs: RequirementSet,
    analysis: Analysis,
    config: Config,
    *,
    uv: UvRunner | None = None,
) -> Lock:
    """Resolve afresh (no cached resolution is reused) and decide what each site ships: the lock's content."""
    options = _options(reqs, config, root)
    plans, split = _decide(root, reqs, analysis, config, options, uv, refresh=True)
    return Lock(config.target, lock_inputs(reqs, analysis, config), _sized(plans), split)


def plan_dependencies(
    root: Path,
    reqs: RequirementSet,
    analysis: Analysis,
    config: Config,
    lock_text: str | None,
    *,
    uv: UvRunner | None = None,
    refresh: bool = False,
) -> Dependencies:
    """Resolve (or take pylock.toml) and decide what each site ships; `fetch_shipped` gets the wheels.

    Without a lock, a resolution of the same requirements is taken from the cache unless `refresh`.
    """
    options = _options(reqs, config, root)
    warnings = [d for d in reqs.problems if d.severity == "warning"]
    lock = _lock(root, lock_text, warnings)
    if lock is not None:
        if lock.target != config.target:
            locked, wanted = lock.target, config.target
            raise ProjectError(
                f"{LOCK_FILE} was locked for CPython {locked.python_version} with glibc {locked.glibc}, "
                f"but this build is for CPython {wanted.python_version} with glibc {wanted.glibc}",
                f"run `flashc lock --python-version {wanted.python_version} --glibc {wanted.glibc}` to lock for "
                "this target, or build for the lock's (`[tool.flashc]` in pyproject.toml keeps them the same)",
            )
        if lock.inputs != lock_inputs(reqs, analysis, config):
            raise ProjectError(
                f"{LOCK_FILE} is out of date: it was resolved for other requirements, resources, worker images "
                "or exclusions",
                "run `flashc lock` to resolve again, or delete it to resolve on every build",
            )
        plans, split = lock.plans, lock.split
    else:
        plans, split = _decide(root, reqs, analysis, config, options, uv, refresh=refresh)
    plans = _sized(plans)
    if split is not None:
        warnings.append(_split_warning(split, reqs, [plan.site for plan in plans]))
    warnings.extend(_shadow_warnings(plans, reqs))
    referenced = {p.name for plan in plans for p in plan.site.pins}
    unknown = sorted(set(config.exclude) - referenced)
    if unknown:
        warnings.append(
            Diagnostic(
                ".",
                None,
                "warning",
                "exclude",
                f"--exclude names what no requirement needs: {', '.join(unknown)}",
                "check the spelling against the distributions listed by `flashc build --json`",
            )
        )
    return Dependencies(config.target, reqs, options, plans, split, lock is not None, tuple(warnings))


def _decide(
    root: Path,
    reqs: RequirementSet,
    analysis: Analysis,
    config: Config,
    options: IndexOptions,
    uv: UvRunner | None,
    *,
    refresh: bool,
) -> tuple[tuple[SitePlan, ...], str | None]:
    """Resolve (from the cache unless `refresh`) and choose what each site ships; the plans and why they split."""
    images = images_of(analysis)
    resolution = resolve_project(
        dataclasses.replace(reqs, options=options),
        sorted(r.name for r in analysis.resources),
        config.target,
        uv=uv or default_uv(config.cache_dir / "uv"),
        cache=ResolutionCache(config.cache_dir),
        refresh=refresh,
        no_deps=config.no_deps,
        offline=config.offline,
        root=root,
        preferences=preferred_versions(images.values()),
    )
    plans = choose(
        resolution,
        reqs,
        images,
        exclude=config.exclude,
        keep_gpu_packages=config.keep_gpu_packages,
    )
    return plans, resolution.split


def fetch_shipped(
    deps: Dependencies, config: Config, *, client: httpx.Client | None = None, progress: Progress | None = None
) -> dict[str, Path]:
    """Every wheel the plans ship, present and verified in the wheel cache: its path by sha256."""
    return fetch_wheels(
        [p.wheel for plan in deps.plans for p in plan.ships],
        WheelCache(config.cache_dir),
        offline=config.offline,
        credentials=_credentials(deps.index),
        client=client,
        progress=progress,
    )


def _split_warning(reason: str, reqs: RequirementSet, sites: Sequence[Site]) -> Diagnostic:
    """Why the resources have several site folders, where the requirements that conflict are written."""
    resources = [name for site in sites for name in site.resources]
    involved = mentioned(reason, [r for name in [None, *resources] for r in reqs.for_resource(name)])
    first = involved[0] if involved else None
    rest = involved[1:]
    folders = "; ".join(f"{site.path} for {', '.join(repr(n) for n in site.resources)}" for site in sites)
    return Diagnostic(
        first.origin.path if first else ".",
        origin_span(first.origin) if first else None,
        "warning",
        "split",
        f"the resources need versions that cannot be installed together, so they get {len(sites)} site "
        f"folders ({folders}): {reason}",
        "files the folders share are stored once (hard links); pin versions that agree to share one folder",
        tuple(Note(r.origin.path, origin_span(r.origin), f"'{r.text}' is required here{_what(r)}") for r in rest),
    )


def lock_warnings(lock: Lock, reqs: RequirementSet) -> tuple[Diagnostic, ...]:
    """What `flashc lock` says about what it locked: where a distribution ships though its image has it."""
    return tuple(_shadow_warnings(lock.plans, reqs))


def _shadow_warnings(plans: Sequence[SitePlan], reqs: RequirementSet) -> list[Diagnostic]:
    found = {(s, plan.site) for plan in plans for s in plan.shadowed}
    ordered = sorted(found, key=lambda f: (f[0].name, f[0].version, f[0].image, f[1].path))
    unique = {s: site for s, site in ordered}  # one warning per distribution, version and image
    return [_shadow_warning(s, site, reqs) for s, site in unique.items()]


def _shadow_warning(shadowed: Shadowed, site: Site, reqs: RequirementSet) -> Diagnostic:
    """A distribution the worker image has ships anyway, in the version the project needs: at the
    requirement that asks for it, or at the one whose dependencies do."""
    mine = [r for name in [None, *shadowed.resources] for r in reqs.for_resource(name)]
    direct = [r for r in mine if r.name == shadowed.name]
    pins = {p.name: p for p in site.pins}
    parents = sorted(p.name for p in site.pins if shadowed.name in p.requires)
    through = [r for r in mine if r.name in pins and shadowed.name in _closure(pins, r.name)]
    asked = sorted(direct or through, key=lambda r: (r.origin.path, r.origin.line or 0))
    first = asked[0] if asked else None
    if direct:
        why = f"'{direct[0].text}' asks for another version"
    else:
        why = f"{', '.join(parents) or 'another distribution'} need{'s' if len(parents) == 1 else ''} it"
    message = (
        f"{shadowed.name} {shadowed.version} ships although {shadowed.image} has {shadowed.image_version} "
        f"({why}); on the worker the shipped version comes first"
    )
    hint = f"allow {shadowed.name}=={shadowed.image_version} to use the image's and ship less"
    asking = {r.resource for r in direct}
    others = [] if None in asking or not direct else sorted(set(shadowed.resources) - asking)
    if others:  # they share the site folder and use the distribution without asking for this version
        message += f", also for {', '.join(repr(o) for o in others)}, which use{'s' if len(others) == 1 else ''} it"
        hint = (
            f"where {', '.join(others)} need{'s' if len(others) == 1 else ''} the image's version, declare it there "
            f"({shadowed.name}=={shadowed.image_version}): resources whose versions conflict get site folders of "
            "their own"
        )
    return Diagnostic(
        first.origin.path if first else ".",
        origin_span(first.origin) if first else None,
        "warning",
        "image",
        message,
        hint,
    )


def _closure(pins: Mapping[str, Pin], name: str) -> set[str]:
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current not in seen and current in pins:
            seen.add(current)
            stack.extend(pins[current].requires)
    return seen


def _what(requirement: Requirement) -> str:
    origin = requirement.origin
    return "" if origin.what == origin.path else f" ({origin.what})"


def _lock(root: Path, text: str | None, warnings: list[Diagnostic]) -> Lock | None:
    try:
        return read_lock(root, text)
    except ForeignLock as exc:
        warnings.append(Diagnostic(LOCK_FILE, None, "warning", "lock", f"{exc.message}; it is not used", exc.hint))
        return None


def _sized(plans: Sequence[SitePlan]) -> tuple[SitePlan, ...]:
    """Plans whose local (file://) wheels have their size, read from the file: the index gives the others'."""

    def sized(pin: Pin) -> Pin:
        if pin.wheel.size is not None or not pin.wheel.url.startswith("file://"):
            return pin
        from urllib.parse import unquote

        try:
            size = Path(unquote(urlparse(pin.wheel.url).path)).stat().st_size
        except OSError:
            return pin
        return dataclasses.replace(pin, wheel=dataclasses.replace(pin.wheel, size=size))

    return tuple(
        dataclasses.replace(plan, site=dataclasses.replace(plan.site, pins=tuple(sized(p) for p in plan.site.pins)))
        for plan in plans
    )


def _credentials(options: IndexOptions) -> dict[str, tuple[str, str]]:
    """user:password of index URLs, for the wheels their hosts serve."""
    found: dict[str, tuple[str, str]] = {}
    for url in (options.index_url, *options.extra_index_urls):
        if not url:
            continue
        parsed = urlparse(url)
        if parsed.hostname and parsed.username is not None:
            found[parsed.hostname] = (parsed.username, parsed.password or "")
    return found
