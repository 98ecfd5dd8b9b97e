"""Unpack a flashc archive on a worker, refusing anything that would land outside the target.

Every member is checked before anything is written: absolute paths, `..` segments, backslashes,
links whose target leaves the folder, and device or FIFO entries are refused, all of them
listed in one error. The archive is then extracted into a temporary folder beside the target
and renamed into place, so a failed unpack leaves no half-written tree.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

__all__ = ["UnpackError", "unpack"]


class UnpackError(ValueError):
    """The archive holds members that would escape the target folder, or cannot be read."""


def unpack(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[str]:
    """Extract `archive` (a .tar.gz) into the new folder `target`; the member names, sorted."""
    target = Path(target)
    if target.exists():
        raise UnpackError(f"'{target}' already exists: unpack into a new folder")
    try:
        with tarfile.open(archive, "r:*") as tar:
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
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except (tarfile.TarError, OSError) as exc:
        raise UnpackError(f"cannot unpack '{archive}': {exc}") from exc
    return sorted(m.name for m in members)


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
