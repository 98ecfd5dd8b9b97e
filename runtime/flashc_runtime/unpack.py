"""Unpack a flashc archive on a worker, refusing anything that would land outside the target.

Every member is checked before anything is written: absolute paths, `..` segments, backslashes,
links whose target leaves the folder, and device or FIFO entries are refused, all of them
listed in one error. The archive is then extracted into a temporary folder beside the target
and renamed into place, so a failed unpack leaves no half-written tree. A file that is empty,
not an archive, cut short or damaged, or that cannot be read, is an UnpackError too.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

__all__ = ["UnpackError", "unpack"]

_GZIP_MAGIC = b"\x1f\x8b"


class UnpackError(ValueError):
    """The archive holds members that would escape the target folder, or cannot be read."""


def unpack(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[str]:
    """Extract `archive` (a .tar.gz) into the new folder `target`; the member names, sorted."""
    target = Path(target)
    if target.exists():
        raise UnpackError(f"'{target}' already exists: unpack into a new folder")
    try:
        with _open(archive) as tar:
            members = tar.getmembers()
            problems = [p for m in members if (p := _problem(m)) is not None]
            if problems:
                shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
                raise UnpackError(f"refusing to unpack '{archive}': {shown}")
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
            try:
                for member in members:
                    if hasattr(tarfile, "data_filter"):  # 3.11.4+: the stdlib's own guard as well
                        tar.extract(member, staging, filter="data")
                    else:
                        tar.extract(member, staging)
                _read_to_the_end(tar)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except UnpackError:
        raise
    except Exception as exc:
        reason = _reason(exc, archive)
        if reason is None:
            raise
        raise UnpackError(f"cannot unpack '{archive}': {reason}") from exc
    return sorted(m.name for m in members)


def _open(archive: str | os.PathLike[str]) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except tarfile.ReadError:  # no compression and no tar format fits: say which of the usual reasons
        with open(archive, "rb") as file:
            head = file.read(len(_GZIP_MAGIC))
        if not head:
            raise UnpackError(f"cannot unpack '{archive}': the file is empty") from None
        if head == _GZIP_MAGIC:
            raise UnpackError(f"cannot unpack '{archive}': the file is damaged or cut short") from None
        raise UnpackError(f"cannot unpack '{archive}': the file is not a .tar.gz archive") from None


def _read_to_the_end(tar: tarfile.TarFile) -> None:
    """Read what follows the last member, so that gzip checks its CRC: tarfile stops before it, and a
    damaged byte in stored (uncompressed) blocks would otherwise unpack as a wrong file."""
    if tar.fileobj is not None:
        while tar.fileobj.read(1 << 16):
            pass


def _reason(exc: Exception, archive: str | os.PathLike[str]) -> str | None:
    """Why reading the archive or writing its files failed, in words; None if no archive can cause `exc`."""
    if isinstance(exc, OSError) and exc.errno is not None:  # the system: permissions, space, a folder
        elsewhere = exc.filename is not None and os.fspath(exc.filename) != os.fspath(archive)
        return str(exc.strerror or exc) + (f": '{exc.filename}'" if elsewhere else "")
    lzma = sys.modules.get("lzma")  # loaded by tarfile only once it has read an archive as xz
    # gzip's bad CRC and bz2's bad stream are OSErrors without errno: the bytes are wrong.
    if isinstance(exc, (tarfile.ReadError, OSError, EOFError, zlib.error)) or (
        lzma is not None and isinstance(exc, lzma.LZMAError)
    ):
        return f"the file is damaged or cut short ({exc})"
    if isinstance(exc, tarfile.TarError):
        return str(exc)
    return None


def _problem(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be extracted, or None."""
    name = member.name
    if not name or name.startswith("/") or "\\" in name or ".." in name.split("/"):
        return f"'{name}' points outside the target"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return f"'{name}' is a device or FIFO"
    if member.issym() or member.islnk():
        link = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), link) if member.issym() else link)
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return f"link '{name}' points outside the target (to '{link}')"
    return None
