"""The process that runs a queue-based endpoint's jobs, apart from the process that serves HTTP.

    python -m flashc_runtime.worker --root DIR --resource NAME

It imports the resource's handler module and reads jobs as JSON lines on stdin
(`{"id": ..., "input": {...}}`), runs each as it arrives, and writes one JSON line per finished
job on stdout: `{"id": ..., "status": "COMPLETED", "output": ...}` or
`{"id": ..., "status": "FAILED", "error": ...}`, after a `{"id": ..., "chunk": ...}` line per item
a generator yields. If user code kills this process, the server fails the jobs it was running
and starts a new one.

How jobs run. Async functions run on an event loop in a thread of its own, started by the first
async job. Sync functions run in threads, never on that loop, and never hold up other jobs for
long, but most of them do not need a thread of their own: handing each job to a pool thread
costs two thread wake-ups, which on a virtual machine cost more than a short job itself. So the
thread that reads jobs (the reader) runs a sync job itself, and a watchdog thread hands reading
to a new thread when that job has run for `HANDOFF` seconds; the old reader finishes its job
and ends. A slow job holds up the jobs behind it by `HANDOFF` at most, or by the interpreter's
switch interval (5 ms) when it keeps the GIL. Results are written once the reader has run all
the jobs one read brought, so jobs that arrive together are answered with one write.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .handler import Call, create_resolver, drain

__all__ = ["HANDOFF", "main"]

HANDOFF = 0.002  # seconds a sync job runs on the reader before reading moves to another thread
_READ_SIZE = 1 << 16


def _failure(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{text}"


class _Worker:
    """Runs the jobs read from one file descriptor and writes their results to another."""

    def __init__(self, resolve: Callable[[Mapping[str, Any]], Call], source: int, out: int) -> None:
        self.resolve, self.source, self.out = resolve, source, out
        self.lock = threading.Lock()  # guards the state below
        self.watch = threading.Condition(self.lock)  # wakes the watchdog
        self.drained = threading.Condition(self.lock)  # wakes the reader waiting for the last jobs
        self.lines: collections.deque[bytes] = collections.deque()  # read, not yet started
        self.partial = b""  # the start of a line whose end has not been read yet
        self.reader: object = None  # the token of the thread that reads now
        self.inline: tuple[object, float] | None = None  # the reader's sync job: its token, its start
        self.watchdog_idle = False  # waiting with no timeout, so a job start must wake it
        self.active = 0  # jobs started and not finished
        self.eof = False
        self.finished = threading.Event()
        self.out_lock = threading.Lock()  # one writer at a time, and lines in the order posted
        self.outbox: list[bytes] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def serve(self) -> None:
        """Run every job until the input ends and they have all finished."""
        threading.Thread(target=self._watchdog, name="flashc-watchdog", daemon=True).start()
        token = object()
        with self.lock:
            self.reader = token
        self._read(token)
        self.finished.wait()  # this thread may have handed reading to another

    def say_ready(self) -> None:
        self._post({"ready": True}, flush=True)

    # --- the reader -------------------------------------------------------------------------

    def _read(self, token: object) -> None:
        while True:
            with self.lock:
                if self.reader is not token:
                    return  # reading moved to another thread while this one ran a slow job
                raw = self.lines.popleft() if self.lines else None
            if raw is not None:
                self._start(raw, token)
                continue
            self._flush()  # what the jobs of the last read gave, before this thread blocks
            data = os.read(self.source, _READ_SIZE)
            if not data:
                self._close()
                return
            *lines, self.partial = (self.partial + data).split(b"\n")
            with self.lock:
                self.lines.extend(lines)

    def _start(self, raw: bytes, token: object) -> None:
        with self.lock:
            self.active += 1
            self.inline = (token, time.monotonic())
            if self.watchdog_idle:
                self.watch.notify()
        message = self._run(json.loads(raw))
        with self.lock:
            if self.inline is not None and self.inline[0] is token:
                self.inline = None
            still_reader = self.reader is token
        if message is not None:
            self._post(message, flush=not still_reader)
            self._done()

    def _close(self) -> None:
        """The input has ended: wait for the jobs still running, then let the process exit."""
        with self.lock:
            self.eof = True
            while self.active:
                self.drained.wait()
        self._flush()
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.finished.set()

    def _watchdog(self) -> None:
        with self.lock:
            while True:
                if self.inline is None:
                    self.watchdog_idle = True
                    self.watch.wait()
                    self.watchdog_idle = False
                    continue
                _, started = self.inline
                left = started + HANDOFF - time.monotonic()
                if left > 0:
                    self.watch.wait(left)
                    continue
                # The reader's job is slow: a new thread reads, the old one ends after its job.
                self.inline = None
                self.reader = new = object()
                threading.Thread(target=self._read, args=(new,), name="flashc-job", daemon=True).start()

    # --- running jobs -----------------------------------------------------------------------

    def _run(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """Run a job here (a sync function), or hand it to the event loop (None)."""
        job_id = job.get("id")
        try:
            call = self.resolve(job)  # may create a class's instance: user code, so it is timed too
            if inspect.iscoroutinefunction(call.target):
                asyncio.run_coroutine_threadsafe(self._run_async(job_id, call), self._event_loop())
                return None
            result = call.target(*call.args, **call.kwargs)
            if inspect.isgenerator(result):
                items = []
                for item in result:
                    self._post({"id": job_id, "chunk": item}, flush=True)
                    items.append(item)
                result = items
            elif inspect.isawaitable(result) or inspect.isasyncgen(result):
                result = asyncio.run_coroutine_threadsafe(self._finish(job_id, result), self._event_loop()).result()
            return {"id": job_id, "status": "COMPLETED", "output": call.wrap(result)}
        except BaseException as exc:  # bad input or failed user code (SystemExit too): the job fails
            return {"id": job_id, "status": "FAILED", "error": _failure(exc)}

    async def _run_async(self, job_id: Any, call: Call) -> None:
        try:
            result = await self._finish(job_id, await call.target(*call.args, **call.kwargs))
            message = {"id": job_id, "status": "COMPLETED", "output": call.wrap(result)}
        except BaseException as exc:
            message = {"id": job_id, "status": "FAILED", "error": _failure(exc)}
        self._post(message, flush=True)
        self._done()

    async def _finish(self, job_id: Any, result: Any) -> Any:
        """An awaitable's value, or a generator's items (sent as chunks as they come)."""
        if inspect.isawaitable(result):
            result = await result
        return await drain(result, lambda item: self._post({"id": job_id, "chunk": item}, flush=True))

    def _done(self) -> None:
        with self.lock:
            self.active -= 1
            if self.eof and not self.active:
                self.drained.notify()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
                threading.Thread(target=self.loop.run_forever, name="flashc-async", daemon=True).start()
            return self.loop

    # --- output -----------------------------------------------------------------------------

    def _post(self, message: dict[str, Any], flush: bool = False) -> None:
        try:
            line = json.dumps(message)
        except (TypeError, ValueError) as exc:  # a result that is not JSON fails the job, clearly
            line = json.dumps({"id": message.get("id"), "status": "FAILED", "error": _failure(exc)})
        with self.out_lock:
            self.outbox.append(line.encode() + b"\n")
            if flush:
                self._write()

    def _flush(self) -> None:
        with self.out_lock:
            self._write()

    def _write(self) -> None:
        if not self.outbox:
            return
        data = memoryview(b"".join(self.outbox))
        self.outbox.clear()
        while data:
            data = data[os.write(self.out, data) :]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flashc_runtime.worker")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--resource", required=True)
    args = parser.parse_args(argv)
    from .client import RESOURCE_ENV
    from .server import import_resource

    os.environ[RESOURCE_ENV] = args.resource
    # User code may print: keep the protocol on a private copy of stdout, send prints to stderr.
    protocol = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    module, _ = import_resource(args.root, args.resource)
    worker = _Worker(create_resolver(module.REGISTRY), sys.stdin.fileno(), protocol)
    worker.say_ready()  # the server waits for this line before it serves
    worker.serve()


if __name__ == "__main__":
    main()
