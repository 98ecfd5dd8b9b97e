"""Stage 1, analyze: find every @remote function, class and route, with its evaluated resource config.

    project folder --snapshot_project--> Snapshot --candidates--> files that can hold SDK code
        --scan (libcst, cached: cache.py, scan.py)--> ir.ModuleSummary per file
        --find (link.py resolves names, evaluate.py evaluates configs)--> decorated definitions
        --resources (one resource per name, merge rule, routes)--> Analysis

User code is never imported or run. Only files that can hold SDK code are parsed up front (see
candidates.py); other files are parsed when a name leads to them (a config imported from
`configs.py`, a re-export in a package `__init__`). `build_analysis` is pure given a summary
loader; `analyze_project` adds the file system and the cache.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..models import Analysis
from ..modules import module_files
from ..sources import Snapshot, snapshot_project
from .cache import SummaryStore
from .candidates import anchor, select_candidates
from .find import build_analysis

__all__ = ["analyze_project", "build_analysis"]


def analyze_project(
    project: Path | Snapshot, *, use_cache: bool = True, jobs: int | None = None, serve: str | None = None
) -> Analysis:
    """Scan and link a project: a snapshot of its files, or its folder (walked here).

    Reads files through the snapshot; writes only the scan cache. `serve` is `[tool.flashc] serve`,
    the app a mothership.py serves ("module:attribute"; None: main.py's `app`).
    """
    snapshot = project if isinstance(project, Snapshot) else snapshot_project(project)
    try:
        return _analyze_project(snapshot, use_cache, jobs, serve, read_cache=True)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError):
        if not use_cache:
            raise
        # A cache that decodes into a summary of the wrong shape: it may only make a run slower,
        # never fail it, so run again from the sources alone (this also rewrites the cache).
        return _analyze_project(snapshot, use_cache, jobs, serve, read_cache=False)


def _analyze_project(
    project: Snapshot, use_cache: bool, jobs: int | None, serve: str | None, *, read_cache: bool
) -> Analysis:
    files = module_files(project.files)
    # A file's selection depends on its bytes and on the package its relative imports start from.
    contexts = {path: anchor(f) for path, f in files.items()}
    store = SummaryStore(project, use_cache=use_cache, read_cache=read_cache, contexts=contexts)
    candidates = select_candidates(files, store, jobs=jobs)
    analysis = build_analysis(project.root.name, files, store.load, candidates, serve)
    store.save()
    return dataclasses.replace(analysis, parsed_files=store.loaded_count)
