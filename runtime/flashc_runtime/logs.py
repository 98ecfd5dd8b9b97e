"""An endpoint's log: what its functions print and log, one line each, with its time and its job.

    2026-06-01T12:00:00.123Z 5f0c3a1e-7b2d-4c1e-9a3f-0d6e2b7c8a91 stdout   loading the model
    2026-06-01T12:00:00.124Z 5f0c3a1e-7b2d-4c1e-9a3f-0d6e2b7c8a91 INFO     app.model: 3 items
    2026-06-01T12:00:00.125Z -                                    flashc   worker process 4242 started

Columns, one space apart: the time (UTC, milliseconds); the job's id (a load-balanced
endpoint's request gets one of its own), or `-` for a line written outside any job, as at
import; the source, padded to 8; the text. Sources:

- `stdout`, `stderr`: `sys.stdout`, `sys.stderr` (`print`, `warnings`, a handler the user set up);
- `DEBUG` ... `CRITICAL`: the `logging` module where the user set up nothing (from INFO on); the
  text starts with the logger's name;
- `raw`: file descriptors 1 and 2 written below Python (a subprocess, C code): its job cannot be
  known;
- `flashc`: the runtime: a job that failed (with its traceback), timed out or was cancelled, a
  worker process started or gone.

A text of several lines is several log lines, each with the prefix, so `grep JOB_ID` finds all
of a job's. A partial line waits for its end, or for its job's end. Which job a line belongs to
is a context variable the runtime sets while the job runs: it follows the job into the tasks it
creates and into `asyncio.to_thread`, so jobs running at once on threads and on the event loop
are told apart; threads that user code starts itself (`threading.Thread`, executors) start
without it, and their lines show `-`.

The server process of an endpoint owns its log file (`LogFile`): it writes its own lines and
those its worker process sends it, whole lines in one write each, and past `ROTATE_AT` bytes
renames the file to `<name>.1` (dropping the one before) and starts a new one.
"""

from __future__ import annotations

import contextvars
import io
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ROTATE_AT",
    "LineStream",
    "LogFile",
    "Sink",
    "capture",
    "current_job",
    "end_job",
    "format_lines",
    "note",
    "parse_line",
    "set_sink",
    "write",
]

# The job whose code runs now: its id, or None outside any job.
current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("flashc_job", default=None)

ROTATE_AT = 5_000_000  # bytes of a log file before it is rotated: at most twice this per endpoint
MAX_TEXT = 32_000  # characters of one line's text kept; longer ones are cut, saying by how much
_JOB_WIDTH = 36  # a job id: 128 bits in a UUID's layout
_SOURCE_WIDTH = 8

# Where formatted lines go: complete lines, each ending in a newline.
Sink = Callable[[bytes], None]


def _to_stderr(data: bytes) -> None:
    _write_all(2, data)


_sink: Sink = _to_stderr


def set_sink(sink: Sink) -> None:
    """Where `write` and `note` send lines in this process (default: file descriptor 2)."""
    global _sink
    _sink = sink


def write(data: bytes) -> None:
    """Formatted lines (from `format_lines`, or a worker process) to this process's log."""
    _sink(data)


def note(job: str | None, text: str) -> None:
    """A line of the runtime's own about `job` (None: about no job)."""
    _sink(format_lines(job, "flashc", text))


_stamps: tuple[int, str] = (-1, "")  # the last second formatted, and how


def format_lines(job: str | None, source: str, text: str, when: float | None = None) -> bytes:
    """`text` as log lines: one per line of it, each with the time, the job and the source."""
    global _stamps
    now = time.time() if when is None else when
    second = int(now)
    cached = _stamps
    if cached[0] != second:
        cached = _stamps = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    prefix = f"{cached[1]}.{int((now - second) * 1000):03d}Z {job or '-':<{_JOB_WIDTH}} {source:<{_SOURCE_WIDTH}} "
    lines = []
    for line in text.split("\n"):
        if "\r" in line:  # what a terminal would show: the text after the last carriage return
            line = line.rstrip("\r").rpartition("\r")[2]
        if len(line) > MAX_TEXT:
            line = f"{line[:MAX_TEXT]}... ({len(line) - MAX_TEXT} more characters)"
        lines.append(prefix + line)
    return ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")


def parse_line(line: str) -> tuple[str, str, str, str] | None:
    """A log line's time, job (`-` for none), source and text; None for a line of another form."""
    time_, _, rest = line.partition(" ")
    job, _, rest = rest.partition(" ")
    if not (len(time_) == 24 and time_.endswith("Z") and job):
        return None
    source, space, text = rest.lstrip(" ").partition(" ")
    if not source or not space:
        return None
    return time_, job, source, text[max(_SOURCE_WIDTH - len(source), 0) :]


class LineStream(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` of an endpoint's process: each line written becomes a log line
    of the job whose code wrote it. Partial lines are kept per job until their newline or the job's
    end (`end_job`); `flush` does not end a line. `fileno` is the real descriptor (a subprocess
    given `sys.stdout` writes there, as `raw`)."""

    def __init__(self, source: str, sink: Callable[[], Sink], fd: int) -> None:
        super().__init__()
        self.source, self._sink, self._fd = source, sink, fd
        self._partial: dict[str | None, str] = {}
        self._lock = threading.RLock()  # reentrant: a finalizer that prints while a line is cut

    encoding = "utf-8"
    errors = "backslashreplace"

    @property
    def name(self) -> str:
        return f"<{self.source}>"

    @property
    def buffer(self) -> _BinaryLines:
        return _BinaryLines(self)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        job = current_job.get()
        with self._lock:
            held = self._partial.pop(job, "") + s
            if "\n" in held:
                held, _, rest = held.rpartition("\n")
                if rest:
                    self._partial[job] = rest
            elif len(held) <= MAX_TEXT:
                self._partial[job] = held
                return len(s)
        self._sink()(format_lines(job, self.source, held))
        return len(s)

    def end(self, job: str | None) -> None:
        """Write what `job` left without a newline."""
        if self._partial:  # most jobs leave nothing: no lock taken for them
            with self._lock:
                held = self._partial.pop(job, None)
            if held:
                self._sink()(format_lines(job, self.source, held))

    def close(self) -> None:
        for job in list(self._partial):
            self.end(job)


class _BinaryLines:
    """`sys.stdout.buffer`: bytes written there are decoded (UTF-8) into the same lines."""

    def __init__(self, text: LineStream) -> None:
        self._text = text

    def write(self, data: bytes) -> int:
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._text.fileno()

    def isatty(self) -> bool:
        return False


_streams: list[LineStream] = []


def capture(level: str = "INFO") -> None:
    """Make this process's `sys.stdout`, `sys.stderr` and `logging` write log lines to the sink.

    `logging` is handled where the user configures nothing: its last-resort handler becomes one
    that writes log lines, and the root logger's level is `level` (the Flash worker's INFO, not
    Python's WARNING). A handler the user adds (`logging.basicConfig`) writes to `sys.stderr`,
    so its lines still carry their job."""
    import logging

    def sink() -> Sink:
        return _sink

    _streams[:] = [LineStream("stdout", sink, 1), LineStream("stderr", sink, 2)]
    sys.stdout, sys.stderr = _streams[0], _streams[1]
    logging.lastResort = _log_handler(sink)
    logging.getLogger().setLevel(level)


def end_job(job: str) -> None:
    """A job has ended: the partial lines it left in `sys.stdout` and `sys.stderr` are written."""
    for stream in _streams:
        stream.end(job)


def _log_handler(sink: Callable[[], Sink]) -> Any:
    """A handler that writes records as log lines of the job that logged them: the level, the
    logger's name, the message (and the exception's traceback)."""
    import logging

    formatter = logging.Formatter()

    class LogHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                text = f"{record.name}: {record.getMessage()}"
                if record.exc_info:
                    text += "\n" + formatter.formatException(record.exc_info)
                if record.stack_info:
                    text += "\n" + record.stack_info
                sink()(format_lines(current_job.get(), record.levelname, text, record.created))
            except Exception:
                self.handleError(record)

    return LogHandler(logging.NOTSET)


class LogFile:
    """An endpoint's log file, written by its server process alone: lines appended whole, and at
    `limit` bytes the file is renamed `<name>.1` (the one before it dropped) and a new one begun.

    With `std`, file descriptors 1 and 2 follow the new file too (the server's own raw output).
    A write that fails (a full disk) is dropped: printing must never fail a job."""

    def __init__(self, path: Path, limit: int = ROTATE_AT, std: bool = False) -> None:
        self.path, self.limit, self.std = path, limit, std
        self.lock = threading.RLock()
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if self.std:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        return fd

    def write(self, data: bytes) -> None:
        with self.lock:
            try:
                if self.size and self.size + len(data) > self.limit:
                    self._rotate()
                _write_all(self.fd, data)
                self.size += len(data)
            except OSError:
                pass

    def _rotate(self) -> None:
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        old, self.fd, self.size = self.fd, self._open(), 0
        os.close(old)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
