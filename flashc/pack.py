"""Pack: write the build's files into one byte-reproducible, atomically written `.tar.gz`.

Input is a list of `Entry` values (project files from `project_entries`, plus generated files given
as bytes); output is the archive on disk and a `PackResult`. Same entries, same bytes, wherever the
project sits, whatever its files' mtimes, owners and the umask:

    members     regular files only, sorted by archive path (no folder entries)
    format      PAX (POSIX.1-2001): plain ustar headers, plus an extended header only for a path
                longer than 100 characters or not ASCII, which ustar cannot hold
    metadata    uid/gid 0, empty user and group names, mode 644 (755 if executable)
    mtime       the `mtime` argument, else `SOURCE_DATE_EPOCH`, else 1980-01-01 (the zip epoch)
    gzip        level 6, header mtime 0 and no file name

The bytes also depend on zlib: another deflate implementation (zlib-ng, a vendor fork) may
compress the same tar differently, so compare hashes made with the same Python build.

The archive is written to a temp file in the output's folder, fsynced, then renamed over `output`:
a failure or an interrupt removes the temp file and leaves a previous archive untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import ProjectError, UsageError

__all__ = ["Entry", "PackResult", "TooLarge", "project_entries", "write_archive"]

# 1980-01-01 00:00:00 UTC: the earliest time a zip can hold, so members keep a valid time if the
# archive is ever repacked as a zip or wheel, and no tool mistakes it for "no time at all" (0).
_DEFAULT_MTIME = 315532800
# zlib's own default: within a few percent of level 9's size for source code, and about twice as
# fast, so a rebuild never waits on compression.
_COMPRESSLEVEL = 6
_EPOCH_DIGITS = re.compile(r"[0-9]+")


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
    """Sum of member sizes."""
    members: int


def project_entries(root: Path, files: Sequence[str]) -> list[Entry]:
    """Entries for project files: `files` are POSIX paths relative to `root`, as `walk_project` lists them.

    A symlink is archived as the file it points to if that file is inside `root`. Links that lead
    outside are refused, all in one `ProjectError`: shipping them would copy whatever they point
    to on the build machine. Bad paths (absolute, `..`, backslashes) are a `ProjectError` too.
    """
    _check_arcnames(files)
    top = os.path.realpath(root)
    inside = top.rstrip(os.sep) + os.sep
    entries: list[Entry] = []
    outside: list[str] = []
    # Each folder is resolved once, so a file reached through a linked folder is checked too, and
    # a plain file costs one lstat instead of one per path component.
    real_folders: dict[str, str] = {}
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
        else:
            outside.append(f"symlink '{rel}' points outside the project (to '{target}')")
    if outside:
        raise _collected(
            outside,
            f"{len(outside)} symlinks point outside the project",
            "copy the file into the project or add it to .flashignore"
            if len(outside) == 1
            else "copy the files into the project or add them to .flashignore",
        )
    return entries


class TooLarge(ProjectError):
    """The compressed archive is over the size limit; it was not written."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the archive would be {size:,} bytes compressed, over the limit of {limit:,} bytes")
        self.size = size
        self.limit = limit


def write_archive(
    entries: Sequence[Entry], output: Path, *, mtime: int | None = None, max_size: int | None = None
) -> PackResult:
    """Write `entries` to the gzipped tar `output` (mode 644), atomically; see the module docstring.

    Raises `UsageError` if the output folder does not exist or `SOURCE_DATE_EPOCH` is not a whole
    number, `TooLarge` when the compressed archive exceeds `max_size` bytes, and `ProjectError` for
    a bad or duplicate archive path, a source that cannot be read, or an archive that cannot be
    written. Whatever fails, `output` is left as it was.
    """
    stamp = _mtime(mtime)
    ordered = sorted(entries, key=lambda entry: entry.arcname)
    _check_arcnames([entry.arcname for entry in ordered])
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
        sha256, size, uncompressed = _write(fd, ordered, stamp)
        if max_size is not None and size > max_size:
            raise TooLarge(size, max_size)  # checked before the previous archive is replaced
        os.chmod(temp, 0o644)  # mkstemp creates 600; chmod is not subject to the umask
        os.replace(temp, output)
    except OSError as exc:
        _discard(temp)
        raise ProjectError(
            f"cannot write archive '{output}': {exc.strerror or exc}",
            hint="check free disk space and the folder's permissions",
        ) from exc
    except BaseException:  # ProjectError from a source, KeyboardInterrupt: never leave the temp file
        _discard(temp)
        raise
    return PackResult(output, sha256, size, uncompressed, len(ordered))


class _HashingWriter:
    """Passes writes through to `raw`, hashing and counting them, so the archive is never read back."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0
        self.failed = False

    def write(self, data: bytes) -> int:
        try:
            written = self.raw.write(data)
        except OSError:
            self.failed = True  # tells a write error from a read error inside tarfile.addfile
            raise
        self.hash.update(data)
        self.size += len(data)
        return written

    def flush(self) -> None:
        self.raw.flush()


def _write(fd: int, ordered: Sequence[Entry], stamp: int) -> tuple[str, int, int]:
    """Write the archive to the open file `fd`, fsync it and close it; (sha256, size, uncompressed)."""
    uncompressed = 0
    with open(fd, "wb") as raw:
        sink = _HashingWriter(raw)
        # filename="" keeps the FNAME field out of the header; mtime=0 zeroes its time field.
        with (
            gzip.GzipFile(filename="", mode="wb", compresslevel=_COMPRESSLEVEL, fileobj=sink, mtime=0) as gz,
            tarfile.TarFile(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar,
        ):
            for entry in ordered:
                uncompressed += _add(tar, entry, stamp, sink)
        raw.flush()
        os.fsync(raw.fileno())
    return sink.hash.hexdigest(), sink.size, uncompressed


def _add(tar: tarfile.TarFile, entry: Entry, stamp: int, sink: _HashingWriter) -> int:
    """Add one member, streaming a source file in blocks; its size."""
    info = tarfile.TarInfo(entry.arcname)
    info.mtime = stamp
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.data is not None:
        info.size = len(entry.data)
        info.mode = 0o755 if entry.executable else 0o644
        tar.addfile(info, io.BytesIO(entry.data))
        return info.size
    assert entry.source is not None  # Entry.__post_init__ guarantees one of the two
    try:
        # Checked before opening: opening a FIFO for reading would block until someone writes to it.
        if not stat.S_ISREG(os.stat(entry.source).st_mode):
            raise ProjectError(f"cannot read '{entry.source}': not a regular file")
        with open(entry.source, "rb") as f:
            st = os.fstat(f.fileno())
            info.size = st.st_size
            info.mode = 0o755 if entry.executable or st.st_mode & 0o111 else 0o644
            tar.addfile(info, f)  # streams info.size bytes in 16 KiB blocks
    except OSError as exc:
        if sink.failed:
            raise  # the archive could not be written: write_archive reports it
        raise ProjectError(
            f"cannot read '{entry.source}': {exc.strerror or exc}",
            hint="check the file's permissions, or add it to .flashignore",
        ) from exc
    return info.size


def _mtime(mtime: int | None) -> int:
    if mtime is not None:
        return mtime
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return _DEFAULT_MTIME
    if not _EPOCH_DIGITS.fullmatch(value):
        raise UsageError(
            f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970-01-01, not {value!r}",
            hint="set it to an integer such as the last commit's time: $(git log -1 --format=%ct), or unset it",
        )
    return int(value)


def _check_arcnames(names: Iterable[str]) -> None:
    """Refuse paths that could escape or clash where the archive is unpacked; every problem at once."""
    problems: list[str] = []
    seen: set[str] = set()
    counts = Counter(names)
    for name, count in counts.items():
        problem = _arcname_problem(name)
        if problem is not None:
            problems.append(problem)
            continue
        if count > 1:
            problems.append(f"archive path '{name}' appears {count} times")
        seen.add(name)
    for name in seen:
        # A file 'a' and a file 'a/b' cannot both be unpacked.
        parent, _, _ = name.rpartition("/")
        while parent:
            if parent in seen:
                problems.append(f"archive path '{parent}' is a file and also the folder of '{name}'")
                break
            parent, _, _ = parent.rpartition("/")
    if problems:
        raise _collected(sorted(problems), f"{len(problems)} problems with archive paths", None)


def _arcname_problem(name: str) -> str | None:
    if not name:
        return "archive path '' is empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a file name in another encoding, as os.fsdecode leaves it
        return f"archive path {name!r} is not valid UTF-8; rename the file"
    segments = name.split("/")
    if "\\" in name:
        reason = "contains a backslash; use '/'"
    elif name.startswith("/"):
        reason = "is absolute"
    elif ".." in segments:
        reason = "contains a '..' segment"
    elif "." in segments or "" in segments:
        reason = "is not normalized (it has a '.' or empty segment)"
    else:
        return None
    return f"archive path '{name}' {reason}"


def _collected(problems: list[str], summary: str, hint: str | None) -> ProjectError:
    """One error for every problem: the problem itself if alone, else a summary line and a list."""
    if len(problems) == 1:
        return ProjectError(problems[0], hint)
    return ProjectError(summary + ":\n" + "\n".join("  " + problem for problem in problems), hint)


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):  # already gone, or the folder vanished: nothing left to clean
        os.unlink(path)
