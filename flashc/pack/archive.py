"""The archive writer: the project's files, then the dependency layers as they are, then the end of the tar.

    project layer   the entries, compressed in `CHUNK` pieces on `workers` threads, into a temp
                    file in the output's folder
    (size check)    the total is known now: over `max_size`, nothing more is written
    layers          each layer file copied verbatim, read once and hashed as it is copied
    trailer         one gzip member: the end-of-archive marker, padded to a whole tar record

The temp file is renamed over `output`: a failure or an interrupt removes it and leaves a previous
archive untouched. It is not fsynced first: the archive is reproducible, so the rare power loss
that could cost its last bytes only costs a `flashc build --force`, while an fsync of 70 MB costs
every rebuild a tenth of a second here.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from .._atomic import discard
from ..errors import ProjectError, UsageError
from ._gzip import ChunkedGzip, default_workers, member
from ._layer import Layer
from ._names import check_arcnames, collected
from ._tar import DEFAULT_MTIME, end_of_archive, file_header, padding

__all__ = ["DamagedLayer", "Entry", "PackResult", "TooLarge", "project_entries", "write_archive"]

_READ = 1024 * 1024
_COPY = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One member of the archive: its POSIX path inside the archive, and either bytes or a file to copy.

    A `source` file is read when the archive is written; its content is archived as a regular
    file (a symlink is followed) and an execute bit on it makes the member executable.
    """

    arcname: str
    """Relative POSIX path, e.g. "workers/gpu.py" or "_flashc/flashc_runtime/__init__.py"."""
    data: bytes | None = None
    """Content given in memory (generated handlers, the manifest)."""
    source: Path | None = None
    """Or a file on disk to copy (project files); exactly one of `data` and `source`."""
    executable: bool = False
    """Mode 755 instead of 644."""

    def __post_init__(self) -> None:
        if (self.data is None) == (self.source is None):
            raise ValueError(f"entry {self.arcname!r} needs exactly one of data and source")


@dataclasses.dataclass(frozen=True, slots=True)
class PackResult:
    """What `write_archive` wrote."""

    path: Path
    """The archive written."""
    sha256: str
    """Hex digest of the compressed archive bytes."""
    size: int
    """Compressed bytes."""
    uncompressed: int
    """Sum of the regular files' sizes (a hard link adds nothing)."""
    members: int
    """Tar members, hard links included."""
    links: int
    """Of which hard links."""
    project_size: int
    """Compressed bytes of the project layer (`size` less the dependency layers and the trailer)."""


def project_entries(root: Path, files: Sequence[str]) -> list[Entry]:
    """Entries for project files: `files` are POSIX paths relative to `root`, as `walk_project` lists them.

    A symlink is archived as the file it points to if that file is inside `root`. Links that lead
    outside are refused, all in one `ProjectError`: shipping them would copy whatever they point
    to on the build machine. Bad paths (absolute, `..`, backslashes) are a `ProjectError` too.

    A hard-linked file (more than one link to its bytes) is refused too unless every one of its
    links is among `files`: a link's other names cannot be found without searching the whole disk,
    and `ln ~/.ssh/id_rsa notes.txt` would ship the key under an innocent name. Links among the
    shipped files (`cp -al`, git's own object links never reach the walk) carry nothing from outside.
    """
    check_arcnames(files)
    top = os.path.realpath(root)
    inside = top.rstrip(os.sep) + os.sep
    entries: list[Entry] = []
    outside: list[str] = []
    # Each folder is resolved once, so a file reached through a linked folder is checked too, and
    # a plain file costs one lstat instead of one per path component.
    real_folders: dict[str, str] = {}
    linked: dict[tuple[int, int], tuple[int, set[str], list[str]]] = {}  # inode: links, real paths, names
    for rel in files:
        folder, _, name = rel.rpartition("/")
        real_folder = real_folders.get(folder)
        if real_folder is None:
            real_folder = real_folders[folder] = os.path.realpath(os.path.join(top, folder))
        target = os.path.join(real_folder, name)
        if os.path.islink(target):
            target = os.path.realpath(target)
        if target.startswith(inside):
            entries.append(Entry(rel, source=Path(target)))
            try:
                st = os.stat(target)
            except OSError:
                continue  # reading it later says why
            if st.st_nlink > 1 and stat.S_ISREG(st.st_mode):
                _, paths, names = linked.setdefault((st.st_dev, st.st_ino), (st.st_nlink, set(), []))
                paths.add(target)
                names.append(rel)
        else:
            outside.append(f"symlink '{rel}' points outside the project (to '{target}')")
    hard = [
        f"'{rel}' is hard-linked: {nlink - len(paths)} of its file's {nlink} links are not among the shipped files"
        for nlink, paths, names in linked.values()
        if len(paths) < nlink
        for rel in names
    ]
    if outside or hard:
        one = len(outside) + len(hard) == 1
        hint = (
            "copy the file into the project or add it to .flashignore"
            if one
            else ("copy the files into the project or add them to .flashignore")
        )
        if hard:
            hint += "; a copy of a hard-linked file is a file of its own: `cp f f.new && mv f.new f`"
        summary = (
            f"{len(outside)} symlinks point outside the project"
            if not hard
            else (f"{len(outside) + len(hard)} files link outside the project")
        )
        raise collected(sorted(outside + hard), summary, hint)
    return entries


class TooLarge(ProjectError):
    """The compressed archive would be over the size limit; it was not written.

    `project_size` and each layer's `compressed_size` (with its distribution and site) add up to
    `size`, less the trailer's few bytes: enough for a breakdown of what takes the room.
    """

    def __init__(self, size: int, limit: int, *, project_size: int = 0, layers: Sequence[Layer] = ()) -> None:
        super().__init__(f"the archive would be {size:,} bytes compressed, over the limit of {limit:,} bytes")
        self.size = size
        self.limit = limit
        self.project_size = project_size
        self.layers = tuple(layers)


def write_archive(
    entries: Sequence[Entry],
    output: Path,
    *,
    layers: Sequence[Layer] = (),
    mtime: int = DEFAULT_MTIME,
    max_size: int | None = None,
    workers: int | None = None,
) -> PackResult:
    """Write `entries`, then `layers` in the order given, to the gzipped tar `output` (mode 644), atomically.

    `mtime` stamps the entries (layers carry the one they were built with); `workers` threads
    compress (default: one per CPU), and the bytes are the same whatever their number. Raises
    `UsageError` if the output folder does not exist, `TooLarge` when the compressed archive
    would exceed `max_size` bytes (checked before the layers are copied), and `ProjectError` for
    bad, duplicate or clashing archive paths across entries and layers (all of them at once), a
    source or layer that cannot be read, or an archive that cannot be written. Whatever fails,
    `output` is left as it was.
    """
    ordered = sorted(entries, key=lambda entry: entry.arcname)
    names = [entry.arcname for entry in ordered]
    links = []
    for layer in layers:
        for f in layer.files:
            names.append(f.arcname)
            if f.link is not None:
                links.append((f.arcname, f.link))
    check_arcnames(names, links)
    folder = output.parent
    if not folder.is_dir():
        reason = "is not a directory" if folder.exists() else "does not exist"
        raise UsageError(f"output folder '{folder}' {reason}")
    if output.is_dir():
        raise UsageError(f"output '{output}' is a directory")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    except OSError as exc:
        raise ProjectError(
            f"cannot write to output folder '{folder}': {exc.strerror or exc}",
            hint="check the folder's permissions, or choose another output",
        ) from exc
    try:
        with open(fd, "wb") as raw, ThreadPoolExecutor(1, thread_name_prefix="flashc-sha256") as hasher:
            sink = _HashingWriter(raw, hasher)
            tar_size, uncompressed = _write_project(sink, ordered, mtime, workers or default_workers())
            project_size = sink.size
            trailer = member(end_of_archive(tar_size + sum(layer.tar_size for layer in layers)))
            size = project_size + sum(layer.compressed_size for layer in layers) + len(trailer)
            if max_size is not None and size > max_size:
                raise TooLarge(size, max_size, project_size=project_size, layers=layers)
            for layer in layers:
                _copy(layer, sink)
            sink.write(trailer)
            sha256 = sink.hexdigest()
        os.chmod(temp, 0o644)  # mkstemp creates 600; chmod is not subject to the umask
        os.replace(temp, output)
    except OSError as exc:
        discard(temp)
        raise ProjectError(
            f"cannot write archive '{output}': {exc.strerror or exc}",
            hint="check free disk space and the folder's permissions",
        ) from exc
    except BaseException:  # ProjectError from a source, TooLarge, KeyboardInterrupt: never leave the temp file
        discard(temp)
        raise
    regular = [f for layer in layers for f in layer.files if f.link is None]
    return PackResult(
        output,
        sha256,
        sink.size,
        uncompressed + sum(f.size for f in regular),
        len(names),
        len(links),
        project_size,
    )


class _HashingWriter:
    """Passes writes through to `raw`, hashing and counting them, so the archive is never read back.

    Hashing runs on `hasher`, a thread of its own, while the next block is written: both release
    the GIL, so copying a layer costs the slower of the two rather than their sum. Blocks are
    bytes, never changed after they are written.
    """

    def __init__(self, raw: io.BufferedWriter, hasher: Executor) -> None:
        self.raw = raw
        self.size = 0
        self._hash = hashlib.sha256()
        self._hasher = hasher
        self._pending: collections.deque[Future[None]] = collections.deque()

    def write(self, data: bytes, also: hashlib._Hash | None = None) -> None:
        """Write `data`, hashed into the archive's digest and into `also` when given."""
        self._pending.append(self._hasher.submit(self._update, data, also))
        self.raw.write(data)
        self.size += len(data)
        while len(self._pending) > 2:  # a block or two behind at most: memory stays bounded
            self._pending.popleft().result()

    def _update(self, data: bytes, also: hashlib._Hash | None) -> None:
        self._hash.update(data)
        if also is not None:
            also.update(data)

    def drain(self) -> None:
        """Wait until every block written so far is hashed."""
        while self._pending:
            self._pending.popleft().result()

    def hexdigest(self) -> str:
        self.drain()
        return self._hash.hexdigest()


def _write_project(sink: _HashingWriter, ordered: Sequence[Entry], mtime: int, workers: int) -> tuple[int, int]:
    """Write the entries' tar members as gzip members; (tar bytes, sum of the files' sizes)."""
    uncompressed = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="flashc-gzip") as pool:
        gz = ChunkedGzip(sink.write, pool, ahead=2 * workers)
        try:
            for entry in ordered:
                uncompressed += _add(gz, entry, mtime)
            gz.close()
        except BaseException:
            gz.abort()
            raise
    return gz.size, uncompressed


def _add(gz: ChunkedGzip, entry: Entry, mtime: int) -> int:
    """Write one member, streaming a source file in blocks; its size."""
    if entry.data is not None:
        size = len(entry.data)
        gz.write(file_header(entry.arcname, size, executable=entry.executable, mtime=mtime))
        gz.write(entry.data)
        gz.write(padding(size))
        return size
    assert entry.source is not None  # Entry.__post_init__ guarantees one of the two
    source, size, executable = _open(entry.source)
    with source:
        gz.write(file_header(entry.arcname, size, executable=entry.executable or executable, mtime=mtime))
        left = size
        while left:
            try:
                block = source.read(min(left, _READ))
            except OSError as exc:
                raise _unreadable(entry.source, exc) from exc
            if not block:
                raise ProjectError(f"cannot read '{entry.source}': it got shorter while it was archived", "build again")
            gz.write(block)  # an OSError from here is the archive's: write_archive reports it
            left -= len(block)
    gz.write(padding(size))
    return size


def _open(path: Path) -> tuple[BinaryIO, int, bool]:
    """`path` open for reading, its size and whether it is executable."""
    try:
        # Checked before opening: opening a FIFO for reading would block until someone writes to it.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ProjectError(f"cannot read '{path}': not a regular file")
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller
        st = os.fstat(f.fileno())
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return f, st.st_size, bool(st.st_mode & 0o111)


def _unreadable(path: Path, exc: OSError) -> ProjectError:
    return ProjectError(
        f"cannot read '{path}': {exc.strerror or exc}",
        hint="check the file's permissions, or add it to .flashignore",
    )


def _copy(layer: Layer, sink: _HashingWriter) -> None:
    """Append the layer file as it is, in large blocks, checking it is the file its metadata describes.

    Its sha256 is computed as it is copied (on the hashing thread, beside the archive's): a cached
    layer that a disk error or an edit changed is never shipped, but reported as `DamagedLayer`.
    """
    copied = 0
    digest = hashlib.sha256()
    try:
        f = open(layer.path, "rb")  # noqa: SIM115 - closed below; only opening and reading are the layer's errors
    except OSError as exc:
        raise _stale(layer, exc.strerror or str(exc)) from exc
    with f:
        while True:
            try:
                block = f.read(_COPY)
            except OSError as exc:
                raise _stale(layer, exc.strerror or str(exc)) from exc
            if not block:
                break
            sink.write(block, digest)  # an OSError from here is the archive's: write_archive reports it
            copied += len(block)
    if copied != layer.compressed_size:
        raise _stale(layer, f"it is {copied:,} bytes, not {layer.compressed_size:,}")
    sink.drain()
    if digest.hexdigest() != layer.sha256:
        raise DamagedLayer(layer)


class DamagedLayer(ProjectError):
    """A cached layer's bytes are not those its metadata recorded; the caller builds it again."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(
            f"the cached layer of {layer.distribution} {layer.version} '{layer.path}' is damaged "
            "(its sha256 is not the one recorded when it was built)",
            "delete it from the layer cache; the next build makes it again",
        )
        self.layer = layer


def _stale(layer: Layer, what: str) -> ProjectError:
    return ProjectError(
        f"cannot read the cached layer of {layer.distribution} {layer.version} '{layer.path}': {what}",
        "build again: a layer missing from the cache is built anew",
    )
