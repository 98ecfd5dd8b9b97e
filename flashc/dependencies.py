"""The dependency stage of `flashc build`: requirements in, installed files for the archive out.

    Analysis + settings --collect--> RequirementSet --resolve (or flash.lock)--> wheels
    --prune (exclusions)--> kept wheels --install (cached by content)--> bundle folder

The bundle is installed once per set of wheels into the cache (`<cache>/bundles/<key>/`) and
reused by every later build that needs the same wheels, so a rebuild after a source edit
repacks without resolving or unpacking again. In the archive its files go under
`_flashc/site/`, a folder of their own: no wheel can overwrite a project file or the runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Req
from packaging.utils import canonicalize_name

from .diagnostics import Diagnostic
from .errors import DiagnosticsError, ProjectError
from .lockfile import Lock, LockedWheel, read_lock, verify_wheel
from .models import Analysis
from .prune import Dist, PruneResult, default_exclusions, prune
from .requirements import Requirement, RequirementSet, read_project_requirements, toml_loader
from .resolve import PipRunner, Progress, ResolvedWheel, WheelCache, default_pip, resolve
from .target import Target, parse_glibc, parse_python_version
from .wheels import install_wheel

__all__ = ["SITE_DIR", "Dependencies", "Settings", "lock_inputs", "plan_dependencies", "resolve_for_lock"]

SITE_DIR = "_flashc/site"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the user chose on the command line (or in `[tool.flashc]` of pyproject.toml)."""

    python_version: str | None = None
    glibc: str | None = None
    exclude: tuple[str, ...] = ()
    default_excludes: bool = True
    no_deps: bool = False
    offline: bool = False


@dataclasses.dataclass(frozen=True)
class Dependencies:
    target: Target
    requirements: RequirementSet
    wheels: tuple[ResolvedWheel, ...]  # what the archive ships
    pruned: PruneResult
    left_out: tuple[str, ...]  # needed by something, but not shipped: excluded, or only needed by what was
    saved: int  # bytes of wheels not shipped: downloaded then pruned, plus the index's size of those never fetched
    bundle: Path  # installed files, shared by builds that need the same wheels
    files: tuple[str, ...]  # POSIX paths inside `bundle`
    sizes: dict[str, int]  # installed bytes per distribution
    warnings: tuple[Diagnostic, ...]


def target_for(root: Path, settings: Settings) -> Target:
    """The worker: `--python-version`, else `[tool.flashc] python_version`, else this interpreter."""
    configured = _tool_config(root)
    version = settings.python_version or configured.get("python_version")
    glibc = settings.glibc or configured.get("glibc")
    python = parse_python_version(str(version) if version else f"{sys.version_info.major}.{sys.version_info.minor}")
    return Target(python, parse_glibc(str(glibc)) if glibc else "2.35")


def _tool_config(root: Path) -> dict[str, object]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    loads = toml_loader()
    if loads is None:  # the requirements stage reports that pyproject.toml cannot be read
        return {}
    try:
        data = loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    tool = data.get("tool", {}).get("flashc", {})
    return tool if isinstance(tool, dict) else {}


def lock_inputs(
    requirements: Sequence[Requirement], target: Target, no_deps: bool, skip: frozenset[str] = frozenset()
) -> str:
    """Identifies what a lock was resolved from; a lock for other inputs is out of date."""
    data = {
        "left_out": sorted(skip),
        "requirements": sorted(r.text for r in requirements),
        "target": dataclasses.asdict(target),
        "no_deps": no_deps,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def plan_dependencies(
    root: Path,
    analysis: Analysis,
    settings: Settings,
    *,
    cache: WheelCache,
    pip: PipRunner = default_pip,
    progress: Progress | None = None,
) -> Dependencies:
    """Collect, resolve (or read flash.lock), prune and install the project's dependencies."""
    say: Progress = progress or (lambda message: None)
    reqs = _requirements(root, analysis)
    target = target_for(root, settings)
    lock = read_lock(root)
    if lock is not None:
        skip = _skipped(analysis, reqs, settings, lock.wheels)
        wheels = _from_lock(lock, reqs, target, settings, skip, cache, pip)
    else:
        wheels, skip = _resolve(analysis, reqs, target, settings, cache, pip, say)
    roots = {r.name for r in reqs.requirements}
    dists = {w.name: Dist(w.name, w.version, w.size, w.requires) for w in wheels}
    pruned = prune(dists, roots, {*settings.exclude, *skip})
    kept = tuple(w for w in wheels if w.name in set(pruned.kept))
    referenced = roots | {name for w in wheels for name in w.requires}
    left_out = tuple(sorted((skip & referenced) | set(pruned.excluded) | set(pruned.dropped)))
    never_fetched = [name for name in left_out if name not in dists]
    saved = pruned.freed + _index_sizes(never_fetched, target, reqs, settings, cache)
    bundle, files, sizes = _install(kept, cache, say)
    warnings = tuple(d for d in reqs.problems if d.severity == "warning")
    unknown = sorted(set(settings.exclude) - referenced)
    if unknown:
        warnings += (
            Diagnostic(
                ".",
                None,
                "warning",
                "exclude",
                f"--exclude names what no requirement needs: {', '.join(unknown)}",
                "check the spelling against the distributions listed by `flashc build --json`",
            ),
        )
    return Dependencies(target, reqs, kept, pruned, left_out, saved, bundle, files, sizes, warnings)


def _index_sizes(
    names: Sequence[str], target: Target, reqs: RequirementSet, settings: Settings, cache: WheelCache
) -> int:
    """What the left-out wheels weigh, by the index's listing (remembered in the cache): no download."""
    if not names:
        return 0
    from ._atomic import write_atomic
    from .index import wheel_size
    from .target import wheel_fits

    record = cache.root / "sizes.json"
    try:
        known: dict[str, int] = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    total, changed = 0, False
    for name in names:
        key = f"{name} {target.python_version} {target.glibc}"
        if key not in known and not settings.offline:
            size = wheel_size(name, lambda filename: wheel_fits(filename, target), reqs.options)
            if size is not None:
                known[key], changed = size, True
        total += known.get(key, 0)
    if changed:
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(record, json.dumps(known, sort_keys=True).encode())
        except OSError:
            pass
    return total


def _requirements(root: Path, analysis: Analysis) -> RequirementSet:
    reqs = read_project_requirements(root, analysis.functions)
    if any(d.severity == "error" for d in reqs.problems):
        raise DiagnosticsError(reqs.problems, root)
    return reqs


def _resolve(
    analysis: Analysis,
    reqs: RequirementSet,
    target: Target,
    settings: Settings,
    cache: WheelCache,
    pip: PipRunner,
    say: Progress,
) -> tuple[tuple[ResolvedWheel, ...], frozenset[str]]:
    """Resolve without downloading what is left out; if a CPU worker turns out to need one of the
    GPU image's packages, resolve again with it included."""
    skip = frozenset({*settings.exclude, *_gpu_candidates(analysis, settings)})
    while True:
        wheels = resolve(
            reqs.requirements,
            target,
            reqs.options,
            cache=cache,
            pip=pip,
            offline=settings.offline,
            no_deps=settings.no_deps,
            skip=skip,
            progress=say,
        ).wheels
        needed = skip - _skipped(analysis, reqs, settings, wheels)
        if not needed:
            return wheels, skip
        skip -= needed


def _gpu_candidates(analysis: Analysis, settings: Settings) -> set[str]:
    """The GPU image's packages, when any resource runs on a GPU and the defaults are on."""
    if not settings.default_excludes or all(r.compute != "gpu" for r in analysis.resources):
        return set()
    return set(default_exclusions(True))


def _skipped(
    analysis: Analysis, reqs: RequirementSet, settings: Settings, wheels: Iterable[ResolvedWheel]
) -> frozenset[str]:
    """What to leave out: --exclude, and the GPU image's packages that only GPU resources need.

    GPU workers have torch and friends preinstalled; a CPU worker does not, so they stay when a
    function on a CPU resource, `requirements.txt` or `pyproject.toml` needs them, directly or
    through another package (seen in the resolved wheels' `requires`).
    """
    candidates = _gpu_candidates(analysis, settings)
    compute = {r.name: r.compute for r in analysis.resources}
    gpu_only: set[str] = set()
    elsewhere: set[str] = set()
    for f in analysis.functions:
        (gpu_only if compute.get(f.resource) == "gpu" else elsewhere).update(_names(f.dependencies))
    files = {r.name for r in reqs.requirements if not r.origin.what.startswith("dependencies of ")}
    cpu_roots = ({r.name for r in reqs.requirements} - gpu_only) | elsewhere | files
    graph = {w.name: w.requires for w in wheels}
    needed_on_cpu: set[str] = set()
    stack = sorted(cpu_roots)
    while stack:
        name = stack.pop()
        if name not in needed_on_cpu:
            needed_on_cpu.add(name)
            stack.extend(graph.get(name, ()))
    return frozenset(set(settings.exclude) | (candidates - needed_on_cpu))


def _names(requirements: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for text in requirements:
        try:
            names.add(canonicalize_name(Req(text).name))
        except InvalidRequirement:
            continue  # reported by the analysis
    return names


def resolve_for_lock(
    root: Path, analysis: Analysis, settings: Settings, *, cache: WheelCache, pip: PipRunner = default_pip
) -> Lock:
    """Resolve afresh (ignoring any flash.lock), leaving out what a build would, and describe it as a lock."""
    reqs = _requirements(root, analysis)
    target = target_for(root, settings)
    wheels, skip = _resolve(analysis, reqs, target, settings, cache, pip, lambda message: None)
    return Lock(target, lock_inputs(reqs.requirements, target, settings.no_deps, skip), wheels)


def _from_lock(
    lock: Lock,
    reqs: RequirementSet,
    target: Target,
    settings: Settings,
    skip: frozenset[str],
    cache: WheelCache,
    pip: PipRunner,
) -> tuple[ResolvedWheel, ...]:
    if lock.target != target or lock.inputs != lock_inputs(reqs.requirements, target, settings.no_deps, skip):
        raise ProjectError(
            "flash.lock was written for other requirements or another target",
            "run `flashc lock` to update it, or delete it to resolve on every build",
        )
    missing = [w for w in lock.wheels if not cache.path(w.sha256, w.filename).is_file()]
    if missing:
        pinned = [_pinned(w) for w in missing]
        fetched = resolve(pinned, target, reqs.options, cache=cache, pip=pip, offline=settings.offline, no_deps=True)
        found = {w.sha256 for w in fetched.wheels}
        for w in missing:
            if w.sha256 not in found:
                raise ProjectError(
                    f"the index no longer serves {w.filename} with the sha256 in flash.lock",
                    "the wheel changed since the lock was written: run `flashc lock` if that is expected",
                )
    for w in lock.wheels:
        verify_wheel(cache.path(w.sha256, w.filename), w)
    return lock.wheels


def _pinned(w: LockedWheel) -> Requirement:
    from .requirements import Origin

    return Requirement(
        w.name, f"{w.name}=={w.version}", f"=={w.version}", (), None, None, Origin("flash.lock", None, "flash.lock")
    )


def _install(
    wheels: Iterable[ResolvedWheel], cache: WheelCache, say: Progress
) -> tuple[Path, tuple[str, ...], dict[str, int]]:
    """Install the wheels into a bundle folder keyed by their digests, reusing one that exists."""
    wheels = sorted(wheels, key=lambda w: w.name)
    key = hashlib.sha256("\n".join(w.sha256 for w in wheels).encode()).hexdigest()
    bundle = cache.root / "bundles" / key
    manifest = bundle / ".flashc-bundle.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return bundle, tuple(data["files"]), dict(data["sizes"])
    bundle.parent.mkdir(parents=True, exist_ok=True)
    say(f"unpacking {len(wheels)} wheel{'s' if len(wheels) != 1 else ''}")
    staging = Path(tempfile.mkdtemp(dir=bundle.parent, prefix=".staging-"))
    try:
        sizes = {}
        for w in wheels:
            installed = install_wheel(cache.path(w.sha256, w.filename), staging)
            sizes[w.name] = installed.size
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file() or p.is_symlink())
        (staging / ".flashc-bundle.json").write_text(json.dumps({"files": files, "sizes": sizes}, sort_keys=True))
        os.replace(staging, bundle)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return bundle, tuple(files), sizes
