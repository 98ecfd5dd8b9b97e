"""`flashc init` writes a project in the seed's layout that is ready at once: it passes ruff,
analyzes and builds without a diagnostic, deploys, and its app's routes reach the workers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner
from test_worker_image import _cpu_torch

from flashc._toml import loads as toml_loads
from flashc.cli import main
from flashc.init import plan_project, project_slug

REPO = Path(__file__).resolve().parent.parent
LAYOUT = [
    "main.py",
    "workers/__init__.py",
    "workers/gpu/__init__.py",
    "workers/gpu/endpoint.py",
    "workers/cpu/__init__.py",
    "workers/cpu/endpoint.py",
    "requirements.txt",
    "pyproject.toml",
    ".env.example",
    ".gitignore",
    ".flashignore",
    "README.md",
]
NEXT = """
next:
  flashc run        # deploys the workers here and serves the app at http://localhost:8888
                    # open http://localhost:8888/docs to call them
  flashc deploy     # the workers alone; --target runpod with RUNPOD_API_KEY in .env
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_the_project_is_planned_from_its_folders_name() -> None:
    files = {f.path: f.text for f in plan_project("My Shop")}
    assert list(files) == LAYOUT
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
    assert toml_loads(files["pyproject.toml"])["project"]["name"] == "my-shop"
    assert 'title="My Shop",' in files["main.py"]
    assert '@Endpoint(name="my-shop-gpu", gpu=GpuGroup.ANY, workers=3)' in files["workers/gpu/endpoint.py"]
    assert '@Endpoint(name="my-shop-cpu", cpu="cpu3c-1-2", workers=3)' in files["workers/cpu/endpoint.py"]
    assert files["README.md"].startswith("# My Shop\n")
    ignored = files[".gitignore"].splitlines()
    assert ".env" in ignored and ".flash/" in ignored and ".env.example" not in ignored
    assert [line for line in files[".env.example"].splitlines() if "=" in line] == [
        "# RUNPOD_API_KEY=your_api_key_here",
        "# FLASH_HOST=localhost",
        "# FLASH_PORT=8888",
    ]


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("shop", "shop"),
        ("My Project_2", "my-project-2"),
        ("--Café--", "caf"),
        ("", "flash-app"),
        ("日本", "flash-app"),
        ("a" * 50, "a" * 40),
        ("a" * 39 + "-b", "a" * 39),
    ],
)
def test_the_slug_names_the_distribution_and_the_resources(name: str, slug: str) -> None:
    assert project_slug(name) == slug


def test_a_name_python_cannot_hold_as_it_is_still_makes_valid_python() -> None:
    files = {f.path: f.text for f in plan_project('a"b\\c \udcff')}
    compile(files["main.py"], "main.py", "exec")
    assert 'title="a\\"b\\\\c ?",' in files["main.py"]


def test_init_fills_the_current_folder_and_says_what_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(tmp_path / "shop")
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert result.output == "wrote 12 files:\n" + "".join(f"  {p}\n" for p in LAYOUT) + NEXT
    shop = tmp_path / "shop"
    assert sorted(p.relative_to(shop).as_posix() for p in shop.rglob("*") if p.is_file()) == sorted(
        [*LAYOUT, "notes.txt"]
    )
    assert '@Endpoint(name="shop-gpu"' in (shop / "workers/gpu/endpoint.py").read_text()


def test_init_makes_a_folder_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("init", "apps/Image Tools")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote 12 files in apps/Image Tools:\n  main.py\n")
    assert result.output.endswith("\nnext:\n  cd apps/Image Tools\n" + NEXT.split("next:\n", 1)[1])
    assert 'name = "image-tools"' in (tmp_path / "apps/Image Tools/pyproject.toml").read_text()
    assert oct((tmp_path / "apps/Image Tools/main.py").stat().st_mode & 0o777) == "0o644"


def test_init_refuses_to_overwrite_naming_every_file_and_force_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop" / "workers" / "cpu").mkdir(parents=True)
    (tmp_path / "shop" / "workers" / "cpu" / "endpoint.py").write_text("# mine\n")
    (tmp_path / "shop" / ".gitignore").write_text("mine/\n")
    result = cli("init", "shop")
    assert result.exit_code == 2
    assert result.output == (
        "flashc: error: 2 of the project's files exist already in shop: workers/cpu/endpoint.py, .gitignore\n"
        "  = hint: choose a new or empty folder, or pass --force to overwrite them\n"
    )
    assert not (tmp_path / "shop" / "main.py").exists()  # nothing written
    assert (tmp_path / "shop" / ".gitignore").read_text() == "mine/\n"

    result = cli("init", "shop", "--force")
    assert result.exit_code == 0, result.output
    assert "  workers/cpu/endpoint.py  (replaced)\n" in result.output
    assert "  .gitignore  (replaced)\n" in result.output and "  main.py\n" in result.output
    assert ".flash/" in (tmp_path / "shop" / ".gitignore").read_text()
    assert not list((tmp_path / "shop").rglob("*.tmp"))


def test_init_refuses_what_force_cannot_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x\n")
    result = cli("init", "afile")
    assert result.exit_code == 2 and "afile" in result.output and "is a file" in result.output
    Path("shop").mkdir()
    Path("shop/workers").write_text("x\n")
    Path("shop/main.py").mkdir()
    result = cli("init", "shop", "--force")
    assert result.exit_code == 2
    assert result.output == (
        "flashc: error: the project cannot be written in shop: main.py/, workers would have to be removed\n"
        "  = hint: remove them, or choose a new or empty folder\n"
    )
    assert sorted(p.name for p in Path("shop").iterdir()) == ["main.py", "workers"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh `flashc init shop`, with a flashc cache of its own."""
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "shop"
    result = cli("init", str(root))
    assert result.exit_code == 0, result.output
    return root


def test_the_generated_python_passes_ruff_with_flashcs_settings(project: Path) -> None:
    if shutil.which("ruff", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("ruff is not installed next to this Python")
    ruff = str(Path(sys.executable).parent / "ruff")
    # The project is its own first-party root (`workers`), as it is when ruff runs in it.
    settings = ["--config", str(REPO / "pyproject.toml"), "--config", f"src = [{json.dumps(str(project))}]"]
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [ruff, *args, *settings, "--no-cache"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_project_analyzes_as_two_workers_and_builds_without_a_diagnostic(project: Path) -> None:
    from flashc.analyze import analyze_project

    analysis = analyze_project(project)
    assert analysis.diagnostics == ()
    assert [(r.name, r.type, r.kind, r.compute, r.functions) for r in analysis.resources] == [
        ("shop-cpu", "CpuLiveServerless", "queue", "cpu", ("workers.cpu.endpoint:cpu_hello",)),
        ("shop-gpu", "LiveServerless", "queue", "gpu", ("workers.gpu.endpoint:gpu_hello",)),
    ]
    result = CliRunner().invoke(main, ["build", str(project)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no warning, no error
    manifest = json.loads((project / ".flash" / "flash_manifest.json").read_text())
    assert "torch" not in manifest["resources"]["shop-gpu"]["provided"]  # so no endpoint here installs it


def _app_python(project: Path) -> Path:
    """The Python `flashc run` serves the app with: Runpod's load-balanced CPU image's environment."""
    from flashc.cli import _local_settings
    from flashc.config import image_python
    from flashc.deploy.envs import ensure_env, env_spec
    from flashc.deploy.local import _default_uv, _interpreter
    from flashc.profiles import profiles

    settings = _local_settings(project)
    image = profiles()["runpod-lb-cpu"]
    python = image_python()
    spec = env_spec(python, {d.name: d.version for d in image.distributions.values()}, [image.description])
    uv = _default_uv(settings.cache_dir)
    env = ensure_env(spec, _interpreter(python), cache_dir=settings.cache_dir, index=settings.index, uv=uv)
    return Path(env.python)


_CALL_THE_APP = """
import json
from fastapi.testclient import TestClient
from main import app

client = TestClient(app)
print(json.dumps({
    "index": client.get("/").json(),
    "gpu": client.post("/gpu/hello", json={"message": "hi", "numbers": [1, 2, 3.5]}).json(),
    "cpu": client.post("/cpu/hello", json={"message": "two words"}).json(),
    "cpu default": client.post("/cpu/hello", json={}).json(),
}))
"""


@pytest.fixture
def deployed(project: Path) -> Iterator[dict[str, Any]]:
    """The project deployed on this machine; undeployed whatever happens."""
    try:
        result = cli("deploy", str(project))
        assert result.exit_code == 0, result.output
        yield json.loads((project / ".flash" / "deployment.json").read_text())
    finally:
        cli("undeploy", str(project))


def test_the_project_deploys_and_its_apps_routes_reach_the_workers(project: Path, deployed: dict[str, Any]) -> None:
    def job(resource: str, job_input: Any) -> Any:
        answer = httpx.post(
            f"{deployed['endpoints'][resource]['url']}/runsync",
            json={"input": job_input},
            headers={"Authorization": f"Bearer {deployed['key']}"},
            timeout=120,
        ).json()
        assert answer["status"] == "COMPLETED", answer
        return answer["output"]

    # As the SDK's clients send jobs: the input is the function's keyword arguments.
    gpu = job("shop-gpu", {"input_data": {"numbers": [3, 4]}})
    assert gpu == {"message": "Hello from the GPU worker!", "sum_of_squares": 25.0, "device": "cpu", "torch": None}
    assert job("shop-cpu", {"input_data": {"message": "a b c"}})["words"] == 3

    # The app as `flashc run` serves it: the load-balanced CPU image's Python, flashc's runtime as the SDK.
    import flashc_runtime

    runtime = Path(flashc_runtime.__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(_app_python(project)), "-c", _CALL_THE_APP],
        cwd=project,
        env={**env, "PYTHONPATH": os.pathsep.join([str(project), str(runtime)])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["index"] == {
        "app": "shop",
        "docs": "/docs",
        "routes": ["POST /gpu/hello", "POST /cpu/hello", "GET /"],
    }
    assert answers["gpu"] == {"message": "hi", "sum_of_squares": 17.25, "device": "cpu", "torch": None}
    assert answers["cpu"]["message"] == "two words" and answers["cpu"]["words"] == 2
    assert answers["cpu"]["python"].startswith("3.12.")  # the worker's, not flashc's
    assert answers["cpu default"]["message"] == "Hello from the CPU!"


@pytest.mark.network
def test_with_torch_declared_the_gpu_function_computes_with_torch(project: Path) -> None:
    found = _cpu_torch()
    if found is None:
        pytest.skip("no CPU build of torch in PIP_FIND_LINKS or UV_FIND_LINKS for a Python this machine has")
    endpoint = project / "workers" / "gpu" / "endpoint.py"
    text = endpoint.read_text()
    endpoint.write_text(text.replace("workers=3)", 'workers=3, dependencies=["torch"])'))
    result = cli("build", str(project), "--python-version", found[1], "-q")
    assert result.exit_code == 0, result.output
    try:
        result = cli("deploy", str(project), "--archive", str(project / ".flash" / "archive.tar.gz"))
        assert result.exit_code == 0, result.output
        deployment = json.loads((project / ".flash" / "deployment.json").read_text())
        answer = httpx.post(
            f"{deployment['endpoints']['shop-gpu']['url']}/runsync",
            json={"input": {"input_data": {"numbers": [1, 2, 3.5]}}},
            headers={"Authorization": f"Bearer {deployment['key']}"},
            timeout=120,
        ).json()
        assert answer["status"] == "COMPLETED", answer
        assert answer["output"]["sum_of_squares"] == 17.25 and answer["output"]["device"] == "cpu"
        assert answer["output"]["torch"].endswith("+cpu")
    finally:
        cli("undeploy", str(project))
