"""Module summaries on demand: read a file, reuse its cached summary by content hash, or scan it.

The cache is one JSON file, `.flash/cache/analyze.json`, under a key that changes whenever the
scanner's own code changes. It holds:

- `entries`: summaries keyed by the sha256 of a file's bytes;
- `files`: per path, the stat signature (size, mtime, ctime, inode) seen last time, the file's
  digest and the rule that selected it for parsing (both None when none did: see candidates.py),
  and its context (what its selection depends on besides its bytes: the package its relative
  imports start from). A file whose signature and context are unchanged is not read again to be
  judged, the way git's index avoids rereading a work tree. Files changed within two seconds
  before the run that wrote the cache started (when its snapshot was taken) or later are always
  reread, since an edit in the same clock tick as a stat keeps the signature;
- `exports`: the (module, name) pairs the `uses` rule looked for, which the verdicts stand for.

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
from collections.abc import Callable, Mapping, Sequence
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
    # candidates.py: the index's verdicts were given by its rules, so other rules must not trust them.
    for name in ("scan.py", "ir.py", "cache.py", "candidates.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


class SummaryStore:
    """Gives each project file's summary, from the cache or by scanning the file's bytes from `project`."""

    def __init__(
        self,
        project: Snapshot,
        *,
        use_cache: bool = True,
        read_cache: bool = True,
        contexts: Mapping[str, str | None] | None = None,
    ) -> None:
        """`use_cache` off: neither read nor write the cache. `read_cache` off: start afresh, then write.

        `contexts`: per path, what else than its bytes a file's selection depends on; a verdict
        given in another context is not trusted.
        """
        self.root = project.root
        self._contexts = contexts or {}
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
        self.previous_exports: frozenset[tuple[str, str]] = cache.get("exports", frozenset())
        """The pairs the last run's verdicts stand for (see candidates.py); `exports` is this run's."""
        self.exports: frozenset[tuple[str, str]] = frozenset()
        self._racy = False
        self._files: dict[str, list[Any]] = {}
        self._signatures: dict[str, list[int] | None] = {}
        self._used: dict[str, Any] = {}
        self._summaries: dict[str, ir.ModuleSummary] = {}
        self._digests: dict[str, str] = {}

    @property
    def loaded_count(self) -> int:
        return len(self._summaries)

    def select(
        self,
        paths: Sequence[str],
        rule: str,
        test: Callable[[str, bytes], bool],
        *,
        trust: Callable[[str | None], bool | None],
    ) -> list[str]:
        """The paths that `test(path, bytes)` selects, recorded in the index as selected by `rule`.

        A file unchanged since the last run (same stat signature and context) is not read when
        `trust(the rule that selected it last time, or None)` answers: True for selected, False
        for not; None means the old verdict does not tell, and the file is read and tested.
        """
        selected = []
        for path in paths:
            signature = self._signature(path)
            if signature is None:
                continue
            context = self._contexts.get(path)
            old = self._old_files.get(path)
            same = old is not None and old[:4] == signature and old[6] == context
            verdict = trust(old[5]) if same and old is not None else None
            if verdict is not None and old is not None and max(signature[1:3]) < self._trusted_before:
                digest = old[4] if verdict else None
            elif verdict is not None:
                # Only the racy window forced the reread: saving moves the window forward.
                self._racy = True
                digest = self._verdict(path, test)
            else:
                digest = self._verdict(path, test)
            self._files[path] = [*signature, digest, rule if digest is not None else None, context]
            if digest is not None:
                self._digests[path] = digest
                selected.append(path)
        return selected

    def read(self, path: str) -> bytes:
        """The file's bytes, from the snapshot."""
        return self._project.read(path)

    def exists(self, path: str) -> bool:
        """Whether the file was there when this run first looked (its stat is taken once per run)."""
        return self._signature(path) is not None

    def previous_rule(self, path: str) -> tuple[bool, str | None]:
        """Whether the index can vouch for the file, and the rule that selected it in the last run.

        It vouches for a file whose stat signature and context are those of the last run, outside
        the racy window; for any other file, (False, None).
        """
        signature = self._signature(path)
        old = self._old_files.get(path)
        if signature is None or old is None or old[:4] != signature or old[6] != self._contexts.get(path):
            return False, None
        if max(signature[1:3]) >= self._trusted_before:
            return False, None
        return True, old[5]

    def _signature(self, path: str) -> list[int] | None:
        """The file's stat signature (size, mtime, ctime, inode), taken once per run; None if it is gone."""
        if path not in self._signatures:
            try:
                st = os.stat(self.root / path)
            except OSError:
                self._signatures[path] = None
            else:
                self._signatures[path] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        return self._signatures[path]

    def _verdict(self, path: str, test: Callable[[str, bytes], bool]) -> str | None:
        """The file's digest if `test` selects it, else None."""
        return self._project.digest(path) if test(path, self._project.read(path)) else None

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
        exports = data.get("exports")
        if not (
            isinstance(files, dict)
            and isinstance(entries, dict)
            and type(started) is int
            and isinstance(exports, list)
            and all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in exports)
        ):
            return {}
        valid_files = {
            path: row
            for path, row in files.items()
            if isinstance(row, list)
            and len(row) == 7
            and all(type(v) is int for v in row[:4])
            and all(v is None or isinstance(v, str) for v in row[4:])
            and (row[4] is None) == (row[5] is None)
        }
        return {
            "files": valid_files,
            "entries": entries,
            "started_ns": started,
            "exports": frozenset((m, n) for m, n in exports),
        }

    def save(self) -> None:
        """Write the index and the summaries used in this run (only those), atomically.

        A cache that cannot be written is skipped silently: it only makes the next run slower.
        """
        unchanged = (
            self._used == self._cached and self._files == self._old_files and self.exports == self.previous_exports
        )
        if not self._use_cache or (unchanged and not self._racy):
            return
        target = self.root / _CACHE_FILE
        document = {
            "key": self._key,
            "started_ns": self._started_ns,
            "files": self._files,
            "entries": self._used,
            "exports": sorted(self.exports),
        }
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
