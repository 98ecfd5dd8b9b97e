"""Gzip in independent members: a stream cut every `CHUNK` bytes, each piece compressed on its own thread.

A gzip file may hold several members back to back; every reader (gzip, GNU tar, Python's
`gzip` and `tarfile` "r:gz") decompresses them as one stream. Compressing each `CHUNK` bytes
as a member of its own lets threads share the work (zlib releases the GIL), and makes the bytes
of a piece depend only on that piece: the output is the same whatever the number of threads,
and a layer compressed once can be copied into any archive as it is.

Every member is byte-for-byte fixed: the 10-byte header has no file name, mtime 0, no extra
flags and OS 255 ("unknown", what `gzip.GzipFile` writes), then raw deflate at `LEVEL`, then the
CRC-32 and length. Another deflate implementation (zlib-ng, a vendor fork) may compress the same
input differently, so `ZLIB_VERSION` belongs in any cache key made from these bytes.
"""

from __future__ import annotations

import collections
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Executor, Future

__all__ = ["CHUNK", "LEVEL", "ZLIB_VERSION", "ChunkedGzip", "default_workers", "member"]

# zlib's own default: within a few percent of level 9's size for libraries and source code, and
# about twice as fast, so a cold build never waits on compression longer than it must.
LEVEL = 6
# Large enough that a member's 18 bytes of framing and its fresh 32 KiB window cost nothing
# (0.04% on pandas' files), small enough that two threads get work even from a 10 MB wheel.
CHUNK = 4 * 1024 * 1024
ZLIB_VERSION = zlib.ZLIB_RUNTIME_VERSION
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def member(data: bytes | bytearray, level: int = LEVEL) -> bytes:
    """`data` as one complete gzip member."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    return b"".join((_HEADER, body, struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)))


def default_workers() -> int:
    """The CPUs this process may run on (a cpuset limit shows in the affinity mask, not in cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class ChunkedGzip:
    """Compresses what is written to it as one gzip member per `chunk` bytes, and passes them to `sink` in order.

    Members are compressed on `pool` while the caller goes on producing; at most `ahead` of them
    are in flight, so memory stays bounded whatever the stream's length. `sink` is only called
    from the thread calling `write` and `close`, so its errors reach the caller. After an error,
    call `abort` so no work is left running for nothing.
    """

    def __init__(
        self, sink: Callable[[bytes], object], pool: Executor, *, ahead: int, chunk: int = CHUNK, level: int = LEVEL
    ) -> None:
        self._sink = sink
        self._pool = pool
        self._ahead = max(1, ahead)
        self._chunk = chunk
        self._level = level
        self._buffer = bytearray()
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self.size = 0
        """Bytes written so far (uncompressed)."""
        self.compressed = 0
        """Bytes passed to `sink` so far."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        while view:
            room = self._chunk - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self._chunk:
                self._submit()

    def close(self) -> None:
        """Compress what is left and pass every remaining member to `sink`."""
        if self._buffer:
            self._submit()
        while self._pending:
            self._emit()

    def abort(self) -> None:
        """Drop the members not passed to `sink` yet; those being compressed finish and are discarded."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._buffer = bytearray()

    def _submit(self) -> None:
        # The full buffer goes to the pool as it is and a new one takes its place: no copy.
        piece, self._buffer = self._buffer, bytearray()
        self._pending.append(self._pool.submit(member, piece, self._level))
        while len(self._pending) > self._ahead:
            self._emit()

    def _emit(self) -> None:
        data = self._pending.popleft().result()
        self._sink(data)
        self.compressed += len(data)
