"""Endpoint logs: what functions print and log, each line with its time and job, read with
`flashc logs` (also after undeploy, and followed); `flashc status` and `deploy` for scripts."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner, Result
from flashc_runtime.logs import LineStream, LogFile, current_job, format_lines, parse_line

from flashc.cli import main
from flashc.deploy import alive
from flashc.deploy.local import read_log

CHATTY = '''\
import asyncio
import logging
import sys
import threading
import time

from flashc_runtime import CpuLiveLoadBalancer, CpuLiveServerless, remote

print("chatty imported")

jobs = CpuLiveServerless(name="chatty", workersMax=8)
api = CpuLiveLoadBalancer(name="chatty-api")
log = logging.getLogger("chatty")
_arrived = {}
_met = threading.Condition()


def _arrive(batch):
    with _met:
        _arrived[batch] = _arrived.get(batch, 0) + 1
        _met.notify_all()


def _all_here(batch, count):
    return _arrived.get(batch, 0) >= count


def _meet(batch, count):
    """Wait (30 s at most) until `count` jobs of `batch` have arrived, so that they run at once."""
    _arrive(batch)
    with _met:
        return _met.wait_for(lambda: _all_here(batch, count), timeout=30)


async def _meet_async(batch, count):
    _arrive(batch)
    deadline = time.monotonic() + 30
    while not _all_here(batch, count) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return _all_here(batch, count)


@remote(jobs)
def talk(tag, batch, count):
    sys.stdout.write(f"{tag} begins")  # the line ends once the others have begun theirs
    met = _meet(batch, count)
    print(" and ends")
    log.info("%s logged", tag)
    print(f"{tag} to stderr", file=sys.stderr)
    return [tag, met]


@remote(jobs)
async def chat(tag, batch, count):
    print(f"{tag} async begins")
    met = await _meet_async(batch, count)
    log.warning("%s async logged", tag)
    await asyncio.to_thread(print, f"{tag} from a thread")
    return [tag, met]


@remote(jobs)
def fail(tag):
    print(f"{tag} about to fail")
    raise ValueError(f"{tag} failed on purpose")


@remote(api, method="POST", path="/say")
def say(word: str):
    print(f"route says {word}")
    return {"said": word}
'''


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def parsed(text: str) -> list[tuple[str, str, str]]:
    """Each log line's job, source and text."""
    lines = []
    for line in text.splitlines():
        fields = parse_line(line)
        assert fields is not None, f"not a log line: {line!r}"
        lines.append(fields[1:])
    return lines


class Chatty:
    """The CHATTY project deployed, with helpers to call it."""

    def __init__(self, root: Path, deployed: Result) -> None:
        self.root, self.deployed = root, deployed
        self.state = json.loads((root / ".flash" / "deployment.json").read_text())
        self.headers = {"Authorization": f"Bearer {self.state['key']}"}

    def url(self, resource: str) -> str:
        return str(self.state["endpoints"][resource]["url"])

    def jobs(self, *calls: tuple[str, list[Any]]) -> list[dict[str, Any]]:
        """Run the calls at once, each a job of its own, and return their answers in order."""

        async def run() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(timeout=120, headers=self.headers) as client:
                answers = await asyncio.gather(
                    *(
                        client.post(f"{self.url('chatty')}/runsync", json={"input": {"function": f, "args": a}})
                        for f, a in calls
                    )
                )
            return [a.json() for a in answers]

        return asyncio.run(run())

    def log(self, resource: str) -> list[tuple[str, str, str]]:
        result = invoke("logs", resource, str(self.root))
        assert result.exit_code == 0, result.output
        return parsed(result.stdout)


def deploy_chatty(root: Path) -> Result:
    root.mkdir()
    (root / "chatty.py").write_text(CHATTY)
    return invoke("deploy", str(root))


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chatty]:
    base = tmp_path_factory.mktemp("logs")
    root = base / "chatty"
    try:
        with pytest.MonkeyPatch.context() as env:
            own_cache(base / "cache", env)
            deployed = deploy_chatty(root)
        assert deployed.exit_code == 0, deployed.output
        yield Chatty(root, deployed)
    finally:
        invoke("undeploy", str(root))


# --- the lines ----------------------------------------------------------------------------------


def test_a_log_line_is_its_time_job_source_and_text() -> None:
    data = format_lines("5f0c3a1e-7b2d-4c1e-9a3f-0d6e2b7c8a91", "INFO", "app: two\n  lines", when=1780315200.5)
    assert data == (
        b"2026-06-01T12:00:00.500Z 5f0c3a1e-7b2d-4c1e-9a3f-0d6e2b7c8a91 INFO     app: two\n"
        b"2026-06-01T12:00:00.500Z 5f0c3a1e-7b2d-4c1e-9a3f-0d6e2b7c8a91 INFO       lines\n"
    )
    outside = format_lines(None, "stdout", "  50%\r 100%\r", when=1780315200.0).decode()
    assert outside == "2026-06-01T12:00:00.000Z " + "-" + " " * 36 + "stdout    100%\n"  # as a terminal shows it
    assert parse_line(outside.rstrip("\n")) == ("2026-06-01T12:00:00.000Z", "-", "stdout", " 100%")
    long = format_lines(None, "CRITICAL", "x" * 40_000).decode()
    assert parse_line(long.rstrip("\n"))[2:] == ("CRITICAL", "x" * 32_000 + "... (8000 more characters)")  # type: ignore[index]
    assert parse_line("Traceback (most recent call last):") is None


def test_lines_of_jobs_running_at_once_on_threads_tasks_and_to_thread_stay_apart() -> None:
    lines: list[bytes] = []
    out = LineStream("stdout", lambda: lines.append, 1)
    together = threading.Barrier(4)

    def sync_job(job: str) -> None:
        current_job.set(job)  # this thread's context, as the worker sets it for a sync job
        out.write(f"{job} begins")
        together.wait(10)  # every job has begun its line before any ends it
        out.write(" and ends\n")

    threads = [threading.Thread(target=contextvars.Context().run, args=(sync_job, f"t{i}")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    async def async_jobs() -> None:
        begun = asyncio.Event()
        count = 0

        async def job(name: str) -> None:
            nonlocal count
            current_job.set(name)  # the task's own context, as the worker sets it for an async job
            out.write(f"{name} begins")
            count += 1
            if count == 4:
                begun.set()
            await begun.wait()
            await asyncio.to_thread(out.write, " in a thread and ends\n")  # the thread copies the context
            out.write(f"{name} leaves half a line")

        await asyncio.gather(*(job(f"a{i}") for i in range(4)))

    asyncio.run(async_jobs())
    out.write("outside any job\n")
    for i in range(4):
        out.end(f"a{i}")  # the job has ended: what it left without a newline is written
    got = sorted(parsed(b"".join(lines).decode()))
    expected = [(f"t{i}", "stdout", f"t{i} begins and ends") for i in range(4)]
    expected += [(f"a{i}", "stdout", f"a{i} begins in a thread and ends") for i in range(4)]
    expected += [(f"a{i}", "stdout", f"a{i} leaves half a line") for i in range(4)]
    expected += [("-", "stdout", "outside any job")]
    assert got == sorted(expected)


def test_a_log_file_rotates_and_following_it_goes_on_across_the_rotation(tmp_path: Path) -> None:
    path = tmp_path / "ep.log"
    lines = [format_lines(None, "stdout", f"line {i}") for i in range(7)]  # of one length
    log = LogFile(path, limit=3 * len(lines[0]))  # three lines to a file
    for line in lines[:5]:
        log.write(line)
    assert path.with_name("ep.log.1").read_bytes() == b"".join(lines[:3])
    assert path.read_bytes() == b"".join(lines[3:5])
    assert b"".join(read_log(path)) == b"".join(lines[:5])  # the older file first
    followed = read_log(path, follow=True, poll=0.01)
    chunks: queue.Queue[bytes] = queue.Queue()

    def reader() -> None:
        for chunk in followed:
            chunks.put(chunk)

    threading.Thread(target=reader, daemon=True).start()

    def seen_until(end: bytes) -> bytes:
        got = b""
        while not got.endswith(end):
            got += chunks.get(timeout=10)
        return got

    assert seen_until(lines[4]) == b"".join(lines[:5])
    log.write(lines[5])
    log.write(lines[6])  # past the limit: the file rotates, and the follower finds the new one
    assert seen_until(lines[6]) == lines[5] + lines[6]
    assert path.with_name("ep.log.1").read_bytes() == b"".join(lines[3:6]) and path.read_bytes() == lines[6]


# --- a deployed project -------------------------------------------------------------------------


def test_deploy_says_each_step_on_a_plain_line(chatty: Chatty) -> None:
    progress = [line for line in chatty.deployed.stderr.splitlines() if line.startswith("  ... ")]
    assert "\r" not in chatty.deployed.stderr
    for step in (
        "building the archive",
        "unpacking the archive into .flash/deploy/",
        "preparing the endpoints' environments (CPython 3.12)",
        "starting endpoint chatty",
        "waiting for endpoint chatty to answer",
        "starting endpoint chatty-api",
        "waiting for endpoint chatty-api to answer",
    ):
        assert any(line.startswith(f"  ... {step}") for line in progress), (step, progress)
    assert "logs in" in chatty.deployed.stdout and "(`flashc logs NAME`)" in chatty.deployed.stdout


def test_jobs_running_at_once_keep_their_own_lines(chatty: Chatty) -> None:
    calls = [("talk", [f"T{i}", "together", 6]) for i in range(3)] + [
        ("chat", [f"A{i}", "together", 6]) for i in range(3)
    ]
    answers = chatty.jobs(*calls)
    assert all(a["status"] == "COMPLETED" and a["output"][1] is True for a in answers), answers  # they met
    job = {a["output"][0]: a["id"] for a in answers}
    lines = chatty.log("chatty")
    assert ("-", "stdout", "chatty imported") in lines  # at import, outside any job
    for i in range(3):
        t, a = f"T{i}", f"A{i}"
        assert (job[t], "stdout", f"{t} begins and ends") in lines  # half a line, ended after the others began
        assert (job[t], "INFO", f"chatty: {t} logged") in lines
        assert (job[t], "stderr", f"{t} to stderr") in lines
        assert (job[a], "stdout", f"{a} async begins") in lines
        assert (job[a], "WARNING", f"chatty: {a} async logged") in lines
        assert (job[a], "stdout", f"{a} from a thread") in lines  # asyncio.to_thread keeps the job
    for line_job, _, text in lines:  # and no line of one job is another's
        for tag, tag_job in job.items():
            if text.startswith(f"{tag} ") or text.startswith(f"chatty: {tag} "):
                assert line_job == tag_job, (tag, line_job, text)


def test_a_failed_job_is_logged_with_its_traceback(chatty: Chatty) -> None:
    (answer,) = chatty.jobs(("fail", ["F"]))
    assert answer["status"] == "FAILED"
    mine = [(source, text) for job, source, text in chatty.log("chatty") if job == answer["id"]]
    assert mine[0] == ("stdout", "F about to fail")
    assert mine[1] == ("flashc", "job FAILED: ValueError: F failed on purpose")
    assert ("flashc", "Traceback (most recent call last):") in mine
    assert any(source == "flashc" and "line" in text and "in fail" in text for source, text in mine)
    assert mine[-1] == ("flashc", "ValueError: F failed on purpose")


def test_a_routes_lines_carry_its_requests_own_id(chatty: Chatty) -> None:
    for word in ("one", "two"):
        answer = httpx.post(f"{chatty.url('chatty-api')}/say", json={"word": word}, headers=chatty.headers)
        assert answer.json() == {"said": word}
    said = {text: job for job, source, text in chatty.log("chatty-api") if source == "stdout"}
    assert said["chatty imported"] == "-"
    assert said["route says one"] != said["route says two"]
    assert all(len(said[f"route says {w}"]) == 36 for w in ("one", "two"))


def test_follow_prints_new_lines_until_ctrl_c(chatty: Chatty) -> None:
    command = [sys.executable, "-m", "flashc", "logs", "chatty", str(chatty.root), "--follow"]
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()

    def wait_for(text: str) -> tuple[str, str, str]:
        while True:
            fields = parse_line(lines.get(timeout=60).rstrip("\n"))
            if fields is not None and fields[3] == text:
                return fields[1:]

    try:
        wait_for("chatty imported")  # what was there already
        (answer,) = chatty.jobs(("talk", ["FOLLOWED", "alone", 1]))
        assert wait_for("FOLLOWED begins and ends") == (answer["id"], "stdout", "FOLLOWED begins and ends")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.stderr is not None
    assert follower.stderr.read() == ""  # no traceback, no "interrupted"


def test_status_exits_1_for_an_endpoint_down_and_logs_outlive_undeploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "chatty"
    root.mkdir()
    (root / "chatty.py").write_text(CHATTY)
    try:
        deployed = invoke("deploy", str(root), "--json")
        assert deployed.exit_code == 0, deployed.output
        first = json.loads(deployed.stdout)  # stdout is the JSON alone; progress went to stderr
        assert [(e["name"], e["kind"], e["health"], e["action"]) for e in first["endpoints"]] == [
            ("chatty", "queue", "healthy", "started"),
            ("chatty-api", "load_balanced", "healthy", "started"),
        ]
        assert first["stopped"] == [] and first["target"] == "local"
        pid = {e["name"]: e["pid"] for e in first["endpoints"]}
        assert all(e["url"].startswith("http://127.0.0.1:") for e in first["endpoints"])
        assert "key" not in deployed.stdout

        status = invoke("status", str(root), "--json")
        assert status.exit_code == 0, status.output
        listed = json.loads(status.stdout)["endpoints"]
        assert listed == [{k: v for k, v in e.items() if k != "action"} for e in first["endpoints"]]
        assert invoke("status", str(root)).exit_code == 0

        os.kill(pid["chatty-api"], signal.SIGSTOP)  # alive, but it answers nothing
        try:
            status = invoke("status", str(root), "--json")
            assert status.exit_code == 1
            health = {e["name"]: e["health"] for e in json.loads(status.stdout)["endpoints"]}
            assert health == {"chatty": "healthy", "chatty-api": "not answering"}
        finally:
            os.kill(pid["chatty-api"], signal.SIGCONT)

        os.killpg(pid["chatty-api"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(pid["chatty-api"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        status = invoke("status", str(root))
        assert status.exit_code == 1
        assert "chatty-api               stopped" in status.stdout
        assert "flashc: 1 endpoint not healthy: chatty-api (stopped)" in status.stderr

        again = invoke("deploy", str(root), "--json")  # starts what is down, leaves the rest
        assert again.exit_code == 0, again.output
        actions = {e["name"]: (e["action"], e["health"]) for e in json.loads(again.stdout)["endpoints"]}
        assert actions == {"chatty": ("unchanged", "healthy"), "chatty-api": ("restarted", "healthy")}
    finally:
        assert invoke("undeploy", str(root)).exit_code == 0
    kept = invoke("logs", "chatty", str(root))
    assert kept.exit_code == 0 and ("-", "stdout", "chatty imported") in parsed(kept.stdout)
    assert (root / ".flash" / "logs" / "chatty.log").is_file()
    unknown = invoke("logs", "nothing", str(root))
    assert unknown.exit_code == 2
    assert "resources deployed or with logs here: chatty, chatty-api" in unknown.stderr
    assert invoke("status", str(root)).exit_code == 2  # nothing deployed: a usage error, as before
