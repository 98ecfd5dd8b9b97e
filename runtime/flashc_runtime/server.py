"""One endpoint on this machine: serves a resource of an unpacked archive over HTTP, Runpod-style.

    python -m flashc_runtime.server --root DIR --resource NAME --port N --endpoint-id ID   (key in FLASHC_API_KEY)

Queue-based resources serve Runpod's serverless API: `POST /v2/<id>/run` and `/runsync`,
`GET /v2/<id>/status/<job>`, `POST /v2/<id>/cancel/<job>`, `GET /v2/<id>/health`, with the
statuses IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED and TIMED_OUT. At most `workersMax`
jobs run at once; `executionTimeoutMs` ends a job as TIMED_OUT. Load-balanced resources serve
their routes and `GET /ping`. Every request needs `Authorization: Bearer <key>`. Nothing sent
in a request is ever executed: requests only name functions the archive's handlers registered.

A small HTTP/1.1 server on asyncio streams (keep-alive, Content-Length bodies, JSON), standard
library only, so an endpoint starts in milliseconds and depends on nothing but the archive.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hmac
import importlib
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .client import RESOURCE_ENV
from .handler import RequestError, drain
from .manifest import load_manifest
from .routes import MethodNotAllowed, RouteNotFound
from .signing import signature_problem

__all__ = ["MAX_BODY", "Endpoint", "JobFailed", "WorkerProcess", "import_handler", "main"]

MAX_BODY = 10_000_000  # bytes of request body, Runpod's payload limit
_RUNSYNC_WAIT = 90.0  # seconds /runsync waits before answering with the job still running
# How long a finished job's result stays readable at /status, as on Runpod: then it is 404.
RETAIN_RUNSYNC = 60.0
RETAIN_RUN = 30 * 60.0
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error"}  # fmt: skip


@dataclasses.dataclass
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
    task: asyncio.Task[None] | None = None
    stream: list[Any] = dataclasses.field(default_factory=list)  # a generator's items so far
    streamed: int = 0  # how many of them /stream has handed out
    retain: float = RETAIN_RUN  # seconds its result is kept once it has finished
    waiters: list[asyncio.Future[None]] = dataclasses.field(default_factory=list)  # /runsync calls waiting

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


class Endpoint:
    """The HTTP face of one resource: its handler, its jobs, its key."""

    def __init__(self, handler: Any, resource: Mapping[str, Any], endpoint_id: str, api_key: str) -> None:
        self.handler = handler
        self.load_balanced = resource["kind"] == "load_balanced"
        config = resource["config"]
        self.endpoint_id = endpoint_id
        self.api_key = api_key
        self.timeout = (config.get("executionTimeoutMs") or 0) / 1000 or None
        self.slots = asyncio.Semaphore(max(1, int(config.get("workersMax") or 1)))
        self.jobs: dict[str, _Job] = {}  # queued, running, and finished ones until they expire
        self.finished = dict.fromkeys(_STATUSES, 0)  # every job that ever finished, by status
        self._in_worker = isinstance(handler, WorkerProcess)

    # --- HTTP ------------------------------------------------------------------------------

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                if isinstance(request, int):  # a malformed or oversized request: answer, then close
                    await _respond(writer, request, {"error": _REASONS[request]}, keep_alive=False)
                    break
                method, path, query, headers, body = request
                status, payload = await self.dispatch(method, path, query, headers, body)
                keep = headers.get("connection", "").lower() != "close"
                await _respond(writer, status, payload, keep_alive=keep)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def dispatch(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        if not self._authorized(headers.get("authorization", "")):
            return 401, {"error": "missing or wrong API key: send Authorization: Bearer <key>"}
        if self.load_balanced:
            return await self._route(method, path, query, body)
        return await self._queue(method, path, body)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    # --- load-balanced ---------------------------------------------------------------------

    async def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/ping" and method == "GET":
            return 200, {"status": "healthy"}
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

    async def _queue(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "v2" or parts[1] != self.endpoint_id:
            return 404, {"error": f"no such route: {method} {path}"}
        action, rest = parts[2], parts[3:]
        if action in ("run", "runsync") and not rest:
            if method != "POST":
                return 405, {"error": f"{action} takes POST"}
            try:
                request = json.loads(body)
            except ValueError:
                return 400, {"error": "the body is not JSON"}
            if not isinstance(request, dict) or not isinstance(request.get("input", {}), dict):
                return 400, {"error": 'the body must be {"input": {...}}'}
            problem = signature_problem(request.get("input") or {})
            if problem is not None:
                return 400, {"error": problem}
            job = self._submit(request.get("input"), RETAIN_RUNSYNC if action == "runsync" else RETAIN_RUN)
            if action == "runsync" and not job.done:
                # Past the wait, the answer says the job is still running; /status tells the rest.
                # A bare future and one timer: this is every /runsync call's path.
                loop = asyncio.get_running_loop()
                waiter: asyncio.Future[None] = loop.create_future()
                job.waiters.append(waiter)
                timer = loop.call_later(_RUNSYNC_WAIT, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
            return 200, job.envelope()
        if action == "stream" and len(rest) == 1:
            streaming = self.jobs.get(rest[0])
            if streaming is None:
                return 404, {"error": f"no job {rest[0]}"}
            new, streaming.streamed = streaming.stream[streaming.streamed :], len(streaming.stream)
            reply: dict[str, Any] = {
                "id": streaming.id,
                "status": streaming.status,
                "stream": [{"output": item} for item in new],
            }
            if streaming.error is not None:
                reply["error"] = streaming.error
            return 200, reply
        if action in ("status", "cancel") and len(rest) == 1:
            job_or_none = self.jobs.get(rest[0])
            if job_or_none is None:
                return 404, {"error": f"no job {rest[0]}"}
            if action == "cancel":
                if method != "POST":
                    return 405, {"error": "cancel takes POST"}
                self._cancel(job_or_none)
            return 200, job_or_none.envelope()
        if action == "health" and not rest:
            counts = {s: sum(1 for j in self.jobs.values() if j.status == s) for s in ("IN_QUEUE", "IN_PROGRESS")}
            return 200, {
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
        return 404, {"error": f"no such route: {method} {path}"}

    def _submit(self, job_input: Any, retain: float) -> _Job:
        job = _Job(f"{uuid.uuid4()}", job_input, retain=retain)
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        return job

    async def _run(self, job: _Job) -> None:
        async with self.slots:
            if job.status != "IN_QUEUE":
                return  # cancelled while waiting
            job.status, job.started_at = "IN_PROGRESS", time.monotonic()
            try:
                output = await asyncio.wait_for(self._call(job), self.timeout)
                # A worker's output arrived as JSON already; in-process results are checked here.
                job.status, job.output = "COMPLETED", output if self._in_worker else _jsonable(output)
            except asyncio.TimeoutError:
                job.status, job.error = "TIMED_OUT", f"the job ran longer than executionTimeoutMs ({self.timeout} s)"
            except asyncio.CancelledError:
                job.status = "CANCELLED"
            except JobFailed as exc:
                job.status, job.error = "FAILED", exc.error
            except Exception as exc:
                job.status, job.error = "FAILED", _failure(exc)
            finally:
                job.finished_at = time.monotonic()
                self._finish(job)

    def _finish(self, job: _Job) -> None:
        """Wake whoever waits for the job; its result expires `job.retain` seconds later."""
        if job.done:
            return
        job.done = True
        for waiter in job.waiters:
            _wake(waiter)
        job.waiters.clear()
        self.finished[job.status] += 1
        asyncio.get_running_loop().call_later(job.retain, self.jobs.pop, job.id, None)

    async def _call(self, job: _Job) -> Any:
        payload = {"id": job.id, "input": job.input}
        if self._in_worker:
            return await self.handler(payload, emit=job.stream.append)
        return await drain(await self.handler(payload), job.stream.append)

    def _cancel(self, job: _Job) -> None:
        if job.status in ("IN_QUEUE", "IN_PROGRESS"):
            job.status = "CANCELLED"
            job.finished_at = time.monotonic()
            if job.task is not None:
                job.task.cancel()
            self._finish(job)


_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _failure(exc: BaseException) -> str:
    """The error a failed job carries: type, message and the traceback text."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{text}"


def _jsonable(value: Any) -> Any:
    json.dumps(value)  # a result that is not JSON fails the job with a clear TypeError
    return value


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], dict[str, str], bytes] | int | None:
    """One request, None at a clean end of the connection, or an HTTP status for a bad one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return None if not exc.partial.strip() else 400
    except asyncio.LimitOverrunError:
        return 400
    lines = head.decode("latin-1").split("\r\n")
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
    if length > MAX_BODY:
        return 413
    body = await reader.readexactly(length) if length else b""
    path, _, raw_query = target.partition("?")
    query = {}
    for pair in raw_query.split("&") if raw_query else ():
        key, _, value = pair.partition("=")
        query[_unquote(key)] = _unquote(value)
    return method.upper(), _unquote(path), query, headers, body


def _unquote(text: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(text)


async def _respond(writer: asyncio.StreamWriter, status: int, payload: Any, *, keep_alive: bool) -> None:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()


class JobFailed(Exception):
    """A job failed in the worker process; `error` is the text the job reports."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class WorkerStartFailed(Exception):
    pass


class WorkerProcess:
    """Runs jobs in a child process (`flashc_runtime.worker`), restarted whenever it dies.

    Jobs it was running when it died fail with a clear error; nothing waits forever.
    """

    def __init__(self, root: Path, resource: str) -> None:
        self.root, self.resource = root, resource
        self.process: asyncio.subprocess.Process | None = None
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.emitters: dict[str, Callable[[Any], None]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.restarts = 0
        self.ready = asyncio.Event()  # set while a started worker takes jobs

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        """Start the worker and wait until it has imported the handler; WorkerStartFailed if it cannot."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flashc_runtime.worker", "--root", str(self.root), "--resource", self.resource,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024,
        )  # fmt: skip
        assert process.stdout is not None
        if not await process.stdout.readline():  # the worker says it is ready once the handler imported
            raise WorkerStartFailed(f"the worker process exited with status {await process.wait()} while starting")
        self.process = process
        self.reader = asyncio.get_running_loop().create_task(self._read(process))
        self.ready.set()

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            message = json.loads(line)
            if "chunk" in message:
                emit = self.emitters.get(message["id"])
                if emit is not None:
                    emit(message["chunk"])
                continue
            self.emitters.pop(message["id"], None)
            future = self.pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)
        status = await process.wait()
        died = JobFailed(
            f"the worker process died (exit status {status}) while running this job; a new one was started"
        )
        self.process = None
        self.ready.clear()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(died)
        self.pending.clear()
        self.restarts += 1
        delay = 0.1
        while True:
            try:
                await self.start()
                return
            except WorkerStartFailed as exc:  # e.g. user code it imports broke: retry, slower each time
                print(f"flashc_runtime: {exc}; retrying in {delay:g} s", file=sys.stderr, flush=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def __call__(self, job: Mapping[str, Any], emit: Callable[[Any], None] | None = None) -> Any:
        await self.ready.wait()  # while a dead worker is replaced, jobs wait (their timeout still runs)
        assert self.process is not None and self.process.stdin is not None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[job["id"]] = future
        if emit is not None:
            self.emitters[job["id"]] = emit
        self.process.stdin.write(json.dumps({"id": job["id"], "input": job["input"]}).encode() + b"\n")
        await self.process.stdin.drain()
        message = await future
        if message["status"] == "COMPLETED":
            return message["output"]
        raise JobFailed(message.get("error", "the job failed"))


def import_handler(root: Path, resource_name: str) -> tuple[Any, Mapping[str, Any]]:
    """A resource's handler and manifest entry, imported from the unpacked archive at `root`."""
    manifest = load_manifest(root / "flash_manifest.json")
    resource = manifest["resources"].get(resource_name)
    if resource is None:
        raise SystemExit(f"flashc_runtime: no resource '{resource_name}' in {root / 'flash_manifest.json'}")
    sys.path[:0] = [str(root / "_flashc"), str(root), str(root / "src"), str(root / "_flashc" / "site")]
    module = importlib.import_module(resource["handler_module"])
    return module.handler, resource


def load_endpoint(root: Path, resource_name: str, endpoint_id: str, api_key: str) -> Endpoint:
    """The endpoint of a resource: jobs run in a supervised worker process, routes in this one."""
    manifest = load_manifest(root / "flash_manifest.json")
    resource = manifest["resources"].get(resource_name)
    if resource is None:
        raise SystemExit(f"flashc_runtime.server: no resource '{resource_name}' in {root / 'flash_manifest.json'}")
    if resource["kind"] == "load_balanced":
        handler, resource = import_handler(root, resource_name)
        return Endpoint(handler, resource, endpoint_id, api_key)
    return Endpoint(WorkerProcess(root, resource_name), resource, endpoint_id, api_key)


async def _serve(endpoint: Endpoint, host: str, port: int) -> None:
    if isinstance(endpoint.handler, WorkerProcess):
        try:
            await endpoint.handler.start()  # before listening: deploy sees a worker that cannot start
        except WorkerStartFailed as exc:
            raise SystemExit(f"flashc_runtime.server: {exc}") from None
    server = await asyncio.start_server(endpoint.connection, host, port, limit=MAX_BODY + 65536)
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
