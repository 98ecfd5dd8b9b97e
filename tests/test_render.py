"""Stage 3, render: generated handlers and manifest for every buildable fixture."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flashc_runtime.manifest import load_manifest
from syrupy.assertion import SnapshotAssertion

from flashc.manifest import manifest_json, parse_manifest
from flashc.pipeline import generate
from flashc.render import MANIFEST_PATH, RenderedFile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
BUILDABLE = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("err_"))
# seed_style imports python-dotenv at module level: the bundle gets it from the dependency stage,
# which this test does not run, so its handlers cannot be imported here.
# Fixtures whose modules import what only a worker image has (fastapi, torch) or nothing has: their
# handlers import in an endpoint's environment, not in flashc's own.
NEEDS_A_WORKER = {"seed_style", "worker_image", "unprovided_import", "gpu_torch", "endpoint_api", "mothership"}
IMPORTABLE = [name for name in BUILDABLE if name not in NEEDS_A_WORKER]


def rendered(name: str) -> tuple[RenderedFile, ...]:
    return generate(FIXTURES / name, python_version="3.11", use_cache=False).files


@pytest.mark.parametrize("name", BUILDABLE)
def test_generated_files_match_snapshot(name: str, snapshot: SnapshotAssertion) -> None:
    assert {f.path: f.text for f in rendered(name)} == snapshot


@pytest.mark.parametrize("name", BUILDABLE)
def test_rendering_twice_gives_the_same_bytes(name: str) -> None:
    assert rendered(name) == rendered(name)


def test_generated_python_compiles_and_passes_ruff(tmp_path: Path) -> None:
    for name in BUILDABLE:
        for f in rendered(name):
            if f.path.endswith(".py"):
                compile(f.text, f.path, "exec")
                target = tmp_path / name / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f.text)
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--isolated", "--extend-select", "W,I", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Let a test import a fixture's modules, then forget them again."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


@pytest.mark.parametrize("name", IMPORTABLE)
def test_runtime_loads_the_manifest_and_imports_every_handler(
    name: str, tmp_path: Path, isolated_imports: None
) -> None:
    # The contract between compiler and runtime: with the generated files and the project on
    # sys.path (the runtime first), every handler imports and hands the runtime a callable handler.
    for f in rendered(name):
        target = tmp_path / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text)
    manifest = parse_manifest((tmp_path / MANIFEST_PATH).read_text())
    # The runtime checks the same file against the schema it ships, without pydantic.
    assert load_manifest(tmp_path / MANIFEST_PATH) == json.loads(manifest_json(manifest))
    sys.path[:0] = [str(tmp_path / "_flashc"), str(RUNTIME), str(FIXTURES / name), str(FIXTURES / name / "src")]
    for resource in manifest.resources.values():
        module = importlib.import_module(resource.handler_module)
        assert callable(module.handler)
        served = getattr(module, "REGISTRY", None) or getattr(module, "ROUTES", None)
        assert served is not None and len(served) == len(resource.functions)


def test_the_site_folders_of_a_lock_are_rendered(tmp_path: Path) -> None:
    """A project whose resources each have a site folder renders them from pylock.toml, no resolver needed."""
    import shutil

    from flashc.deps.choose import SitePlan
    from flashc.deps.lock import Lock, write_lock
    from flashc.deps.models import Site
    from flashc.deps.target import Target

    root = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", root, ignore=shutil.ignore_patterns(".flash"))
    plans = tuple(
        SitePlan(Site(f"_flashc/sites/{slug}", (name,), ()), ())
        for name, slug in (("demo-api", "demo_api"), ("demo-cpu", "demo_cpu"), ("demo-gpu", "demo_gpu"))
    )
    write_lock(root, Lock(Target("3.11"), "0" * 64, plans, "numpy<2 and numpy>=2"))
    manifest = json.loads(next(f.text for f in generate(root, use_cache=False).files if f.path == MANIFEST_PATH))
    assert {name: r["site"] for name, r in manifest["resources"].items()} == {
        "demo-api": "_flashc/sites/demo_api",
        "demo-cpu": "_flashc/sites/demo_cpu",
        "demo-gpu": "_flashc/sites/demo_gpu",
    }
