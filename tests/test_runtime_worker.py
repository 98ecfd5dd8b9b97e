"""The worker process on its own: jobs in as JSON lines, results out, driven through its pipes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flashc.cli import main

APP = """\
import asyncio
import os
import time

from flashc_runtime import CpuLiveServerless, remote

cpu = CpuLiveServerless(name="jobs", workersMax=16)


@remote(cpu)
def echo(x):
    return x


@remote(cpu)
def nap(seconds, label):
    time.sleep(seconds)
    return label


@remote(cpu)
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"


@remote(cpu)
def count(n):
    for i in range(n):
        yield i


@remote(cpu)
async def later(x):
    await asyncio.sleep(0.05)
    return x * 2


@remote(cpu)
async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@remote(cpu)
def loud(x):
    print("a line for the log")
    return x


@remote(cpu)
def not_json():
    return object()


@remote(cpu)
class Slowstart:
    def __init__(self):
        time.sleep(0.1)  # the reader hands reading off before this job is on the event loop

    async def wait(self):
        await asyncio.sleep(0.3)
        return "ran to the end"


@remote(cpu)
def hog_threads(seconds):
    import threading

    threading.stack_size(1 << 44)  # no new thread can be started while this job runs
    try:
        time.sleep(seconds)
    finally:
        threading.stack_size(0)
    return "done"


@remote(cpu)
def nest(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@remote(cpu)
class Counter:
    def __init__(self):
        self.calls = 0

    def bump(self):
        self.calls += 1
        return [self.calls, os.getpid()]
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("worker") / "app"
    project.mkdir()
    (project / "app.py").write_text(APP, encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(project), "--keep-build", "-q"])
    assert result.exit_code == 0, result.output
    return project / ".flash" / ".build"


class Worker:
    """A worker process with helpers to send jobs and read what it writes."""

    def __init__(self, root: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(root / "_flashc")}
        command = [sys.executable, "-m", "flashc_runtime.worker", "--root", str(root), "--resource", "jobs"]
        self.process = subprocess.Popen(
            command, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.buffer = b""
        self.logs: list[str] = []  # the log lines it sent, in order
        assert self.read(10) == {"ready": True}

    def send(self, *jobs: tuple[str, dict[str, Any]]) -> None:
        assert self.process.stdin is not None
        data = b"".join(b'{"id": "%s"}\x1f%s\n' % (i.encode(), json.dumps({"input": job}).encode()) for i, job in jobs)
        self.process.stdin.write(data)  # in one write: the worker reads them together
        self.process.stdin.flush()

    def read(self, timeout: float) -> dict[str, Any]:
        """The next message; log lines (0x1e, then the line) on the way are kept in `logs`."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
                assert ready, f"nothing from the worker within {timeout} s"
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, "the worker closed its output"
                self.buffer += chunk
            line, _, self.buffer = self.buffer.partition(b"\n")
            if not line.startswith(b"\x1e"):
                break
            self.logs.append(line[1:].decode())
        head, _, payload = line.partition(b"\x1f")  # a JSON header, then the output or item as JSON
        message: dict[str, Any] = json.loads(head)
        if "chunk" in message:
            message["chunk"] = json.loads(payload)
        elif message.get("status") == "COMPLETED":
            message["output"] = json.loads(payload)
        return message

    def results(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The next `count` final results (chunks skipped), in the order they came."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = self.read(timeout)
            if "status" in message:
                found.append(message)
        return found

    def close(self) -> tuple[int, str]:
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        status = self.process.wait(timeout=10)
        return status, self.process.stderr.read().decode()


@pytest.fixture
def worker(built: Path) -> Iterator[Worker]:
    running = Worker(built)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def test_a_slow_sync_job_does_not_hold_up_the_jobs_behind_it(worker: Worker) -> None:
    started = time.monotonic()
    worker.send(("slow", {"function": "nap", "args": [1.0, "slow"]}), ("fast", {"function": "echo", "args": [1]}))
    first = worker.results(1)[0]
    assert first == {"id": "fast", "status": "COMPLETED", "output": 1}
    assert time.monotonic() - started < 0.5
    assert worker.results(1)[0]["output"] == "slow"


def test_a_job_that_keeps_the_gil_does_not_hold_up_the_jobs_behind_it(worker: Worker) -> None:
    started = time.monotonic()
    worker.send(("spin", {"function": "spin", "args": [1.0]}), ("fast", {"function": "echo", "args": [2]}))
    assert worker.results(1)[0]["id"] == "fast"
    assert time.monotonic() - started < 0.5


def test_slow_jobs_sent_together_run_at_the_same_time(worker: Worker) -> None:
    started = time.monotonic()
    worker.send(*[(f"n{i}", {"function": "nap", "args": [0.5, i]}) for i in range(12)])
    done = worker.results(12)
    assert sorted(m["output"] for m in done) == list(range(12))
    assert time.monotonic() - started < 1.5  # one after the other would take 6 s


def test_many_short_jobs_are_all_answered(worker: Worker) -> None:
    worker.send(*[(f"e{i}", {"function": "echo", "args": [i]}) for i in range(500)])
    done = worker.results(500)
    assert sorted(m["output"] for m in done) == list(range(500))
    assert all(m["status"] == "COMPLETED" for m in done)


def test_generators_send_their_items_before_the_result(worker: Worker) -> None:
    worker.send(("g", {"function": "count", "args": [3]}), ("a", {"function": "ticks", "args": [2]}))
    seen: dict[str, list[Any]] = {"g": [], "a": []}
    finals = {}
    while len(finals) < 2:
        message = worker.read(10)
        if "chunk" in message:
            assert message["id"] not in finals
            seen[message["id"]].append(message["chunk"])
        else:
            finals[message["id"]] = message
    assert seen == {"g": [0, 1, 2], "a": [0, 1]}
    assert finals["g"]["output"] == [0, 1, 2] and finals["a"]["output"] == [0, 1]


def test_async_functions_run_on_the_event_loop(worker: Worker) -> None:
    worker.send(*[(f"l{i}", {"function": "later", "args": [i]}) for i in range(20)])
    started = time.monotonic()
    done = worker.results(20)
    assert sorted(m["output"] for m in done) == [2 * i for i in range(20)]
    assert time.monotonic() - started < 0.5  # concurrently, not 20 x 50 ms


def test_failures_and_bad_inputs_fail_only_their_job(worker: Worker) -> None:
    worker.send(
        ("unknown", {"function": "nope"}),
        ("object", {"function": "not_json"}),
        ("bad-args", {"function": "echo", "args": "x"}),
        ("fine", {"function": "echo", "args": [3]}),
    )
    done = {m["id"]: m for m in worker.results(4)}
    assert done["unknown"]["status"] == "FAILED" and "unknown function 'nope'" in done["unknown"]["error"]
    assert done["object"]["status"] == "FAILED" and done["object"]["error"].startswith("TypeError: ")
    assert done["bad-args"]["status"] == "FAILED" and "'args' must be a list" in done["bad-args"]["error"]
    assert done["fine"] == {"id": "fine", "status": "COMPLETED", "output": 3}


def test_a_class_is_created_once_per_worker_process(worker: Worker) -> None:
    worker.send(*[(f"c{i}", {"function": "Counter", "method": "bump"}) for i in range(5)])
    done = worker.results(5)
    assert sorted(m["output"][0] for m in done) == [1, 2, 3, 4, 5]
    assert {m["output"][1] for m in done} == {worker.process.pid}


def test_prints_become_log_lines_before_the_result_and_the_end_of_input_ends_the_worker_at_once(
    worker: Worker,
) -> None:
    from flashc_runtime.logs import parse_line

    worker.send(("loud", {"function": "loud", "args": [4]}), ("nap", {"function": "nap", "args": [30, "late"]}))
    assert worker.results(1)[0] == {"id": "loud", "status": "COMPLETED", "output": 4}
    assert [parse_line(line)[1:] for line in worker.logs] == [("loud", "stdout", "a line for the log")]  # type: ignore[index]
    started = time.monotonic()
    status, stderr = worker.close()  # the server has gone: nobody would read the nap's result
    assert status == 0 and time.monotonic() - started < 5
    assert stderr == ""


def test_a_cancel_stops_an_async_job(worker: Worker) -> None:
    assert worker.process.stdin is not None
    worker.send(("sleepy", {"function": "later", "args": [1]}))
    worker.process.stdin.write(b'{"cancel": "sleepy"}\n')
    worker.process.stdin.flush()
    assert worker.results(1)[0] == {"id": "sleepy", "status": "CANCELLED"}


def test_results_too_deep_to_encode_fail_their_job_and_the_worker_goes_on(worker: Worker) -> None:
    worker.send(("deep", {"function": "nest", "args": [5000]}), ("next", {"function": "echo", "args": [1]}))
    done = {m["id"]: m for m in worker.results(2)}
    assert done["deep"]["status"] == "FAILED" and done["deep"]["error"].startswith("RecursionError: ")
    assert done["next"]["output"] == 1
    worker.send(("after", {"function": "echo", "args": [2]}))
    assert worker.results(1)[0]["output"] == 2


def test_lines_longer_than_a_read_arrive_whole(worker: Worker) -> None:
    big = "x" * 3_000_000  # about 46 reads of 64 KiB
    worker.send(("big", {"function": "echo", "args": [big]}), ("small", {"function": "echo", "args": [1]}))
    done = {m["id"]: m for m in worker.results(2)}
    assert done["big"]["output"] == big and done["small"]["output"] == 1


def test_a_cancel_that_comes_before_the_job_is_on_the_event_loop_still_cancels_it(worker: Worker) -> None:
    assert worker.process.stdin is not None
    worker.send(("early", {"function": "Slowstart", "method": "wait"}))
    worker.process.stdin.write(b'{"cancel": "early"}\n')
    worker.process.stdin.flush()
    assert worker.results(1)[0] == {"id": "early", "status": "CANCELLED"}


def test_when_no_thread_can_be_started_the_reader_goes_on_after_its_job(worker: Worker) -> None:
    worker.send(("hog", {"function": "hog_threads", "args": [0.5]}), ("next", {"function": "echo", "args": [1]}))
    done = worker.results(2)
    assert [m["id"] for m in done] == ["hog", "next"]  # in order: nobody else could read
    worker.send(("after", {"function": "nap", "args": [0.3, "a"]}), ("fast", {"function": "echo", "args": [2]}))
    assert worker.results(1)[0]["id"] == "fast"  # threads can be started again: hand-offs work
