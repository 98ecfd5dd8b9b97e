"""Tar members as bytes: headers, padding and the end of the archive, exactly as `tarfile` writes them.

Layers are written and cached apart, then concatenated, so no `TarFile` ever sees the whole
stream; these functions produce the same bytes `tarfile.TarFile(format=PAX_FORMAT)` would for the
same members: a plain ustar header, plus a PAX extended header only for what ustar cannot hold
(a path or link target over 100 characters or not ASCII).
"""

from __future__ import annotations

import tarfile

__all__ = ["BLOCK", "DEFAULT_MTIME", "end_of_archive", "file_header", "link_header", "padding"]

BLOCK = tarfile.BLOCKSIZE
# 1980-01-01 00:00:00 UTC: the earliest time a zip can hold, so members keep a valid time if the
# archive is ever repacked as a zip or wheel, and no tool mistakes it for "no time at all" (0).
DEFAULT_MTIME = 315532800


def file_header(arcname: str, size: int, *, executable: bool, mtime: int) -> bytes:
    """The header block(s) of a regular file; its `size` bytes and `padding(size)` follow."""
    info = _info(arcname, executable, mtime)
    info.size = size
    return _encode(info)


def link_header(arcname: str, target: str, *, executable: bool, mtime: int) -> bytes:
    """The header block(s) of a hard link to `target`, the arcname of a file earlier in the archive."""
    info = _info(arcname, executable, mtime)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return _encode(info)


def padding(size: int) -> bytes:
    """The zero bytes that round a member's data of `size` bytes up to a whole block."""
    return bytes(-size % BLOCK)


def end_of_archive(tar_size: int) -> bytes:
    """Two zero blocks, then zeros up to a whole record, after `tar_size` bytes of members (as `TarFile.close`)."""
    length = 2 * BLOCK
    return bytes(length + -(tar_size + length) % tarfile.RECORDSIZE)


def _info(arcname: str, executable: bool, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = mtime
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _encode(info: tarfile.TarInfo) -> bytes:
    # TarFile's own defaults for a PAX archive written with encoding="utf-8".
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
