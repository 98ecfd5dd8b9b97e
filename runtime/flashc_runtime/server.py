"""One endpoint on this machine: serves a resource of an unpacked archive over HTTP, Runpod-style.

    python -m flashc_runtime.server --root DIR --resource NAME --port N --endpoint-id ID [--log FILE]
    (the key in FLASHC_API_KEY)

Queue-based resources serve Runpod's serverless API: `POST /v2/<id>/run` and `/runsync`,
`GET /v2/<id>/status/<job>`, `POST /v2/<id>/cancel/<job>`, `GET /v2/<id>/health`, with the
statuses IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED and TIMED_OUT. At most `workersMax`
jobs run at once; `executionTimeoutMs` ends a job as TIMED_OUT. Load-balanced resources serve
their routes and `GET /ping`; one that serves the project's own app (a mothership's) runs it under
uvicorn instead (`asgi.py`). Every request needs `Authorization: Bearer <key>`, or flashc's
client's proof of the key, which gets a proof back on the answer (`auth.py`). Nothing sent in a
request is ever executed: requests only name functions the archive's handlers registered.

HTTP comes from `_http` (an asyncio protocol, standard library only), so an endpoint starts in
milliseconds and depends on nothing but the archive. Outputs a worker sends are JSON text that
goes into answers as it is, never decoded here.

With `--log`, this process owns the endpoint's log file (`logs.py`, rotated past a few MB): what
its functions print and log, with the job (or a load-balanced request's own id) that wrote each
line, and jobs that failed, timed out or were cancelled. Without it, log lines go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import hmac
import importlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from . import auth, logs
from ._http import Connection, Limits, Request, Respond
from ._job import Job, Waiter, with_raw
from ._supervise import WorkerProcess, WorkerStartFailed
from .client import RESOURCE_ENV
from .handler import RequestError, drain, failure_text, strict_json
from .manifest import load_manifest
from .routes import MethodNotAllowed, RouteHandler, RouteNotFound
from .signing import NonceBook, signature_problem

__all__ = ["MAX_BODY", "Endpoint", "WorkerProcess", "import_resource", "main", "route_answer"]

MAX_BODY = 10_000_000  # bytes of request body, Runpod's payload limit
_RUNSYNC_WAIT = 90.0  # seconds /runsync waits before answering with the job still running
# How long a finished job's result stays readable at /status, as on Runpod: then it is 404.
RETAIN_RUNSYNC = 60.0
RETAIN_RUN = 30 * 60.0
_PATROL_EVERY = 0.05  # seconds between two looks for /runsync calls whose wait has run out
_SWEEP_EVERY = 0.1  # seconds: sweeps of expired results come no closer, so not every turn under load
_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


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
        self.nonces = NonceBook()  # signed calls taken: a replay is refused
        self.request_nonces = NonceBook(auth.WINDOW)  # requests with the client's proof of the key
        self.heads = NonceBook(auth.WINDOW)  # of those, the ones admitted on their head, body to come
        self.limits = Limits(connections=_connection_cap())  # idle and stalled connections closed
        self.timeout = (config.get("executionTimeoutMs") or 0) / 1000 or None
        self.capacity = workers_max(resource)
        self.running = 0
        self.waiting: collections.deque[Job] = collections.deque()  # cancelled ones are skipped
        self.jobs: dict[str, Job] = {}  # queued, running, and finished ones until they expire
        self.finished = dict.fromkeys(_STATUSES, 0)  # every job that ever finished, by status
        self.expiring: dict[float, collections.deque[tuple[float, str]]] = {}  # retention: (when, job id)
        self.sweeper: asyncio.TimerHandle | None = None  # the next sweep of expired results
        self.runsync_waiting: dict[Waiter, Job] = {}
        self.patrol: asyncio.TimerHandle | None = None
        self._in_worker = isinstance(handler, WorkerProcess)
        self.routes: set[asyncio.Task[tuple[int, Any]]] = set()  # load-balanced requests being served

    def protocol(self) -> asyncio.BaseProtocol:
        """A connection's protocol: pass this method to `loop.create_server`."""
        return Connection(self.handle, MAX_BODY, self.admit, self.limits)

    def admit(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, Any] | None:
        """The answer to a request refused on its head alone (before its body is sent), or None.
        A proof's nonce is used up here: no second request, nor a second head, takes it."""
        refused, nonce = self._authorized(method, path, query, headers.get("authorization", ""), None)
        if nonce is not None:
            self.heads.first_use(nonce)  # handle() knows the request by it when its body has come
        return refused

    def handle(self, request: Request, respond: Respond) -> None:
        """Serve one request; `respond` is called once, now or when the answer is ready."""
        method, path, query, headers, body = request
        refused, nonce = self._authorized(method, path, query, headers.get("authorization", ""), body)
        if refused is not None:
            respond(*refused)
            return
        if nonce is not None:  # flashc's client: the answer proves it comes from this endpoint
            respond = self._proving(respond, nonce)
        if not self.load_balanced:
            self._queue(method, path, body, respond)
        elif path == "/ping" and method == "GET":
            respond(200, {"status": "healthy"})
        else:
            task = asyncio.get_running_loop().create_task(self._route(method, path, query, body))
            task.add_done_callback(functools.partial(_answer_route, respond))
            self.routes.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self.routes.discard)

    def _authorized(
        self, method: str, path: str, query: Mapping[str, str], header: str, body: bytes | None
    ) -> tuple[tuple[int, Any] | None, str | None]:
        """The answer refusing a request's Authorization, or None; and, for flashc's client's
        proof of the key, the request's nonce. `body` None: the head alone is judged (`admit`),
        which uses the nonce up; the whole request then goes with the head admitted under it."""
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            if hmac.compare_digest(credentials.strip().encode(), self.api_key):
                return None, None
        elif scheme == auth.SCHEME:
            key = self.api_key.decode()
            problem, nonce = auth.request_problem(credentials, key, self.endpoint_id, method, path, query, body)
            if problem is None:
                head_admitted = body is not None and self.heads.take(nonce)  # its nonce was used then
                if not head_admitted and not self.request_nonces.first_use(nonce):
                    problem = "sent before (its nonce is used)"
            if problem is None:
                return None, nonce
            return (401, {"error": f"Flashc credentials refused: {problem}"}), None
        return (401, {"error": "missing or wrong API key: send Authorization: Bearer <key>"}), None

    def _proving(self, respond: Respond, nonce: str) -> Respond:
        key = self.api_key.decode()

        def proven(status: int, payload: Any) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            proof = auth.answer_proof(key, self.endpoint_id, nonce, status, body)
            respond(status, body, f"{auth.PROOF_HEADER}: {proof}\r\n".encode())

        return proven

    # --- load-balanced ---------------------------------------------------------------------

    async def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        request = _job_id()  # what the route prints is logged with this id, as a job's is with its own
        logs.current_job.set(request)  # in this task's context, which sync routes' threads copy
        status, answer = await route_answer(self.handler, method, path, query, body)
        if status == 500 and isinstance(answer, dict):
            logs.note(request, f"{method} {path} FAILED: {str(answer.get('error')).rstrip()}")
        logs.end_job(request)
        return status, answer

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
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                return respond(400, {"error": "the body must be JSON in UTF-8"})
            try:
                request = json.loads(text)
            except (ValueError, RecursionError):
                return respond(400, {"error": "the body is not JSON (or is nested too deeply)"})
            if not isinstance(request, dict) or not isinstance(request.get("input", {}), dict):
                return respond(400, {"error": 'the body must be {"input": {...}}'})
            problem = signature_problem(request.get("input") or {}, nonces=self.nonces)
            if problem is not None:
                return respond(400, {"error": problem})
            job = self._submit(request.get("input"), body, RETAIN_RUNSYNC if action == "runsync" else RETAIN_RUN)
            if action == "runsync" and not job.done:
                # Past the wait, the answer says the job is still running; /status tells the rest.
                waiter = Waiter(respond, time.monotonic() + _RUNSYNC_WAIT)
                job.waiters.append(waiter)
                # One patrol for every waiting call, not a timer each: most are answered in milliseconds.
                self.runsync_waiting[waiter] = job
                if self.patrol is None:
                    self.patrol = asyncio.get_running_loop().call_later(_PATROL_EVERY, self._patrol)
                return None
            return respond(200, job.envelope())
        if action == "stream" and len(rest) == 1:
            streaming = self.jobs.get(rest[0])
            if streaming is None:
                return respond(404, {"error": f"no job {rest[0]}"})
            new, streaming.streamed = streaming.stream[streaming.streamed :], len(streaming.stream)
            fields: dict[str, Any] = {"id": streaming.id, "status": streaming.status}
            if streaming.error is not None:
                fields["error"] = streaming.error
            items = b", ".join(b'{"output": %s}' % item for item in new)
            return respond(200, with_raw(fields, "stream", b"[%s]" % items))
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

    def _submit(self, job_input: Any, body: bytes, retain: float) -> Job:
        worker = self._in_worker  # a worker reads the request itself: nothing is encoded again here
        job = Job(_job_id(), None if worker else job_input, body if worker else None, retain=retain)
        self.jobs[job.id] = job
        if self.running < self.capacity:
            self._start(job)
        else:
            self.waiting.append(job)
        return job

    def _start(self, job: Job) -> None:
        self.running += 1
        job.status, job.started_at = "IN_PROGRESS", time.monotonic()
        loop = asyncio.get_running_loop()
        if self.timeout is not None:
            job.timer = loop.call_later(self.timeout, self._time_out, job)
        if self._in_worker:
            self.handler.submit(job, self._settle)
        else:
            job.task = loop.create_task(self._run_here(job, job.input))
        job.input = job.body = None  # a finished job keeps its output, not its request

    async def _run_here(self, job: Job, job_input: Any) -> None:
        """Run a job with an in-process handler (tests, and Runpod-style handlers without a worker)."""
        logs.current_job.set(job.id)
        try:
            result = await self.handler({"id": job.id, "input": job_input})
            output = strict_json(await drain(result, lambda item: job.stream.append(strict_json(item)))).decode()
        except asyncio.CancelledError:
            return  # it timed out or was cancelled, and has ended so already
        except Exception as exc:  # a result that is not JSON too: the job fails with a clear TypeError
            error = failure_text(exc)
            logs.note(job.id, f"job FAILED: {error.rstrip()}")
            self._settle(job, "FAILED", error)
        else:
            self._settle(job, "COMPLETED", output.encode())
        finally:
            logs.end_job(job.id)

    def _settle(self, job: Job, status: str, value: Any) -> None:
        """A running job's result, unless the job has ended already (timed out, cancelled)."""
        if job.done:
            return
        job.status = status
        if status == "COMPLETED":
            job.output = value
        else:
            job.error = value
        self._release(job)

    def _time_out(self, job: Job) -> None:
        if not job.done:
            job.status, job.error = "TIMED_OUT", f"the job ran longer than executionTimeoutMs ({self.timeout} s)"
            logs.note(job.id, f"job TIMED_OUT: {job.error}")
            self._release(job)

    def _cancel(self, job: Job) -> None:
        if job.status == "IN_QUEUE":
            job.status, job.finished_at = "CANCELLED", time.monotonic()
            self._finish(job)
        elif job.status == "IN_PROGRESS":
            job.status = "CANCELLED"
            logs.note(job.id, "job CANCELLED while it ran")
            self._release(job)

    def _release(self, job: Job) -> None:
        """A running job has ended: its slot goes to the next queued job."""
        job.finished_at = time.monotonic()
        if job.timer is not None:
            job.timer.cancel()
        if job.task is not None and not job.task.done():
            job.task.cancel()  # a sync function's thread cannot be stopped; its result is ignored
        if self._in_worker:
            self.handler.abandon(job.id)
        self.running -= 1
        self._finish(job)
        while self.waiting and self.running < self.capacity:
            queued = self.waiting.popleft()
            if queued.status == "IN_QUEUE":
                self._start(queued)

    def _finish(self, job: Job) -> None:
        """Answer whoever waits for the job; its result expires `job.retain` seconds later."""
        job.done = True
        self.finished[job.status] += 1
        waiters, job.waiters = job.waiters, []
        for waiter in waiters:
            del self.runsync_waiting[waiter]
            waiter.respond(200, job.envelope())
        # Results expire in the order they finished, per retention period: a queue per period
        # and one timer for them all, rather than a timer per job.
        expires = time.monotonic() + job.retain
        self.expiring.setdefault(job.retain, collections.deque()).append((expires, job.id))
        if self.sweeper is None or expires < self.sweeper.when():
            self._sweep_later(expires)

    def _sweep_later(self, when: float) -> None:
        # The event loop's clock is time.monotonic(), so `when` is a time on it.
        if self.sweeper is not None:
            self.sweeper.cancel()
        self.sweeper = asyncio.get_running_loop().call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Forget the results that have expired; come back when the next one does."""
        now = time.monotonic()
        self.sweeper = None
        for queue in self.expiring.values():
            while queue and queue[0][0] <= now:
                self.jobs.pop(queue.popleft()[1], None)
        heads = [queue[0][0] for queue in self.expiring.values() if queue]
        if heads:
            self._sweep_later(max(min(heads), now + _SWEEP_EVERY))

    def _patrol(self) -> None:
        """Answer the /runsync calls whose wait has run out: their job is still running."""
        now = time.monotonic()
        for waiter, job in [(w, j) for w, j in self.runsync_waiting.items() if w.deadline <= now]:
            del self.runsync_waiting[waiter]
            job.waiters.remove(waiter)
            waiter.respond(200, job.envelope())
        loop = asyncio.get_running_loop()
        self.patrol = loop.call_later(_PATROL_EVERY, self._patrol) if self.runsync_waiting else None


def _answer_route(respond: Respond, done: asyncio.Task[tuple[int, Any]]) -> None:
    """Answer a load-balanced request once its route has run; an answer that cannot be sent as JSON
    (a detail of an HTTPException that is no JSON) is a 500, not a connection left waiting."""
    if done.cancelled():
        return
    status, answer = done.result()
    try:
        respond(status, answer if isinstance(answer, bytes) else json.dumps(answer).encode())
    except (TypeError, ValueError) as exc:
        respond(500, {"error": f"the route's answer is not JSON: {exc}"})


async def route_answer(
    handler: RouteHandler, method: str, path: str, query: Mapping[str, str], body: bytes
) -> tuple[int, Any]:
    """A load-balanced request's answer: a status, and a JSON payload or bytes that are JSON already.

    The route's result (200), or what went wrong: a body that is not JSON or arguments that do not
    fit (400), no route (404), a route without this method (405), FastAPI's HTTPException (its
    status, `{"detail": ...}`), anything else user code raised (500, with the traceback text).
    This server and the FastAPI app of Runpod's load-balanced images (`stock.py`) both answer so.
    """
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return 400, {"error": "the body is not JSON (or is nested too deeply)"}
    try:
        result = await handler(method, path, query=query, body=parsed)
        return 200, strict_json(result)
    except RouteNotFound as exc:
        return 404, {"error": str(exc)}
    except MethodNotAllowed as exc:
        return 405, {"error": str(exc)}
    except RequestError as exc:
        return 400, {"error": str(exc)}
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # user code (SystemExit too), or a result that is not JSON
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status < 600:
            # FastAPI's HTTPException, as Runpod's load-balanced image answers it.
            return status, {"detail": getattr(exc, "detail", str(exc))}
        return 500, {"error": failure_text(exc)}


def _job_id() -> str:
    """128 random bits in a UUID's layout, like uuid4(), at under half its cost (every job has one)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def workers_max(resource: Mapping[str, Any]) -> int:
    """How many of a resource's jobs run at once (`workersMax`, at least 1)."""
    return max(1, int(resource["config"].get("workersMax") or 1))


def import_resource(root: Path, resource_name: str) -> tuple[ModuleType, Mapping[str, Any]]:
    """A resource's handler module and manifest entry, imported from the unpacked archive at `root`."""
    resource = _resource(root, resource_name)
    return _import_handler(root, resource), resource


def _resource(root: Path, resource_name: str) -> Mapping[str, Any]:
    manifest = load_manifest(root / "flash_manifest.json")
    resource: Mapping[str, Any] | None = manifest["resources"].get(resource_name)
    if resource is None:
        raise SystemExit(f"flashc_runtime: no resource '{resource_name}' in {root / 'flash_manifest.json'}")
    return resource


def _import_handler(root: Path, resource: Mapping[str, Any]) -> ModuleType:
    # The runtime first, so no project file can shadow it; then the project; then the resource's own
    # site folder of installed dependencies (shared by every resource unless their versions conflict).
    site = root / resource["site"]
    sys.path[:0] = [str(root / "_flashc"), str(root), str(root / "src"), str(site)]
    # What the runtime brings along (cloudpickle) comes last: the image's or the project's copy wins.
    sys.path.append(str(root / "_flashc" / "_vendor"))
    return importlib.import_module(resource["handler_module"])


def load_endpoint(root: Path, resource_name: str, endpoint_id: str, api_key: str) -> Endpoint:
    """The endpoint of a resource: jobs run in a supervised worker process, routes in this one."""
    resource = _resource(root, resource_name)
    if resource["kind"] == "load_balanced":
        return Endpoint(_import_handler(root, resource).handler, resource, endpoint_id, api_key)
    worker = WorkerProcess(root, resource_name, workers_max(resource))
    return Endpoint(worker, resource, endpoint_id, api_key)


async def _serve(endpoint: Endpoint, host: str, port: int) -> None:
    if isinstance(endpoint.handler, WorkerProcess):
        try:
            await endpoint.handler.start()  # before listening: deploy sees a worker that cannot start
        except WorkerStartFailed as exc:
            raise SystemExit(f"flashc_runtime.server: {exc}") from None
        # No user code runs in this process, and a request's objects die young and in no cycle:
        # collect less often, and never look at what was loaded at start again (measured: about
        # 7 to 12% less CPU per request in this process, two A/B runs).
        gc.freeze()
        gc.set_threshold(20_000, 50, 50)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_rate_limited(loop.default_exception_handler))
    server = await loop.create_server(endpoint.protocol, host, port)
    logs.note(None, f"endpoint {endpoint.endpoint_id} (pid {os.getpid()}) serving on http://{host}:{port}")
    async with server:
        await server.serve_forever()


def _connection_cap() -> int:
    """At most 1024 connections, and always fewer than this process may open files (with room
    for the worker's pipes, the log and the files the endpoint opens): past it, a client gets 503."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 1024
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft - 128))


def _rate_limited(report: Any, every: float = 10.0) -> Any:
    """An event-loop exception handler that says each kind of problem at most once per `every` s
    (out of file descriptors, `accept()` fails on every loop turn: logged each time, the log grew
    by gigabytes)."""
    last: dict[str, float] = {}
    dropped: dict[str, int] = {}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        kind = f"{context.get('message', '')}|{type(exc).__name__ if exc else ''}"
        now = time.monotonic()
        if now - last.get(kind, -every) < every:
            dropped[kind] = dropped.get(kind, 0) + 1
            return
        last[kind] = now
        if dropped.get(kind):
            context = {**context, "message": f"{context.get('message', '')} ({dropped.pop(kind)} more like it)"}
        report(context)

    return handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flashc_runtime.server")
    parser.add_argument("--root", required=True, type=Path, help="the unpacked archive")
    parser.add_argument("--resource", required=True)
    parser.add_argument("--endpoint-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, help="the log file this process writes and rotates (default: stderr)")
    args = parser.parse_args(argv)
    if args.log is not None:
        logs.set_sink(logs.LogFile(args.log, std=True).write)
    logs.capture()  # load-balanced routes run here: what they print and log is logged with their request
    api_key = os.environ.get("FLASHC_API_KEY")
    if not api_key:
        raise SystemExit("flashc_runtime.server: set FLASHC_API_KEY")
    os.environ[RESOURCE_ENV] = args.resource  # calls to this resource's own functions stay in-process
    if _resource(args.root, args.resource).get("app"):  # the project's own app (a mothership's)
        from .asgi import serve_app

        module, _ = import_resource(args.root, args.resource)
        return serve_app(module.app, api_key, args.endpoint_id, args.host, args.port)
    endpoint = load_endpoint(args.root, args.resource, args.endpoint_id, api_key)
    asyncio.run(_serve(endpoint, args.host, args.port))


if __name__ == "__main__":
    main()
