"""The local deploy target: real endpoint processes on 127.0.0.1, started, reused, stopped."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner
from wheelhouse import make_wheel

from flashc.cli import main
from flashc.deploy import LocalTarget, alive, archive_sha256
from flashc.errors import ProjectError, UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "routes"
    shutil.copytree(FIXTURES / "routes", root, ignore=shutil.ignore_patterns(".flash"))
    yield root
    CliRunner().invoke(main, ["undeploy", str(root)])  # never leave a process behind


def cli(*args: str) -> tuple[int, str]:
    """The exit code and what was printed (stdout and stderr), but deploy's progress (`  ... step`)."""
    result = CliRunner().invoke(main, list(args))
    lines = result.output.splitlines(keepends=True)
    return result.exit_code, "".join(line for line in lines if not line.startswith("  ... "))


def state(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / ".flash" / "deployment.json").read_text())
    return data


def running_commands() -> list[str]:
    """Every process's full command line (`-ww`: ps cuts them at the terminal width otherwise)."""
    import subprocess

    return subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()


def pids(root: Path) -> dict[str, int]:
    endpoints = state(root)["endpoints"]
    assert isinstance(endpoints, dict)
    return {name: e["pid"] for name, e in endpoints.items()}


def one_file_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Path:
    """A project of one module, `<name>_app.py`, with the wheel cache kept in `tmp_path`."""
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / name
    root.mkdir()
    (root / f"{name}_app.py").write_text(source)
    return root


def endpoint(root: Path, resource: str) -> tuple[str, dict[str, str]]:
    """A deployed resource's URL and the headers that authorize a request to it."""
    deployment = state(root)
    url: str = deployment["endpoints"][resource]["url"]  # type: ignore[index]
    return url, {"Authorization": f"Bearer {deployment['key']}"}


def test_deploy_serves_routes_with_the_deployment_key(project: Path) -> None:
    code, output = cli("deploy", str(project))
    assert code == 0, output
    deployment = state(project)
    assert (project / ".flash" / "deployment.json").stat().st_mode & 0o777 == 0o600
    assert set(deployment["endpoints"]) == {"admin", "api-service"}  # type: ignore[arg-type]
    url = deployment["endpoints"]["api-service"]["url"]  # type: ignore[index]
    key = deployment["key"]
    answer = httpx.post(f"{url}/api/process", json={"x": 5, "y": 3}, headers={"Authorization": f"Bearer {key}"})
    assert answer.json() == {"result": 8}
    assert httpx.post(f"{url}/api/process", json={"x": 5, "y": 3}).status_code == 401
    code, output = cli("status", str(project))
    assert code == 0 and output.count(" healthy") == 2 and "unhealthy" not in output


def test_redeploy_keeps_unchanged_endpoints_and_undeploy_stops_all(project: Path) -> None:
    assert cli("deploy", str(project))[0] == 0
    first = pids(project)
    assert cli("deploy", str(project))[0] == 0
    assert pids(project) == first  # nothing changed: nothing restarted
    (project / "api.py").write_text((project / "api.py").read_text() + "\n# an edit\n")
    assert cli("deploy", str(project))[0] == 0
    changed = pids(project)
    assert all(changed[name] != first[name] for name in first)  # the shipped sources changed
    assert not any(alive(pid) for pid in first.values())
    code, output = cli("undeploy", str(project))
    assert code == 0 and output.startswith("stopped 2 endpoints")
    assert not any(alive(pid) for pid in changed.values())
    assert not (project / ".flash" / "deployment.json").exists()


def test_an_archive_for_a_python_this_machine_lacks_is_refused(project: Path) -> None:
    assert cli("build", str(project), "--python-version", "3.99", "-q")[0] == 0
    archive = project / ".flash" / "archive.tar.gz"
    code, output = cli("deploy", str(project), "--archive", str(archive))
    assert code == 2
    assert output.startswith("flashc: error: no CPython 3.99 on this machine: the archive is built for it")
    assert not (project / ".flash" / "deploy").exists() and not (project / ".flash" / "deployment.json").exists()


def test_status_and_logs_without_a_deployment_are_usage_errors(project: Path) -> None:
    code, output = cli("status", str(project))
    assert code == 2 and "nothing is deployed from this project" in output
    code, output = cli("logs", "admin", str(project))
    assert code == 2 and "no deployed resource 'admin'" in output


# Bad archives: each is refused with a message naming it and a hint, before any process is
# touched, and leaves nothing behind: not in a running deployment, not in a project without one.


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The routes fixture built and deployed once: the deployment every bad archive must leave alone."""
    base = tmp_path_factory.mktemp("deployed")
    root = base / "routes"
    shutil.copytree(FIXTURES / "routes", root, ignore=shutil.ignore_patterns(".flash"))
    try:
        with pytest.MonkeyPatch.context() as env:
            own_cache(base / "cache", env)
            code, output = cli("deploy", str(root))
        assert code == 0, output
        yield root
    finally:
        cli("undeploy", str(root))


def derive(good: Path, bad: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy the archive `good` to `bad`, each file's bytes replaced by `change(name, data)`, or left out on None."""
    with tarfile.open(good) as source, tarfile.open(bad, "w:gz") as target:
        for member in source.getmembers():
            extracted = source.extractfile(member) if member.isfile() else None
            data = change(member.name, extracted.read()) if extracted else b""
            if data is not None:
                member.size = len(data)
                target.addfile(member, io.BytesIO(data) if extracted else None)


def edit_manifest(edit: Callable[[dict[str, Any]], object]) -> Callable[[Path, Path], None]:
    def make(good: Path, bad: Path) -> None:
        def change(name: str, data: bytes) -> bytes:
            if name != "flash_manifest.json":
                return data
            manifest = json.loads(data)
            edit(manifest)
            return json.dumps(manifest).encode()

        derive(good, bad, change)

    return make


def with_escaping_member(good: Path, bad: Path) -> None:
    with tarfile.open(good) as source, tarfile.open(bad, "w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member))
        evil = tarfile.TarInfo("../evil.py")
        evil.size = 4
        target.addfile(evil, io.BytesIO(b"boom"))


REBUILD = "rebuild the archive with `flashc build`"
BAD_ARCHIVES: dict[str, tuple[Callable[[Path, Path], object], int, str, str]] = {
    "truncated": (
        lambda good, bad: bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
        1,
        "cannot unpack '{archive}': the file is damaged or cut short "
        "(Compressed file ended before the end-of-stream marker was reached)",
        REBUILD,
    ),
    "not_gzip": (
        lambda good, bad: bad.write_bytes(b"#!/bin/sh\necho this is no archive\n"),
        1,
        "cannot unpack '{archive}': the file is not a .tar.gz archive",
        REBUILD,
    ),
    "gzip_but_not_tar": (
        lambda good, bad: bad.write_bytes(gzip.compress(b"just text, no tar headers\n" * 40)),
        1,
        "cannot unpack '{archive}': the file is damaged or cut short",
        REBUILD,
    ),
    "empty": (lambda good, bad: bad.write_bytes(b""), 1, "cannot unpack '{archive}': the file is empty", REBUILD),
    "no_manifest": (
        lambda good, bad: derive(good, bad, lambda name, data: None if name == "flash_manifest.json" else data),
        1,
        "archive '{archive}' has no flash_manifest.json: flashc did not build it",
        REBUILD,
    ),
    "manifest_not_json": (
        lambda good, bad: derive(good, bad, lambda name, data: b"{not json" if name == "flash_manifest.json" else data),
        1,
        "the manifest of archive '{archive}' is not JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        REBUILD,
    ),
    "schema_version_2": (
        edit_manifest(lambda manifest: manifest.update(schema_version=2)),
        1,
        "the manifest of archive '{archive}' has schema_version 2, but this runtime reads 1: "
        "rebuild with a matching flashc",
        REBUILD,
    ),
    "manifest_fails_schema": (
        edit_manifest(lambda manifest: manifest.pop("resources")),
        1,
        "the manifest of archive '{archive}' is not valid: manifest: missing key 'resources'",
        REBUILD,
    ),
    "unknown_function": (
        edit_manifest(lambda manifest: manifest["functions"].pop("api:admin_health")),
        1,
        "the manifest of archive '{archive}' is not valid: resources name unknown functions: api:admin_health",
        REBUILD,
    ),
    "no_runtime": (
        lambda good, bad: derive(good, bad, lambda name, data: None if name.startswith("_flashc/") else data),
        1,
        "archive '{archive}' is incomplete: it has no _flashc/flashc_runtime/server.py, "
        "_flashc/flashc_handlers/handler_admin.py, _flashc/flashc_handlers/handler_api_service.py",
        REBUILD,
    ),
    "other_python": (
        edit_manifest(lambda manifest: manifest["target"].update(python_version="3.99")),
        2,
        "no CPython 3.99 on this machine: the archive is built for it, and local endpoints run the worker's Python",
        "install it (`uv python install 3.99`, pyenv, or the system's python3.99 package), or build for a Python "
        "this machine has: flashc build --python-version <version>",
    ),
    "escaping_member": (
        with_escaping_member,
        1,
        "refusing to unpack '{archive}': '../evil.py' points outside the target",
        REBUILD,
    ),
}


def snapshot(root: Path) -> tuple[bytes, list[str]]:
    """What a failed deploy must not change: the deployment file and every folder under .flash/deploy."""
    unpacked = sorted(p.name for p in (root / ".flash" / "deploy").iterdir())
    return (root / ".flash" / "deployment.json").read_bytes(), unpacked


def serves(root: Path) -> bool:
    """Whether every endpoint of the deployment answers, from the process it was started as."""
    answers = []
    for name in ("admin", "api-service"):
        url, headers = endpoint(root, name)
        answers.append(httpx.get(f"{url}/api/health", headers=headers).json() == {"status": "ok"})
    return all(answers) and all(alive(pid) for pid in pids(root).values())


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_refused_and_changes_nothing(deployed: Path, tmp_path: Path, case: str) -> None:
    make, exit_code, message, hint = BAD_ARCHIVES[case]
    archive = tmp_path / f"{case}.tar.gz"
    make(deployed / ".flash" / "archive.tar.gz", archive)
    expected = f"flashc: error: {message.format(archive=archive)}\n  = hint: {hint}\n"
    before = snapshot(deployed)
    assert cli("deploy", str(deployed), "--archive", str(archive)) == (exit_code, expected)
    assert snapshot(deployed) == before
    assert serves(deployed)
    fresh = tmp_path / "fresh"  # a project with nothing deployed yet
    fresh.mkdir()
    assert cli("deploy", str(fresh), "--archive", str(archive)) == (exit_code, expected)
    assert not (fresh / ".flash" / "deploy").exists() and not (fresh / ".flash" / "deployment.json").exists()


def test_a_folder_an_earlier_failure_left_is_checked_again_and_removed(tmp_path: Path) -> None:
    from flashc_runtime.unpack import unpack

    archive = tmp_path / "v2.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b'{"schema_version": 2}'
        info = tarfile.TarInfo("flash_manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    left = tmp_path / "project" / ".flash" / "deploy" / archive_sha256(archive)[:16]
    unpack(archive, left)  # as a deploy used to leave it behind
    code, output = cli("deploy", str(tmp_path / "project"), "--archive", str(archive))
    assert code == 1 and "has schema_version 2, but this runtime reads 1" in output
    assert not left.parent.exists()


def test_the_archive_must_be_a_readable_file(tmp_path: Path) -> None:
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(b"some bytes")
    assert archive_sha256(archive) == hashlib.sha256(b"some bytes").hexdigest()
    for path, message, hint in [
        (tmp_path, f"archive '{tmp_path}' is a folder, not a file", "pass the .tar.gz file `flashc build` wrote"),
        (tmp_path / "missing", f"archive '{tmp_path / 'missing'}' does not exist", "build one with `flashc build`"),
    ]:
        with pytest.raises(UsageError) as refused:
            archive_sha256(path)
        assert (refused.value.message, refused.value.hint) == (message, hint)
    # The deploy target itself refuses a folder too, whoever calls it.
    folder = tmp_path / "folder.tar.gz"
    folder.mkdir()
    with pytest.raises(ProjectError) as refused:
        LocalTarget().deploy(tmp_path / "project", folder, "0" * 64)
    assert refused.value.message == f"cannot unpack '{folder}': Is a directory"
    assert not (tmp_path / "project" / ".flash" / "deploy").exists()
    # From the command line: a usage error naming the folder, no traceback.
    code, output = cli("deploy", str(tmp_path / "project"), "--archive", str(folder))
    assert code == 2 and str(folder) in output and "Traceback" not in output and "internal error" not in output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_archive_is_a_usage_error(tmp_path: Path) -> None:
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(b"secret")
    archive.chmod(0)
    with pytest.raises(UsageError) as refused:
        archive_sha256(archive)
    assert refused.value.message == f"cannot read archive '{archive}': Permission denied"


CALLS_APP = """
from flashc_runtime import CpuLiveServerless, LiveServerless, remote

cpu = CpuLiveServerless(name="cpu")
gpu = LiveServerless(name="gpu")


@remote(cpu)
def double(x):
    return 2 * x


@remote(gpu)
async def quad(x):
    # another resource's function: this call goes to the cpu endpoint
    return await double(await double(x))


@remote(cpu)
def fails():
    raise KeyError("nope")
"""


def test_calling_remote_functions_from_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import importlib

    from flashc_runtime import RemoteCallError

    root = one_file_project(tmp_path, monkeypatch, "calls", CALLS_APP)
    monkeypatch.syspath_prepend(str(root))
    app = importlib.import_module("calls_app")
    try:
        with pytest.raises(RemoteCallError, match=r"is not deployed: no \.flash/deployment\.json above"):
            asyncio.run(app.double(3))
        assert cli("deploy", str(root))[0] == 0
        assert asyncio.run(app.double(3)) == 6
        assert asyncio.run(app.quad(1)) == 4  # local -> gpu endpoint -> cpu endpoint, twice
        with pytest.raises(RemoteCallError) as failure:
            asyncio.run(app.fails())
        assert "the job ended FAILED: KeyError: 'nope'" in str(failure.value)
        assert "Traceback (most recent call last)" in str(failure.value)
    finally:
        cli("undeploy", str(root))
        sys.modules.pop("calls_app", None)


SLOW_APP = """
import time

from flashc_runtime import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="slow"))
def nap(seconds):
    time.sleep(seconds)
    return "rested"
"""


def test_a_worker_killed_mid_job_fails_the_job_and_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import time

    root = one_file_project(tmp_path, monkeypatch, "slow", SLOW_APP)
    try:
        assert cli("deploy", str(root))[0] == 0
        url, headers = endpoint(root, "slow")
        job = httpx.post(f"{url}/run", json={"input": {"args": [30]}}, headers=headers).json()
        for _ in range(100):  # wait until the worker process runs it
            if httpx.get(f"{url}/status/{job['id']}", headers=headers).json()["status"] == "IN_PROGRESS":
                break
            time.sleep(0.05)
        worker = httpx.get(f"{url}/health", headers=headers).json()["workers"]["pid"]
        os.kill(worker, signal.SIGKILL)
        for _ in range(100):
            status = httpx.get(f"{url}/status/{job['id']}", headers=headers).json()
            if status["status"] != "IN_PROGRESS":
                break
            time.sleep(0.05)
        assert status["status"] == "FAILED"
        assert "the worker process died (exit status -9) while running this job" in status["error"]
        again = httpx.post(f"{url}/runsync", json={"input": {"args": [0]}}, headers=headers, timeout=30).json()
        assert again["status"] == "COMPLETED" and again["output"] == "rested"
        assert httpx.get(f"{url}/health", headers=headers).json()["workers"]["pid"] != worker
    finally:
        cli("undeploy", str(root))


STREAM_APP = """
from flashc_runtime import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="stream"))
def tokens(text):
    for word in text.split():
        yield word.upper()
"""


def test_a_deployed_generator_streams_through_the_worker_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    root = one_file_project(tmp_path, monkeypatch, "stream", STREAM_APP)
    try:
        assert cli("deploy", str(root))[0] == 0
        url, headers = endpoint(root, "stream")
        job = httpx.post(f"{url}/run", json={"input": {"args": ["hello big world"]}}, headers=headers).json()
        seen: list[str] = []
        for _ in range(200):
            part = httpx.get(f"{url}/stream/{job['id']}", headers=headers).json()
            seen += [chunk["output"] for chunk in part["stream"]]
            if part["status"] == "COMPLETED":
                break
            time.sleep(0.02)
        assert seen == ["HELLO", "BIG", "WORLD"]
    finally:
        cli("undeploy", str(root))


PICKLE_APP = """
import fractions

from flashc_runtime import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="objects"))
def halves(values):
    return {fractions.Fraction(v, 2) for v in values}
"""


def test_python_objects_travel_as_signed_pickles_and_unsigned_ones_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import fractions
    import importlib

    from flashc_runtime.signing import dumps, sign

    root = one_file_project(tmp_path, monkeypatch, "objects", PICKLE_APP)
    monkeypatch.syspath_prepend(str(root))
    app = importlib.import_module("objects_app")
    try:
        assert cli("deploy", str(root))[0] == 0
        # A set of Fractions is no JSON: it travels pickled, signed with the deployment's secret.
        assert asyncio.run(app.halves((1, 2, 3))) == {fractions.Fraction(1, 2), 1, fractions.Fraction(3, 2)}
        deployment = state(root)
        assert "secret" in deployment
        url = deployment["endpoints"]["objects"]["url"]  # type: ignore[index]
        headers = {"Authorization": f"Bearer {deployment['key']}"}
        pickled = dumps(((1,), {}))
        from flashc_runtime.signing import sign_call

        good = {"function": "halves", **sign_call(str(deployment["secret"]), "halves", None, pickled)}
        for job_input, reason in [
            ({"pickled": pickled}, "a pickled input needs 'pickled' and 'signature' strings"),
            ({"pickled": pickled, "signature": sign("wrong secret", pickled)}, "unsigned or old pickles are refused"),
            ({**good, "signature": sign("wrong secret", pickled)}, "unsigned pickles are refused"),
            ({**good, "function": "other"}, "unsigned pickles are refused"),  # signed for another function
        ]:
            refused = httpx.post(f"{url}/runsync", json={"input": job_input}, headers=headers)
            assert refused.status_code == 400 and reason in refused.json()["error"]
        # The same signed call again: a replay, refused.
        assert httpx.post(f"{url}/runsync", json={"input": good}, headers=headers).status_code == 200
        again = httpx.post(f"{url}/runsync", json={"input": good}, headers=headers)
        assert again.status_code == 400 and "refused as a replay" in again.json()["error"]
    finally:
        cli("undeploy", str(root))
        sys.modules.pop("objects_app", None)


def test_an_endpoint_that_cannot_start_leaves_nothing_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "broken"
    root.mkdir()
    (root / "a_ok.py").write_text(
        "from flashc_runtime import CpuLiveLoadBalancer, remote\n\n"
        '@remote(CpuLiveLoadBalancer(name="a-ok"), method="GET", path="/x")\ndef x():\n    return 1\n'
    )
    (root / "b_bad.py").write_text(
        'raise RuntimeError("cannot start for the test")\nfrom flashc_runtime import CpuLiveLoadBalancer, remote\n\n'
        '@remote(CpuLiveLoadBalancer(name="b-bad"), method="GET", path="/y")\ndef y():\n    return 2\n'
    )
    code, output = cli("deploy", str(root))
    assert code == 1
    assert "the endpoint process exited with status 1 while starting" in output
    assert "RuntimeError: cannot start for the test" in output
    assert not (root / ".flash" / "deployment.json").exists() and not (root / ".flash" / "deploy").exists()
    assert not any(str(root) in line for line in running_commands())  # a-ok had started: it was stopped again


def test_a_redeploy_restarts_only_the_endpoints_whose_code_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "two"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "__init__.py").write_text("")
    (root / "shared" / "words.py").write_text('GREETING = "hello"\n')
    (root / "greeter.py").write_text(
        "from flashc_runtime import CpuLiveLoadBalancer, remote\n\n"
        '@remote(CpuLiveLoadBalancer(name="greeter"), method="GET", path="/greet")\n'
        "def greet():\n    from shared.words import GREETING\n\n    return GREETING\n"
    )
    (root / "counter.py").write_text(
        "from flashc_runtime import CpuLiveLoadBalancer, remote\n\n"
        '@remote(CpuLiveLoadBalancer(name="counter"), method="GET", path="/count")\ndef count():\n    return 1\n'
    )

    def answer(name: str, path: str) -> object:
        deployment = state(root)
        url = deployment["endpoints"][name]["url"]  # type: ignore[index]
        return httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {deployment['key']}"}).json()

    try:
        assert cli("deploy", str(root))[0] == 0
        first = pids(root)
        (root / "counter.py").write_text((root / "counter.py").read_text().replace("return 1", "return 2"))
        assert cli("deploy", str(root))[0] == 0
        second = pids(root)
        assert second["greeter"] == first["greeter"] and second["counter"] != first["counter"]
        assert answer("counter", "/count") == 2
        assert answer("greeter", "/greet") == "hello"  # still running from the archive it started with
        # A module imported inside the function body belongs to greeter alone.
        (root / "shared" / "words.py").write_text('GREETING = "hi"\n')
        assert cli("deploy", str(root))[0] == 0
        third = pids(root)
        assert third["counter"] == second["counter"] and third["greeter"] != second["greeter"]
        assert answer("greeter", "/greet") == "hi"
        (root / "counter.py").unlink()
        assert cli("deploy", str(root))[0] == 0
        assert pids(root) == {"greeter": third["greeter"]}
        assert not alive(third["counter"])
        # Kept: the archive greeter runs from and the newest; gone: the one only counter ran from.
        deployment = state(root)
        kept = {Path(deployment["endpoints"]["greeter"]["root"]), Path(str(deployment["unpacked"]))}  # type: ignore[index]
        assert set((root / ".flash" / "deploy").iterdir()) == kept and len(kept) == 2
    finally:
        cli("undeploy", str(root))


def test_a_queue_endpoint_runs_one_worker_and_refuses_to_deploy_one_that_cannot_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    root = one_file_project(tmp_path, monkeypatch, "slow", SLOW_APP)

    def workers() -> int:
        return sum("flashc_runtime.worker" in line and str(root) in line for line in running_commands())

    try:
        assert cli("deploy", str(root))[0] == 0
        assert workers() == 1  # started with the endpoint, before the first job
        url, headers = endpoint(root, "slow")

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                body = {"input": {"args": [0.05]}}
                answers = await asyncio.gather(
                    *(client.post(f"{url}/runsync", json=body, headers=headers) for _ in range(32))
                )
            return [a.status_code for a in answers]

        assert asyncio.run(burst()) == [200] * 32
        assert workers() == 1  # concurrent first jobs share the one worker
    finally:
        cli("undeploy", str(root))
    (root / "slow_app.py").write_text('raise RuntimeError("cannot start for the test")\n' + SLOW_APP)
    code, output = cli("deploy", str(root))
    assert code == 1
    assert "RuntimeError: cannot start for the test" in output
    assert "the worker process exited with status 1 while starting" in output
    assert not (root / ".flash" / "deployment.json").exists() and workers() == 0


HARD_APP = """
import asyncio
import os
import time
from pathlib import Path

from flashc_runtime import CpuLiveServerless, remote

jobs = CpuLiveServerless(name="jobs", workersMax=2, executionTimeoutMs=500)
forky = CpuLiveServerless(name="forky", workersMax=1)


@remote(jobs)
def echo(x):
    return x


@remote(jobs)
def nest(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@remote(jobs)
def nap(seconds):
    time.sleep(seconds)
    return "rested"


@remote(jobs)
async def then_write(seconds, path):
    await asyncio.sleep(seconds)
    Path(path).write_text("ran to the end")


@remote(forky)
def die_after(seconds):
    time.sleep(seconds)
    os._exit(9)


@remote(forky)
def forky_echo(x):
    return x


@remote(forky)
def fork_and_die():
    if os.fork() == 0:  # the child keeps the worker's pipes open for a while
        time.sleep(20)
        os._exit(0)
    os._exit(3)
"""


def test_jobs_that_break_the_rules_fail_alone_and_the_endpoint_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    root = one_file_project(tmp_path, monkeypatch, "hard", HARD_APP)
    try:
        assert cli("deploy", str(root))[0] == 0
        url, headers = endpoint(root, "jobs")

        def runsync(function: str, *args: object) -> dict[str, Any]:
            body = {"input": {"function": function, "args": list(args)}}
            answer: dict[str, Any] = httpx.post(f"{url}/runsync", json=body, headers=headers, timeout=30).json()
            return answer

        def worker_pid(base: str) -> int:
            pid: int = httpx.get(f"{base}/health", headers=headers).json()["workers"]["pid"]
            return pid

        # A body written over several lines reaches the worker whole.
        pretty = b'{\r\n  "input": {\n    "function": "echo",\n    "args": ["a\\nb"]\n  }\n}\n'
        answer = httpx.post(f"{url}/runsync", content=pretty, headers=headers).json()
        assert answer["output"] == "a\nb"
        # A result too deep to encode fails its job only.
        deep = runsync("nest", 5000)
        assert deep["status"] == "FAILED" and deep["error"].startswith("RecursionError: ")
        assert runsync("echo", 1)["output"] == 1
        # A body too deep to decode is refused.
        deep_body = b'{"input": {"args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
        assert httpx.post(f"{url}/runsync", content=deep_body, headers=headers).status_code == 400
        # An async job that times out is cancelled in the worker, as on Runpod.
        marker = tmp_path / "marker"
        first = worker_pid(url)
        assert runsync("then_write", 1.0, str(marker))["status"] == "TIMED_OUT"
        time.sleep(1.0)
        assert not marker.exists() and worker_pid(url) == first
        # Sync jobs cannot be stopped: once workersMax of them run on a second after their timeout,
        # the worker is replaced, and no other job fails for it, queued or running.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            naps = [pool.submit(runsync, "nap", 30) for _ in range(2)]
            time.sleep(0.1)
            echoes = [pool.submit(runsync, "echo", i) for i in range(6)]  # queued behind the naps
            assert [n.result()["status"] for n in naps] == ["TIMED_OUT", "TIMED_OUT"]
            assert [e.result().get("output") for e in echoes] == list(range(6))
            during = [runsync("echo", i) for i in range(30) if not time.sleep(0.05)]  # across the change
        assert [answer.get("output") for answer in during] == list(range(30))
        assert worker_pid(url) != first
        # A worker that dies while a process it forked holds its pipes is noticed all the same.
        forky, _ = endpoint(root, "forky")
        started = time.monotonic()
        died = httpx.post(f"{forky}/runsync", json={"input": {"function": "fork_and_die"}}, headers=headers).json()
        assert died["status"] == "FAILED" and "died (exit status 3)" in died["error"]
        assert time.monotonic() - started < 5
        # A job queued behind one that kills the worker runs on the new worker (workersMax 1, no timeout).
        crash = {"input": {"function": "die_after", "args": [0.3]}}
        first = httpx.post(f"{forky}/run", json=crash, headers=headers).json()["id"]
        queued = {"input": {"function": "forky_echo", "args": ["after"]}}
        second = httpx.post(f"{forky}/run", json=queued, headers=headers).json()["id"]
        for _ in range(100):
            status = httpx.get(f"{forky}/status/{second}", headers=headers).json()
            if status["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
                break
            time.sleep(0.05)
        assert status["status"] == "COMPLETED" and status["output"] == "after"
        assert httpx.get(f"{forky}/status/{first}", headers=headers).json()["status"] == "FAILED"
    finally:
        cli("undeploy", str(root))


def test_resources_with_conflicting_versions_each_import_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two resources pin versions of one distribution that cannot be installed together: each endpoint
    imports the version its own site folder holds."""
    house = tmp_path / "house"
    make_wheel(house, "mathlib", "1.0", files={"mathlib/__init__.py": b"VERSION = 'one'\n"})
    make_wheel(house, "mathlib", "2.0", files={"mathlib/__init__.py": b"VERSION = 'two'\n"})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    root = one_file_project(
        tmp_path,
        monkeypatch,
        "split",
        "from tetra_rp import CpuLiveServerless, remote\n\n\n"
        '@remote(CpuLiveServerless(name="old"), dependencies=["mathlib<2"])\n'
        "def old_version():\n    import mathlib\n\n    return mathlib.VERSION\n\n\n"
        '@remote(CpuLiveServerless(name="new"), dependencies=["mathlib>=2"])\n'
        "def new_version():\n    import mathlib\n\n    return mathlib.VERSION\n",
    )
    try:
        code, output = cli("deploy", str(root))
        assert code == 0, output
        for resource, function, expected in (("old", "old_version", "one"), ("new", "new_version", "two")):
            url, headers = endpoint(root, resource)
            answer = httpx.post(f"{url}/runsync", json={"input": {"function": function}}, headers=headers, timeout=30)
            assert answer.json()["output"] == expected, answer.text
    finally:
        cli("undeploy", str(root))
