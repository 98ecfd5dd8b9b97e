"""The seed era's mothership.py: a load-balanced resource that serves the project's FastAPI app.

fixtures/mothership is tetra-rp's `flash init` layout, CPU only: main.py's `app` includes a router
whose route awaits a @remote worker, and mothership.py binds `mothership = CpuLiveLoadBalancer(...)`.
Analysis, the generated files, the local deployment answering through the app's routes, and the
guard in front of the app are tested here; the error fixtures (err_mothership_*,
warn_mothership_off) are pinned in test_analyze.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner
from flashc_runtime.asgi import guarded

from flashc.analyze import analyze_project
from flashc.cli import main
from flashc.deploy.runpod.target import _calls_others
from flashc.models import Analysis
from flashc.pipeline import generate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROJECT = FIXTURES / "mothership"


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def messages(analysis: Analysis) -> list[str]:
    return [f"{d.severity}: {d.message}" for d in analysis.diagnostics]


WORKER = (
    "from tetra_rp import CpuLiveServerless, remote\n\n\n"
    '@remote(CpuLiveServerless(name="worker"))\nasync def work(x):\n    return x\n'
)


# --- analysis ---------------------------------------------------------------------------------------


def test_the_seed_layout_serves_main_app_as_resource_mothership() -> None:
    analysis = analyze_project(PROJECT, use_cache=False)
    assert analysis.diagnostics == ()
    by_name = {r.name: r for r in analysis.resources}
    assert sorted(by_name) == ["cpu_worker", "mothership"]
    mothership = by_name["mothership"]
    assert (mothership.type, mothership.kind, mothership.compute) == ("CpuLiveLoadBalancer", "load_balanced", "cpu")
    assert (mothership.app, mothership.functions) == ("main:app", ())
    assert (mothership.location.path, mothership.location.line) == ("mothership.py", 12)
    assert (mothership.config["workersMin"], mothership.config["workersMax"]) == (1, 3)
    assert by_name["cpu_worker"].app is None


def test_an_endpoint_without_routes_serves_the_app_serve_names(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "mothership.py": (
                'from runpod_flash import Endpoint\n\ngateway = Endpoint(name="gateway", cpu="cpu3c-1-2")\n'
            ),
            "api.py": "from fastapi import FastAPI\n\nserver = FastAPI()\n",
            "worker.py": WORKER,
        },
    )
    analysis = analyze_project(root, use_cache=False, serve="api:server")
    assert messages(analysis) == []
    gateway = next(r for r in analysis.resources if r.name == "gateway")
    assert (gateway.type, gateway.kind, gateway.app) == ("CpuLiveLoadBalancer", "load_balanced", "api:server")
    # Without serve, main.py's `app` is looked for, and there is no main.py.
    assert messages(analyze_project(root, use_cache=False)) == [
        "error: 'gateway' serves the project's app, main.py's `app`, but the project has no module 'main'"
    ]


def test_a_project_of_the_app_alone_is_deployable(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "mothership.py": 'from tetra_rp import CpuLiveLoadBalancer\n\nm = CpuLiveLoadBalancer(name="web")\n',
            "main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
        },
    )
    analysis = analyze_project(root, use_cache=False)
    assert messages(analysis) == []
    assert [(r.name, r.app) for r in analysis.resources] == [("web", "main:app")]


@pytest.mark.parametrize(
    ("mothership", "expected"),
    [
        (
            'a = CpuLiveLoadBalancer(name="a")\nb = LiveLoadBalancer(name="b")\n',
            "error: mothership.py binds a second load-balanced config, 'b': only one serves the app",
        ),
        (
            'mothership = CpuLiveServerless(name="m")\n',
            "error: 'mothership' is a queue-based config (CpuLiveServerless), "
            "but the app it serves answers HTTP routes",
        ),
        (
            "mothership = Endpoint(cpu='cpu3c-1-2')\n",
            "error: the Endpoint 'mothership' that serves the app needs a name",
        ),
    ],
)
def test_what_mothership_py_cannot_hold(tmp_path: Path, mothership: str, expected: str) -> None:
    imports = "from tetra_rp import CpuLiveLoadBalancer, CpuLiveServerless, Endpoint, LiveLoadBalancer\n\n"
    root = write(
        tmp_path,
        {"mothership.py": imports + mothership, "main.py": "app = object()\n", "worker.py": WORKER},
    )
    assert messages(analyze_project(root, use_cache=False)) == [expected]


def test_an_endpoint_with_routes_in_mothership_py_is_its_own_resource(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "mothership.py": (
                "from runpod_flash import Endpoint\n\n"
                'api = Endpoint(name="api", cpu="cpu3c-1-2")\n\n\n'
                '@api.get("/hi")\nasync def hi():\n    return "hi"\n'
            ),
            "main.py": "app = object()\n",
        },
    )
    analysis = analyze_project(root, use_cache=False)
    assert [(r.name, r.app, r.functions) for r in analysis.resources] == [("api", None, ("mothership:hi",))]
    assert messages(analysis) == [
        "warning: mothership.py binds no load-balanced config, so the project's app is not deployed"
    ]


# --- generated files --------------------------------------------------------------------------------


def test_the_handler_takes_the_app_and_the_entry_module_hands_it_to_the_image() -> None:
    generated = generate(PROJECT, use_cache=False)
    files = {f.path: f.text for f in generated.files}
    handler = files["_flashc/flashc_handlers/handler_mothership.py"]
    assert 'app = importlib.import_module("main").app' in handler
    assert "create_route_handler" not in handler
    entry = files["handler_mothership.py"]
    assert 'app = project_app(__file__, "mothership")' in entry
    compile(handler, "handler_mothership.py", "exec")
    compile(entry, "handler_mothership.py", "exec")
    manifest = json.loads(files["flash_manifest.json"])
    assert manifest["resources"]["mothership"]["app"] == "main:app"
    assert manifest["resources"]["mothership"]["functions"] == []
    assert manifest["resources"]["mothership"]["image"] == "runpod-lb-cpu"
    assert manifest["resources"]["cpu_worker"]["app"] is None
    # On Runpod the app is told where every other resource is: which ones its routes call is not analyzed.
    assert _calls_others(manifest, "mothership")
    assert not _calls_others(manifest, "cpu_worker")


# --- the guard in front of the app on this machine -------------------------------------------------


def test_the_guard_lets_through_only_requests_with_the_key_and_every_lifespan_event() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    async def call(scope_type: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "lifespan.startup"}

        await guarded(app, "sekrit")({"type": scope_type, "headers": headers}, receive, send)
        return sent

    refused = asyncio.run(call("http", [(b"authorization", b"Bearer wrong")]))
    assert refused[0]["status"] == 401
    assert json.loads(refused[1]["body"]) == {"error": "missing or wrong API key: send Authorization: Bearer <key>"}
    assert asyncio.run(call("http", []))[0]["status"] == 401
    assert asyncio.run(call("websocket", [])) == [{"type": "websocket.close", "code": 1008}]
    assert asyncio.run(call("http", [(b"authorization", b"bearer sekrit")]))[1]["body"] == b"ok"
    asyncio.run(call("lifespan", []))
    assert seen == ["http", "lifespan"]


# --- deployed on this machine ------------------------------------------------------------------------


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "mothership"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(".flash"))
    try:
        result = CliRunner().invoke(main, ["deploy", str(root)])
        assert result.exit_code == 0, result.output
        yield root
    finally:
        CliRunner().invoke(main, ["undeploy", str(root)])  # never leave a process behind


def test_the_deployed_mothership_answers_main_routes_that_call_a_worker(deployed: Path) -> None:
    deployment = json.loads((deployed / ".flash" / "deployment.json").read_text())
    assert sorted(deployment["endpoints"]) == ["cpu_worker", "mothership"]
    url = deployment["endpoints"]["mothership"]["url"]
    key = {"Authorization": f"Bearer {deployment['key']}"}
    with httpx.Client(base_url=url, headers=key, timeout=60) as client:
        assert client.get("/").json()["message"] == "Flash Application"
        answer = client.post("/cpu/hello", json={"message": "hello from the app"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "hello from the app"
        assert answer.json()["worker_type"] == "CPU"
        assert client.get("/ping").json() == {"status": "healthy"}  # main.py has none: added, as on Runpod
        assert client.get("/openapi.json").json()["info"]["title"] == "Flash Application"
    assert httpx.get(f"{url}/", timeout=10).status_code == 401
    result = CliRunner().invoke(main, ["status", str(deployed)])
    assert result.exit_code == 0 and result.output.count(" healthy") == 2 and "unhealthy" not in result.output, (
        result.output
    )


def test_the_entry_module_hands_the_image_the_app_itself(deployed: Path) -> None:
    # As Runpod's load-balanced image loads it, in that image's environment (the one the local endpoint runs in).
    record = json.loads((deployed / ".flash" / "deployment.json").read_text())["endpoints"]["mothership"]
    cmdline = Path(f"/proc/{record['pid']}/cmdline")
    if not cmdline.exists():
        pytest.skip("needs /proc to find the endpoint's Python")
    python = cmdline.read_bytes().split(b"\0")[0].decode()  # the environment's own, not what it links to
    script = (
        "import runpy\n"
        "app = runpy.run_path('handler_mothership.py')['app']\n"
        "import main\n"
        "from starlette.testclient import TestClient\n"
        "client = TestClient(app)\n"
        "print(app is main.app, client.get('/ping').json(), client.get('/').json()['message'])\n"
    )
    done = subprocess.run(
        [python, "-c", script], cwd=record["root"], env={"PATH": os.defpath}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True {'status': 'healthy'} Flash Application"


# --- deployed on Runpod (the fake of its API) ----------------------------------------------------------


def test_on_runpod_the_mothership_is_a_load_balanced_endpoint_told_where_the_workers_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runpod_fake import API_KEY, FakeRunpod

    from flashc.deploy.runpod.api import RunpodApi
    from flashc.deploy.runpod.credentials import ApiKey
    from flashc.deploy.runpod.target import RunpodSettings, apply, prepare

    monkeypatch.setenv("FLASHC_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "mothership"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(".flash"))
    result = CliRunner().invoke(main, ["build", str(root), "-q"])
    assert result.exit_code == 0, result.output
    archive = root / ".flash" / "archive.tar.gz"
    fake = FakeRunpod()
    settings = RunpodSettings(app="mothership", environment="production", variables={})
    with RunpodApi(ApiKey(API_KEY), transport=fake.transport, sleep=lambda s: None) as api:
        prepared = prepare(api, archive, hashlib.sha256(archive.read_bytes()).hexdigest(), settings)
        outcomes = {o.name: o.action for o in apply(api, prepared, settings)}
    assert outcomes == {"cpu_worker": "created", "mothership": "created"}
    assert fake.rejected == []
    live = {e["name"]: e for e in fake.endpoints_in(next(iter(fake.environments)))}
    mothership = live["mothership"]
    assert (mothership["type"], mothership["workersMin"], mothership["workersMax"]) == ("LB", 1, 3)
    env = {e["key"]: e["value"] for e in fake.templates[mothership["templateId"]]["env"]}
    assert (env["FLASH_RESOURCE_NAME"], env["FLASH_ENDPOINT_TYPE"]) == ("mothership", "lb")
    assert json.loads(env["FLASHC_ENDPOINTS"]) == {"cpu_worker": live["cpu_worker"]["id"]}
    assert env["RUNPOD_API_KEY"] == "{{ RUNPOD_SECRET_flashc_api_key }}"
