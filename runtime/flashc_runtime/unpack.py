"""Unpack a flashc archive on a worker, refusing anything that would land outside the target.

Every member is checked before anything is written: absolute paths, `..` segments, backslashes,
hard links whose target leaves the folder, symlinks that do not point down into their own
folder, and device or FIFO entries are refused, all of them listed in one error. A symlink may
not climb (`..`) at all: a check of each link alone cannot see that `s -> t/..` climbs out once
`t -> .` exists, while links that only ever point down stay inside whatever they chain through.
(flashc writes no symlinks; the rule is for archives made by hand.)

Archives are bounded while their headers are read, before anything is written (`Limits`): the
total size of the files, the number of members, and the ratio of unpacked to compressed bytes,
so a small archive cannot fill the disk or the memory; an extended (pax or long-name) header,
which tarfile reads into memory whole, may not be over 1 MiB. The archive is then extracted into a
temporary folder beside the target and renamed into place, so a failed unpack leaves no
half-written tree. A file that is empty, not an archive, cut short or damaged, or that cannot be
read, is an UnpackError too.
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
from typing import NamedTuple

__all__ = ["DEFAULT_LIMITS", "Limits", "UnpackError", "unpack"]

_GZIP_MAGIC = b"\x1f\x8b"
_GIB = 1 << 30


class UnpackError(ValueError):
    """The archive holds members that would escape the target folder, or cannot be read."""


class Limits(NamedTuple):
    """How much an archive may unpack to; each is checked as the members' headers are read."""

    total_bytes: int = 16 * _GIB
    """Sum of the members' sizes (and their 512-byte headers): a CUDA stack unpacks to a few GB."""
    members: int = 1_000_000
    """Members of every kind: a large site-packages holds some 100,000 files."""
    ratio: int = 200
    """Unpacked bytes per compressed byte, past `ratio_floor`: code and wheels compress 3 to 10 times,
    a file of zeros 1,000 times."""
    ratio_floor: int = 256 * 1024 * 1024
    """Unpacked bytes always allowed whatever the ratio, so a small archive of repetitive text unpacks."""


DEFAULT_LIMITS = Limits()
_HEADER_LIMIT = 1024 * 1024
"""Bytes of a pax or GNU long-name header, which tarfile reads into memory whole: names are at most a few KB."""
_HEADER_TYPES = frozenset({tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, b"X"})


class _HeaderTooLarge(UnpackError):
    """Raised while tarfile reads headers, where the archive's name is not known."""


class _BoundedTarInfo(tarfile.TarInfo):
    """A header that refuses to read an extended header larger than `_HEADER_LIMIT`: its size is
    checked before tarfile reads it, where the archive's limits cannot see it yet."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _HEADER_TYPES and self.size > _HEADER_LIMIT:
            raise _HeaderTooLarge(f"it holds an extended header of {self.size:,} bytes, over {_HEADER_LIMIT:,}")
        member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
        return member


def unpack(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS
) -> list[str]:
    """Extract `archive` (a .tar.gz) into the new folder `target`; the member names, sorted."""
    target = Path(target)
    if target.exists():
        raise UnpackError(f"'{target}' already exists: unpack into a new folder")
    try:
        with _open(archive) as tar:
            members = _bounded_members(tar, archive, limits)
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
    except _HeaderTooLarge as exc:
        raise UnpackError(f"refusing to unpack '{archive}': {exc}") from None
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
        return tarfile.open(archive, "r:*", tarinfo=_BoundedTarInfo)
    except tarfile.ReadError:  # no compression and no tar format fits: say which of the usual reasons
        with open(archive, "rb") as file:
            head = file.read(len(_GZIP_MAGIC))
        if not head:
            raise UnpackError(f"cannot unpack '{archive}': the file is empty") from None
        if head == _GZIP_MAGIC:
            raise UnpackError(f"cannot unpack '{archive}': the file is damaged or cut short") from None
        raise UnpackError(f"cannot unpack '{archive}': the file is not a .tar.gz archive") from None


def _bounded_members(tar: tarfile.TarFile, archive: str | os.PathLike[str], limits: Limits) -> list[tarfile.TarInfo]:
    """Every member's header, read one by one and refused as soon as one of `limits` is passed."""
    compressed = max(os.path.getsize(archive), 1)
    allowed = min(limits.total_bytes, max(limits.ratio_floor, limits.ratio * compressed))
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        members.append(member)
        if len(members) > limits.members:
            raise UnpackError(f"refusing to unpack '{archive}': it holds more than {limits.members:,} members")
        total += 512 + max(member.size, 0)
        if total > allowed:
            if allowed == limits.total_bytes:
                why = f"its files add up to more than {limits.total_bytes:,} bytes"
            else:
                why = (
                    f"its files add up to more than {allowed:,} bytes, over {limits.ratio} times "
                    f"its {compressed:,} compressed bytes"
                )
            raise UnpackError(f"refusing to unpack '{archive}': {why}")
    return members


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
    link = member.linkname
    if member.islnk():
        resolved = posixpath.normpath(link)
        if link.startswith("/") or "\\" in link or resolved == ".." or resolved.startswith("../"):
            return f"link '{name}' points outside the target (to '{link}')"
    if member.issym():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
        if link.startswith("/") or "\\" in link or resolved == ".." or resolved.startswith("../"):
            return f"link '{name}' points outside the target (to '{link}')"
        if not link or ".." in link.split("/"):
            return f"link '{name}' points up ('{link}'): symlinks may only point into their own folder"
    return None
