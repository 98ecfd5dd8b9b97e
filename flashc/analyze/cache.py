"""Module summaries on demand: read a file, reuse its cached summary by content hash, or scan it.

The cache is one JSON file, `.flash/cache/analyze.json`, under a key that changes whenever the
scanner's own code changes. It holds:

- `entries`: summaries keyed by the sha256 of a file's bytes;
- `files`: per path, the stat signature (size, mtime, ctime, inode) seen last time and whether
  the file was a candidate (and its digest). A file whose signature is unchanged is not read
  again, the way git's index avoids rereading a work tree. Files changed within two seconds
  before the run that wrote the cache started (when its snapshot was taken) or later are always
  reread, since an edit in the same clock tick as a stat keeps the signature.

Anything unexpected in the cache file counts as a miss: the cache can only make a run slower,
never wrong or failing.

File bytes and their digests come from the build's `Snapshot`, so a file the analysis reads is
not read again by the stages after it.

It is JSON rather than pickle because it sits in the project folder, and loading it must never
run code. libcst is imported only when some file has no cached summary, so an unchanged project
is analyzed without loading the parser. Many uncached files are scanned on all cores.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._atomic import write_atomic
from ..sources import Snapshot
from . import ir

__all__ = ["SummaryStore"]

_CACHE_FILE = Path(".flash") / "cache" / "analyze.json"
# Below this many bytes of uncached source, starting worker processes costs more than it saves.
_PARALLEL_MIN_BYTES = 200_000
_RACY_NS = 2_000_000_000


def _scanner_key() -> str:
    """Changes whenever the scanner or the summary format changes, so stale entries are never used."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("scan.py", "ir.py", "cache.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


class SummaryStore:
    """Gives each project file's summary, from the cache or by scanning the file's bytes from `project`."""

    def __init__(self, project: Snapshot, *, use_cache: bool = True, read_cache: bool = True) -> None:
        """`use_cache` off: neither read nor write the cache. `read_cache` off: start afresh, then write."""
        self.root = project.root
        self._project = project
        self._use_cache = use_cache
        self._key = _scanner_key()
        # The snapshot may have read a file long before this store stats it: the racy window
        # starts when the snapshot was taken, so an edit in between is never trusted later.
        self._started_ns = project.started_ns
        cache = self._read_cache() if use_cache and read_cache else {}
        self._cached: dict[str, Any] = cache.get("entries", {})
        self._old_files: dict[str, list[Any]] = cache.get("files", {})
        self._trusted_before: int = cache.get("started_ns", 0) - _RACY_NS
        self._racy = False
        self._files: dict[str, list[Any]] = {}
        self._used: dict[str, Any] = {}
        self._summaries: dict[str, ir.ModuleSummary] = {}
        self._digests: dict[str, str] = {}

    @property
    def loaded_count(self) -> int:
        return len(self._summaries)

    def select(self, paths: Sequence[str], markers: Sequence[bytes], *, trust_index: bool = True) -> list[str]:
        """The paths whose bytes contain one of `markers`.

        Unchanged files (same stat signature as last run) are answered from the cache without
        reading them, unless `trust_index` is off (the index was built with other markers).
        """
        selected = []
        for path in paths:
            try:
                st = os.stat(self.root / path)
            except OSError:
                continue
            signature = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            old = self._old_files.get(path)
            trusted = trust_index and max(st.st_mtime_ns, st.st_ctime_ns) < self._trusted_before
            if old is not None and old[:4] == signature and trusted:
                digest = old[4]
            else:
                # Reread; if only the racy window forced it, saving moves the window forward.
                self._racy = self._racy or (old is not None and old[:4] == signature)
                data = self._project.read(path)
                digest = self._project.digest(path) if any(m in data for m in markers) else None
            self._files[path] = [*signature, digest]
            if digest is not None:
                self._digests[path] = digest
                selected.append(path)
        return selected

    def prefetch(self, paths: Sequence[str], *, jobs: int | None = None) -> None:
        """Load summaries for `paths`, scanning the uncached ones in parallel when that pays."""
        todo: list[tuple[str, str, bytes]] = []
        for path in paths:
            if path in self._summaries:
                continue
            digest = self._digests.get(path)
            if digest is None or (digest not in self._cached and digest not in self._used):
                digest = self._digests[path] = self._project.digest(path)
                if digest not in self._cached and digest not in self._used:
                    todo.append((path, digest, self._project.read(path)))
                    continue
            cached = self._used.get(digest) or self._cached[digest]
            if not self._remember(path, digest, cached):
                self._cached.pop(digest, None)
                todo.append((path, digest, self._project.read(path)))
        if not todo:
            return
        workers = jobs if jobs is not None else (os.cpu_count() or 1)
        if workers > 1 and len(todo) > 1 and sum(len(d) for _, _, d in todo) >= _PARALLEL_MIN_BYTES:
            encoded = _scan_parallel([d for _, _, d in todo], workers)
        else:
            from .scan import scan_source

            encoded = [ir.encode(scan_source(d)) for _, _, d in todo]
        for (path, digest, _), data in zip(todo, encoded, strict=True):
            self._remember(path, digest, data)

    def load(self, path: str) -> ir.ModuleSummary:
        """The summary of one file, scanning it if needed."""
        summary = self._summaries.get(path)
        if summary is None:
            self.prefetch([path], jobs=1)
            summary = self._summaries[path]
        return summary

    def _remember(self, path: str, digest: str, data: Any) -> bool:
        """Decode and keep a summary; False if cached data turns out not to be one."""
        try:
            summary = ir.decode(data)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            return False
        if not isinstance(summary, ir.ModuleSummary):
            return False
        self._used[digest] = data
        self._summaries[path] = summary
        return True

    def _read_cache(self) -> dict[str, Any]:
        try:
            with open(self.root / _CACHE_FILE, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("key") != self._key:
            return {}
        files, entries, started = data.get("files"), data.get("entries"), data.get("started_ns")
        if not (isinstance(files, dict) and isinstance(entries, dict) and type(started) is int):
            return {}
        valid_files = {
            path: sig
            for path, sig in files.items()
            if isinstance(sig, list)
            and len(sig) == 5
            and all(type(v) is int for v in sig[:4])
            and (sig[4] is None or isinstance(sig[4], str))
        }
        return {"files": valid_files, "entries": entries, "started_ns": started}

    def save(self) -> None:
        """Write the index and the summaries used in this run (only those), atomically.

        A cache that cannot be written is skipped silently: it only makes the next run slower.
        """
        unchanged = self._used == self._cached and self._files == self._old_files
        if not self._use_cache or (unchanged and not self._racy):
            return
        target = self.root / _CACHE_FILE
        document = {"key": self._key, "started_ns": self._started_ns, "files": self._files, "entries": self._used}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
        except OSError:
            return


def _scan_chunk(sources: list[bytes]) -> list[Any]:
    from .scan import scan_source

    return [ir.encode(scan_source(s)) for s in sources]


def _scan_parallel(sources: list[bytes], workers: int) -> list[Any]:
    import multiprocessing

    from . import scan  # noqa: F401 - imported before forking, so workers start with libcst loaded

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    chunks: list[list[bytes]] = [[] for _ in range(min(len(sources), workers * 4))]
    for i, source in enumerate(sources):
        chunks[i % len(chunks)].append(source)
    from concurrent.futures import ProcessPoolExecutor  # only for many files: costs every start 30 ms

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        results = list(pool.map(_scan_chunk, chunks))
    out: list[Any] = [None] * len(sources)
    for c, chunk_result in enumerate(results):
        for j, data in enumerate(chunk_result):
            out[c + j * len(chunks)] = data
    return out
