"""An exclusive lock on a file, held while a block runs, for work two flashc processes must not do at once."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["locked"]


@contextlib.contextmanager
def locked(path: Path, waiting: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive `flock` on the file at `path` (made when missing, never removed: a removed
    lock file lets a second process lock a new file while the first holds the old) while the block
    runs. When another process holds it, `say(waiting)` first, then wait for it.

    The lock belongs to the open file, which Python opens non-inheritable, so processes started
    inside the block never hold it; it is released when the block ends or this process dies."""
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say is not None:
                say(waiting)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
