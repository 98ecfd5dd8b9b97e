"""The worker processes of a queue endpoint: started, fed jobs, watched, retired and replaced.

`WorkerProcess` is what the endpoint calls: `start()`, `submit(job, settle)` and
`abandon(job_id)`. Each worker process is a `_WorkerPipes`: its pipes in the line protocol of
`flashc_runtime.worker`, the jobs it was sent, and its exit.

What a worker logs comes as log lines among its results, and goes to this process's log as it
is; what it writes to its file descriptor 2 directly (a subprocess, C code, a crash) is logged
as `raw`. A worker started, gone, and the jobs that failed with it are logged as `flashc` lines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import logs
from ._job import Job, Settle
from .worker import LOG_MARK, SEPARATOR

__all__ = ["WorkerProcess", "WorkerStartFailed"]

_EXIT_GRACE = 1.0  # seconds to wait, after the worker exits, for the rest of its output
_STUCK_AFTER = 1.0  # seconds after a job ended here that it counts as stuck in the worker if it runs on


class WorkerStartFailed(Exception):
    pass


class WorkerProcess:
    """Runs jobs in a child process (`flashc_runtime.worker`), restarted whenever it dies.

    Jobs it was running when it died fail with a clear error; jobs submitted while a new one
    starts wait for it (their timeout still runs), so nothing waits forever.

    A job that ended here (timed out, cancelled) is cancelled in the worker too. An async job
    stops; a sync one cannot be stopped and runs on. Once `limit` jobs still run there a second
    after they ended, the worker is retired: new jobs go to a new worker, the old one finishes
    the jobs it has that have not ended, and is then stopped.
    """

    def __init__(self, root: Path, resource: str, limit: int = 1) -> None:
        self.root, self.resource, self.limit = root, resource, limit
        self.current: _WorkerPipes | None = None  # the worker that takes jobs; None while one starts
        self.workers: list[_WorkerPipes] = []  # the current one and any being retired
        self.backlog: list[tuple[Job, Settle, bytes]] = []  # submitted while no worker takes jobs
        self.replacing = False

    @property
    def pid(self) -> int | None:
        """The worker that takes jobs, else (while a new one starts) one still finishing its jobs."""
        live = [self.current] if self.current else self.workers[-1:]
        return live[0].pid if live else None

    async def start(self) -> None:
        """Start a worker and wait until it has imported the handler; WorkerStartFailed if it cannot."""
        pipes = _WorkerPipes(self)
        await asyncio.get_running_loop().subprocess_exec(
            lambda: pipes, sys.executable, "-m", "flashc_runtime.worker", "--root", str(self.root),
            "--resource", self.resource, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        if not await pipes.ready:  # the worker says it is ready once the handler imported
            raise WorkerStartFailed(f"the worker process exited with status {await pipes.exited} while starting")
        logs.note(None, f"worker process {pipes.pid} started")
        self.current = pipes
        self.workers.append(pipes)
        backlog, self.backlog = self.backlog, []
        for job, settle, line in backlog:
            if not job.done:
                pipes.run(job, settle, line)

    def submit(self, job: Job, settle: Settle) -> None:
        """Send a job to the worker; `settle` gets its result (chunks go to `job.stream`)."""
        body = job.body or b""
        if b"\n" in body or b"\r" in body:  # whitespace between tokens: JSON strings cannot hold them
            body = body.replace(b"\n", b" ").replace(b"\r", b" ")
        line = b'{"id": "%s"}%s%s\n' % (job.id.encode(), SEPARATOR, body)
        if self.current is None:
            self.backlog.append((job, settle, line))
        else:
            self.current.run(job, settle, line)

    def abandon(self, job_id: str) -> None:
        """The job has ended here (timed out, cancelled): stop it in the worker if it can be."""
        for pipes in self.workers:
            if pipes.abandon(job_id):
                asyncio.get_running_loop().call_later(_STUCK_AFTER, self._check_stuck, pipes)
                return

    def _check_stuck(self, pipes: _WorkerPipes) -> None:
        stuck = pipes.stuck(_STUCK_AFTER)
        if pipes is self.current and stuck >= self.limit:
            self.current = None  # new jobs wait for the new worker
            pipes.retire(f"{stuck} jobs that had ended here (timed out or cancelled) were still running in it")
            self._replace()

    def exited(self, pipes: _WorkerPipes) -> None:
        """A worker's process has exited: no new job goes to it (its output may still come)."""
        if pipes is self.current:
            self.current = None
            self._replace()

    def died(self, pipes: _WorkerPipes, status: int) -> None:
        """A worker has exited and all it wrote has been read: the jobs it still had fail."""
        self.exited(pipes)  # first: failing a job starts the next queued one, which must not go to it
        if pipes not in self.workers:
            return  # a worker that never started; start() reports it
        self.workers.remove(pipes)
        if pipes.killed:
            logs.note(None, f"worker process {pipes.pid} stopped: {pipes.retired_because}")
            error = f"the worker process was replaced while running this job, because {pipes.retired_because}"
        else:
            logs.note(None, f"worker process {pipes.pid} exited with status {status}")
            error = f"the worker process died (exit status {status}) while running this job"
        pipes.fail_all(error + "; a new one was started")

    def _replace(self) -> None:
        if not self.replacing:
            self.replacing = True
            asyncio.get_running_loop().create_task(self._start_again())

    async def _start_again(self) -> None:
        delay = 0.1
        try:
            while True:
                try:
                    await self.start()
                    return
                except Exception as exc:  # user code it imports broke, no file descriptors...: retry, slower
                    print(
                        f"flashc_runtime: cannot start a worker: {exc}; retrying in {delay:g} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
        finally:
            self.replacing = False


class _WorkerPipes(asyncio.SubprocessProtocol):
    """One worker process: its pipes (job lines out, result lines in), its jobs, and its exit."""

    def __init__(self, owner: WorkerProcess) -> None:
        loop = asyncio.get_running_loop()
        self.owner = owner
        self.ready: asyncio.Future[bool] = loop.create_future()  # its first line came, or it exited
        self.exited: asyncio.Future[int] = loop.create_future()  # its exit status
        self.transport: asyncio.SubprocessTransport | None = None
        self.buffer = bytearray()
        self.raw = bytearray()  # what it wrote to descriptor 2 since its last newline
        self.stdout_closed = False
        self.pending: dict[str, tuple[Job, Settle]] = {}  # sent to it, not answered yet
        self.abandoned: dict[str, float] = {}  # ended here, maybe still running there: since when
        self.outgoing: list[bytes] = []  # lines not written yet
        self.retired_because: str | None = None  # takes no new jobs, stops once its last one ends
        self.killed = False  # stopped by the server, not dead by itself

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def run(self, job: Job, settle: Settle, line: bytes) -> None:
        self.pending[job.id] = (job, settle)
        self._send(line)

    def abandon(self, job_id: str) -> bool:
        """Cancel a job of this worker's that has ended here; False if it is not one."""
        if self.pending.pop(job_id, None) is None:
            return False
        self.abandoned[job_id] = time.monotonic()
        self._send(b'{"cancel": "%s"}\n' % job_id.encode())
        self._stop_if_idle()
        return True

    def stuck(self, after: float) -> int:
        """How many of the jobs that ended here still run in it, `after` seconds on."""
        limit = time.monotonic() - after + 0.001
        return sum(1 for since in self.abandoned.values() if since <= limit)

    def retire(self, why: str) -> None:
        self.retired_because = why
        self._stop_if_idle()

    def _stop_if_idle(self) -> None:
        if self.retired_because and not self.pending and self.transport is not None and not self.killed:
            self.killed = True
            self.transport.kill()  # what still runs in it had ended here already

    def fail_all(self, error: str) -> None:
        pending, self.pending = self.pending, {}
        for job, settle in pending.values():
            if not job.done:
                logs.note(job.id, f"job FAILED: {error}")
            settle(job, "FAILED", error)

    def _send(self, line: bytes) -> None:
        if not self.outgoing:  # lines sent in one turn of the event loop go in one write
            asyncio.get_running_loop().call_soon(self._write)
        self.outgoing.append(line)

    def _write(self) -> None:
        lines, self.outgoing = self.outgoing, []
        if self.transport is None or self.exited.done():
            return  # it has died, and its jobs have failed
        stdin = self.transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(b"".join(lines))

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        if fd == 2:
            self.raw += data
            if b"\n" in data:
                text, _, rest = self.raw.rpartition(b"\n")
                self.raw = bytearray(rest)
                logs.write(logs.format_lines(None, "raw", text.decode("utf-8", "replace")))
            return
        self.buffer += data
        if b"\n" not in data:
            return
        *lines, rest = self.buffer.split(b"\n")
        self.buffer = rest
        logged = [line[1:] + b"\n" for line in lines if line[:1] == LOG_MARK]
        if logged:
            logs.write(b"".join(logged))
            if len(logged) == len(lines):
                return
        for line in lines:
            if line[:1] == LOG_MARK:
                continue
            if not self.ready.done():
                self.ready.set_result(True)  # the first line says the handler imported
                continue
            head, _, payload = line.partition(SEPARATOR)
            try:
                message = json.loads(head.decode())
            except ValueError:  # not from the protocol: a bug; the other lines still count
                print(f"flashc_runtime: a line from the worker is not JSON: {head[:200]!r}", file=sys.stderr)
                continue
            self._received(message, bytes(payload))

    def _received(self, message: dict[str, Any], payload: bytes) -> None:
        job_id = str(message.get("id"))
        if "chunk" in message:
            entry = self.pending.get(job_id)
            if entry is not None:
                entry[0].stream.append(payload)
            return
        self.abandoned.pop(job_id, None)  # it has ended there too
        entry = self.pending.pop(job_id, None)
        if entry is not None:
            job, settle = entry
            if message.get("status") == "COMPLETED":
                settle(job, "COMPLETED", payload)
            else:
                settle(job, "FAILED", message.get("error", "the job failed"))
        self._stop_if_idle()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.stdout_closed = True
            self._check_ended()

    def process_exited(self) -> None:
        self.owner.exited(self)
        self._check_ended()
        # A process the worker forked may hold its output open: do not wait for that forever.
        asyncio.get_running_loop().call_later(_EXIT_GRACE, self._stop_waiting_for_output)

    def _stop_waiting_for_output(self) -> None:
        self.stdout_closed = True
        self._check_ended()

    def _check_ended(self) -> None:
        # Dead once it has exited and all it wrote has been read, in whichever order those come.
        assert self.transport is not None
        status = self.transport.get_returncode()
        if status is None or not self.stdout_closed or self.exited.done():
            return
        if self.raw:
            logs.write(logs.format_lines(None, "raw", self.raw.decode("utf-8", "replace")))
            self.raw.clear()
        if not self.ready.done():
            self.ready.set_result(False)
        self.exited.set_result(status)
        self.transport.close()
        self.owner.died(self, status)
