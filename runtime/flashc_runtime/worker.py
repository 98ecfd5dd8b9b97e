"""The process that runs a queue-based endpoint's jobs, apart from the process that serves HTTP.

    python -m flashc_runtime.worker --root DIR --resource NAME

It imports the resource's handler module and talks with the server in lines on stdin and a
private copy of stdout. A line is a small JSON header, then for some lines a 0x1f byte and a
JSON payload that the other side passes on as it is (JSON escapes 0x1f and newlines inside
strings, so neither can occur in the header or the payload):

| direction        | header                                   | payload                      |
|------------------|------------------------------------------|------------------------------|
| server to worker | `{"id": ID}`: run a job                  | the request body, `{"input": {...}}` |
| server to worker | `{"cancel": ID}`: the job has ended      | none                         |
| worker to server | `{"ready": true}`: the handler imported  | none                         |
| worker to server | `{"id": ID, "chunk": true}`              | an item a generator yielded  |
| worker to server | `{"id": ID, "status": "COMPLETED"}`      | the output                   |
| worker to server | `{"id": ID, "status": "FAILED", "error": TEXT}` | none                  |
| worker to server | `{"id": ID, "status": "CANCELLED"}`      | none                         |
| worker to server | 0x1e, then a line of the log (`logs.py`), not JSON | none               |

The server never parses an output, so what the worker could encode, the server can answer with.
What user code prints and logs becomes log lines here, with the job that wrote them, and goes to
the server in the same pipe as the results: a job's lines are in the log before its result is.
If user code kills this process, the server fails the jobs it was running and starts a new one;
when its input ends (the server has gone) it exits at once.

How jobs run. Async functions run on an event loop in a thread of its own, started by the first
async job, and a cancel cancels them. Sync functions run in threads, never on that loop, and
never hold up other jobs for long, but most of them do not need a thread of their own: handing
each job to a pool thread costs two thread wake-ups, which on a virtual machine cost more than
a short job itself. So the thread that reads jobs (the reader) runs a sync job itself, and a
watchdog thread hands reading to a new thread when that job has run for `HANDOFF` seconds; the
old reader finishes its job and ends. A slow job holds up the jobs behind it by `HANDOFF` at
most, or by the interpreter's switch interval (5 ms) when it keeps the GIL. A sync job cannot
be stopped from outside: a cancel leaves it running and its result is dropped by the server.
Results are written once the reader has run all the jobs one read brought, so jobs that arrive
together are answered with one write.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from . import logs
from .handler import Call, create_resolver, drain, failure_text, strict_json

__all__ = ["HANDOFF", "LOG_MARK", "SEPARATOR", "main"]

HANDOFF = 0.002  # seconds a sync job runs on the reader before reading moves to another thread
_STAY_AWAKE = 0.05  # seconds the watchdog keeps looking after the last job started
_CANCELLED = object()  # a cancel came for a job before it was on the event loop
SEPARATOR = b"\x1f"  # between a line's header and its payload
LOG_MARK = b"\x1e"  # the first byte of a log line (a header is JSON: it starts with "{")
_READ_SIZE = 1 << 16


class _Worker:
    """Runs the jobs read from one file descriptor and writes their results to another."""

    def __init__(self, source: int, out: int) -> None:
        self.resolve: Callable[[Mapping[str, Any]], Call] = _no_handler  # once the handler is imported
        self.source, self.out = source, out
        self.lock = threading.Lock()  # guards the state below
        self.watch = threading.Condition(self.lock)  # wakes the watchdog
        self.lines: collections.deque[bytes] = collections.deque()  # read, not yet started
        self.pieces: list[bytes] = []  # a line whose end has not been read yet, in pieces
        self.reader: object = None  # the token of the thread that reads now
        self.inline: object = None  # the token of the reader while it runs a job, else None
        self.last_start = 0.0  # when a reader last started a job (the inline one's start, if any)
        self.watchdog_idle = False  # waiting with no timeout, so a job start must wake it
        # Every job from its line until its end: an async job's future once it has one, or
        # _CANCELLED when a cancel came before it did.
        self.jobs: dict[str, concurrent.futures.Future[None] | object | None] = {}
        self.out_lock = threading.Lock()  # one writer at a time, and lines in the order posted
        self.writing: int | None = None  # the thread that holds out_lock
        self.outbox: list[bytes] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def serve(self) -> None:
        """Run jobs until the input ends; then the process exits, whatever still runs."""
        threading.Thread(target=self._watchdog, name="flashc-watchdog", daemon=True).start()
        token = object()
        with self.lock:
            self.reader = token
        self._read(token)
        threading.Event().wait()  # reading moved to another thread: it ends the process

    def say_ready(self) -> None:
        self._send(b'{"ready": true}', flush=True)

    def log(self, data: bytes) -> None:
        """Log lines (formatted, each ending in a newline) to the server, with the results."""
        if self.writing == threading.get_ident():
            return  # a finalizer that prints while this thread writes: dropped, rather than a deadlock
        # When the server has gone (this process ends once it reads so), printing must not fail a job.
        with contextlib.suppress(OSError):
            self._send(LOG_MARK + data[:-1].replace(b"\n", b"\n" + LOG_MARK), flush=True)

    # --- the reader -------------------------------------------------------------------------

    def _read(self, token: object) -> None:
        try:
            while True:
                with self.lock:
                    if self.reader is not token:
                        return  # reading moved to another thread while this one ran a slow job
                    raw = self.lines.popleft() if self.lines else None
                if raw is not None:
                    self._take(raw, token)
                    continue
                self._flush()  # what the jobs of the last read gave, before this thread blocks
                data = os.read(self.source, _READ_SIZE)
                if not data:
                    self._flush()
                    os._exit(0)  # the server has gone: nobody is left to read a result
                if b"\n" not in data:
                    self.pieces.append(data)  # joined once the line ends, not on every read
                    continue
                lines = b"".join([*self.pieces, data]).split(b"\n")
                rest = lines.pop()  # the start of the next line, or b"" when the read ended one
                self.pieces = [rest] if rest else []
                with self.lock:
                    self.lines.extend(lines)
        except BaseException:  # a reader that stopped would leave a live worker that answers nothing
            _end_on_bug()

    def _take(self, raw: bytes, token: object) -> None:
        head, _, body = raw.partition(SEPARATOR)
        meta = json.loads(head)  # written by the server: a failure here is a bug, and ends the worker
        if "cancel" in meta:
            self._cancel(meta["cancel"])
            return
        job_id = meta["id"]
        with self.lock:
            self.jobs[job_id] = None
            self.last_start = time.monotonic()
            self.inline = token
            if self.watchdog_idle:
                self.watch.notify()
        result = self._run(job_id, body)
        with self.lock:
            if self.inline is token:
                self.inline = None
            still_reader = self.reader is token
            if result is not None:
                self.jobs.pop(job_id, None)
        if result is not None:
            logs.end_job(job_id)
            self._send(result, flush=not still_reader)

    def _watchdog(self) -> None:
        try:
            with self.lock:
                while True:
                    if self.inline is None:
                        # Under load, look again every HANDOFF rather than be woken for each job:
                        # a wake-up per batch of jobs costs more than polling. Sleep for good only
                        # once no job has started for a while.
                        if time.monotonic() - self.last_start < _STAY_AWAKE:
                            self.watch.wait(HANDOFF)
                        else:
                            self.watchdog_idle = True
                            self.watch.wait()
                            self.watchdog_idle = False
                        continue
                    token = self.inline
                    left = self.last_start + HANDOFF - time.monotonic()
                    if left > 0:
                        self.watch.wait(left)
                        continue
                    # The reader's job is slow: a new thread reads, the old one ends after its job.
                    self.reader = new = object()
                    try:
                        threading.Thread(target=self._read, args=(new,), name="flashc-job", daemon=True).start()
                    except RuntimeError as exc:  # no thread to be had now: the old reader goes on reading
                        self.reader = token
                        logs.note(None, f"cannot start a thread ({exc}); trying again")
                        self.watch.wait(0.1)
                        continue
                    self.inline = None
        except BaseException:  # without a watchdog a slow job would hold up every other one for good
            _end_on_bug()

    # --- running jobs -----------------------------------------------------------------------

    def _run(self, job_id: str, body: bytes) -> bytes | None:
        """Run a job here (a sync function) and return its result line, or hand it to the event
        loop (None)."""
        token = logs.current_job.set(job_id)  # what it prints is its own, in this thread and those it awaits
        try:
            return self._call(job_id, body)
        finally:
            logs.current_job.reset(token)

    def _call(self, job_id: str, body: bytes) -> bytes | None:
        try:
            request = json.loads(body) if body else {}
            call = self.resolve({"id": job_id, "input": request.get("input")})  # may create a class instance
            if inspect.iscoroutinefunction(call.target):
                future = asyncio.run_coroutine_threadsafe(self._run_async(job_id, call), self._event_loop())
                with self.lock:
                    if job_id in self.jobs:  # else it has finished already
                        if self.jobs[job_id] is _CANCELLED:
                            future.cancel()
                        self.jobs[job_id] = future
                return None
            result = call.target(*call.args, **call.kwargs)
            if inspect.isgenerator(result):
                items = []
                for item in result:
                    self._send(_chunk(job_id, item), flush=True)
                    items.append(item)
                result = items
            elif inspect.isawaitable(result) or inspect.isasyncgen(result):
                result = asyncio.run_coroutine_threadsafe(self._finish(job_id, result), self._event_loop()).result()
            return _completed(job_id, call.wrap(result))
        except BaseException as exc:  # bad input or failed user code (SystemExit too): the job fails
            return _failed(job_id, exc)

    async def _run_async(self, job_id: str, call: Call) -> None:
        logs.current_job.set(job_id)  # this task's context: the tasks it creates copy it
        try:
            result = await self._finish(job_id, await call.target(*call.args, **call.kwargs))
            line = _completed(job_id, call.wrap(result))
        except asyncio.CancelledError:
            line = _header({"id": job_id, "status": "CANCELLED"})
        except BaseException as exc:
            line = _failed(job_id, exc)
        with self.lock:
            self.jobs.pop(job_id, None)
        logs.end_job(job_id)
        self._send(line, flush=True)

    async def _finish(self, job_id: str, result: Any) -> Any:
        """An awaitable's value, or a generator's items (sent as chunks as they come)."""
        if inspect.isawaitable(result):
            result = await result
        return await drain(result, lambda item: self._send(_chunk(job_id, item), flush=True))

    def _cancel(self, job_id: str) -> None:
        with self.lock:
            if job_id not in self.jobs:
                return  # it has finished
            future = self.jobs[job_id]
            if future is None:  # not on the event loop yet (or a sync job, which cannot be stopped)
                self.jobs[job_id] = _CANCELLED
        if isinstance(future, concurrent.futures.Future):
            future.cancel()  # the task gets CancelledError on its loop, as on Runpod

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
                threading.Thread(target=self.loop.run_forever, name="flashc-async", daemon=True).start()
            return self.loop

    # --- output -----------------------------------------------------------------------------

    def _send(self, line: bytes, flush: bool = False) -> None:
        with self.out_lock:
            self.writing = threading.get_ident()
            try:
                self.outbox.append(line + b"\n")
                if flush:
                    self._write()
            finally:
                self.writing = None

    def _flush(self) -> None:
        with self.out_lock:
            self.writing = threading.get_ident()
            try:
                self._write()
            finally:
                self.writing = None

    def _write(self) -> None:
        if not self.outbox:
            return
        data = memoryview(b"".join(self.outbox))
        self.outbox.clear()
        while data:
            data = data[os.write(self.out, data) :]


def _end_on_bug() -> NoReturn:
    """Print the exception being handled and end the process: the server sees the exit, fails
    the jobs that were running and starts a new worker."""
    traceback.print_exc(file=sys.__stderr__)  # not through the pipe of results, which may be what broke
    if sys.__stderr__ is not None:
        sys.__stderr__.flush()
    os._exit(70)


def _header(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


def _completed(job_id: str, output: Any) -> bytes:
    try:
        payload = strict_json(output)
    except Exception as exc:  # not JSON, or nested too deep to encode: the job fails, clearly
        return _failed(job_id, exc)
    # Formatted, not json.dumps of a dict: this is every job's path, and the id is a JSON string.
    return b'{"id": %s, "status": "COMPLETED"}%s%s' % (json.dumps(job_id).encode(), SEPARATOR, payload)


def _chunk(job_id: str, item: Any) -> bytes:
    # An item that cannot be encoded raises here, inside the generator's loop: the job fails.
    return b'{"id": %s, "chunk": true}%s%s' % (json.dumps(job_id).encode(), SEPARATOR, strict_json(item))


def _failed(job_id: str, exc: BaseException) -> bytes:
    error = failure_text(exc)
    logs.note(job_id, f"job FAILED: {error.rstrip()}")
    return _header({"id": job_id, "status": "FAILED", "error": error})


def _no_handler(job: Mapping[str, Any]) -> Call:
    raise RuntimeError("a job came before the handler was imported")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flashc_runtime.worker")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--resource", required=True)
    args = parser.parse_args(argv)
    from .client import RESOURCE_ENV
    from .server import import_resource

    os.environ[RESOURCE_ENV] = args.resource
    # The protocol on a private copy of stdout. What user code prints and logs becomes log lines
    # sent there, from the import on; what is written to file descriptors 1 and 2 directly (a
    # subprocess, C code) goes to the server's pipe on 2.
    protocol = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    worker = _Worker(sys.stdin.fileno(), protocol)
    logs.set_sink(worker.log)
    logs.capture()
    module, _ = import_resource(args.root, args.resource)
    worker.resolve = create_resolver(module.REGISTRY)
    worker.say_ready()  # the server waits for this line before it serves
    worker.serve()


if __name__ == "__main__":
    main()
