"""A plain (not editable) install of the wheel gives a working `flashc`, with the runtime and templates inside."""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "fixtures" / "demo"
DEMO_FUNCTIONS = ["api:greet", "api:health", "workers.cpu:summarize", "workers.gpu:normalize"]

# With hatchling installed here the wheel builds offline; otherwise pip's build isolation fetches
# it from the package index.
_HATCHLING_HERE = importlib.util.find_spec("hatchling") is not None
pytestmark = [] if _HATCHLING_HERE else [pytest.mark.network]


def run(args: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 300) -> str:
    # No PYTHONPATH: the installed copy must be found on its own, never through the repo.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def repo_templates() -> list[str]:
    folder = REPO / "templates"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    isolation = ["--no-build-isolation"] if _HATCHLING_HERE else []
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation, "-w", out, REPO])
    (built,) = out.glob("flashc-*.whl")
    return built


def test_wheel_holds_both_packages_the_templates_and_the_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())

    for expected in ("flashc/cli.py", "flashc/__main__.py", "flashc_runtime/__init__.py", "flashc_runtime/py.typed"):
        assert expected in names
    sources = [
        *(f"flashc/{p.relative_to(REPO / 'flashc').as_posix()}" for p in (REPO / "flashc").rglob("*.py")),
        *(
            f"flashc_runtime/{p.relative_to(REPO / 'runtime/flashc_runtime').as_posix()}"
            for p in (REPO / "runtime" / "flashc_runtime").rglob("*.py")
        ),
    ]
    assert sorted(set(sources) - set(names)) == []

    shipped_templates = sorted(n.removeprefix("flashc/templates/") for n in names if n.startswith("flashc/templates/"))
    assert [n for n in shipped_templates if not n.endswith("/")] == repo_templates()

    top = {n.split("/")[0] for n in names}
    # flashc, its runtime, and the Flash SDK names (aliases of the runtime) that seed-style code imports
    assert {t for t in top if not t.endswith(".dist-info")} == {"flashc", "flashc_runtime", "runpod_flash", "tetra_rp"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert scripts["console_scripts"]["flashc"] == "flashc.cli:main"


def test_installed_wheel_analyzes_the_demo_from_its_own_site_packages(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel])
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    # Dependencies (click, libcst...) come from the dev venv's site-packages. A folder added by a
    # .pth file is not scanned for .pth files itself, so the dev venv's editable-install .pth,
    # which points at the repo, stays inactive.
    dev_site = Path(sysconfig.get_path("purelib"))
    assert dev_site.name == "site-packages" and dev_site.resolve() != REPO.resolve()
    (site / "_dev_dependencies.pth").write_text(f"{dev_site}\n")

    project = shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns(".flash", "__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    code = "import sys, flashc, flashc_runtime; print(flashc.__file__, flashc_runtime.__file__, *sys.path)"
    where = run([python, "-c", code], cwd=elsewhere).split()
    flashc_file, runtime_file, *path = (Path(p) for p in where)
    assert flashc_file == site / "flashc" / "__init__.py"
    assert runtime_file == site / "flashc_runtime" / "__init__.py"
    assert REPO not in path and REPO / "runtime" not in path

    installed = site / "flashc" / "templates"
    shipped = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file())
    assert shipped == repo_templates()

    output = run([venv / "bin" / "flashc", "analyze", project], cwd=elsewhere)
    for function in DEMO_FUNCTIONS:
        assert function in output
    assert "3 resources, 4 functions" in output
