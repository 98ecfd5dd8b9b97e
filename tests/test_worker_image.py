"""Local endpoints run where the code will run: the worker image's Python and distributions, its
variables and the resource's env, a network volume at /runpod-volume; the build checks imports."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from caches import own_cache
from click.testing import CliRunner

from flashc.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FLASHC_ENV = Path(sys.prefix).resolve()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def call(root: Path, resource: str, function: str, *args: Any) -> Any:
    """Run `function` on the deployed `resource` through Runpod's /runsync, as a client would."""
    deployment = json.loads((root / ".flash" / "deployment.json").read_text())
    endpoint = deployment["endpoints"][resource]
    answer = httpx.post(
        f"{endpoint['url']}/runsync",
        json={"input": {"function": function, "args": list(args)}},
        headers={"Authorization": f"Bearer {deployment['key']}"},
        timeout=120,
    ).json()
    assert answer["status"] == "COMPLETED", answer
    return answer["output"]


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the fixture named by the test's parameter, undeployed whatever happens."""
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, root, ignore=shutil.ignore_patterns(".flash"))
    yield root
    cli("undeploy", str(root))


@pytest.mark.parametrize("project", ["worker_image"], indirect=True)
def test_a_worker_runs_in_its_images_environment_with_its_env_and_nothing_of_flashcs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHC_TEST_TOKEN", "hf_" + "x" * 34)  # the shell's, for ${FLASHC_TEST_TOKEN}
    monkeypatch.setenv("FLASHC_TEST_LEAK", "from the shell")  # referenced by nothing: must not reach it
    code, output = cli("deploy", str(project))
    assert code == 0, output
    facts = call(project, "image-facts", "facts")
    # fastapi and pydantic are imported at module level without being declared: the image has them.
    assert facts["fastapi"] == "0.128.0" and facts["python"] == "3.12"
    assert not Path(facts["executable"]).resolve().is_relative_to(FLASHC_ENV)
    assert not any(Path(p).resolve().is_relative_to(FLASHC_ENV) for p in facts["path"] if p)
    assert facts["found"] == {"libcst": False, "jinja2": True, "cloudpickle": True}  # flashc's own: absent
    env = facts["env"]
    assert env["GREETING"] == "hello from env" and env["FROM_DOTENV"] == "a value from .env"
    assert env["HF_TOKEN"] == "hf_" + "x" * 34
    assert env["RUNPOD_ENDPOINT_ID"] == "local-image_facts" and env["FLASH_RESOURCE_NAME"] == "image-facts"
    assert env["TZ"] == "Etc/UTC"  # the image's
    assert "FLASHC_TEST_LEAK" not in env and "VIRTUAL_ENV" not in env
    assert not (set(env) & {k for k in os.environ if k.startswith(("PYTEST", "PIP_", "UV_"))})
    # The secret went to the process, never into the archive or its manifest.
    with tarfile.open(project / ".flash" / "archive.tar.gz") as tar:
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            assert b"x" * 34 not in data, member.name
            assert b"a value from .env" not in data, member.name
    manifest = json.loads((project / ".flash" / "flash_manifest.json").read_text())
    assert manifest["resources"]["image-facts"]["config"]["env"]["HF_TOKEN"] == "${FLASHC_TEST_TOKEN}"
    assert manifest["resources"]["image-facts"]["image"] == "runpod-cpu"
    assert {"fastapi", "pydantic"} <= set(manifest["resources"]["image-facts"]["provided"])


@pytest.mark.parametrize("project", ["worker_image"], indirect=True)
def test_an_env_reference_nothing_sets_stops_the_deploy_before_anything_starts(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASHC_TEST_TOKEN", raising=False)
    code, output = cli("deploy", str(project))
    assert code == 2
    assert output.endswith(
        "flashc: error: env values refer to variables that neither the shell nor .env sets: "
        "FLASHC_TEST_TOKEN (env HF_TOKEN of image-facts)\n"
        "  = hint: set them in the project's .env file or in the shell that deploys (or give a default: "
        "${NAME:-value})\n"
    )
    assert not (project / ".flash" / "deployment.json").exists()


def test_a_literal_secret_in_env_is_a_warning_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "secret"
    root.mkdir()
    (root / "app.py").write_text(
        "from tetra_rp import CpuLiveServerless, remote\n\n"
        'cpu = CpuLiveServerless(name="cpu", env={"HF_TOKEN": "hf_' + "a" * 34 + '", "MODEL": "gpt2"})\n\n\n'
        "@remote(cpu)\ndef f():\n    return 1\n"
    )
    result = CliRunner().invoke(main, ["build", str(root), "-q"])
    assert result.exit_code == 0
    assert result.output.startswith(
        "app.py:3:37: warning: the env value of HF_TOKEN in CpuLiveServerless looks like a secret: it would be "
        "written into flash_manifest.json, inside the archive\n"
    )
    assert 'refer to it instead, env={"HF_TOKEN": "${HF_TOKEN}"}' in result.output
    assert "MODEL" not in result.output


def test_an_import_nothing_provides_fails_the_build_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "unprovided_import"
    shutil.copytree(FIXTURES / "unprovided_import", root)
    code, output = cli("build", str(root))
    assert code == 1
    assert output.startswith(
        "app.py:2:6: error: 'sklearn' is imported when the endpoint 'fit' starts, but neither the archive nor the "
        "worker image (Runpod's CPU image for queue-based resources) provides it\n"
    )
    assert "= hint: add scikit-learn to the function's dependencies or to requirements.txt" in output
    # Inside the function body it fails only that call: a warning. numpy is declared: no word about it.
    assert "app.py:8:12: warning: 'cv2' is imported when 'fit' runs fit()" in output
    assert "'numpy'" not in output
    assert output.endswith("flashc: error: 1 error found\n")
    assert not (root / ".flash" / "archive.tar.gz").exists()


def _volumes_problem() -> str | None:
    from flashc.deploy.volumes import mount_problem

    return mount_problem()


@pytest.mark.parametrize("project", ["shared_volume"], indirect=True)
def test_two_endpoints_share_files_through_their_network_volume(project: Path) -> None:
    problem = _volumes_problem()
    if problem is not None:
        pytest.skip(f"no network volume here: {problem}")
    code, output = cli("deploy", str(project))
    assert code == 0, output
    assert call(project, "writer", "save", "note.txt", "written by writer") == "/runpod-volume/note.txt"
    assert call(project, "reader", "load", "note.txt") == "written by writer"
    assert (project / ".flash" / "volumes" / "models" / "note.txt").read_text() == "written by writer"


def _cpu_torch() -> tuple[str, str] | None:
    """A CPU build of torch in a configured find-links folder, and the Python it is for: (folder, "3.11")."""
    for folder in (os.environ.get("PIP_FIND_LINKS", "") + " " + os.environ.get("UV_FIND_LINKS", "")).split():
        for wheel in sorted(glob.glob(os.path.join(folder.replace(",", " ").split()[0], "torch-*+cpu-cp3*-*.whl"))):
            tag = Path(wheel).name.split("-")[2]  # cp311
            python = f"3.{tag[3:]}"
            if glob.glob(f"{Path.home()}/.pyenv/versions/{python}.*/bin/python{python}") or shutil.which(
                f"python{python}"
            ):
                return folder, python
    return None


@pytest.mark.network
@pytest.mark.parametrize("project", ["gpu_torch"], indirect=True)
def test_a_gpu_function_importing_torch_answers_on_a_machine_without_a_gpu(project: Path) -> None:
    found = _cpu_torch()
    if found is None:
        pytest.skip("no CPU build of torch in PIP_FIND_LINKS or UV_FIND_LINKS for a Python this machine has")
    _, python = found
    code, output = cli("build", str(project), "--python-version", python, "-q")
    assert code == 0, output
    manifest = json.loads((project / ".flash" / "flash_manifest.json").read_text())
    assert "torch" in manifest["resources"]["gpu-sum"]["provided"]  # the GPU image has it: not in the archive
    code, output = cli("deploy", str(project), "--archive", str(project / ".flash" / "archive.tar.gz"))
    assert code == 0, output
    answer = call(project, "gpu-sum", "total", [1.0, 2.0, 3.5])
    assert answer["sum"] == 6.5 and answer["device"] == "cpu" and answer["torch"].endswith("+cpu")


def test_apt_packages_missing_here_are_named_once_before_the_endpoints_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_cache(tmp_path / "cache", monkeypatch)
    root = tmp_path / "media"
    root.mkdir()
    (root / "app.py").write_text(
        "from tetra_rp import CpuLiveServerless, remote\n\n\n"
        '@remote(CpuLiveServerless(name="media"), system_dependencies=["libflashc-test0"])\n'
        "def probe():\n    return 1\n\n\n"
        '@remote(CpuLiveServerless(name="media"), system_dependencies=["libflashc-test0"])\n'
        "def probe_again():\n    return 2\n"
    )
    try:
        code, output = cli("deploy", str(root))
        assert code == 0, output
        warning = (
            "flashc: warning: system packages the workers install with apt are missing on this machine: "
            "libflashc-test0 (for media; looked "
        )
        assert output.count(warning) == 1
        assert "libflashc-test0" in output.split("\n", 1)[0] or "apt-get install -y libflashc-test0" in output
        assert call(root, "media", "probe") == 1  # a warning: the endpoint still runs
    finally:
        cli("undeploy", str(root))


def test_when_torch_cannot_be_had_deploy_names_the_functions_that_need_it(tmp_path: Path) -> None:
    from flashc.deploy import LocalSettings, LocalTarget
    from flashc.deploy.interpreters import Interpreter
    from flashc.errors import ProjectError
    from flashc.profiles import profiles

    def uv(args: Any, cwd: Path) -> tuple[int, str, str]:
        if args[0] == "venv":
            (Path(args[1]) / "bin").mkdir(parents=True)
            (Path(args[1]) / "bin" / "python").touch()
            return 0, "", ""
        if args[:2] == ["pip", "compile"]:  # no build of torch anywhere
            return 1, "", "error: No solution found when resolving dependencies"
        return 0, "", ""

    resources = {
        "gpu-sum": {"image": "runpod-gpu", "provided": ["torch"], "functions": ["model:total", "model:mean"]},
        "gpu-other": {"image": "runpod-gpu", "provided": [], "functions": ["other:f"]},
    }
    target = LocalTarget(LocalSettings(tmp_path / "cache", uv=uv))
    images = {name: profiles()["runpod-gpu"] for name in resources}
    with pytest.raises(ProjectError) as raised:
        target._environments(resources, images, "3.12", Interpreter("/usr/bin/python3", "3.12.1"), uv, {})
    assert "these functions would fail: model:mean, model:total (of gpu-sum, whose worker image has torch)" in str(
        raised.value
    )
    assert not list((tmp_path / "cache" / "envs").glob("py3.12-*/"))  # nothing half-made is kept
