"""The build's import check against each resource's worker image: what the code imports from the
image is a requirement too, an image of one's own ships everything, and a problem is said once."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from wheelhouse import make_wheel, serve_locally, write_project

from flashc.cli import main


@pytest.fixture(autouse=True)
def house(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local index, with a private cache: each test puts the wheels it needs in it."""
    return serve_locally(tmp_path_factory.mktemp("index"), monkeypatch)


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    return write_project(tmp_path / "proj", files)


def build(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.output


def summary(root: Path) -> dict[str, object]:
    result = CliRunner().invoke(main, ["build", str(root), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def manifest(root: Path) -> dict[str, object]:
    return json.loads((root / ".flash" / "flash_manifest.json").read_text())  # type: ignore[no-any-return]


CPU_WORKER = """from fastapi import FastAPI
from tetra_rp import CpuServerlessEndpoint, remote

app = FastAPI()

@remote(CpuServerlessEndpoint(name="api"), dependencies=["pydantic<2"])
def handle(x):
    return x
"""


def test_an_image_package_the_code_imports_is_resolved_with_the_resource_s_requirements(
    tmp_path: Path, house: Path
) -> None:
    # The CPU image has fastapi 0.128.0 on pydantic 2; the function asks for pydantic<2.
    make_wheel(house, "fastapi", "0.128.0", requires=["pydantic>=2"])
    make_wheel(house, "fastapi", "0.99.1", requires=["pydantic>=1.7,<2"])
    make_wheel(house, "pydantic", "2.12.5")
    make_wheel(house, "pydantic", "1.10.13")
    root = project(tmp_path, {"worker.py": CPU_WORKER})
    code, output = build(root)
    assert code == 0, output
    # The image's fastapi would break on the pydantic the function ships: a fastapi that fits ships too.
    assert (
        "worker.py:1:1: warning: fastapi 0.99.1 ships although Runpod's CPU image for queue-based resources has 0.128.0"
        in output
    )
    assert sorted(summary(root)["dependencies"]) == ["fastapi==0.99.1", "pydantic==1.10.13"]  # type: ignore[arg-type]
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        assert "_flashc/site/fastapi/__init__.py" in tar.getnames()


def test_an_image_package_no_version_of_which_fits_is_an_error_at_its_import(tmp_path: Path, house: Path) -> None:
    make_wheel(house, "fastapi", "0.128.0", requires=["pydantic>=2"])
    make_wheel(house, "pydantic", "2.12.5")
    make_wheel(house, "pydantic", "1.10.13")
    root = project(tmp_path, {"worker.py": CPU_WORKER})
    code, output = build(root)
    assert code == 1
    assert "worker.py:1:1: error: the requirements of resource 'api' cannot be installed together" in output
    assert "1 | from fastapi import FastAPI" in output  # the import that needs it, which nothing declares
    assert "worker.py:7:1: note: 'pydantic<2' is required here" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()


def test_an_image_package_the_code_imports_at_the_image_s_version_is_left_out(tmp_path: Path, house: Path) -> None:
    make_wheel(house, "fastapi", "0.128.0", requires=["pydantic>=2"])
    make_wheel(house, "pydantic", "2.12.5")
    root = project(tmp_path, {"worker.py": CPU_WORKER.replace('dependencies=["pydantic<2"]', "")})
    code, output = build(root)
    assert code == 0, output
    assert "warning" not in output
    assert summary(root)["dependencies"] == []
    assert manifest(root)["resources"]["api"]["provided"] == ["fastapi", "pydantic"]  # type: ignore[index]


CUSTOM = """from tetra_rp import ServerlessEndpoint, remote

import sklearn

gpu = ServerlessEndpoint(name="own", imageName="myorg/trainer:1.0")

@remote(gpu, dependencies=["torch"])
def train(x):
    return x
"""


def test_an_image_of_one_s_own_ships_every_dependency_and_missing_imports_are_warnings(
    tmp_path: Path, house: Path
) -> None:
    make_wheel(house, "torch", "2.9.1")
    root = project(tmp_path, {"app.py": CUSTOM})
    code, output = build(root)
    assert code == 0, output
    # flashc cannot know what myorg/trainer has: sklearn may be there, so no error, but a word.
    assert "app.py:3:8: warning: 'sklearn' is imported when the endpoint 'own' starts" in output
    # torch is on Runpod's GPU images, not necessarily on this one: it ships.
    assert summary(root)["dependencies"] == ["torch==2.9.1"]
    resource = manifest(root)["resources"]["own"]  # type: ignore[index]
    assert resource["image"] == "custom" and resource["provided"] == []


def test_an_import_reached_by_two_resources_is_said_once_as_the_worse(tmp_path: Path) -> None:
    files = {
        "common.py": "import sklearn\n",
        "cpu.py": "from tetra_rp import CpuServerlessEndpoint, remote\n\n"
        '@remote(CpuServerlessEndpoint(name="lazy"))\ndef later(x):\n    import common\n    return x\n',
        "gpu.py": "from tetra_rp import LiveServerless, remote\nimport common\n\n"
        '@remote(LiveServerless(name="eager"))\ndef now(x):\n    return x\n',
    }
    code, output = build(project(tmp_path, files))
    assert code == 1
    assert output.count("common.py:1:8:") == 1
    assert "common.py:1:8: error: 'sklearn' is imported when the endpoint 'eager' starts" in output


def test_a_project_module_named_like_an_image_package_is_a_warning(tmp_path: Path) -> None:
    files = {
        "app.py": "from tetra_rp import CpuServerlessEndpoint, remote\nimport requests\n\n"
        '@remote(CpuServerlessEndpoint(name="api"))\ndef get(x):\n    return requests.fetch(x)\n',
        "requests.py": "def fetch(x):\n    return x\n",
        "tests/__init__.py": "",
    }
    code, output = build(project(tmp_path, files))
    assert code == 0, output
    assert "requests.py: warning: the project's 'requests' comes before requests of Runpod's CPU image" in output
    assert "tests" not in output  # every project may have a tests package


def test_an_import_marked_flashc_ignore_passes_the_build(tmp_path: Path) -> None:
    files = {
        "app.py": "from tetra_rp import CpuServerlessEndpoint, remote\n"
        "import vendored_thing  # flashc: ignore\n\n"
        '@remote(CpuServerlessEndpoint(name="api"))\ndef get(x):\n    return x\n',
    }
    code, output = build(project(tmp_path, files))
    assert code == 0, output
    assert "vendored_thing" not in output
