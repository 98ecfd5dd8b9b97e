"""Calls from local Python behave as the SDK's: a route's positional arguments bound as a local call
binds them, a remote class instantiated locally, and nothing sent where the Flash SDK itself took
over its module names. The project's endpoints are real loopback servers around its own objects."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flashc_runtime import RemoteCallError, client
from flashc_runtime.handler import create_handler
from flashc_runtime.routes import create_route_handler
from flashc_runtime.signing import SECRET_ENV
from test_runtime_server import KEY, serve

from flashc.cli import main
from flashc.sdkcheck import check_sdk_aliases

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

SHOP = """
import enum
from typing import Optional

from runpod_flash import Endpoint

api = Endpoint(name="api", cpu="cpu3c-1-2")
calls = []


class Size(str, enum.Enum):
    S = "s"
    L = "l"


@api.get("/items/{item_id}")
async def get_item(item_id: int, detail: bool = False, size: Size = Size.S, note: Optional[str] = None) -> dict:
    calls.append("get_item")
    return {"item_id": item_id, "type": type(item_id).__name__, "detail": detail, "size": size.value, "note": note}


@api.post("/api/process")
async def process_data(x: int, y: int) -> dict:
    calls.append("process_data")
    return {"result": x + y}


@api.patch("/items/{item_id}")
def patch_item(item_id: int, **changes) -> dict:
    return {"id": item_id, **changes}


@Endpoint(name="embedder", cpu="cpu3c-1-2")
class Embedder:
    made = []

    def __init__(self, dims: int = 4, scale: float = 1.0):
        Embedder.made.append((dims, scale))
        self.dims, self.scale, self.calls = dims, scale, 0

    def embed(self, text: str) -> list:
        self.calls += 1
        return [len(text) * self.scale] * self.dims

    async def count(self) -> int:
        return self.calls
"""


class Shop:
    """The project `shop` deployed: its module as local code imports it, and its endpoints' URLs."""

    def __init__(self, module: ModuleType, urls: dict[str, str]) -> None:
        self.module = module
        self.urls = urls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


@pytest.fixture(params=["json", "pickled"])
def shop(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """Calls travel as JSON (a deployment without a secret) or as signed pickles (with one)."""
    root = tmp_path / "shop_project"
    root.mkdir()
    (root / "shop.py").write_text(textwrap.dedent(SHOP))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "shop", raising=False)
    module = importlib.import_module("shop")
    routes = {
        ("GET", "/items/{item_id}"): module.get_item,
        ("POST", "/api/process"): module.process_data,
        ("PATCH", "/items/{item_id}"): module.patch_item,
    }
    deployment: dict[str, Any] = {"target": "local", "key": KEY, "endpoints": {}}
    if request.param == "pickled":
        monkeypatch.setenv(SECRET_ENV, "s3cret")  # the endpoints'
        deployment["secret"] = "s3cret"  # the caller's, from deployment.json
    with contextlib.ExitStack() as stack:
        urls = {
            "api": stack.enter_context(
                contextlib.contextmanager(serve)(create_route_handler(routes), {"kind": "load_balanced", "config": {}})
            ),
            "embedder": stack.enter_context(
                contextlib.contextmanager(serve)(
                    create_handler({"shop:Embedder": module.Embedder}), {"kind": "queue", "config": {"workersMax": 2}}
                )
            )
            + "/v2/ep1",  # Runpod's queue API lives below the endpoint's id
        }
        deployment["endpoints"] = {name: {"url": url, "endpoint_id": "ep1"} for name, url in urls.items()}
        (root / ".flash").mkdir()
        (root / ".flash" / "deployment.json").write_text(json.dumps(deployment))
        yield Shop(module, urls)
    sys.modules.pop("shop", None)


# Load-balanced functions: positional and keyword arguments bound as a local call binds them.


def test_a_route_function_binds_positional_arguments_as_a_local_call(shop: Shop) -> None:
    async def calls() -> list[Any]:
        return [
            await shop.process_data(5, 3),
            await shop.get_item(7),
            await shop.get_item(7, True, shop.Size.L, note="n"),
            await shop.patch_item(3, colour="red"),
        ]

    assert asyncio.run(calls()) == [
        {"result": 8},
        {"item_id": 7, "type": "int", "detail": False, "size": "s", "note": None},
        {"item_id": 7, "type": "int", "detail": True, "size": "l", "note": "n"},
        {"id": 3, "colour": "red"},
    ]


def test_arguments_that_do_not_fit_fail_before_anything_is_sent(shop: Shop) -> None:
    with pytest.raises(TypeError, match=r"^get_item\(\): missing a required argument: 'item_id'$"):
        asyncio.run(shop.get_item())
    with pytest.raises(TypeError, match=r"^process_data\(\): got an unexpected keyword argument 'z'$"):
        asyncio.run(shop.process_data(1, 2, z=3))
    assert shop.calls == []


def test_a_path_value_that_does_not_convert_is_400_naming_the_parameter(shop: Shop) -> None:
    answer = httpx.get(f"{shop.urls['api']}/items/seven", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "GET /items/{item_id}: path parameter 'item_id' must be an integer, not 'seven'"}


# Remote classes: a local handle, its methods remote calls on one instance per constructor arguments.


def test_a_remote_class_instantiated_locally_calls_one_instance_on_the_endpoint(shop: Shop) -> None:
    shop.Embedder.made.clear()

    async def calls() -> list[Any]:
        small = shop.Embedder(dims=2)
        again = shop.Embedder(2)  # the same arguments, bound alike: the same instance there
        default = shop.Embedder()
        return [
            await small.embed("abc"),
            await small.count(),
            await again.embed("x"),
            await again.count(),
            await default.embed("ab"),
            await default.count(),
        ]

    assert asyncio.run(calls()) == [[3.0, 3.0], 1, [1.0, 1.0], 2, [2.0] * 4, 1]
    assert shop.Embedder.made == [(2, 1.0), (4, 1.0)]
    # A job in the existing form, naming the method without init, reaches the default instance.
    answer = httpx.post(
        f"{shop.urls['embedder']}/runsync",
        json={"input": {"function": "Embedder", "method": "count"}},
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()
    assert answer["output"] == 1


def test_signed_pickles_carry_constructor_arguments_json_cannot(shop: Shop, request: pytest.FixtureRequest) -> None:
    handle = shop.Embedder(dims=1, scale=Fraction(1, 2))
    if "pickled" in request.node.callspec.id:
        assert asyncio.run(handle.embed("abc")) == [Fraction(3, 2)]
    else:
        with pytest.raises(TypeError, match="Fraction is not JSON serializable"):
            asyncio.run(handle.embed("abc"))


# The Flash SDK installed beside flashc: noticed before anything is sent, by commands and by calls.


@pytest.fixture
def fake_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding an installed distribution `tetra-rp` whose `tetra_rp` is not flashc's alias,
    first on sys.path, as `pip install tetra-rp` leaves it; importing it fails, so it is never imported."""
    site = tmp_path / "site"
    (site / "tetra_rp").mkdir(parents=True)
    (site / "tetra_rp" / "__init__.py").write_text('raise ImportError("the real Flash SDK was imported")\n')
    info = site / "tetra_rp-0.25.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tetra_rp\nVersion: 0.25.2\n")
    (info / "RECORD").write_text("")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "tetra_rp", raising=False)
    monkeypatch.setattr(client, "_sdk_checked", False)
    return site


def expected_problem(site: Path) -> tuple[str, str]:
    return (
        "the Flash SDK (tetra_rp 0.25.2) is installed in this Python environment and replaces flashc's own module "
        f"names (`import tetra_rp` gives {site / 'tetra_rp' / '__init__.py'}), so local calls of @remote functions "
        "would go to Runpod's cloud, not to flashc's endpoints",
        f"uninstall it from this environment ({sys.prefix}): `{sys.executable} -m pip uninstall tetra_rp`, "
        "or keep the Flash SDK in a separate virtual environment",
    )


def test_the_sdk_aliases_are_flashcs_here() -> None:
    assert check_sdk_aliases() is None


def test_the_sdk_installed_beside_flashc_is_found_without_importing_it(
    fake_sdk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = check_sdk_aliases()
    assert problem is not None
    assert (problem.message, problem.hint) == expected_problem(fake_sdk)
    assert "tetra_rp" not in sys.modules
    # An SDK module imported already is judged by what it is.
    monkeypatch.setitem(sys.modules, "tetra_rp", sys.modules["flashc_runtime"])
    assert check_sdk_aliases() is None
    monkeypatch.setitem(sys.modules, "tetra_rp", ModuleType("tetra_rp"))
    problem = check_sdk_aliases()
    assert problem is not None and "`import tetra_rp` gives <module 'tetra_rp'>" in problem.message


def test_an_sdk_module_without_a_distribution_is_named_by_its_folder(fake_sdk: Path) -> None:
    import shutil

    shutil.rmtree(fake_sdk / "tetra_rp-0.25.2.dist-info")
    problem = check_sdk_aliases()
    assert problem is not None
    assert problem.message.startswith("the Flash SDK is installed in this Python environment and replaces")
    assert problem.hint == f"take {fake_sdk} off the module search path (PYTHONPATH), or out of this environment"


def test_no_call_is_sent_while_the_sdk_holds_its_names(shop: Shop, fake_sdk: Path) -> None:
    message, hint = expected_problem(fake_sdk)
    with pytest.raises(RemoteCallError) as info:
        asyncio.run(shop.process_data(1, 2))
    assert str(info.value) == f"the call to process_data was not sent: {message}; {hint}"
    with pytest.raises(RemoteCallError, match=r"^the call to Embedder was not sent: the Flash SDK \(tetra_rp 0.25.2\)"):
        asyncio.run(shop.Embedder().embed("abc"))
    from runpod_flash import Endpoint

    with pytest.raises(RemoteCallError, match=r"^POST /runsync to endpoint 'embedder' was not sent: the Flash SDK"):
        asyncio.run(Endpoint(id="embedder").runsync({"x": 1}))
    assert shop.calls == [] and shop.Embedder.made == []
    # Once the SDK is gone, calls go out.
    sys.path.remove(str(fake_sdk))
    importlib.invalidate_caches()
    assert asyncio.run(shop.process_data(1, 2)) == {"result": 3}


def test_every_command_warns_first(fake_sdk: Path) -> None:
    message, hint = expected_problem(fake_sdk)
    result = CliRunner().invoke(main, ["analyze", "--no-cache", str(FIXTURES / "demo")])
    assert result.exit_code == 0
    assert result.stderr == f"flashc: warning: {message}\n  = hint: {hint}\n"


def test_a_command_warns_when_pythonpath_brings_the_sdk(fake_sdk: Path) -> None:
    env = {"PYTHONPATH": str(fake_sdk), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "flashc", "analyze", "--no-cache", str(FIXTURES / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("flashc: warning: the Flash SDK (tetra_rp 0.25.2) is installed")
    assert "pip uninstall tetra_rp" in result.stderr
