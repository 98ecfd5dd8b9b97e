"""The pipeline, stage by stage. Each stage is a function from one frozen model to the next:

    stage     input                      output                     side effects
    analyze   project folder             Analysis                   reads sources, scan cache
    group     Analysis                   BuildPlan                  none
    manifest  BuildPlan, fingerprint     Manifest                   none
    render    BuildPlan, Manifest        RenderedFile per file      none (reads flashc's templates)
    pack      Entry per file             archive + PackResult       writes the archive atomically

Dependencies (resolve) come between render and pack in a later version.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .analyze import analyze_project
from .errors import DiagnosticsError, ProjectError, UsageError
from .group import BuildPlan, group
from .manifest import Manifest, build_manifest, source_fingerprint
from .models import Analysis
from .render import RenderedFile, render
from .sources import walk_project

__all__ = ["Generated", "generate", "write_files"]


@dataclasses.dataclass(frozen=True)
class Generated:
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
    fingerprint = source_fingerprint((p, (project.root / p).read_bytes()) for p in project.files)
    plan = group(analysis)
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    manifest = build_manifest(plan, python_version=version, source_fingerprint=fingerprint)
    return Generated(analysis, plan, manifest, render(plan, manifest))


def write_files(files: Sequence[RenderedFile], out: Path) -> None:
    """Write generated files under `out`, each atomically (temp file, then rename)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"'{out}' exists and is not a folder", "choose another --out folder")
    for f in files:
        target = out / f.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                    fh.write(f.text)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise ProjectError(f"cannot write '{target}': {exc.strerror or exc}", "check the --out folder") from exc
