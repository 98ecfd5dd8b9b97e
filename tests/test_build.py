"""`flashc build`: analyze, render, resolve and pack into .flash/archive.tar.gz."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from wheelhouse import make_wheel

from flashc.cli import main

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


@pytest.fixture(autouse=True)
def offline_index(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo needs numpy==1.26.4: serve a tiny one from a local wheelhouse, with a private cache."""
    base = tmp_path_factory.mktemp("index")
    house = base / "house"
    make_wheel(house, "numpy", "1.26.4", payload=2000)
    config = base / "pip.conf"
    config.write_text(f"[global]\nno-index = true\nfind-links = {house}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))  # environment beats config files in pip
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(base / "cache"))
    return house


def checkout(parent: Path) -> Path:
    root = parent / "demo"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns(".flash"))
    return root


def build(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.output


def test_two_checkouts_build_the_same_bytes(tmp_path: Path) -> None:
    first, second = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    os.utime(second / "api.py", (978307200, 978307200))
    old = os.umask(0o077)
    try:
        assert build(second)[0] == 0
    finally:
        os.umask(old)
    assert build(first)[0] == 0
    digests = {hashlib.sha256((r / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() for r in (first, second)}
    assert len(digests) == 1


def test_archive_layout_and_json_summary(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    code, output = build(root, "--json")
    assert code == 0
    summary = json.loads(output)
    assert summary["resources"] == ["demo-api", "demo-cpu", "demo-gpu"]
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        names = tar.getnames()
    assert hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() == summary["sha256"]
    assert "flash_manifest.json" in names and "workers/gpu.py" in names
    assert "_flashc/flashc_runtime/handler.py" in names and "_flashc/tetra_rp/__init__.py" in names
    assert not any(n.startswith(".flash/") for n in names)  # the build's own state never ships
    assert (root / ".flash" / "flash_manifest.json").read_text().endswith("}\n")


def test_flash_as_a_file_is_refused(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    (root / ".flash").write_text("not a folder")
    code, output = build(root)
    assert code == 1
    assert "is a file, but flashc keeps its build state there" in output


def test_terminal_summary_keep_build_and_quiet(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    code, output = build(root)
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "analyzed 5 Python files: 3 resources, 4 functions"
    assert lines[1] == f"dependencies for CPython {sys.version_info.major}.{sys.version_info.minor}: 1 distribution"
    assert lines[2] == "  provided by flashc's runtime, not installed: tetra-rp"
    assert lines[3].startswith("packed ") and lines[3].endswith(f"{root / '.flash' / 'archive.tar.gz'}")
    assert lines[4].startswith("sha256 ")
    assert not (root / ".flash" / ".build").exists()
    assert build(root, "--keep-build", "--quiet") == (0, "")
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    staged = {
        p.relative_to(root / ".flash" / ".build").as_posix(): p.read_bytes()
        for p in (root / ".flash" / ".build").rglob("*")
        if p.is_file()
    }
    assert staged == members
    assert build(root, "-q") == (0, "")
    assert not (root / ".flash" / ".build").exists()  # removed again without --keep-build


def test_bad_output_and_outside_symlink_are_clear_errors(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    code, output = build(root, "-o", str(tmp_path / "missing" / "a.tar.gz"))
    assert code == 2
    assert f"flashc: error: output folder '{tmp_path / 'missing'}' does not exist" in output
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (root / "data.txt").symlink_to(secret)
    code, output = build(root)
    assert code == 1
    assert f"symlink 'data.txt' points outside the project (to '{secret}')" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()


def test_unchanged_project_is_up_to_date_and_any_change_rebuilds(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    first = json.loads(build(root, "--json")[1])
    assert first["up_to_date"] is False
    again = json.loads(build(root, "--json")[1])
    assert again["up_to_date"] is True and again["sha256"] == first["sha256"]
    code, output = build(root)
    assert code == 0 and output.startswith("up to date: no input changed since the last build\n")
    # A source edit, a touched archive or --force each make it build again.
    (root / "workers" / "cpu.py").write_text((root / "workers" / "cpu.py").read_text() + "\n# edit\n")
    edited = json.loads(build(root, "--json")[1])
    assert edited["up_to_date"] is False and edited["sha256"] != first["sha256"]
    archive = root / ".flash" / "archive.tar.gz"
    archive.write_bytes(b"tampered")
    rebuilt = json.loads(build(root, "--json")[1])
    assert rebuilt["up_to_date"] is False and rebuilt["sha256"] == edited["sha256"]
    assert json.loads(build(root, "--json", "--force")[1])["up_to_date"] is False


def project_with(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


GPU_APP = """
from tetra_rp import LiveServerless, remote

@remote(LiveServerless(name="gpu"), dependencies=["sentence-transformers"])
def embed(texts):
    return texts
"""


def test_dependencies_go_under_flashc_site_and_gpu_packages_are_left_out(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "sentence-transformers", "3.0.0", requires=["torch", "numpy"])
    make_wheel(offline_index, "torch", "2.3.0", requires=["nvidia-cublas-cu12", "triton", "numpy"], payload=50_000)
    make_wheel(offline_index, "triton", "2.3.0", payload=20_000)
    make_wheel(offline_index, "nvidia-cublas-cu12", "12.1.3.1", payload=30_000)
    root = project_with(tmp_path, {"app.py": GPU_APP})
    code, output = build(root, "--json")
    assert code == 0, output
    summary = json.loads(output)
    # torch is on every GPU worker image: it, and what only it needed, stay out of the bundle,
    # and are not even downloaded.
    assert summary["dependencies"] == ["numpy==1.26.4", "sentence-transformers==3.0.0"]
    assert summary["excluded"] == ["torch"]
    torch_wheel = next(offline_index.glob("torch-*.whl"))
    assert summary["excluded_size"] == torch_wheel.stat().st_size  # the index's size: never downloaded
    cache = Path(os.environ["FLASHC_CACHE_DIR"])
    assert not list(cache.glob("wheels/*/torch-*")) and not list(cache.glob("wheels/*/nvidia*"))
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        names = tar.getnames()
    assert "_flashc/site/numpy/__init__.py" in names
    assert "_flashc/site/sentence_transformers-3.0.0.dist-info/METADATA" in names
    assert not any(n.startswith(("_flashc/site/torch", "_flashc/site/triton")) for n in names)
    # --keep-gpu-packages ships them; --exclude leaves out anything else, with what it alone needed.
    kept = json.loads(build(root, "--json", "--keep-gpu-packages")[1])
    assert "torch==2.3.0" in kept["dependencies"] and "triton==2.3.0" in kept["dependencies"]
    assert json.loads(build(root, "--json", "--exclude", "sentence-transformers")[1])["dependencies"] == []


def test_over_the_size_limit_keeps_the_previous_archive_and_names_the_largest(
    tmp_path: Path, offline_index: Path
) -> None:
    make_wheel(offline_index, "bigdata", "1.0", files={"bigdata/blob.bin": os.urandom(1_500_000)})
    root = project_with(
        tmp_path,
        {
            "app.py": "from tetra_rp import CpuLiveServerless, remote\n\n"
            '@remote(CpuLiveServerless(name="cpu"), dependencies=["bigdata"])\ndef f(x):\n    return x\n',
        },
    )
    (root / ".flash").mkdir()
    (root / ".flash" / "archive.tar.gz").write_bytes(b"previous")
    code, output = build(root, "--max-size", "1")
    assert code == 1
    assert "flashc: error: the archive would be" in output and "over the limit of 1,000,000 bytes" in output
    assert "bigdata" in output and "--exclude torch on GPU images" in output
    assert (root / ".flash" / "archive.tar.gz").read_bytes() == b"previous"


def test_lock_pins_hashes_and_build_verifies_them(tmp_path: Path, offline_index: Path) -> None:
    root = checkout(tmp_path)
    result = CliRunner().invoke(main, ["lock", str(root)])
    assert result.exit_code == 0, result.output
    lock = json.loads((root / "flash.lock").read_text())
    assert [w["name"] for w in lock["wheels"]] == ["numpy"]
    assert build(root)[0] == 0
    # A wheel in the cache that no longer matches its pinned hash stops the build.
    cache = Path(os.environ["FLASHC_CACHE_DIR"])
    wheel = next(cache.glob("wheels/*/numpy-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    code, output = build(root, "--force")
    assert code == 1
    assert "sha256" in output and "run `flashc lock` if that is expected" in output


def test_gpu_packages_stay_when_a_cpu_resource_needs_them(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "torch", "2.3.0", requires=["triton"])
    make_wheel(offline_index, "triton", "2.3.0")
    make_wheel(offline_index, "torchmetrics", "1.0", requires=["torch"])
    gpu_only = project_with(
        tmp_path / "a",
        {
            "app.py": "from tetra_rp import CpuLiveServerless, LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="gpu"), dependencies=["torch"])\ndef train(x):\n    return x\n\n'
            '@remote(CpuLiveServerless(name="cpu"), dependencies=["numpy"])\ndef prep(x):\n    return x\n',
        },
    )
    # torch is needed only on the GPU resource, whose image has it: left out.
    assert json.loads(build(gpu_only, "--json")[1])["dependencies"] == ["numpy==1.26.4"]
    shared = project_with(
        tmp_path / "b",
        {
            "app.py": "from tetra_rp import CpuLiveServerless, LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="gpu"), dependencies=["torch"])\ndef train(x):\n    return x\n\n'
            '@remote(CpuLiveServerless(name="cpu"), dependencies=["torchmetrics"])\ndef score(x):\n    return x\n',
        },
    )
    # The CPU worker needs torch through torchmetrics: it ships.
    assert json.loads(build(shared, "--json")[1])["dependencies"] == [
        "torch==2.3.0",
        "torchmetrics==1.0",
        "triton==2.3.0",
    ]


def test_same_lock_and_sources_give_the_same_archive(tmp_path: Path) -> None:
    first, second = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    assert CliRunner().invoke(main, ["lock", str(first)]).exit_code == 0
    shutil.copy(first / "flash.lock", second / "flash.lock")
    digests = [json.loads(build(root, "--json")[1])["sha256"] for root in (first, second)]
    assert digests[0] == digests[1]
    with tarfile.open(first / ".flash" / "archive.tar.gz") as tar:
        assert "_flashc/site/numpy/__init__.py" in tar.getnames()


def test_conflicting_pins_between_functions_stop_the_build_naming_both(tmp_path: Path) -> None:
    root = project_with(
        tmp_path,
        {
            "a.py": "from tetra_rp import LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="a"), dependencies=["numpy==1.26.2"])\ndef f(x):\n    return x\n',
            "b.py": "from tetra_rp import LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="b"), dependencies=["numpy>=2"])\ndef g(x):\n    return x\n',
        },
    )
    code, output = build(root)
    assert code == 1
    assert "conflicting requirements for numpy: 'numpy==1.26.2' (dependencies of a:f" in output
    assert "'numpy>=2' (dependencies of b:g" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()
