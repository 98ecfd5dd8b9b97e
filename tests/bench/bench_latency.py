"""Benchmark `/runsync` on a flashc endpoint against the `runpod` package's local test API server.

Both sides serve a trivial function that returns its argument, and both get the same load, in
one run, from a bare asyncio HTTP/1.1 client in this process:

| side   | what serves it                                          | request                            |
|--------|---------------------------------------------------------|------------------------------------|
| flashc | `flashc deploy` of a one-file project,                  | `POST {url}/runsync`,              |
|        | `CpuLiveServerless(name="bench", workersMax=32)`        | `{"input": {"args": [1]}}`,        |
|        | with `echo(x)`; URL and key from deployment.json        | `Authorization: Bearer <key>`      |
| runpod | `python handler.py --rp_serve_api`: FastAPI on uvicorn, | `POST /runsync`,                   |
|        | one worker, the handler called on its event loop;       | `{"input": {"x": 1}}`              |
|        | `runpod` in the version pip picks                       |                                    |

The load: 50 warm-up requests (not measured), then 2,000 requests from 32 concurrent workers on a
pool of 32 connections, each worker taking the next request until all are done. A request is an
error when it fails, answers other than 200, or (flashc) its status is not COMPLETED / (runpod)
it has no `output`. Targets: no flashc errors, flashc p50 <= 5 ms, flashc requests/s >= 2x the
baseline's. A missed target is reported, not fatal.

`runpod` is installed with `python3.11 -m venv` and pip into `<tempdir>/flashc-bench-runpod/venv`,
kept between runs; when it cannot be installed or its server does not come up, the reason is shown
and the comparison says n/a. The benchmark exits 1 only when the flashc side cannot run. Every
process it starts listens on 127.0.0.1 and is stopped at the end (`flashc undeploy`, SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REQUESTS = 2000
CONCURRENCY = 32
WARMUP = 50
LOAD_TIMEOUT_SECONDS = 120.0  # the warm-up and the measured load of one side
REQUEST_TIMEOUT_SECONDS = 30.0  # unanswered this long: an error, and its connection ends
DEPLOY_TIMEOUT_SECONDS = 300
INSTALL_TIMEOUT_SECONDS = 600
START_TIMEOUT_SECONDS = 60.0  # until the runpod server accepts connections
P50_TARGET_MS = 5.0
RATIO_TARGET = 2.0
BASELINE_PACKAGE = "runpod"
BASELINE_PYTHON = "python3.11"
BASELINE_VENV = Path(tempfile.gettempdir()) / "flashc-bench-runpod" / "venv"

FLASHC_APP = """\
from flashc_runtime import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="bench", workersMax=32))
def echo(x):
    return x
"""

RUNPOD_HANDLER = """\
import runpod


def handler(job):
    return job["input"]["x"]


runpod.serverless.start({"handler": handler})
"""


class BenchError(Exception):
    """The flashc side cannot run, so the benchmark has no result."""


class BaselineError(Exception):
    """The runpod side cannot run; the comparison is n/a."""


@dataclass
class Load:
    """What one side's measured load gave: per-request latencies and the failures."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: int = 0
    first_error: str = ""
    server_ms: list[tuple[int, int]] = field(default_factory=list)  # flashc: (delayTime, executionTime)

    @property
    def rps(self) -> float:
        return REQUESTS / self.seconds

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Check = Callable[[dict[str, Any], Load], str | None]  # a response body's error, or None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--flashc",
        type=Path,
        default=Path(sys.executable).parent / "flashc",
        help="the flashc executable to measure (default: next to this Python)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flashc-bench-latency-") as scratch:
        try:
            flashc = bench_flashc(Path(scratch), args.flashc)
        except BenchError as error:
            print(f"bench_latency: error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        baseline_note = ""
        try:
            baseline: Load | None
            baseline, baseline_note = bench_runpod(Path(scratch))
        except BaselineError as error:
            baseline, baseline_note = None, f"n/a, {error}"
            _progress(f"runpod: {error}")
    print(report(flashc, baseline, baseline_note))


def bench_flashc(scratch: Path, flashc: Path) -> Load:
    """Deploy the echo project with flashc, load its endpoint, always undeploy."""
    if not flashc.is_file():
        raise BenchError(f"flashc not found at {flashc}; install the project with `make install`")
    project = scratch / "flashc-project"
    project.mkdir()
    (project / "app.py").write_text(FLASHC_APP, encoding="utf-8")
    env = {**os.environ, "FLASHC_CACHE_DIR": str(scratch / "flashc-cache")}
    try:
        _run_flashc([str(flashc), "deploy", str(project)], env)
        deployment = json.loads((project / ".flash" / "deployment.json").read_text(encoding="utf-8"))
        url = deployment["endpoints"]["bench"]["url"] + "/runsync"
        headers = {"Authorization": f"Bearer {deployment['key']}"}
        _progress(f"flashc: loading {url}")
        return _measure("flashc", url, headers, {"input": {"args": [1]}}, _flashc_check)
    except (OSError, ValueError, KeyError) as error:
        raise BenchError(f"cannot read the endpoint from {project / '.flash' / 'deployment.json'}: {error!r}") from None
    finally:
        try:
            _run_flashc([str(flashc), "undeploy", str(project)], env)
        except BenchError as error:
            _progress(f"flashc undeploy failed, endpoints may still run: {error}")


def bench_runpod(scratch: Path) -> tuple[Load, str]:
    """Serve the echo handler with runpod's local test API server and load it; the load and a note."""
    python, version = _install_runpod()
    handler = scratch / "runpod-project" / "handler.py"
    handler.parent.mkdir()
    handler.write_text(RUNPOD_HANDLER, encoding="utf-8")
    port = _free_port()
    # Without RUNPOD_* variables the worker believes it is not on Runpod and sends no heartbeats.
    env = {name: value for name, value in os.environ.items() if not name.startswith("RUNPOD_")}
    env["UVICORN_LOG_LEVEL"] = "warning"
    log_path = handler.parent / "server.log"
    command = [str(python), str(handler), "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=handler.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, port, log_path)
        url = f"http://127.0.0.1:{port}/runsync"
        _progress(f"runpod {version}: loading {url}")
        try:
            load = _measure("runpod", url, {}, {"input": {"x": 1}}, _runpod_check)
        except BenchError as error:
            raise BaselineError(str(error)) from None
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return load, f"runpod {version}, `handler.py --rp_serve_api` (uvicorn, 1 worker)"


def report(flashc: Load, baseline: Load | None, baseline_note: str) -> str:
    """The results table, the targets table and notes."""
    sides = [("flashc", flashc)] + ([("runpod", baseline)] if baseline is not None else [])
    rows = [
        (
            name,
            f"{load.percentile_ms(0.5):.2f}",
            f"{load.percentile_ms(0.99):.2f}",
            f"{load.rps:,.0f}",
            f"{load.errors}",
        )
        for name, load in sides
    ]
    if baseline is None:
        rows.append(("runpod", "n/a", "n/a", "n/a", "n/a"))
    lines = [
        f"/runsync, {REQUESTS:,} requests at concurrency {CONCURRENCY} after {WARMUP} warm-up requests",
        _table(("side", "p50 ms", "p99 ms", "requests/s", "errors"), rows),
        "",
    ]
    p50 = flashc.percentile_ms(0.5)
    targets = [
        ("flashc errors", str(flashc.errors), "0", "PASS" if flashc.errors == 0 else "MISS"),
        ("flashc p50", f"{p50:.2f} ms", f"<= {P50_TARGET_MS:g} ms", "PASS" if p50 <= P50_TARGET_MS else "MISS"),
    ]
    if baseline is None:
        targets.append(("requests/s flashc / runpod", "n/a", f">= {RATIO_TARGET:g}", "n/a"))
    else:
        ratio = flashc.rps / baseline.rps
        result = "PASS" if ratio >= RATIO_TARGET else "MISS"
        targets.append(("requests/s flashc / runpod", f"{ratio:.2f}", f">= {RATIO_TARGET:g}", result))
    lines.append(_table(("target", "value", "target", "result"), targets))
    lines.append("")
    if flashc.server_ms:
        delay = statistics.median(d for d, _ in flashc.server_ms)
        execution = statistics.median(e for _, e in flashc.server_ms)
        lines.append(f"flashc server-reported medians: delayTime {delay:g} ms, executionTime {execution:g} ms")
    for name, load in sides:
        if load.first_error:
            lines.append(f"{name} first error: {load.first_error}")
    lines.append(f"baseline: {baseline_note}")
    lines.append(
        f"(one run; client: a bare asyncio HTTP/1.1 client in this process, {CONCURRENCY} connections; "
        f"{os.cpu_count()} CPUs shared by the client, the server and its worker)"
    )
    return "\n".join(lines)


# --- load -------------------------------------------------------------------------------------


def _measure(side: str, url: str, headers: dict[str, str], body: dict[str, Any], check: Check) -> Load:
    try:
        return asyncio.run(asyncio.wait_for(_load(url, headers, body, check), LOAD_TIMEOUT_SECONDS))
    except asyncio.TimeoutError:
        raise BenchError(f"{side}: the load did not finish within {LOAD_TIMEOUT_SECONDS:g} s") from None


async def _load(url: str, headers: dict[str, str], body: dict[str, Any], check: Check) -> Load:
    """Warm up, then send `REQUESTS` requests over `CONCURRENCY` keep-alive connections.

    A bare asyncio HTTP/1.1 client, one protocol per connection that sends the next request
    from the callback that read the last answer: httpx's pool, or even asyncio streams with a
    timeout per request, cost more CPU than the endpoint under test, and the client shares
    2 CPUs with it here.
    """
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    payload = json.dumps(body).encode()
    request = ("\r\n".join([*lines, f"Content-Length: {len(payload)}", "", ""])).encode() + payload
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    await _run_connections(host, port, _Run(request, check, WARMUP, Load()))
    load = Load()
    started = time.perf_counter()
    await _run_connections(host, port, _Run(request, check, REQUESTS, load))
    load.seconds = time.perf_counter() - started
    return load


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def _content_length(head: bytes) -> int:
    found = _CONTENT_LENGTH.search(head)
    if found is None:
        raise ValueError("no Content-Length")
    return int(found.group(1))


@dataclass
class _Run:
    """One load: the request, how to judge answers, how many are left to send, what came back."""

    request: bytes
    check: Check
    remaining: int
    load: Load

    def record(self, elapsed: float, error: str | None) -> None:
        if error is None:
            self.load.latencies.append(elapsed)
        else:
            self.load.errors += 1
            self.load.first_error = self.load.first_error or error


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive connection sending requests one after the other until none are left.

    Buffered: a plain protocol receives into a new 256 KiB bytes object per read, which can
    cost an mmap and an munmap each time; reads land in one shared scratch buffer instead.
    """

    scratch = memoryview(bytearray(64 * 1024))

    def __init__(self, run: _Run, done: asyncio.Future[None]) -> None:
        self.run, self.done = run, done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.started: float | None = None  # when the request in flight was sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def start(self) -> None:
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if self.run.remaining <= 0:
            self.started = None
            self.transport.close()
            return
        self.run.remaining -= 1
        self.buffer.clear()
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.buffer += self.scratch[:nbytes]
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        try:
            head = bytes(self.buffer[:end])
            status = int(head.split(b" ", 2)[1])
            length = _content_length(head)
            if len(self.buffer) < end + 4 + length:
                return
            elapsed = time.perf_counter() - (self.started or 0.0)
            data = bytes(self.buffer[end + 4 : end + 4 + length])
            error = (
                f"HTTP {status}: {data[:200]!r}" if status != 200 else self.run.check(json.loads(data), self.run.load)
            )
        except (ValueError, IndexError) as exc:
            elapsed, error = time.perf_counter() - (self.started or 0.0), f"{type(exc).__name__}: {exc}"
        self.run.record(elapsed, error)
        self._send()

    def timed_out(self) -> bool:
        return self.started is not None and time.perf_counter() - self.started > REQUEST_TIMEOUT_SECONDS

    def connection_lost(self, exc: Exception | None) -> None:
        if self.started is not None:  # a request was in flight
            self.run.record(0.0, f"connection lost: {exc or 'closed by the server'}")
            self.started = None
        if not self.done.done():
            self.done.set_result(None)


async def _run_connections(host: str, port: int, run: _Run) -> None:
    """Run the load on `CONCURRENCY` connections; a request unanswered for too long is an error
    and ends its connection, and the others send the rest."""
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(CONCURRENCY):
        done: asyncio.Future[None] = loop.create_future()
        try:
            _, connection = await loop.create_connection(lambda done=done: _Connection(run, done), host, port)
        except OSError as exc:
            run.record(0.0, f"cannot connect: {exc}")
            continue
        connections.append(connection)
    for connection in connections:  # all connected first: setting one up is not part of a request
        connection.start()
    while not all(c.done.done() for c in connections):
        await asyncio.wait([c.done for c in connections], timeout=1.0)
        for connection in connections:
            if connection.timed_out() and connection.transport is not None:
                connection.transport.abort()


def _flashc_check(response: dict[str, Any], load: Load) -> str | None:
    if response.get("status") != "COMPLETED" or response.get("output") != 1:
        return f"status {response.get('status')!r}, output {response.get('output')!r}: {str(response)[:200]}"
    if "delayTime" in response and "executionTime" in response:
        load.server_ms.append((response["delayTime"], response["executionTime"]))
    return None


def _runpod_check(response: dict[str, Any], load: Load) -> str | None:
    if "output" not in response:
        return f"no output: {str(response)[:200]}"
    return None


# --- processes --------------------------------------------------------------------------------


def _run_flashc(command: list[str], env: dict[str, str]) -> None:
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=DEPLOY_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(command)}` ran longer than {DEPLOY_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        stderr = result.stderr.rstrip() or "(empty)"
        raise BenchError(f"`{' '.join(command)}` exited with status {result.returncode}; its stderr:\n{stderr}")
    _progress(f"{' '.join(command[1:2])}: {time.perf_counter() - started:.2f} s")


def _install_runpod() -> tuple[Path, str]:
    """The baseline venv's Python and the installed runpod version; installs it unless it is there."""
    python = BASELINE_VENV / "bin" / "python"
    version = _runpod_version(python) if python.is_file() else None
    if version is None:
        system_python = shutil.which(BASELINE_PYTHON)
        if system_python is None:
            raise BaselineError(f"{BASELINE_PYTHON} not found on PATH; it runs the runpod baseline")
        shutil.rmtree(BASELINE_VENV, ignore_errors=True)
        _progress(f"installing {BASELINE_PACKAGE} into {BASELINE_VENV}")
        _run_install([system_python, "-m", "venv", str(BASELINE_VENV)])
        _run_install([str(python), "-m", "pip", "install", "--disable-pip-version-check", BASELINE_PACKAGE])
        version = _runpod_version(python)
        if version is None:
            raise BaselineError(f"pip installed {BASELINE_PACKAGE}, but {python} cannot import it")
    _progress(f"runpod {version} in {BASELINE_VENV}")
    return python, version


def _runpod_version(python: Path) -> str | None:
    code = "import importlib.metadata as m, runpod.serverless; print(m.version('runpod'))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return result.stdout.strip() if result.returncode == 0 else None


def _run_install(command: list[str]) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BaselineError(f"`{' '.join(command)}` timed out after {INSTALL_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        # pip's error is at the end, after its per-package lines.
        output = (result.stdout + result.stderr).splitlines()[-30:]
        raise BaselineError(
            f"`{' '.join(command)}` exited with status {result.returncode}; last 30 lines of its output:\n"
            + "\n".join(output)
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BaselineError(f"the runpod server exited with status {process.returncode}:\n{_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BaselineError(f"the runpod server did not listen on port {port} within {START_TIMEOUT_SECONDS:g} s")


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
    return "\n".join(lines) or "(no output)"


# --- output -----------------------------------------------------------------------------------


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(0, "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
