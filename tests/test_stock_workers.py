"""Entry modules for Runpod's stock worker images: `handler_<resource name>.py` at the archive root.

The first tests need nothing but flashc: which files are written, the job handler an entry module
gives runpod-python, and where calls to other resources go (`FLASHC_ENDPOINTS`). The `network`
tests run fixtures/stock_workers as the images run it, in a scratch environment with the image's
runpod, fastapi, uvicorn and httpx from the package index: the archive unpacked into an app folder
beside stand-ins for the worker's own `handler.py` and `lb_handler.py` (which load the entry module
by path, as the research reads the worker), each queue-based resource through
`runpod.serverless.start` (`--test_input`, `--rp_serve_api`), the load-balanced one under uvicorn.
Every answer is checked against the same table as flashc's local target serving the same archive.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner
from flashc_runtime import CpuLiveLoadBalancer, CpuLiveServerless, Endpoint, RemoteCallError, remote
from flashc_runtime.client import endpoints, runpod_target

from flashc.cli import main
from flashc.entry import entry_path
from flashc.pipeline import generate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROJECT = FIXTURES / "stock_workers"
QUEUE_RESOURCES = ("counter", "greet.v2", "math-jobs")
LB_RESOURCE = "web api"
SECRET = "stock-workers-secret"


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# --- the files ------------------------------------------------------------------------------------


def test_each_resource_gets_an_entry_module_named_as_it_is(tmp_path: Path) -> None:
    source = "from tetra_rp import CpuLiveLoadBalancer, LiveServerless, remote\n"
    for i, name in enumerate(["My Model", "my-model", "my.model", "my/model", "back\\\\slash"]):
        source += f'\n\n@remote(LiveServerless(name="{name}"))\ndef f{i}(x):\n    return x\n'
    source += '\n\n@remote(CpuLiveLoadBalancer(name="api"), method="GET", path="/x")\ndef route():\n    return 1\n'
    files = {f.path: f.text for f in generate(write(tmp_path, {"app.py": source}), use_cache=False).files}
    entries = sorted(p for p in files if "/" not in p and p.endswith(".py"))
    # A name with a slash or a backslash cannot be a file name: flashc's own endpoints serve it, the images cannot.
    assert entries == ["handler_My Model.py", "handler_api.py", "handler_my-model.py", "handler_my.model.py"]
    assert 'queue_handler(__file__, "my-model")' in files["handler_my-model.py"]
    assert 'app = load_balanced_app(__file__, "api")' in files["handler_api.py"]
    for path in entries:
        compile(files[path], path, "exec")


def test_entry_path_refuses_what_no_file_can_be_called() -> None:
    assert entry_path("gpu worker") == "handler_gpu worker.py"
    assert entry_path("x" * 244) == f"handler_{'x' * 244}.py"  # 255 bytes
    assert [entry_path(n) for n in ("x" * 245, "a/b", "a\\b", "a\0b", "\ud800", "é" * 123)] == [None] * 6


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Let a test import an archive's modules, then forget them and its sys.path and environment."""
    path, modules, environ = list(sys.path), dict(sys.modules), dict(os.environ)
    yield
    sys.path[:] = path
    sys.modules.clear()
    sys.modules.update(modules)
    os.environ.clear()
    os.environ.update(environ)


def rendered_archive(root: Path, project: Path) -> Path:
    """The generated files and the project at `root`; the runtime comes from this checkout."""
    for f in generate(project, use_cache=False).files:
        write(root, {f.path: f.text})
    for source in project.rglob("*.py"):
        write(root, {source.relative_to(project).as_posix(): source.read_text()})
    return root


def load_entry(root: Path, resource: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"entry_{resource}", root / f"handler_{resource}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_queue_entry_answers_jobs_as_runpod_python_wants_them(tmp_path: Path, isolated_imports: None) -> None:
    root = rendered_archive(tmp_path / "app", PROJECT)
    # The image imported its own Flash SDK before loading the entry module: user code must not get it.
    sys.modules["runpod_flash"] = type(sys)("runpod_flash")
    handler = load_entry(root, "math-jobs").handler

    def run(job_input: Any) -> Any:
        return asyncio.run(handler({"id": "job-1", "input": job_input}))

    assert sys.modules["runpod_flash"].__name__ == "flashc_runtime"
    assert os.environ["FLASHC_RESOURCE"] == "math-jobs"
    assert run({"function": "add", "args": [1, 2]}) == 3
    assert run({"function": "double", "args": [4]}) == 8
    assert run({"function": "count", "args": [3]}) == [0, 1, 2]
    # A failure is the dict runpod-python fails a job with; the error reads as on the local target.
    failed = run({"function": "fail", "args": ["bad input"]})
    assert list(failed) == ["error"] and failed["error"].startswith("ValueError: bad input\nTraceback")
    assert 'jobs.py", line 26, in fail' in failed["error"]
    assert run({"function": "not_json"})["error"].startswith("TypeError: Object of type set is not JSON serializable")
    assert run({"function": "nope"})["error"].startswith("LookupError: unknown function 'nope'")


# --- where calls to other resources go ------------------------------------------------------------


def test_runpod_targets_from_endpoint_ids_or_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_ENDPOINT_BASE_URL", raising=False)
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_key")
    auth = {"Content-Type": "application/json", "Authorization": "Bearer rpa_key"}
    assert runpod_target("abc123", load_balanced=False) == ("https://api.runpod.ai/v2/abc123", auth)
    assert runpod_target("abc123", load_balanced=True) == ("https://abc123.api.runpod.ai", auth)
    assert runpod_target("http://127.0.0.1:8000/", load_balanced=True) == ("http://127.0.0.1:8000", auth)
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "https://api.example.test/v2/")
    assert runpod_target("abc123", load_balanced=False)[0] == "https://api.example.test/v2/abc123"
    assert runpod_target("abc123", load_balanced=True)[0] == "https://abc123.api.example.test"
    monkeypatch.delenv("RUNPOD_API_KEY")
    assert runpod_target("abc123", load_balanced=False)[1] == {"Content-Type": "application/json"}


def test_flashc_endpoints_must_be_an_object_of_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLASHC_ENDPOINTS", raising=False)
    assert endpoints() is None
    monkeypatch.setenv("FLASHC_ENDPOINTS", '{"gpu": "abc123"}')
    assert endpoints() == {"gpu": "abc123"}
    for bad in ('["abc123"]', '{"gpu": 7}', '{"gpu": ""}', "gpu=abc123"):
        monkeypatch.setenv("FLASHC_ENDPOINTS", bad)
        with pytest.raises(RemoteCallError) as caught:
            endpoints()
        assert str(caught.value) == (
            'FLASHC_ENDPOINTS must be a JSON object of resource names and endpoint ids, like {"gpu": "abc123"}; '
            f"it is {bad!r}"
        )


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request as a finished Runpod job (or a route) would, echoing what it got."""

    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(size)) if size else None
        self.seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization")})
        if self.path.endswith("/runsync"):
            job_input = body["input"]
            if "pickled" in job_input:  # as the endpoint does: the call's arguments, pickled back
                import os

                from flashc_runtime.signing import SECRET_ENV, dumps, loads_call, sign_result, signature_problem

                assert signature_problem(job_input) is None
                output: Any = sign_result(os.environ[SECRET_ENV], job_input["nonce"], dumps(loads_call(job_input)))
            else:
                output = job_input
            answer: Any = {"id": "job-1", "status": "COMPLETED", "output": output}
        else:
            answer = {"route": self.path, "body": body}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_calls_to_other_resources_go_where_flashc_endpoints_says(
    recorder: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = recorder
    monkeypatch.setenv("FLASHC_RESOURCE", "web api")
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_key")
    monkeypatch.delenv("FLASHC_PICKLE_SECRET", raising=False)
    monkeypatch.setenv("FLASHC_ENDPOINTS", json.dumps({"math-jobs": f"{url}/v2/ep1", "other api": url, "sdxl": url}))

    @remote(CpuLiveServerless(name="math-jobs"))
    def add(a: int, b: int) -> int:
        return a + b

    @remote(CpuLiveLoadBalancer(name="other api"), method="GET", path="/items/{item_id}")
    def get_item(item_id: str, detail: str = "short") -> dict[str, str]:
        return {}

    @remote(CpuLiveServerless(name="web api"))
    def own(x: int) -> int:
        return x + 1

    @remote(CpuLiveServerless(name="elsewhere"))
    def lost() -> None:
        pass

    client = Endpoint(name="sdxl", image="runpod/worker-sdxl:latest")

    async def calls() -> list[Any]:
        return [await add(1, 2), await get_item("a b", detail="long"), await own(1), (await client.runsync({})).output]

    assert asyncio.run(calls()) == [
        {"function": "add", "args": [1, 2], "kwargs": {}},
        {"route": "/items/a%20b?detail=long", "body": None},
        2,  # a function of the resource itself runs here
        {},
    ]
    assert [(s["method"], s["path"], s["auth"]) for s in seen] == [
        ("POST", "/v2/ep1/runsync", "Bearer rpa_key"),
        ("GET", "/items/a%20b?detail=long", "Bearer rpa_key"),
        ("POST", "/runsync", "Bearer rpa_key"),
    ]
    # With the deployment's secret, calls travel as signed pickles: any Python value goes and comes back.
    monkeypatch.setenv("FLASHC_PICKLE_SECRET", SECRET)
    assert asyncio.run(add({1}, b=frozenset())) == ([{1}], {"b": frozenset()})
    with pytest.raises(RemoteCallError) as caught:
        asyncio.run(lost())
    assert str(caught.value) == (
        "FLASHC_ENDPOINTS does not say where resource 'elsewhere' is served "
        "(it names 'math-jobs', 'other api', 'sdxl'): the deploy sets it on every endpoint"
    )


# --- as the images run it -------------------------------------------------------------------------

# Stand-ins for the worker image's own modules in /app, after runpod-workers/worker-flash as
# shared/research/flash-build.md §3.4 and §7.6 read it.
UNPACK_VOLUME = '''\
import os
import sys
import tarfile

APP = os.path.dirname(os.path.abspath(__file__))


def maybe_unpack():
    """Unpack the artifact into the app folder once, refusing members outside it; the app folder first on sys.path."""
    if not os.environ.get("RUNPOD_ENDPOINT_ID") or not os.environ.get("FLASH_RESOURCE_NAME"):
        return
    marker = os.path.join(APP, ".unpacked")
    if not os.path.exists(marker):
        with tarfile.open(os.environ["FLASH_BUILD_ARTIFACT_PATH"], mode="r:*") as tar:
            for member in tar.getmembers():
                if not os.path.realpath(os.path.join(APP, member.name)).startswith(APP + os.sep):
                    raise ValueError(f"unsafe member {member.name}")
            tar.extractall(APP)
        open(marker, "w").close()
    sys.path.insert(0, APP)


def load_generated(attribute):
    """The attribute of /app/handler_<FLASH_RESOURCE_NAME>.py, loaded by its path."""
    import importlib.util

    name = os.environ["FLASH_RESOURCE_NAME"]
    path = os.path.realpath(os.path.join(APP, f"handler_{name}.py"))
    if not path.startswith(APP + os.sep):
        raise ValueError(f"{path} is outside {APP}")
    spec = importlib.util.spec_from_file_location(f"handler_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attribute)
'''
HANDLER = """\
import inspect

import runpod
import runpod_flash  # noqa: F401  the image's own SDK, imported before the archive's code

from unpack_volume import load_generated, maybe_unpack

maybe_unpack()
generated = load_generated("handler")
assert callable(generated)


async def handler(event):
    result = generated(event)
    return await result if inspect.isawaitable(result) else result


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
"""
LB_HANDLER = """\
import os

import runpod_flash  # noqa: F401  the image's own SDK, imported before the archive's code
from fastapi import FastAPI

from unpack_volume import load_generated, maybe_unpack

maybe_unpack()
assert os.environ.get("FLASH_ENDPOINT_TYPE") == "lb"
app = load_generated("app")
if not isinstance(app, FastAPI):
    raise TypeError(f"app is a {type(app).__name__}, not a FastAPI application")
if not any(getattr(route, "path", None) == "/ping" for route in app.routes):

    @app.get("/ping")
    def ping():
        return {"status": "added by the image"}
"""
IMAGE_SDK = '"""Stand-in for the runpod-flash the images install: an archive\'s code must never get it."""\n'


def _index() -> str:
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(name):
            return os.environ[name].rstrip("/")
    return "https://pypi.org/simple"


@pytest.fixture(scope="session")
def image_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch environment with the worker images' runpod, fastapi, uvicorn and httpx (their versions),
    on the images' CPython where this machine has it; made once per session."""
    from flashc.deploy.interpreters import find_interpreter
    from flashc.errors import UsageError
    from flashc.profiles import profile_named

    index = _index()
    try:
        httpx.get(f"{index}/runpod/", timeout=10, follow_redirects=True).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.skip(
            f"the package index {index} is unreachable ({exc}): runpod, fastapi, uvicorn and httpx come from it"
        )
    image = profile_named("runpod-lb-cpu", {}, "load_balanced", "cpu")
    try:
        python = find_interpreter(image.python).path
    except UsageError:
        python = sys.executable  # the archive ships no compiled wheels: another CPython 3 runs it too
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv comes with flashc's dependencies"
    env = tmp_path_factory.mktemp("image-env") / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(env)], check=True, capture_output=True)
    pins = [f"{name}=={image.distributions[name].version}" for name in ("runpod", "fastapi", "uvicorn", "httpx")]
    installed = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python"), *pins],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    write(Path(site), {"runpod_flash/__init__.py": IMAGE_SDK})
    return env / "bin" / "python"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """fixtures/stock_workers and its archive, built once."""
    base = tmp_path_factory.mktemp("stock")
    root = base / "stock_workers"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(".flash", "__pycache__"))
    archive = base / "archive.tar.gz"
    with pytest.MonkeyPatch.context() as env:
        own_cache(base / "cache", env)
        code, output = cli("build", str(root), "-o", str(archive), "--quiet")
    assert code == 0, output
    yield root, archive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Workers:
    """Each resource of the archive in an app folder of its own, run by `image_python` as its image runs it."""

    def __init__(self, python: Path, archive: Path, base: Path) -> None:
        self.python, self.archive, self.base = python, archive, base
        self.ports = {name: free_port() for name in (*QUEUE_RESOURCES, LB_RESOURCE)}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.apps: dict[str, Path] = {}
        for name in self.ports:
            app = write(base / name, {"unpack_volume.py": UNPACK_VOLUME, "handler.py": HANDLER})
            write(app, {"lb_handler.py": LB_HANDLER})
            # Unpacked by the worker's own code before any process serves, as a cold start does.
            subprocess.run([str(python), "-c", "import unpack_volume; unpack_volume.maybe_unpack()"],
                           cwd=app, env=self.env(name), check=True)  # fmt: skip
            self.apps[name] = app

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self, name: str, **more: str) -> dict[str, str]:
        """An endpoint's variables as the deploy sets them; the other endpoints are the servers here."""
        variables = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "RUNPOD_ENDPOINT_ID": f"stock-{self.ports[name]}",
            "FLASH_RESOURCE_NAME": name,
            "FLASH_BUILD_ARTIFACT_PATH": str(self.archive),
            "FLASHC_ENDPOINTS": json.dumps({other: self.url(other) for other in self.ports}),
            "RUNPOD_API_KEY": "rpa_test",
            "FLASHC_PICKLE_SECRET": SECRET,
            "RUNPOD_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        if name == LB_RESOURCE:
            variables["FLASH_ENDPOINT_TYPE"] = "lb"
        return {**variables, **more}

    def start(self, name: str, *command: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Run `image_python` with `command` in `name`'s app folder; the process, and the file it writes to."""
        log = self.base / f"{len(self.processes)}-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(self.python), *command], cwd=self.apps[name], env=self.env(name, **env), stdout=out, stderr=out
            )
        self.processes.append(process)
        return process, log

    def serve(self) -> None:
        """Every queue-based resource on runpod-python's API server, the load-balanced one under uvicorn."""
        servers = {
            name: self.start(name, "handler.py", "--rp_serve_api", "--rp_api_host", "127.0.0.1",
                             "--rp_api_port", str(self.ports[name]))[0]
            for name in QUEUE_RESOURCES
        }  # fmt: skip
        servers[LB_RESOURCE] = self.start(LB_RESOURCE, "-m", "uvicorn", "lb_handler:app", "--host", "127.0.0.1",
                                          "--port", str(self.ports[LB_RESOURCE]))[0]  # fmt: skip
        for name, process in servers.items():
            self.wait_until_up(self.url(name), process)

    def wait_until_up(self, url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=2)
                return
            assert process.poll() is None, f"{url}: the server exited\n{self.logs()}"
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout} s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.base.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def stock(image_python: Path, built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    workers = Workers(image_python, built[1], tmp_path_factory.mktemp("apps"))
    try:
        workers.serve()
        yield workers
    finally:
        workers.stop()


@pytest.fixture(scope="module")
def local(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The same archive on flashc's local target: its deployment file."""
    root, archive = built
    try:
        with pytest.MonkeyPatch.context() as env:
            own_cache(tmp_path_factory.mktemp("cache"), env)
            code, output = cli("deploy", str(root), "--archive", str(archive))
        assert code == 0, output
        yield json.loads((root / ".flash" / "deployment.json").read_text())
    finally:
        cli("undeploy", str(root))


SERVES = "this endpoint serves: jobs:add, jobs:count, jobs:double, jobs:fail, jobs:not_json, jobs:sum_all, jobs:via_api"
UNEXPECTED = "got an unexpected keyword argument"
ROUTE_LIST = (
    "routes: DELETE /items/{item_id}, GET /boom, GET /items/new, GET /items/{item_id}, POST /sum, PUT /items/{item_id}"
)
# Jobs in order (a class keeps its instance), and how each ends: COMPLETED with its output, or
# FAILED with the first line of its error.
JOBS: list[tuple[str, Any, tuple[str, Any]]] = [
    ("math-jobs", {"function": "add", "args": [1, 2]}, ("COMPLETED", 3)),
    ("math-jobs", {"function": "jobs:add", "kwargs": {"a": "x", "b": "y"}}, ("COMPLETED", "xy")),
    ("math-jobs", {"function": "double", "args": [21]}, ("COMPLETED", 42)),
    ("math-jobs", {"function": "count", "args": [3]}, ("COMPLETED", [0, 1, 2])),
    # A queue function awaits a route of the load-balanced resource, which awaits a queue function.
    ("math-jobs", {"function": "via_api", "args": [[1, 2, 3]]}, ("COMPLETED", {"sum": 6})),
    ("math-jobs", {"function": "fail", "args": ["bad input"]}, ("FAILED", "ValueError: bad input")),
    ("math-jobs", {"function": "not_json"}, ("FAILED", "TypeError: Object of type set is not JSON serializable")),
    ("math-jobs", {"function": "nope"}, ("FAILED", f"LookupError: unknown function 'nope'; {SERVES}")),
    ("math-jobs", {"args": [1]}, ("FAILED", f"RequestError: input has no 'function'; {SERVES}")),
    # The SDK's form: the input is the keyword arguments. greet awaits add on math-jobs.
    ("greet.v2", {"name": "Ada"}, ("COMPLETED", "hello Ada! (5)")),
    ("greet.v2", {"name": "Ada", "punctuation": "?"}, ("COMPLETED", "hello Ada? (5)")),
    ("greet.v2", {"nme": "Ada"}, ("FAILED", f"TypeError: greet() {UNEXPECTED} 'nme'")),
    ("counter", {"method": "bump"}, ("COMPLETED", 1)),
    ("counter", {"function": "Counter", "method": "bump", "kwargs": {"by": 2}}, ("COMPLETED", 3)),
    ("counter", {"method": "peek"}, ("COMPLETED", 3)),
    ("counter", {}, ("FAILED", "RequestError: 'counter:Counter' is a class: say which 'method' to call (bump, peek)")),
]

ROUTES: list[tuple[str, str, dict[str, Any], tuple[int, Any]]] = [
    ("GET", "/ping", {}, (200, {"status": "healthy"})),
    ("GET", "/items/abc?detail=long", {}, (200, {"item_id": "abc", "detail": "long"})),
    ("GET", "/items/a%20b/", {}, (200, {"item_id": "a b", "detail": "short"})),
    ("GET", "/items/new", {}, (200, {"new": True})),
    ("GET", "/items/missing", {}, (404, {"detail": "no such item"})),
    ("PUT", "/items/abc", {"json": {"fields": {"colour": "red"}}}, (200, {"item_id": "abc", "colour": "red"})),
    ("DELETE", "/items/abc", {}, (200, {"deleted": "abc"})),
    ("POST", "/sum", {"json": {"numbers": [1, 2, 3]}}, (200, {"sum": 6})),  # awaits sum_all on math-jobs
    ("GET", "/nowhere", {}, (404, {"error": f"no route for GET /nowhere; {ROUTE_LIST}"})),
    ("POST", "/ping", {}, (404, {"error": f"no route for POST /ping; {ROUTE_LIST}"})),
    ("POST", "/items/abc", {}, (405, {"error": "method POST not allowed for /items/abc; allowed: DELETE, GET, PUT"})),
    ("POST", "/sum", {"content": b"not json"}, (400, {"error": "the body is not JSON (or is nested too deeply)"})),
    ("POST", "/sum", {"json": [1, 2]}, (400, {"error": "POST /sum: the JSON body must be an object, not list"})),
    ("POST", "/sum", {"json": {}}, (400, {"error": "POST /sum: missing a required argument: 'numbers'"})),
    ("GET", "/items/abc?colour=red", {}, (400, {"error": f"GET /items/{{item_id}}: {UNEXPECTED} 'colour'"})),
    ("GET", "/boom", {}, (500, "RuntimeError: boom")),
]


def outcome(answer: Mapping[str, Any]) -> tuple[str, Any]:
    if answer["status"] == "COMPLETED":
        return "COMPLETED", answer.get("output")
    return answer["status"], str(answer.get("error")).split("\n", 1)[0]


def route_outcome(response: httpx.Response) -> tuple[int, Any]:
    if response.status_code == 500:
        return 500, response.json()["error"].split("\n", 1)[0]
    return response.status_code, response.json()


def run_jobs(urls: Mapping[str, str], headers: Mapping[str, str]) -> list[tuple[str, Any]]:
    answers = []
    for resource, job_input, _ in JOBS:
        response = httpx.post(f"{urls[resource]}/runsync", json={"input": job_input}, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        answers.append(outcome(response.json()))
    return answers


def call_routes(url: str, headers: Mapping[str, str]) -> list[tuple[int, Any]]:
    with httpx.Client(base_url=url, headers=dict(headers), timeout=60) as client:
        return [route_outcome(client.request(method, path, **kwargs)) for method, path, kwargs, _ in ROUTES]


@pytest.mark.network
def test_jobs_end_alike_on_the_stock_image_and_the_local_target(stock: Workers, local: dict[str, Any]) -> None:
    expected = [end for _, _, end in JOBS]
    assert run_jobs({name: stock.url(name) for name in QUEUE_RESOURCES}, {}) == expected, stock.logs()
    local_urls = {name: endpoint["url"] for name, endpoint in local["endpoints"].items()}
    assert run_jobs(local_urls, {"Authorization": f"Bearer {local['key']}"}) == expected
    # runpod-python's API server runs a job queued with /run when its status is asked for.
    queued = httpx.post(f"{stock.url('math-jobs')}/run", json={"input": {"function": "double", "args": [5]}}).json()
    assert queued["status"] == "IN_PROGRESS"
    done = httpx.post(f"{stock.url('math-jobs')}/status/{queued['id']}", timeout=60).json()
    assert outcome(done) == ("COMPLETED", 10)


@pytest.mark.network
def test_routes_answer_alike_on_the_stock_image_and_the_local_target(stock: Workers, local: dict[str, Any]) -> None:
    expected = [end for _, _, _, end in ROUTES]
    assert call_routes(stock.url(LB_RESOURCE), {}) == expected, stock.logs()
    local_url = local["endpoints"][LB_RESOURCE]["url"]
    assert call_routes(local_url, {"Authorization": f"Bearer {local['key']}"}) == expected


def run_outcome(log: str) -> tuple[str, Any]:
    """How a `--test_input` run ended, from runpod-python's log (JSON lines, as on Runpod)."""
    for line in log.splitlines():
        message = json.loads(line).get("message", "") if line.startswith("{") else ""
        if message.startswith("Job result: "):
            return "COMPLETED", ast.literal_eval(message.removeprefix("Job result: "))["output"]
        if message.startswith("Job local_test failed with error: "):
            return "FAILED", message.removeprefix("Job local_test failed with error: ").split("\n", 1)[0]
    raise AssertionError(f"no result in the log:\n{log}")


@pytest.mark.network
def test_each_queue_handler_runs_its_test_input_through_runpod_serverless_start(stock: Workers) -> None:
    runs = {
        name: stock.start(name, "handler.py", "--test_input", json.dumps({"input": job_input}))
        for name, job_input in {
            "math-jobs": {"function": "add", "args": [2, 3]},
            "greet.v2": {"name": "Bo"},  # awaits add on the math-jobs server
            "counter": {"function": "counter:Counter", "method": "bump", "kwargs": {"by": 5}},
        }.items()
    }
    # Run by itself, an entry module starts runpod-python's worker as the image's handler.py does.
    failing = json.dumps({"input": {"function": "fail", "args": ["no"]}})
    runs["by itself"] = stock.start("math-jobs", "handler_math-jobs.py", "--test_input", failing)
    ends = {}
    for name, (process, log) in runs.items():
        code = process.wait(timeout=60)
        ends[name] = (code, run_outcome(log.read_text()))
    assert ends == {
        "math-jobs": (0, ("COMPLETED", 5)),
        "greet.v2": (0, ("COMPLETED", "hello Bo! (5)")),
        "counter": (0, ("COMPLETED", 5)),
        "by itself": (1, ("FAILED", "ValueError: no")),
    }, stock.logs()


@pytest.mark.network
def test_a_load_balanced_entry_serves_its_app_by_itself(stock: Workers) -> None:
    port = free_port()
    server, _ = stock.start(LB_RESOURCE, f"handler_{LB_RESOURCE}.py", PORT=str(port))
    stock.wait_until_up(f"http://127.0.0.1:{port}/ping", server)
    assert httpx.get(f"http://127.0.0.1:{port}/ping").json() == {"status": "healthy"}
    assert httpx.get(f"http://127.0.0.1:{port}/items/x").json() == {"item_id": "x", "detail": "short"}
