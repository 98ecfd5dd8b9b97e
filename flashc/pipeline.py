"""The pipeline, stage by stage. Each stage is a function from one frozen model to the next:

    stage     input                      output                     side effects
    analyze   project folder             Analysis                   reads sources, scan cache
    group     Analysis                   BuildPlan                  none
    manifest  BuildPlan, fingerprint     Manifest                   none
    render    BuildPlan, Manifest        RenderedFile per file      none (reads flashc's templates)
    pack      Entry per file             archive + PackResult       writes the archive atomically

Dependencies (resolve) come between render and pack in a later version. `build` runs them all.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import flashc_runtime

from ._atomic import write_atomic
from .analyze import analyze_project
from .closure import resource_files
from .dependencies import SITE_DIR, Dependencies, Settings, plan_dependencies, target_for
from .errors import DiagnosticsError, ProjectError, UsageError
from .group import BuildPlan, group
from .manifest import Manifest, build_manifest, source_fingerprint
from .models import Analysis
from .pack import Entry, PackResult, TooLarge, project_entries, write_archive
from .prune import Dist, size_table
from .render import MANIFEST_PATH, RenderedFile, render
from .resolve import PipRunner, Progress, WheelCache, default_cache_dir, default_pip
from .sources import ProjectFiles, walk_project

__all__ = ["DEFAULT_MAX_SIZE", "Built", "Generated", "build", "generate", "write_files"]


@dataclasses.dataclass(frozen=True)
class Generated:
    project: ProjectFiles
    analysis: Analysis
    plan: BuildPlan
    manifest: Manifest
    files: tuple[RenderedFile, ...]


def generate(root: Path, *, python_version: str | None = None, use_cache: bool = True) -> Generated:
    """Analyze, group and render a project; DiagnosticsError when the analysis has errors."""
    analysis = analyze_project(root, use_cache=use_cache)
    if analysis.has_errors:
        raise DiagnosticsError(analysis.diagnostics, root.resolve())
    project = walk_project(root)
    contents = {p: (project.root / p).read_bytes() for p in project.files}
    fingerprint = source_fingerprint(contents.items())
    plan = group(analysis)
    shipped_by_resource = resource_files(contents, {g.name: {f.module for f in g.functions} for g in plan.groups})
    per_resource = {name: source_fingerprint(files) for name, files in shipped_by_resource.items()}
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    manifest = build_manifest(
        plan, python_version=version, source_fingerprint=fingerprint, resource_fingerprints=per_resource
    )
    return Generated(project, analysis, plan, manifest, render(plan, manifest))


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


DEFAULT_MAX_SIZE = 500_000_000  # bytes of compressed archive, the platform's limit


def build(
    root: Path,
    output: Path | None = None,
    *,
    settings: Settings | None = None,
    keep_build: bool = False,
    max_size: int | None = DEFAULT_MAX_SIZE,
    cache: WheelCache | None = None,
    pip: PipRunner = default_pip,
    progress: Progress | None = None,
) -> Built:
    """Analyze, render, resolve and pack the project into `output` (default `.flash/archive.tar.gz`).

    The archive holds the project's files after ignore rules, the generated files, the runtime
    package under `_flashc/` (first on the worker's `sys.path`, so project files can never shadow
    it) and the dependencies under `_flashc/site/`. A copy of the manifest goes to
    `.flash/flash_manifest.json`. With `keep_build`, the archive's tree is also laid out in
    `.flash/.build/` for inspection; otherwise that folder is removed. An archive over `max_size`
    bytes is refused before it replaces the previous one.
    """
    settings = settings or Settings()
    target = target_for(root, settings)
    generated = generate(root, python_version=target.python_version)
    project = generated.project
    state = project.root / ".flash"
    if state.exists() and not state.is_dir():
        raise ProjectError(f"'{state}' is a file, but flashc keeps its build state there", "remove or rename it")
    generated_paths = {f.path for f in generated.files}
    clashes = [p for p in project.files if p in generated_paths or p.split("/")[0] == "_flashc"]
    if clashes:
        raise ProjectError(
            f"project files use paths that flashc generates: {', '.join(clashes)}",
            "rename them: flash_manifest.json and _flashc/ are reserved in the archive",
        )
    cache = cache or WheelCache(default_cache_dir())
    deps = plan_dependencies(project.root, generated.analysis, settings, cache=cache, pip=pip, progress=progress)
    runtime_root = Path(flashc_runtime.__file__).parent
    runtime_files = sorted(
        p
        for p in runtime_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and (p.suffix in (".py", ".json") or p.name == "py.typed")
    )
    entries = [
        *project_entries(project.root, project.files),
        *(Entry(f.path, data=f.text.encode("utf-8")) for f in generated.files),
        *(Entry(f"_flashc/flashc_runtime/{p.relative_to(runtime_root).as_posix()}", source=p) for p in runtime_files),
        *(Entry(f"{SITE_DIR}/{rel}", source=deps.bundle / rel) for rel in deps.files),
    ]
    if output is None:
        state.mkdir(exist_ok=True)
        output = state / "archive.tar.gz"
    if progress is not None:
        progress(f"compressing {len(entries)} files")
    try:
        result = write_archive(entries, output, max_size=max_size)
    except TooLarge as exc:
        raise _too_large(exc, deps) from exc
    manifest_file = next(f for f in generated.files if f.path == MANIFEST_PATH)
    state.mkdir(exist_ok=True)
    write_files([manifest_file], state)
    staging = state / ".build"
    shutil.rmtree(staging, ignore_errors=True)
    if keep_build:
        _lay_out(entries, staging)
    return Built(generated, deps, result, state / MANIFEST_PATH)


def _too_large(exc: TooLarge, deps: Dependencies) -> ProjectError:
    dists = {w.name: Dist(w.name, w.version, deps.sizes.get(w.name, 0), w.requires) for w in deps.wheels}
    table = size_table(dists, dists) if dists else "(no dependencies: the project's own files are that large)"
    return ProjectError(
        f"{exc.message}\nlargest distributions (installed size):\n{table}",
        "exclude what the worker image already has (--exclude torch on GPU images), and keep models and data "
        "on a network volume instead of in the project; --max-size raises the limit",
    )


def _lay_out(entries: Sequence[Entry], folder: Path) -> None:
    """Write the archive's members as a folder tree, for `--keep-build`."""
    try:
        for entry in entries:
            target = folder / entry.arcname
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.data is not None:
                target.write_bytes(entry.data)
            elif entry.source is not None:
                shutil.copyfile(entry.source, target)
    except OSError as exc:
        raise ProjectError(f"cannot write the build folder '{folder}': {exc.strerror or exc}") from exc
