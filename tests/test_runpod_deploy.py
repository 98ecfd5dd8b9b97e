"""Deploying to Runpod, against the fake of its API: plan from the server's state, act, converge."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runpod_fake import API_KEY, FakeRunpod, Fault
from wheelhouse import write_project

from flashc.cli import main
from flashc.deploy.runpod.api import RunpodApi, RunpodError
from flashc.deploy.runpod.credentials import ApiKey
from flashc.deploy.runpod.execute import Outcome
from flashc.deploy.runpod.target import Prepared, RunpodSettings, apply, prepare, undeploy

APP = """from runpod_flash import Endpoint, GpuGroup


@Endpoint(name="gpu", gpu=GpuGroup.ADA_24, workers=2, env={"MODE": "${MODE:-fast}"})
def embed(x: int) -> int:
    return x * 2


@Endpoint(name="cpu", cpu="cpu3c-1-2")
def prep(x: int) -> int:
    return x + 1


api = Endpoint(name="api", cpu="cpu3c-1-2")


@api.post("/run")
async def run(x: int) -> dict:
    return {"y": await embed(x)}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(tmp_path / "cache"))


def build(root: Path) -> tuple[Path, str]:
    result = CliRunner().invoke(main, ["build", str(root), "-q"])
    assert result.exit_code == 0, result.output
    archive = root / ".flash" / "archive.tar.gz"
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def fake() -> FakeRunpod:
    return FakeRunpod()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", {"app.py": APP})


SETTINGS = RunpodSettings(app="proj", environment="production", variables={})


class Deployer:
    def __init__(self, fake: FakeRunpod) -> None:
        self.fake = fake

    def api(self) -> RunpodApi:
        return RunpodApi(ApiKey(API_KEY), transport=self.fake.transport, sleep=lambda s: None)

    def prepare(self, root: Path) -> Prepared:
        archive, sha = build(root)
        with self.api() as api:
            return prepare(api, archive, sha, SETTINGS)

    def deploy(self, root: Path, variables: dict[str, str] | None = None) -> dict[str, Outcome]:
        archive, sha = build(root)
        settings = RunpodSettings(SETTINGS.app, SETTINGS.environment, variables or {})
        with self.api() as api:
            prepared = prepare(api, archive, sha, settings)
            return {o.name: o for o in apply(api, prepared, settings)}


@pytest.fixture
def deployer(fake: FakeRunpod) -> Iterator[Deployer]:
    yield Deployer(fake)
    assert fake.rejected == [], fake.rejected  # every request had the documented shape


def live(fake: FakeRunpod) -> dict[str, dict[str, Any]]:
    """The endpoints of the app's environment on the server, by name (one each, or the test fails)."""
    env = next(iter(fake.environments))
    found: dict[str, dict[str, Any]] = {}
    for endpoint in fake.endpoints_in(env):
        assert endpoint["name"] not in found, f"two endpoints named {endpoint['name']}"
        found[endpoint["name"]] = endpoint
    return found


def template_env(fake: FakeRunpod, endpoint: dict[str, Any]) -> dict[str, str]:
    return {e["key"]: e["value"] for e in fake.templates[endpoint["templateId"]]["env"]}


def test_first_deploy_creates_each_endpoint_with_every_field(deployer: Deployer, project: Path) -> None:
    outcomes = deployer.deploy(project)
    assert {n: o.action for n, o in outcomes.items()} == {"api": "created", "cpu": "created", "gpu": "created"}
    endpoints = live(deployer.fake)
    gpu = endpoints["gpu"]
    assert (gpu["gpuIds"], gpu["workersMin"], gpu["workersMax"], gpu["idleTimeout"]) == ("ADA_24", 0, 2, 60)
    assert gpu["type"] == "QB" and endpoints["api"]["type"] == "LB" and endpoints["cpu"]["instanceIds"] == ["cpu3c-1-2"]
    assert outcomes["api"].url == f"https://{endpoints['api']['id']}.api.runpod.ai"
    assert outcomes["gpu"].url == f"https://api.runpod.ai/v2/{gpu['id']}"
    env = template_env(deployer.fake, gpu)
    assert env["MODE"] == "fast" and env["FLASH_RESOURCE_NAME"] == "gpu"
    # Only the resource that calls another gets the key, as a reference to a Runpod secret.
    assert template_env(deployer.fake, endpoints["api"])["RUNPOD_API_KEY"] == "{{ RUNPOD_SECRET_flashc_api_key }}"
    assert "RUNPOD_API_KEY" not in env and "RUNPOD_API_KEY" not in template_env(deployer.fake, endpoints["cpu"])
    # The caller learns where the others are served (flashc_runtime.stock's contract).
    where = json.loads(template_env(deployer.fake, endpoints["api"])["FLASHC_ENDPOINTS"])
    assert where == {name: e["id"] for name, e in endpoints.items() if name != "api"}
    assert deployer.fake.count("upload") == 1


def test_an_unchanged_redeploy_uploads_nothing_and_mutates_nothing(deployer: Deployer, project: Path) -> None:
    deployer.deploy(project)
    # First deploy of 3 resources: 11 requests (the Flash SDK's flow makes 16 for the same project).
    assert len(deployer.fake.calls) == 11 and deployer.fake.count("upload") == 1
    before = len(deployer.fake.writes())
    calls = len(deployer.fake.calls)
    outcomes = deployer.deploy(project)
    assert {o.action for o in outcomes.values()} == {"unchanged"}
    assert deployer.fake.writes()[before:] == []
    assert deployer.fake.names()[calls:] == ["getFlashAppByName", "getFlashEnvironmentByName", "getFlashBuild"]


def test_code_env_config_changes_and_a_removed_resource(deployer: Deployer, project: Path) -> None:
    deployer.deploy(project)
    ids = {n: e["id"] for n, e in live(deployer.fake).items()}
    # Code only: a new archive, and every template's env names it, so workers roll.
    (project / "helpers.py").write_text("VALUE = 1\n")
    assert {o.action for o in deployer.deploy(project).values()} == {"env updated"}
    assert deployer.fake.count("upload") == 2
    # env only (a variable the shell or .env sets): that resource's template alone.
    outcomes = deployer.deploy(project, {"MODE": "slow"})
    assert {n: o.action for n, o in outcomes.items()} == {"api": "unchanged", "cpu": "unchanged", "gpu": "env updated"}
    assert template_env(deployer.fake, live(deployer.fake)["gpu"])["MODE"] == "slow"
    # A config change updates the endpoint in place.
    (project / "app.py").write_text(APP.replace("workers=2", "workers=5"))
    assert deployer.deploy(project, {"MODE": "slow"})["gpu"].action == "updated"
    assert live(deployer.fake)["gpu"]["workersMax"] == 5 and live(deployer.fake)["gpu"]["id"] == ids["gpu"]
    # A resource removed from the code is deleted.
    (project / "app.py").write_text(APP.split('\n\n@Endpoint(name="cpu"')[0] + "\n")
    outcomes = deployer.deploy(project, {"MODE": "slow"})
    assert outcomes["cpu"].action == "deleted" and set(live(deployer.fake)) == {"gpu"}


def test_gpu_to_cpu_replaces_the_endpoint(deployer: Deployer, project: Path) -> None:
    deployer.deploy(project)
    old = live(deployer.fake)["gpu"]["id"]
    (project / "app.py").write_text(APP.replace("gpu=GpuGroup.ADA_24", 'cpu="cpu3c-2-4"'))
    assert deployer.deploy(project)["gpu"].action == "replaced"
    new = live(deployer.fake)["gpu"]
    assert new["id"] != old and new["instanceIds"] == ["cpu3c-2-4"] and old not in deployer.fake.endpoints
    # The resource that calls it is told its new id.
    where = json.loads(template_env(deployer.fake, live(deployer.fake)["api"])["FLASHC_ENDPOINTS"])
    assert where["gpu"] == new["id"]


def test_a_second_clone_sees_the_deployment_and_undeploys_it(deployer: Deployer, project: Path, tmp_path: Path) -> None:
    deployer.deploy(project)
    clone = write_project(tmp_path / "clone" / "proj", {"app.py": APP})
    before = len(deployer.fake.writes())
    assert {o.action for o in deployer.deploy(clone).values()} == {"unchanged"}
    assert deployer.fake.writes()[before:] == []  # same bytes, same server state: nothing to do
    with deployer.api() as api:
        gone = undeploy(api, SETTINGS)
    assert sorted(o.name for o in gone) == ["api", "cpu", "gpu"] and live(deployer.fake) == {}


@pytest.mark.parametrize(
    ("operation", "fault"),
    [
        ("saveEndpoint", Fault.lost_answer()),
        ("saveEndpoint", Fault.status(502)),
        ("FinalizeArtifactUpload", Fault.lost_answer()),
        ("upload", Fault.reset(after=100)),
        ("upload", Fault.expired()),
        ("saveTemplate", Fault.timeout()),
        ("updateFlashBuildManifest", Fault.lost_answer()),
        ("deployBuildToEnvironment", Fault.status(500)),
    ],
)
def test_a_deploy_that_fails_anywhere_converges_when_run_again(
    deployer: Deployer, project: Path, operation: str, fault: Fault
) -> None:
    deployer.deploy(project)
    (project / "app.py").write_text(APP.replace("workers=2", "workers=3") + "\n# new code\n")
    deployer.fake.inject(operation, fault)
    with contextlib.suppress(RunpodError):  # the run may stop; running again must converge
        deployer.deploy(project)
    deployer.deploy(project)
    endpoints = live(deployer.fake)  # one endpoint per name: nothing duplicated
    assert set(endpoints) == {"api", "cpu", "gpu"} and endpoints["gpu"]["workersMax"] == 3
    assert {o.action for o in deployer.deploy(project).values()} == {"unchanged"}


def test_the_key_is_in_no_file_and_no_output(deployer: Deployer, project: Path, tmp_path: Path) -> None:
    deployer.deploy(project)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    for endpoint in deployer.fake.endpoints.values():
        assert API_KEY not in str(template_env(deployer.fake, endpoint))
    for build in deployer.fake.builds.values():
        assert API_KEY not in str(build)


def test_the_command_line_plans_deploys_and_undeploys(
    fake: FakeRunpod, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flashc.deploy.runpod import target

    monkeypatch.setattr(target, "TRANSPORT", fake.transport)
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    runner = CliRunner()
    dry = runner.invoke(main, ["deploy", str(project), "--target", "runpod", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "create app and environment production" in dry.output and "create     gpu" in dry.output
    assert fake.writes() == []  # a dry run changes nothing
    done = runner.invoke(main, ["deploy", str(project), "--target", "runpod"])
    assert done.exit_code == 0, done.output
    gpu = live(fake)["gpu"]["id"]
    assert f"created      gpu                      https://api.runpod.ai/v2/{gpu}" in done.output
    # A ready-to-run request whose input fits the function's parameters.
    assert f"curl -X POST https://api.runpod.ai/v2/{gpu}/runsync" in done.output
    assert '{"input": {"x": "..."}}' in done.output
    assert API_KEY not in done.output and API_KEY not in (project / ".flash" / "deployment.json").read_text()
    planned = runner.invoke(main, ["deploy", str(project), "--target", "runpod", "--dry-run", "--json"])
    assert json.loads(planned.stdout)["upload"] is False
    status = runner.invoke(main, ["status", str(project), "--target", "runpod"])
    assert status.exit_code == 0 and f"https://api.runpod.ai/v2/{gpu}" in status.output
    logs = runner.invoke(main, ["logs", "gpu", str(project), "--target", "runpod"])
    assert logs.exit_code != 0 and "Runpod's API gives no worker logs" in logs.output
    gone = runner.invoke(main, ["undeploy", str(project), "--target", "runpod"])
    assert gone.exit_code == 0 and "deleted 3 endpoints of proj/production" in gone.output and live(fake) == {}


def test_no_key_is_a_clear_error_before_anything_is_sent(
    fake: FakeRunpod, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flashc.deploy.runpod import target

    monkeypatch.setattr(target, "TRANSPORT", fake.transport)
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["deploy", str(project), "--target", "runpod"])
    assert result.exit_code != 0 and "no Runpod API key" in result.output and fake.calls == []


def test_a_network_volume_is_created_once_and_found_by_name_after(deployer: Deployer, tmp_path: Path) -> None:
    app = (
        "from runpod_flash import DataCenter, Endpoint, NetworkVolume\n\n"
        'models = NetworkVolume(name="models", size=50, datacenter=DataCenter.EU_RO_1)\n\n\n'
        '@Endpoint(name="reader", cpu="cpu3c-1-2", volume=models)\n'
        "def read(path: str) -> str:\n    return path\n"
    )
    root = write_project(tmp_path / "vol", {"app.py": app})
    deployer.deploy(root)
    (volume,) = deployer.fake.volumes.values()
    assert (volume["name"], volume["size"], volume["dataCenterId"]) == ("models", 50, "EU-RO-1")
    assert live(deployer.fake)["reader"]["networkVolumeId"] == volume["id"]
    clone = write_project(tmp_path / "clone" / "vol", {"app.py": app})
    deployer.deploy(clone)
    assert deployer.fake.count("POST networkvolumes") == 1  # found by name and data center, not made again


def test_local_python_calls_the_runpod_endpoint_with_the_callers_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a Runpod deploy, `await f(x)` goes to the endpoint .flash/deployment.json names, with
    RUNPOD_API_KEY; here a loopback server stands in for Runpod's data plane."""
    import asyncio
    import http.server
    import sys
    import threading

    seen: list[tuple[str, str | None, Any]] = []

    class DataPlane(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            answer = json.dumps({"id": "job-1", "status": "COMPLETED", "output": 42}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DataPlane)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = write_project(tmp_path / "called", {"app.py": APP})
        settings = RunpodSettings("called", "production", {})
        from flashc.deploy.runpod.target import write_deployment

        write_deployment(root, settings, (Outcome("gpu", "created", "ep123", "https://x", "gpu-queue"),))
        monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"http://127.0.0.1:{server.server_port}/v2")
        monkeypatch.setenv("RUNPOD_API_KEY", "rpa_caller_key")
        monkeypatch.delenv("FLASHC_ENDPOINTS", raising=False)
        monkeypatch.syspath_prepend(str(root))
        sys.modules.pop("app", None)
        import app  # type: ignore[import-not-found]

        assert asyncio.run(app.embed(21)) == 42
    finally:
        server.shutdown()
        sys.modules.pop("app", None)
    ((path, auth, body),) = seen
    assert path == "/v2/ep123/runsync" and auth == "Bearer rpa_caller_key"
    assert body["input"]["function"] == "embed"


def test_a_resource_name_no_file_can_have_is_refused_before_anything_is_sent(
    fake: FakeRunpod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flashc.deploy.runpod import target

    app = (
        'from runpod_flash import Endpoint\n\n\n@Endpoint(name="team/gpu", cpu="cpu3c-1-2")\ndef f(x):\n    return x\n'
    )
    root = write_project(tmp_path / "slash", {"app.py": app})
    monkeypatch.setattr(target, "TRANSPORT", fake.transport)
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    built = CliRunner().invoke(main, ["build", str(root)])
    assert built.exit_code == 0  # flashc's own endpoints serve it: a warning, at the name
    assert "app.py:4:2: warning: resource name 'team/gpu' cannot be part of a file name (it holds '/')" in built.output
    result = CliRunner().invoke(main, ["deploy", str(root), "--target", "runpod"])
    assert result.exit_code != 0 and "Runpod's worker images cannot load resource 'team/gpu'" in result.output
    assert fake.calls == []
