"""`flashc run`: deploy, serve the project's API app with /docs, follow every saved change, and
stop everything on Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from caches import own_cache
from wheelhouse import write_project

from flashc.devrun import app_target, changed_files

WORKER = """from runpod_flash import Endpoint


@Endpoint(name="adder", cpu="cpu3c-1-2")
async def add(a: int, b: int) -> dict:
    return {"sum": a + b, "version": 1}
"""

MAIN = """from fastapi import FastAPI

from workers import add

app = FastAPI(title="dev loop")


@app.get("/")
def home() -> dict:
    return {"docs": "/docs"}


@app.get("/add/{a}/{b}")
async def add_route(a: int, b: int) -> dict:
    return await add(a, b)
"""

WAIT = 120.0  # seconds: generous, the suite runs next to other load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """`flashc run` in a subprocess; its output read line by line on a thread."""

    def __init__(self, root: Path, port: int) -> None:
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flashc", "run", str(root), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ.copy(),
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str) -> str:
        """The next line holding `text` (the lines before it are kept in `seen`)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output:\n" + "\n".join(self.seen))

    def get(self, path: str) -> tuple[int, Any]:
        """The status and the JSON answer (the text, if it is no JSON)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as answer:
                body = answer.read()
                try:
                    return answer.status, json.loads(body or b"null")
                except ValueError:
                    return answer.status, body.decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def answer_becomes(self, path: str, expected: Any) -> None:
        deadline = time.monotonic() + WAIT
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.get(path)
                if last == (200, expected):
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"{path} answered {last!r}, not {expected!r}; output:\n" + "\n".join(self.seen))


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    own_cache(tmp_path / "cache", monkeypatch)
    root = write_project(tmp_path / "dev", {"workers.py": WORKER, "main.py": MAIN})
    run = Running(root, free_port())
    try:
        yield run
    finally:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            try:
                run.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()
        # Whatever happened above, no endpoint of this test outlives it.
        subprocess.run([sys.executable, "-m", "flashc", "undeploy", str(root)], capture_output=True, check=False)


def test_run_serves_the_app_follows_changes_and_leaves_nothing_behind(running: Running, tmp_path: Path) -> None:
    running.expect("watching for changes")
    assert any("http://127.0.0.1:" in line and "/docs" in line for line in running.seen)
    status, page = running.get("/docs")
    assert status == 200 and "swagger" in page.lower()
    # The app's route awaits the endpoint function: it runs on the local endpoint.
    running.answer_becomes("/add/2/3", {"sum": 5, "version": 1})
    running.expect("-> adder: add() COMPLETED in")  # each remote call the app made, with its time
    # A saved change in the worker: that endpoint is redeployed, the app reloaded.
    worker = tmp_path / "dev" / "workers.py"
    worker.write_text(WORKER.replace('"version": 1', '"version": 2'))
    assert "restarted adder" in running.expect("redeployed in")
    running.answer_becomes("/add/2/3", {"sum": 5, "version": 2})
    # A change that breaks the build: the diagnostics, and the last good deployment serves on.
    worker.write_text(WORKER.replace('"version": 1', '"version": 3').replace("async def", "async def def"))
    running.expect("the build failed: the last good deployment keeps serving")
    assert any("workers.py:" in line and "error" in line for line in running.seen)
    assert running.get("/add/2/3") == (200, {"sum": 5, "version": 2})
    # Ctrl-C: every process it started is gone, and the deployment with them.
    deployment = json.loads((tmp_path / "dev" / ".flash" / "deployment.json").read_text())
    pids = [e["pid"] for e in deployment["endpoints"].values()]
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=WAIT) == 0
    running.expect("stopped 1 endpoint and the API app")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", running.port)) != 0  # the app server is gone too


def test_the_app_is_main_py_or_what_the_config_names(tmp_path: Path) -> None:
    assert app_target(tmp_path, None) is None
    (tmp_path / "main.py").write_text("app = None\n")
    assert app_target(tmp_path, None) == ("main", "app")
    assert app_target(tmp_path, "api.server:application") == ("api.server", "application")


def test_changes_are_files_added_removed_or_rewritten() -> None:
    before = {"a.py": (1, 10, 1), "b.py": (1, 10, 2)}
    after = {"a.py": (2, 11, 1), "c.py": (1, 1, 3)}
    assert changed_files(before, after) == ["a.py", "b.py", "c.py"]
    assert changed_files(before, dict(before)) == []


MOTHERSHIP = """from runpod_flash import CpuLiveLoadBalancer

mothership = CpuLiveLoadBalancer(name="mothership")
"""


def test_with_a_mothership_the_app_runs_once_in_the_app_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mothership serves main.py's app on Runpod; under `flashc run` the app server is that app,
    so no endpoint runs it a second time."""
    own_cache(tmp_path / "cache", monkeypatch)
    root = write_project(tmp_path / "dev", {"workers.py": WORKER, "main.py": MAIN, "mothership.py": MOTHERSHIP})
    run = Running(root, free_port())
    try:
        run.expect("API app")
        run.answer_becomes("/add/2/3", {"sum": 5, "version": 1})
        deployment = json.loads((root / ".flash" / "deployment.json").read_text())
        assert sorted(deployment["endpoints"]) == ["adder"]
        assert not any("mothership" in line for line in run.seen if line.startswith("endpoint "))
    finally:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            run.process.wait(timeout=60)
        subprocess.run([sys.executable, "-m", "flashc", "undeploy", str(root)], capture_output=True, check=False)
    # `flashc deploy` still runs it: on Runpod, and locally, it is the project's front door.
    done = subprocess.run(
        [sys.executable, "-m", "flashc", "deploy", str(root), "--json"], capture_output=True, text=True, check=False
    )
    try:
        assert done.returncode == 0, done.stderr
        assert sorted(e["name"] for e in json.loads(done.stdout)["endpoints"]) == ["adder", "mothership"]
    finally:
        subprocess.run([sys.executable, "-m", "flashc", "undeploy", str(root)], capture_output=True, check=False)


def test_watching_a_large_project_takes_at_most_a_tenth_of_a_core() -> None:
    from flashc.devrun import poll_interval

    assert poll_interval(0.1, 0.001) == 0.1  # a small project: every 0.1 s
    # A 5,000-file project takes about 70 ms a look: looking every 0.1 s took 42% of a core.
    interval = poll_interval(0.1, 0.07)
    assert 0.07 / (interval + 0.07) <= 0.1 + 1e-9


def test_ctrl_c_twice_still_stops_everything(running: Running, tmp_path: Path) -> None:
    """An impatient second Ctrl-C (or a signal from both a wrapper and the terminal) while
    `flashc run` stops must not cut its clean-up short and leave endpoints running."""
    running.expect("watching for changes")
    deployment = json.loads((tmp_path / "dev" / ".flash" / "deployment.json").read_text())
    pids = [e["pid"] for e in deployment["endpoints"].values()]
    for _ in range(300):  # Ctrl-C held down: signals while it unwinds, then while it stops everything
        if running.process.poll() is not None:
            break
        running.process.send_signal(signal.SIGINT)
        time.sleep(0.002)
    assert running.process.wait(timeout=WAIT) == 0
    running.expect("stopped 1 endpoint and the API app")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
