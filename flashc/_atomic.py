"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["discard", "write_atomic"]


def write_atomic(target: Path, data: bytes, *, mode: int = 0o644, durable: bool = False) -> None:
    """Write `data` to `target` through a temporary file in the same folder, then rename it.

    Raises OSError (the caller decides what that means); no temporary file is left behind, also
    on Ctrl-C. `mode` is set explicitly: mkstemp creates files 0600, and chmod ignores the umask.
    `durable` fsyncs the data before the rename, for what must survive a power loss.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        discard(tmp)
        raise


def discard(path: str | Path) -> None:
    """Remove a temporary file; one already gone (or its folder) leaves nothing to clean."""
    with contextlib.suppress(OSError):
        os.unlink(path)
