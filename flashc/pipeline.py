"""The pipeline, stage by stage. Each stage is a function from frozen values to the next:

    stage     input                                 output                        side effects
    config    options, pyproject.toml, environment  Config                        reads pyproject.toml (cli.py)
    snapshot  project folder                        Snapshot                      walks; reads each file once
    analyze   Snapshot                              Analysis                      scan cache
    group     Analysis                              BuildPlan                     none
    deps      Analysis, Snapshot, Config            Dependencies (site plans)     runs uv, downloads (caches)
    imports   sources, site plans, layers           diagnostics, what each        none
                                                    resource takes from its image
    manifest  BuildPlan, fingerprints, sites        Manifest                      none
    render    BuildPlan, Manifest                   RenderedFile per file         none (reads flashc's templates)
    layers    each site's wheels                    Layer per wheel               layer cache
    pack      entries and layers                    archive + PackResult          writes the archive atomically

`build` runs them all; `generate` stops after render (for `flashc render` and snapshot tests).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import flashc_runtime
from packaging.utils import canonicalize_name

from ._atomic import write_atomic
from .analyze import analyze_project
from .closure import resource_files
from .config import CliOptions, Config, image_python, read_config
from .deps.fetch import WheelCache, WheelChanged
from .deps.lock import LOCK_FILE
from .deps.plan import Dependencies, Progress, fetch_shipped, plan_dependencies, project_imports, read_requirements
from .diagnostics import Diagnostic
from .errors import DiagnosticsError, ProjectError, UsageError
from .group import BuildPlan, group
from .importcheck import check_worker_imports
from .manifest import Manifest, build_manifest, source_fingerprint
from .models import Analysis
from .pack import (
    DamagedLayer,
    Entry,
    PackResult,
    Site,
    SiteLayers,
    SiteWheel,
    TooLarge,
    cached_site_layers,
    forget,
    project_entries,
    site_layers,
    write_archive,
)
from .render import MANIFEST_PATH, RenderedFile, render
from .sources import Snapshot, snapshot_project

__all__ = ["Built", "Generated", "build", "build_project", "generate", "write_files"]


@dataclasses.dataclass(frozen=True)
class Generated:
    project: Snapshot
    analysis: Analysis
    plan: BuildPlan
    manifest: Manifest
    files: tuple[RenderedFile, ...]


def analyzed(project: Snapshot, *, use_cache: bool = True, serve: str | None = None) -> Analysis:
    """The analysis of a project; DiagnosticsError when it has errors."""
    analysis = analyze_project(project, use_cache=use_cache, serve=serve)
    if analysis.has_errors:
        raise DiagnosticsError(analysis.diagnostics, project.root)
    return analysis


def generate(
    project: Path | Snapshot,
    *,
    python_version: str | None = None,
    sites: Mapping[str, str] | None = None,
    provided: Mapping[str, Sequence[str]] | None = None,
    analysis: Analysis | None = None,
    use_cache: bool = True,
) -> Generated:
    """Analyze, group and render a project; DiagnosticsError when the analysis has errors.

    `sites` gives each resource its site folder when a build knows it (resources whose
    dependencies conflict each have their own); without it, the project's pylock.toml says, else
    every resource shares `_flashc/site`. `provided` gives the distributions each resource takes
    from its worker image, which only a build knows (`check_worker_imports`); without it, none.
    """
    snapshot = project if isinstance(project, Snapshot) else snapshot_project(project)
    analysis = analysis or analyzed(snapshot, use_cache=use_cache)
    contents = {p: snapshot.read(p) for p in snapshot.files}
    fingerprint = source_fingerprint(contents.items())
    plan = group(analysis)
    shipped_by_resource = resource_files(contents, {g.name: g.modules for g in plan.groups})
    per_resource = {name: source_fingerprint(files) for name, files in shipped_by_resource.items()}
    version = python_version or image_python()
    manifest = build_manifest(
        plan,
        python_version=version,
        source_fingerprint=fingerprint,
        resource_fingerprints=per_resource,
        sites=sites if sites is not None else _locked_sites(snapshot),
        provided=provided,
    )
    return Generated(snapshot, analysis, plan, manifest, render(plan, manifest))


def _locked_sites(snapshot: Snapshot) -> dict[str, str]:
    """Each resource's site folder as the project's pylock.toml records it; {} without one."""
    from .deps.lock import ForeignLock, read_lock

    text, _ = _lock_text(snapshot)
    try:
        lock = read_lock(snapshot.root, text)
    except (ForeignLock, ProjectError):
        return {}  # the build reports it; rendering does not depend on it
    return {r: plan.site.path for plan in (lock.plans if lock else ()) for r in plan.site.resources}


def write_files(files: Sequence[RenderedFile], out: Path) -> None:
    """Write generated files under `out`, each atomically (temp file, then rename)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"'{out}' exists and is not a folder", "choose another --out folder")
    for f in files:
        target = out / f.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, f.text.encode("utf-8"))
        except OSError as exc:
            raise ProjectError(f"cannot write '{target}': {exc.strerror or exc}", "check the --out folder") from exc


@dataclasses.dataclass(frozen=True)
class Built:
    generated: Generated
    dependencies: Dependencies
    archive: PackResult
    manifest_path: Path
    warnings: tuple[Diagnostic, ...]
    outside: tuple[str, ...]  # files read that are not in the snapshot: the up-to-date check watches them too


def build(
    snapshot: Snapshot,
    config: Config,
    output: Path | None = None,
    *,
    keep_build: bool = False,
    refresh: bool = False,
    progress: Progress | None = None,
) -> Built:
    """Analyze, resolve, render and pack the project into `output` (default `.flash/archive.tar.gz`).

    The archive holds the project's files after ignore rules, the generated files, the runtime
    package under `_flashc/` (first on the worker's `sys.path`, so project files can never shadow
    it) and the dependencies under each resource's site folder. A copy of the manifest goes to
    `.flash/flash_manifest.json`. With `keep_build`, the archive's tree is also laid out in
    `.flash/.build/` for inspection; otherwise that folder is removed. An archive over the size
    limit is refused before it replaces the previous one. Without a lock, the requirements are
    resolved again when `refresh` asks, or when the index now serves other bytes for a wheel.
    """
    state = snapshot.root / ".flash"
    if state.exists() and not state.is_dir():
        raise ProjectError(f"'{state}' is a file, but flashc keeps its build state there", "remove or rename it")
    snapshot = _without_output(snapshot, output)
    keeps_state = _state_folder(state, elsewhere=output is not None and not keep_build)
    analysis = analyzed(snapshot, serve=config.serve)
    project = project_imports(snapshot, config.python_version)
    reqs, outside = read_requirements(snapshot, config, analysis, project)
    lock_text, lock_outside = _lock_text(snapshot)
    deps = plan_dependencies(snapshot.root, reqs, analysis, config, lock_text, refresh=refresh)
    try:
        layered = _layers(deps, config, progress)
    except WheelChanged:
        if deps.locked or refresh:
            raise
        # The index serves other bytes than when these requirements were resolved (a wheel was
        # replaced): the cached resolution is stale, so resolve again, once.
        deps = plan_dependencies(snapshot.root, reqs, analysis, config, lock_text, refresh=True)
        layered = _layers(deps, config, progress)
    if OLD_LOCK in snapshot.files:
        deps = dataclasses.replace(deps, warnings=(*deps.warnings, _old_lock_warning()))
    sites = {r.name: deps.site_of(r.name) for r in analysis.resources}
    imports, provided = check_worker_imports(
        project, snapshot.root, analysis, deps, layered.layers, exclude=config.exclude
    )
    if any(d.severity == "error" for d in imports):
        raise DiagnosticsError([*imports, *deps.warnings], snapshot.root)
    generated = generate(
        snapshot, python_version=config.python_version, sites=sites, provided=provided, analysis=analysis
    )
    generated_paths = {f.path for f in generated.files}
    clashes = [p for p in snapshot.files if p in generated_paths or p.split("/")[0] == "_flashc"]
    if clashes:
        raise ProjectError(
            f"project files use paths that flashc generates: {', '.join(clashes)}",
            "rename them: flash_manifest.json and _flashc/ are reserved in the archive",
        )
    entries = [
        *_project_entries(snapshot),
        *(Entry(f.path, data=f.text.encode("utf-8")) for f in generated.files),
        *_runtime_entries(),
    ]
    if output is None:
        state.mkdir(exist_ok=True)
        output = state / "archive.tar.gz"
    if progress is not None:
        progress(f"compressing {len(entries)} project files and {len(layered.layers)} dependency layers")
    try:
        try:
            result = write_archive(entries, output, layers=layered.layers, mtime=config.mtime, max_size=config.max_size)
        except DamagedLayer as exc:  # a cache entry changed on disk: build it again, never ship it
            forget(exc.layer)
            layered = _layers(deps, config, progress)
            result = write_archive(entries, output, layers=layered.layers, mtime=config.mtime, max_size=config.max_size)
    except TooLarge as exc:
        raise _too_large(exc) from exc
    manifest_file = next(f for f in generated.files if f.path == MANIFEST_PATH)
    if keeps_state:
        write_files([manifest_file], state)
        staging = state / ".build"
        shutil.rmtree(staging, ignore_errors=True)
        if keep_build:
            _lay_out(result.path, staging)
    return Built(
        generated,
        deps,
        result,
        state / MANIFEST_PATH,
        (*_credential_warnings(snapshot), *deps.warnings, *layered.warnings, *imports),
        (*outside, *lock_outside),
    )


def _state_folder(state: Path, *, elsewhere: bool) -> bool:
    """Make `.flash/`; False when it cannot be made but the build needs it for nothing (`-o` elsewhere)."""
    try:
        state.mkdir(exist_ok=True)
    except OSError as exc:
        if elsewhere:
            return False  # a read-only checkout: the archive goes where -o says, with no copy of the manifest
        raise ProjectError(
            f"cannot make flashc's build folder '{state}': {exc.strerror or exc}",
            "make the project folder writable, or write the archive elsewhere with -o (without --keep-build)",
        ) from exc
    return True


def _without_output(snapshot: Snapshot, output: Path | None) -> Snapshot:
    """The snapshot less the file `-o` names, when it is inside the project: an earlier archive there must not
    be packed into the next one (nor change its fingerprints). Any other project file there is refused."""
    if output is None:
        return snapshot
    try:
        rel = output.resolve().relative_to(snapshot.root).as_posix()
    except ValueError:
        return snapshot
    if rel not in snapshot.files:
        return snapshot
    try:
        with (snapshot.root / rel).open("rb") as f:
            is_archive = f.read(2) == b"\x1f\x8b"
    except OSError:
        is_archive = False
    if not is_archive:
        raise UsageError(
            f"output '{output}' is the project file '{rel}', which is not an archive: the build would overwrite it",
            "write the archive to another path",
        )
    return Snapshot(
        root=snapshot.root,
        files=tuple(f for f in snapshot.files if f != rel),
        ignored=tuple(sorted((*snapshot.ignored, rel))),
        credentials=snapshot.credentials,
    )


def _credential_warnings(snapshot: Snapshot) -> list[Diagnostic]:
    """A warning per file or folder left out because it looks like a credential, saying how to ship it anyway."""
    return [
        Diagnostic(
            path,
            None,
            "warning",
            "credentials",
            f"left out of the archive: {'a folder' if path.endswith('/') else 'a file'} that usually holds credentials",
            f"to ship it on purpose, add the line `!/{path}` to .flashignore",
        )
        for path in snapshot.credentials
    ]


def _lock_text(snapshot: Snapshot) -> tuple[str | None, tuple[str, ...]]:
    """The project's pylock.toml, also when the ignore rules leave it out of the archive; and, when it is
    not in the snapshot, its name, for the up-to-date check to watch (a lock written later counts)."""
    if LOCK_FILE in snapshot.files:
        return snapshot.read(LOCK_FILE).decode("utf-8", errors="replace"), ()
    try:
        return (snapshot.root / LOCK_FILE).read_text(encoding="utf-8", errors="replace"), (LOCK_FILE,)
    except FileNotFoundError:
        return None, (LOCK_FILE,)
    except OSError as exc:
        raise ProjectError(f"cannot read {LOCK_FILE}: {exc.strerror or exc}", "check the file's permissions") from exc


OLD_LOCK = "flash.lock"


def _old_lock_warning() -> Diagnostic:
    return Diagnostic(
        OLD_LOCK,
        None,
        "warning",
        "lock",
        "flash.lock is no longer read: this build resolved the requirements afresh",
        "`flashc lock` writes pylock.toml (PEP 751), which builds then install exactly; delete flash.lock",
    )


def _layers(deps: Dependencies, config: Config, progress: Progress | None) -> SiteLayers:
    """Every site's wheels as cached layers: when all are cached, no wheel is even looked at."""
    cache = WheelCache(config.cache_dir)
    sites = [
        Site(
            plan.site.path, tuple(SiteWheel(cache.path(p.wheel), p.wheel.sha256, p.name, p.version) for p in plan.ships)
        )
        for plan in deps.plans
    ]
    cached = cached_site_layers(sites, config.cache_dir, mtime=config.mtime)
    if cached is not None:
        return cached
    fetch_shipped(deps, config, progress=progress)
    if progress is not None:
        progress("installing wheels into their site folders")
    return site_layers(sites, config.cache_dir, mtime=config.mtime)


def build_project(root: Path, options: CliOptions | None = None, output: Path | None = None, **kwargs: Any) -> Built:
    """`build` for a caller that holds only the project folder: read it and its config, then build."""
    snapshot = snapshot_project(root)
    return build(snapshot, read_config(snapshot.root, options or CliOptions()), output, **kwargs)


def _project_entries(snapshot: Snapshot) -> list[Entry]:
    """The project's files, read from the snapshot; large ones streamed from disk when packed."""
    checked = project_entries(snapshot.root, snapshot.files)  # refuses symlinks that leave the project
    return [
        e
        if snapshot.is_large(e.arcname)
        else Entry(e.arcname, data=snapshot.read(e.arcname), executable=snapshot.is_executable(e.arcname))
        for e in checked
    ]


def _runtime_entries() -> list[Entry]:
    """The runtime package, and what it brings along: cloudpickle (its license with it), last on the
    worker's `sys.path`, so the image's or the project's own copy comes first where there is one."""
    runtime_root = Path(flashc_runtime.__file__).parent
    files = sorted(
        p
        for p in runtime_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and (p.suffix in (".py", ".json") or p.name == "py.typed")
    )
    entries = [Entry(f"_flashc/flashc_runtime/{p.relative_to(runtime_root).as_posix()}", source=p) for p in files]
    return entries + _vendored("cloudpickle")


def _vendored(name: str) -> list[Entry]:
    """A pure-Python distribution flashc itself installs, as `_flashc/_vendor/<name>/`, with its license."""
    from importlib import metadata

    dist = metadata.distribution(name)
    entries = []
    for file in sorted(dist.files or (), key=str):
        path = Path(str(dist.locate_file(file)))
        parts = file.parts
        if parts[0] == name and file.suffix == ".py":
            entries.append(Entry(f"_flashc/_vendor/{file.as_posix()}", source=path))
        elif parts[0].endswith(".dist-info") and ("LICENSE" in file.name or "licenses" in parts):
            entries.append(Entry(f"_flashc/_vendor/{name}/{file.name}", source=path))
    return entries


def _too_large(exc: TooLarge) -> ProjectError:
    """The refusal with a table of what takes the room: each distribution's compressed share."""
    from .deps.prune import Dist, size_table

    shares: dict[str, Dist] = {}
    for layer in exc.layers:
        name = canonicalize_name(layer.distribution)
        old = shares.get(name)
        size = layer.compressed_size + (old.size if old else 0)
        shares[name] = Dist(name, layer.version, size, ())
    table = size_table(shares, shares) if shares else "(no dependencies: the project's own files are that large)"
    return ProjectError(
        f"{exc.message}\nlargest distributions (compressed, as shipped; the project's own files: "
        f"{exc.project_size:,} bytes):\n{table}",
        "exclude what the worker image already has (--exclude torch on GPU images), and keep models and data "
        "on a network volume instead of in the project; --max-size raises the limit",
    )


def _lay_out(archive: Path, folder: Path) -> None:
    """Unpack the written archive as a folder tree, for `--keep-build`."""
    from flashc_runtime.unpack import UnpackError, unpack

    try:
        unpack(archive, folder)
    except UnpackError as exc:
        raise ProjectError(f"cannot write the build folder '{folder}': {exc}") from exc
