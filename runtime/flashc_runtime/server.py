"""One endpoint on this machine: serves a resource of an unpacked archive over HTTP, Runpod-style.

    python -m flashc_runtime.server --root DIR --resource NAME --port N --endpoint-id ID   (key in FLASHC_API_KEY)

Queue-based resources serve Runpod's serverless API: `POST /v2/<id>/run` and `/runsync`,
`GET /v2/<id>/status/<job>`, `POST /v2/<id>/cancel/<job>`, `GET /v2/<id>/health`, with the
statuses IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED and TIMED_OUT. At most `workersMax`
jobs run at once; `executionTimeoutMs` ends a job as TIMED_OUT. Load-balanced resources serve
their routes and `GET /ping`. Every request needs `Authorization: Bearer <key>`. Nothing sent
in a request is ever executed: requests only name functions the archive's handlers registered.

A small HTTP/1.1 server on an asyncio protocol (keep-alive, Content-Length bodies, JSON), standard
library only, so an endpoint starts in milliseconds and depends on nothing but the archive.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import functools
import hmac
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote_plus

from .client import RESOURCE_ENV
from .handler import RequestError, drain
from .manifest import load_manifest
from .routes import MethodNotAllowed, RouteNotFound
from .signing import signature_problem

__all__ = ["MAX_BODY", "Endpoint", "WorkerProcess", "import_resource", "main"]

MAX_BODY = 10_000_000  # bytes of request body, Runpod's payload limit
_HEAD_LIMIT = 64 * 1024  # bytes of request line and headers
_READ_SIZE = 64 * 1024  # bytes taken from a socket at once
_LINGER = 2.0  # seconds a connection stays open, reading and dropping, after its last answer
_RUNSYNC_WAIT = 90.0  # seconds /runsync waits before answering with the job still running
# How long a finished job's result stays readable at /status, as on Runpod: then it is 404.
RETAIN_RUNSYNC = 60.0
RETAIN_RUN = 30 * 60.0
_SWEEP_EVERY = 0.1  # seconds: sweeps of expired results come no closer, so not every turn under load
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error"}  # fmt: skip
_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")

Respond = Callable[[int, Any], None]  # answers the request being served: status, JSON payload
Request = tuple[str, str, dict[str, str], dict[str, str], bytes]  # method, path, query, headers, body


@dataclasses.dataclass(slots=True)
class _Job:
    id: str
    input: Any
    status: str = "IN_QUEUE"
    output: Any = None
    error: str | None = None
    queued_at: float = dataclasses.field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    done: bool = False  # finished, failed, cancelled or timed out
    task: asyncio.Task[None] | None = None  # the in-process run, when there is no worker process
    timer: asyncio.TimerHandle | None = None  # ends it TIMED_OUT
    stream: list[Any] = dataclasses.field(default_factory=list)  # a generator's items so far
    streamed: int = 0  # how many of them /stream has handed out
    retain: float = RETAIN_RUN  # seconds its result is kept once it has finished
    waiters: list[_Waiter] = dataclasses.field(default_factory=list)  # /runsync calls waiting

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started_at is not None:
            body["delayTime"] = round((self.started_at - self.queued_at) * 1000)
        if self.started_at is not None and self.finished_at is not None:
            body["executionTime"] = round((self.finished_at - self.started_at) * 1000)
        if self.status == "COMPLETED":
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        return body


class _Waiter:
    """A /runsync call waiting for its job: answered when the job ends, or when its wait runs out."""

    __slots__ = ("respond", "timer")

    def __init__(self, respond: Respond, timer: asyncio.TimerHandle | None = None) -> None:
        self.respond, self.timer = respond, timer


Settle = Callable[[_Job, str, Any], None]  # a running job's end: the job, COMPLETED or FAILED, output or error


class Endpoint:
    """The HTTP face of one resource: its handler, its jobs, its key.

    Jobs move by callbacks, not one task each: a job starts when a slot is free (at most
    `workersMax` run), its result settles it, a timer times it out, and whoever waits is answered.
    """

    def __init__(self, handler: Any, resource: Mapping[str, Any], endpoint_id: str, api_key: str) -> None:
        self.handler = handler
        self.load_balanced = resource["kind"] == "load_balanced"
        config = resource["config"]
        self.endpoint_id = endpoint_id
        self.api_key = api_key.encode()
        self.timeout = (config.get("executionTimeoutMs") or 0) / 1000 or None
        self.capacity = max(1, int(config.get("workersMax") or 1))
        self.running = 0
        self.waiting: collections.deque[_Job] = collections.deque()  # cancelled ones are skipped
        self.jobs: dict[str, _Job] = {}  # queued, running, and finished ones until they expire
        self.finished = dict.fromkeys(_STATUSES, 0)  # every job that ever finished, by status
        self.expiring: dict[float, collections.deque[tuple[float, str]]] = {}  # retention: (when, job id)
        self.sweeper: asyncio.TimerHandle | None = None
        self.sweep_at: float | None = None
        self._in_worker = isinstance(handler, WorkerProcess)

    def protocol(self) -> asyncio.BaseProtocol:
        """A connection's protocol: pass this method to `loop.create_server`."""
        return _Connection(self)

    def handle(self, request: Request, respond: Respond) -> None:
        """Serve one request; `respond` is called once, now or when the answer is ready."""
        method, path, query, headers, body = request
        if not self._authorized(headers.get("authorization", "")):
            respond(401, {"error": "missing or wrong API key: send Authorization: Bearer <key>"})
        elif not self.load_balanced:
            self._queue(method, path, body, respond)
        elif path == "/ping" and method == "GET":
            respond(200, {"status": "healthy"})
        else:
            task = asyncio.get_running_loop().create_task(self._route(method, path, query, body))
            task.add_done_callback(lambda done: None if done.cancelled() else respond(*done.result()))

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key)

    # --- load-balanced ---------------------------------------------------------------------

    async def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            return 400, {"error": "the body is not JSON"}
        try:
            return 200, await self.handler(method, path, query=query, body=parsed)
        except RouteNotFound as exc:
            return 404, {"error": str(exc)}
        except MethodNotAllowed as exc:
            return 405, {"error": str(exc)}
        except RequestError as exc:
            return 400, {"error": str(exc)}
        except Exception as exc:  # user code: the caller gets the failure, the endpoint stays up
            return 500, {"error": _failure(exc)}

    # --- queue-based -----------------------------------------------------------------------

    def _queue(self, method: str, path: str, body: bytes, respond: Respond) -> None:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "v2" or parts[1] != self.endpoint_id:
            return respond(404, {"error": f"no such route: {method} {path}"})
        action, rest = parts[2], parts[3:]
        if action in ("run", "runsync") and not rest:
            if method != "POST":
                return respond(405, {"error": f"{action} takes POST"})
            try:
                request = json.loads(body)
            except ValueError:
                return respond(400, {"error": "the body is not JSON"})
            if not isinstance(request, dict) or not isinstance(request.get("input", {}), dict):
                return respond(400, {"error": 'the body must be {"input": {...}}'})
            problem = signature_problem(request.get("input") or {})
            if problem is not None:
                return respond(400, {"error": problem})
            job = self._submit(request.get("input"), RETAIN_RUNSYNC if action == "runsync" else RETAIN_RUN)
            if action == "runsync" and not job.done:
                # Past the wait, the answer says the job is still running; /status tells the rest.
                waiter = _Waiter(respond)
                waiter.timer = asyncio.get_running_loop().call_later(_RUNSYNC_WAIT, self._stop_waiting, job, waiter)
                job.waiters.append(waiter)
                return None
            return respond(200, job.envelope())
        if action == "stream" and len(rest) == 1:
            streaming = self.jobs.get(rest[0])
            if streaming is None:
                return respond(404, {"error": f"no job {rest[0]}"})
            new, streaming.streamed = streaming.stream[streaming.streamed :], len(streaming.stream)
            reply: dict[str, Any] = {
                "id": streaming.id,
                "status": streaming.status,
                "stream": [{"output": item} for item in new],
            }
            if streaming.error is not None:
                reply["error"] = streaming.error
            return respond(200, reply)
        if action in ("status", "cancel") and len(rest) == 1:
            job_or_none = self.jobs.get(rest[0])
            if job_or_none is None:
                return respond(404, {"error": f"no job {rest[0]}"})
            if action == "cancel":
                if method != "POST":
                    return respond(405, {"error": "cancel takes POST"})
                self._cancel(job_or_none)
            return respond(200, job_or_none.envelope())
        if action == "health" and not rest:
            return respond(200, self._health())
        return respond(404, {"error": f"no such route: {method} {path}"})

    def _health(self) -> dict[str, Any]:
        counts = {s: sum(1 for j in self.jobs.values() if j.status == s) for s in ("IN_QUEUE", "IN_PROGRESS")}
        return {
            "jobs": {
                "completed": self.finished["COMPLETED"],
                "failed": self.finished["FAILED"] + self.finished["TIMED_OUT"],
                "inProgress": counts["IN_PROGRESS"],
                "inQueue": counts["IN_QUEUE"],
                "retried": 0,
            },
            "workers": {
                "running": counts["IN_PROGRESS"],
                "idle": 0,
                "pid": getattr(self.handler, "pid", os.getpid()),
            },
        }

    def _submit(self, job_input: Any, retain: float) -> _Job:
        job = _Job(f"{uuid.uuid4()}", job_input, retain=retain)
        self.jobs[job.id] = job
        if self.running < self.capacity:
            self._start(job)
        else:
            self.waiting.append(job)
        return job

    def _start(self, job: _Job) -> None:
        self.running += 1
        job.status, job.started_at = "IN_PROGRESS", time.monotonic()
        loop = asyncio.get_running_loop()
        if self.timeout is not None:
            job.timer = loop.call_later(self.timeout, self._time_out, job)
        if self._in_worker:
            self.handler.submit(job, self._settle)
        else:
            job.task = loop.create_task(self._run_here(job))

    async def _run_here(self, job: _Job) -> None:
        """Run a job with an in-process handler (tests, and Runpod-style handlers without a worker)."""
        try:
            output = await drain(await self.handler({"id": job.id, "input": job.input}), job.stream.append)
            json.dumps(output)  # a result that is not JSON fails the job with a clear TypeError
        except asyncio.CancelledError:
            return  # it timed out or was cancelled, and has ended so already
        except Exception as exc:
            self._settle(job, "FAILED", _failure(exc))
        else:
            self._settle(job, "COMPLETED", output)

    def _settle(self, job: _Job, status: str, value: Any) -> None:
        """A running job's result, unless the job has ended already (timed out, cancelled)."""
        if job.done:
            return
        job.status = status
        if status == "COMPLETED":
            job.output = value
        else:
            job.error = value
        self._release(job)

    def _time_out(self, job: _Job) -> None:
        if not job.done:
            job.status, job.error = "TIMED_OUT", f"the job ran longer than executionTimeoutMs ({self.timeout} s)"
            self._release(job)

    def _cancel(self, job: _Job) -> None:
        if job.status == "IN_QUEUE":
            job.status, job.finished_at = "CANCELLED", time.monotonic()
            self._finish(job)
        elif job.status == "IN_PROGRESS":
            job.status = "CANCELLED"
            self._release(job)

    def _release(self, job: _Job) -> None:
        """A running job has ended: its slot goes to the next queued job."""
        job.finished_at = time.monotonic()
        if job.timer is not None:
            job.timer.cancel()
        if job.task is not None and not job.task.done():
            job.task.cancel()  # a sync function's thread cannot be stopped; its result is ignored
        if self._in_worker:
            self.handler.forget(job.id)
        self.running -= 1
        self._finish(job)
        while self.waiting and self.running < self.capacity:
            queued = self.waiting.popleft()
            if queued.status == "IN_QUEUE":
                self._start(queued)

    def _finish(self, job: _Job) -> None:
        """Answer whoever waits for the job; its result expires `job.retain` seconds later."""
        job.done = True
        self.finished[job.status] += 1
        waiters, job.waiters = job.waiters, []
        for waiter in waiters:
            if waiter.timer is not None:
                waiter.timer.cancel()
            waiter.respond(200, job.envelope())
        # Results expire in the order they finished, per retention period: a queue per period
        # and one timer for them all, rather than a timer per job.
        expires = time.monotonic() + job.retain
        self.expiring.setdefault(job.retain, collections.deque()).append((expires, job.id))
        if self.sweep_at is None or expires < self.sweep_at:
            self._sweep_later(expires)

    def _sweep_later(self, when: float) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        self.sweep_at = when
        self.sweeper = asyncio.get_running_loop().call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Forget the results that have expired; come back when the next one does."""
        now = time.monotonic()
        self.sweeper = self.sweep_at = None
        for queue in self.expiring.values():
            while queue and queue[0][0] <= now:
                self.jobs.pop(queue.popleft()[1], None)
        heads = [queue[0][0] for queue in self.expiring.values() if queue]
        if heads:
            self._sweep_later(max(min(heads), now + _SWEEP_EVERY))

    def _stop_waiting(self, job: _Job, waiter: _Waiter) -> None:
        if waiter in job.waiters:
            job.waiters.remove(waiter)
            waiter.respond(200, job.envelope())


def _failure(exc: BaseException) -> str:
    """The error a failed job carries: type, message and the traceback text."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{text}"


# --- HTTP -------------------------------------------------------------------------------------


class _Connection(asyncio.BufferedProtocol):
    """One client connection: HTTP/1.1 requests read from the bytes as they come, answered in order.

    A buffered protocol: asyncio's plain one receives into a new 256 KiB bytes object per read,
    and allocating that much costs the kernel an mmap and an munmap each time, more than the
    rest of a small request. Reads land in one scratch buffer instead, shared by all
    connections (the event loop runs one callback at a time), and are copied out at once.
    """

    scratch = memoryview(bytearray(_READ_SIZE))

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False  # a request is being answered; the next waits in the buffer
        self.serving = False  # inside _serve, which goes on by itself once an answer is written
        self.keep_alive = True
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # an answer that comes later is dropped

    def eof_received(self) -> bool:
        if self.busy and self.transport is not None:
            self.keep_alive = False  # the client sends no more but waits for its answer
            return True
        return False  # closes the connection

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.scratch

    def buffer_updated(self, nbytes: int) -> None:
        if self.transport is None:
            return  # answered with Connection: close; the rest is dropped
        self.buffer += self.scratch[:nbytes]
        if not self.busy:
            self._serve()
        elif len(self.buffer) > _HEAD_LIMIT + MAX_BODY and self.transport is not None:
            self.transport.pause_reading()  # a client sending ahead of its answers waits for them
            self.paused = True

    def _serve(self) -> None:
        self.serving = True
        try:
            while not self.busy and self.transport is not None and self.buffer:
                parsed = _parse_request(self.buffer)
                if parsed is None:
                    return  # the rest of the request has not arrived
                self.busy = True
                if isinstance(parsed, int):  # malformed or oversized: answer, then close
                    self.keep_alive = False
                    self._answer(parsed, {"error": _REASONS[parsed]})
                    return
                size, request = parsed
                del self.buffer[:size]
                self.keep_alive = request[3].get("connection", "").lower() != "close"
                self.endpoint.handle(request, self._answer)
        finally:
            self.serving = False

    def _answer(self, status: int, payload: Any) -> None:
        transport = self.transport
        if transport is None:
            return
        body = json.dumps(payload).encode()
        transport.write(b"%s%d\r\n\r\n%s" % (_head(status, self.keep_alive), len(body), body))
        self.busy = False
        if not self.keep_alive:
            # Closing a socket with unread bytes resets it, which can destroy the answer before
            # the client reads it: end the sending side, drop what still comes, close soon.
            self.transport, self.buffer = None, bytearray()
            try:
                transport.write_eof()
            except OSError:  # the client has gone already
                transport.close()
                return
            asyncio.get_running_loop().call_later(_LINGER, transport.close)
            return
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if not self.serving:
            self._serve()


@functools.cache
def _head(status: int, keep_alive: bool) -> bytes:
    """An answer's head up to the value of its Content-Length."""
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: application/json\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\nContent-Length: "
    ).encode()


def _parse_request(buffer: bytearray) -> tuple[int, Request] | int | None:
    """The first request in `buffer` and its size in bytes, None until all of it has arrived,
    or an HTTP status for a malformed or oversized one."""
    end = buffer.find(b"\r\n\r\n", 0, _HEAD_LIMIT + 4)
    if end < 0:
        return 400 if len(buffer) > _HEAD_LIMIT else None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    try:
        method, target, _ = lines[0].split(" ", 2)
    except ValueError:
        return 400
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return 400
    if length < 0:
        return 400
    if length > MAX_BODY:
        return 413
    size = end + 4 + length
    if len(buffer) < size:
        return None
    path, _, raw_query = target.partition("?")
    query = {}
    for pair in raw_query.split("&") if raw_query else ():
        key, _, value = pair.partition("=")
        query[unquote_plus(key)] = unquote_plus(value)
    return size, (method.upper(), unquote_plus(path), query, headers, bytes(buffer[end + 4 : size]))


# --- the worker process -----------------------------------------------------------------------


class WorkerStartFailed(Exception):
    pass


class WorkerProcess:
    """Runs jobs in a child process (`flashc_runtime.worker`), restarted whenever it dies.

    Jobs it was running when it died fail with a clear error; jobs submitted while a new one
    starts wait for it (their timeout still runs), so nothing waits forever.
    """

    def __init__(self, root: Path, resource: str) -> None:
        self.root, self.resource = root, resource
        self.pipes: _WorkerPipes | None = None  # the running worker's, None while it (re)starts
        self.pending: dict[str, tuple[_Job, Settle]] = {}  # sent to the worker, not answered yet
        self.backlog: list[tuple[_Job, Settle]] = []  # submitted while no worker runs
        self.outgoing: list[bytes] = []  # job lines not written yet
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.pipes.pid if self.pipes else None

    async def start(self) -> None:
        """Start the worker and wait until it has imported the handler; WorkerStartFailed if it cannot."""
        pipes = _WorkerPipes(self)
        await asyncio.get_running_loop().subprocess_exec(
            lambda: pipes, sys.executable, "-m", "flashc_runtime.worker", "--root", str(self.root),
            "--resource", self.resource, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
        )  # fmt: skip
        if not await pipes.ready:  # the worker says it is ready once the handler imported
            raise WorkerStartFailed(f"the worker process exited with status {await pipes.exited} while starting")
        self.pipes = pipes
        backlog, self.backlog = self.backlog, []
        for job, settle in backlog:
            if not job.done:
                self.submit(job, settle)

    def submit(self, job: _Job, settle: Settle) -> None:
        """Send a job to the worker; `settle` gets its result (chunks go to `job.stream`)."""
        if self.pipes is None:
            self.backlog.append((job, settle))
            return
        self.pending[job.id] = (job, settle)
        if not self.outgoing:  # jobs submitted in one turn of the event loop go in one write
            asyncio.get_running_loop().call_soon(self._send)
        self.outgoing.append(json.dumps({"id": job.id, "input": job.input}).encode() + b"\n")

    def _send(self) -> None:
        lines, self.outgoing = self.outgoing, []
        if self.pipes is not None:  # else it died meanwhile, and its jobs failed
            self.pipes.send(b"".join(lines))

    def forget(self, job_id: str) -> None:
        """The job has ended without the worker (timed out, cancelled): ignore what it still sends."""
        self.pending.pop(job_id, None)

    def received(self, message: dict[str, Any]) -> None:
        entry = self.pending.get(str(message.get("id")))
        if entry is None:
            return
        job, settle = entry
        if "chunk" in message:
            job.stream.append(message["chunk"])
            return
        del self.pending[job.id]
        if message.get("status") == "COMPLETED":
            settle(job, "COMPLETED", message.get("output"))
        else:
            settle(job, "FAILED", message.get("error", "the job failed"))

    def died(self, pipes: _WorkerPipes, status: int) -> None:
        if pipes is not self.pipes:
            return  # a worker that never started; start() reports it
        self.pipes = None
        pending, self.pending = self.pending, {}
        error = f"the worker process died (exit status {status}) while running this job; a new one was started"
        for job, settle in pending.values():
            settle(job, "FAILED", error)
        self.restarts += 1
        asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        delay = 0.1
        while True:
            try:
                await self.start()
                return
            except WorkerStartFailed as exc:  # e.g. user code it imports broke: retry, slower each time
                print(f"flashc_runtime: {exc}; retrying in {delay:g} s", file=sys.stderr, flush=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


class _WorkerPipes(asyncio.SubprocessProtocol):
    """One worker process's pipes: job lines out, result lines in, and its exit."""

    def __init__(self, owner: WorkerProcess) -> None:
        loop = asyncio.get_running_loop()
        self.owner = owner
        self.ready: asyncio.Future[bool] = loop.create_future()  # its first line came, or it exited
        self.exited: asyncio.Future[int] = loop.create_future()  # its exit status
        self.transport: asyncio.SubprocessTransport | None = None
        self.buffer = bytearray()
        self.stdout_closed = False

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        stdin = self.transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(data)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self.buffer += data
        if b"\n" not in data:
            return
        *lines, rest = self.buffer.split(b"\n")
        self.buffer = rest
        for line in lines:
            if not self.ready.done():
                self.ready.set_result(True)  # the first line says the handler imported
            else:
                self.owner.received(json.loads(line))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.stdout_closed = True
            self._check_ended()

    def process_exited(self) -> None:
        self._check_ended()

    def _check_ended(self) -> None:
        # Dead once it has exited and all it wrote has been read, in whichever order those come.
        assert self.transport is not None
        status = self.transport.get_returncode()
        if status is None or not self.stdout_closed or self.exited.done():
            return
        if not self.ready.done():
            self.ready.set_result(False)
        self.exited.set_result(status)
        self.transport.close()
        self.owner.died(self, status)


def import_resource(root: Path, resource_name: str) -> tuple[ModuleType, Mapping[str, Any]]:
    """A resource's handler module and manifest entry, imported from the unpacked archive at `root`."""
    manifest = load_manifest(root / "flash_manifest.json")
    resource = manifest["resources"].get(resource_name)
    if resource is None:
        raise SystemExit(f"flashc_runtime: no resource '{resource_name}' in {root / 'flash_manifest.json'}")
    sys.path[:0] = [str(root / "_flashc"), str(root), str(root / "src"), str(root / "_flashc" / "site")]
    return importlib.import_module(resource["handler_module"]), resource


def load_endpoint(root: Path, resource_name: str, endpoint_id: str, api_key: str) -> Endpoint:
    """The endpoint of a resource: jobs run in a supervised worker process, routes in this one."""
    manifest = load_manifest(root / "flash_manifest.json")
    resource = manifest["resources"].get(resource_name)
    if resource is None:
        raise SystemExit(f"flashc_runtime.server: no resource '{resource_name}' in {root / 'flash_manifest.json'}")
    if resource["kind"] == "load_balanced":
        module, resource = import_resource(root, resource_name)
        return Endpoint(module.handler, resource, endpoint_id, api_key)
    return Endpoint(WorkerProcess(root, resource_name), resource, endpoint_id, api_key)


async def _serve(endpoint: Endpoint, host: str, port: int) -> None:
    if isinstance(endpoint.handler, WorkerProcess):
        try:
            await endpoint.handler.start()  # before listening: deploy sees a worker that cannot start
        except WorkerStartFailed as exc:
            raise SystemExit(f"flashc_runtime.server: {exc}") from None
    server = await asyncio.get_running_loop().create_server(endpoint.protocol, host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flashc_runtime.server")
    parser.add_argument("--root", required=True, type=Path, help="the unpacked archive")
    parser.add_argument("--resource", required=True)
    parser.add_argument("--endpoint-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    api_key = os.environ.get("FLASHC_API_KEY")
    if not api_key:
        raise SystemExit("flashc_runtime.server: set FLASHC_API_KEY")
    os.environ[RESOURCE_ENV] = args.resource  # calls to this resource's own functions stay in-process
    endpoint = load_endpoint(args.root, args.resource, args.endpoint_id, api_key)
    asyncio.run(_serve(endpoint, args.host, args.port))


if __name__ == "__main__":
    main()
