"""Projects in the SDK's current style (`Endpoint`) deploy locally and answer: over HTTP as Runpod's
API is called, from local Python as the SDK's functions are awaited, and through client Endpoints."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner
from test_worker_image import _cpu_torch

from flashc.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


class Deployed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = json.loads((root / ".flash" / "deployment.json").read_text())
        self.headers = {"Authorization": f"Bearer {self.data['key']}"}

    def url(self, resource: str) -> str:
        return str(self.data["endpoints"][resource]["url"])

    def job(self, resource: str, job_input: Any) -> Any:
        answer = httpx.post(
            f"{self.url(resource)}/runsync", json={"input": job_input}, headers=self.headers, timeout=120
        ).json()
        assert answer["status"] == "COMPLETED", answer
        return answer["output"]

    def route(self, resource: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url(resource)}{path}", headers=self.headers, timeout=60, **kwargs)


@pytest.fixture
def endpoint_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """fixtures/endpoint_api without its torch worker, deployed; undeployed whatever happens."""
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "endpoint_api"
    shutil.copytree(FIXTURES / "endpoint_api", root, ignore=shutil.ignore_patterns(".flash", "gpu_worker.py"))
    code, output = cli("deploy", str(root))
    try:
        assert code == 0, output
        yield Deployed(root)
    finally:
        cli("undeploy", str(root))


def test_every_endpoint_form_answers_over_http(endpoint_api: Deployed) -> None:
    d = endpoint_api
    # Queue-based, as the SDK's clients send jobs: the input is the function's keyword arguments.
    assert d.job("modern", {"numbers": [1, 2, 3.5]}) == 6.5
    assert d.job("legacy", {"numbers": [1, 2]}) == 3.0
    assert d.job("named_after_me", {"x": 21}) == 42
    # A class: its method named in the job.
    assert d.job("embedder", {"function": "Embedder", "method": "embed", "args": ["abc"]}) == [3.0] * 4
    # Load-balanced routes: path and query parameters, a body, and FastAPI's HTTPException.
    assert d.route("api", "GET", "/items/abc", params={"detail": "long"}).json() == {"item_id": "abc", "detail": "long"}
    missing = d.route("api", "GET", "/items/missing")
    assert missing.status_code == 404 and missing.json() == {"detail": "no such item"}
    # A route that awaits a queue function of another resource: the call goes to that endpoint.
    assert d.route("api", "POST", "/total", json={"numbers": [1, 2]}).json() == {"total": 3.0, "via": "modern"}


def test_local_python_awaits_endpoint_functions_and_client_endpoints(
    endpoint_api: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = endpoint_api.root
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(root)  # clients find the deployment of the project they run in
    for name in ("mixed", "api", "config", "embedder"):
        sys.modules.pop(name, None)
    import api  # type: ignore[import-not-found]
    import embedder  # type: ignore[import-not-found]
    import mixed  # type: ignore[import-not-found]
    from runpod_flash import Endpoint

    async def calls() -> dict[str, Any]:
        client = Endpoint(id="modern")
        job = await client.run({"numbers": [2, 2]})
        await job.wait(timeout=60)
        synced = await client.runsync({"numbers": [5]})
        routes = Endpoint(id="api")
        small = embedder.Embedder(dims=2)  # a remote class: a handle, its constructor's arguments go along
        return {
            "decorated": await mixed.modern_sum([1.0, 2.0]),
            "legacy": await mixed.legacy_sum([4]),
            "route": await api.get_item("x", detail="d"),
            "route, positional": await api.get_item("y", "long"),
            "class": (await small.embed("abc"), await small.ping(), await embedder.Embedder().embed("ab")),
            "job": (job.done, job.output),
            "runsync": synced.output,
            "client route": await routes.get("/items/y"),
        }

    got = asyncio.run(calls())
    try:
        assert got == {
            "decorated": 3.0,
            "legacy": 4.0,
            "route": {"item_id": "x", "detail": "d"},
            "route, positional": {"item_id": "y", "detail": "long"},
            "class": ([3.0, 3.0], "pong", [2.0] * 4),
            "job": (True, 4.0),
            "runsync": 5.0,
            "client route": {"item_id": "y", "detail": "short"},
        }
    finally:
        for name in ("mixed", "api", "config", "embedder"):
            sys.modules.pop(name, None)


def test_a_client_endpoint_of_nothing_deployed_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runpod_flash import Endpoint
    from runpod_flash import RemoteCallError as Failed

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with pytest.raises(Failed, match="set RUNPOD_API_KEY to call Runpod endpoint 'abc123'"):
        asyncio.run(Endpoint(id="abc123").runsync({"x": 1}))
    with pytest.raises(Failed, match="flashc deploys image endpoints on Runpod only"):
        asyncio.run(Endpoint(name="sdxl", image="runpod/worker-sdxl:latest").run({"x": 1}))


@pytest.mark.network
def test_the_flash_init_template_deploys_and_every_function_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _cpu_torch()
    if found is None:
        pytest.skip("no CPU build of torch in PIP_FIND_LINKS or UV_FIND_LINKS for a Python this machine has")
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "flash_init"
    shutil.copytree(FIXTURES / "flash_init", root, ignore=shutil.ignore_patterns(".flash"))
    code, output = cli("build", str(root), "--python-version", found[1], "-q")
    assert code == 0, output
    try:
        code, output = cli("deploy", str(root), "--archive", str(root / ".flash" / "archive.tar.gz"))
        assert code == 0, output
        d = Deployed(root)
        gpu = d.job("gpu_worker", {"input_data": {"message": "hi"}})
        assert gpu["message"] == "hi" and gpu["gpu"] == {"available": False, "name": "No GPU detected"}
        assert d.job("cpu_worker", {"input_data": {"message": "hey"}})["message"] == "hey"
        assert d.route("lb_worker", "POST", "/process", json={"input_data": {"a": 1}}).json()["echo"] == {"a": 1}
        assert d.route("lb_worker", "GET", "/health").json() == {"status": "healthy"}
    finally:
        cli("undeploy", str(root))
