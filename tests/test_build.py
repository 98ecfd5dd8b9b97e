"""`flashc build`: analyze, render, resolve and pack into .flash/archive.tar.gz."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from flashc_runtime.unpack import unpack
from wheelhouse import make_wheel, serve_locally, write_project

from flashc.cli import main

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


@pytest.fixture(autouse=True)
def offline_index(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo needs numpy==1.26.4: serve a tiny one from a local wheelhouse, with a private cache."""
    house = serve_locally(tmp_path_factory.mktemp("index"), monkeypatch)
    make_wheel(house, "numpy", "1.26.4", payload=2000)
    return house


def checkout(parent: Path) -> Path:
    root = parent / "demo"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns(".flash"))
    return root


def build(root: Path, *args: str) -> tuple[int, str]:
    """The exit code and what the build printed: with --json, only the JSON on stdout (not the warnings)."""
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.stdout if "--json" in args and result.exit_code == 0 else result.output


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
    assert lines[1] == "dependencies for CPython 3.12: 1 distribution"  # the worker images' Python
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
    return write_project(tmp_path / "proj", files)


GPU_APP = """
from tetra_rp import LiveServerless, remote

@remote(LiveServerless(name="gpu"), dependencies=["sentence-transformers"])
def embed(texts):
    return texts
"""


def test_dependencies_go_under_flashc_site_and_gpu_packages_are_left_out(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "sentence-transformers", "3.0.0", requires=["torch", "numpy"])
    # The versions Runpod's GPU image has (flashc/profiles/runpod-gpu.toml).
    make_wheel(offline_index, "torch", "2.9.1", requires=["nvidia-cublas-cu12", "triton", "numpy"], payload=50_000)
    make_wheel(offline_index, "triton", "3.5.1", payload=20_000)
    make_wheel(offline_index, "nvidia-cublas-cu12", "12.1.3.1", payload=30_000)
    root = project_with(tmp_path, {"app.py": GPU_APP})
    code, output = build(root, "--json")
    assert code == 0, output
    summary = json.loads(output)
    # torch is on every GPU worker image: it, and what only it needed, stay out of the bundle,
    # and are not even downloaded.
    assert summary["dependencies"] == ["numpy==1.26.4", "sentence-transformers==3.0.0"]
    assert summary["excluded"] == ["nvidia-cublas-cu12", "torch", "triton"]
    left_out = [next(offline_index.glob(f"{n}-*.whl")) for n in ("torch", "triton", "nvidia_cublas_cu12")]
    assert summary["excluded_size"] == sum(w.stat().st_size for w in left_out)  # the lock's sizes: never downloaded
    cache = Path(os.environ["FLASHC_CACHE_DIR"])
    assert not list(cache.glob("wheels/*/torch-*")) and not list(cache.glob("wheels/*/nvidia*"))
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        names = tar.getnames()
    assert "_flashc/site/numpy/__init__.py" in names
    assert "_flashc/site/sentence_transformers-3.0.0.dist-info/METADATA" in names
    assert not any(n.startswith(("_flashc/site/torch", "_flashc/site/triton")) for n in names)
    # --keep-gpu-packages ships them; --exclude leaves out anything else, with what it alone needed.
    kept = json.loads(build(root, "--json", "--keep-gpu-packages")[1])
    assert "torch==2.9.1" in kept["dependencies"] and "triton==3.5.1" in kept["dependencies"]
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


def lock(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["lock", str(root), *args])
    return result.exit_code, result.output


def test_lock_pins_hashes_and_build_installs_exactly_that(tmp_path: Path, offline_index: Path) -> None:
    root = checkout(tmp_path)
    code, output = lock(root)
    assert code == 0, output
    assert output == "locked 1 distribution for CPython 3.12: " + str(root / "pylock.toml") + "\n"
    text = (root / "pylock.toml").read_text()
    assert 'lock-version = "1.0"' in text and 'name = "numpy"' in text and "sha256 = " in text
    summary = json.loads(build(root, "--json")[1])
    assert summary["locked"] is True and summary["dependencies"] == ["numpy==1.26.4"]
    # A newer numpy on the index changes nothing: the build installs what the lock lists.
    make_wheel(offline_index, "numpy", "1.26.5", payload=10)
    assert json.loads(build(root, "--json", "--force")[1])["dependencies"] == ["numpy==1.26.4"]
    # A wheel in the cache that no longer matches its pinned hash is fetched again, not installed.
    cache = Path(os.environ["FLASHC_CACHE_DIR"])
    wheel = next(cache.glob("wheels/*/numpy-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    shutil.rmtree(cache / "layers")
    assert build(root, "--force")[0] == 0
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == wheel.parent.name
    # A lock whose wheel the index now serves with other bytes fails the build, naming both digests.
    (next(offline_index.glob("numpy-1.26.4-*.whl"))).write_bytes(b"other bytes")
    wheel.unlink()
    shutil.rmtree(cache / "layers")
    code, output = build(root, "--force")
    assert code == 1
    assert "not the locked" in output and "run `flashc lock` if that is expected" in output


def test_a_stale_lock_asks_for_flashc_lock(tmp_path: Path, offline_index: Path) -> None:
    root = checkout(tmp_path)
    assert lock(root)[0] == 0
    (root / "requirements.txt").write_text("six\n")
    code, output = build(root)
    assert code == 1
    assert "flashc: error: pylock.toml is out of date" in output
    assert "run `flashc lock` to resolve again" in output


def test_another_tools_lock_is_not_used_nor_overwritten(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    (root / "pylock.toml").write_text('lock-version = "1.0"\ncreated-by = "pip"\n')
    code, output = build(root)
    assert code == 0
    assert "pylock.toml was written by pip, not by `flashc lock`" in output and "it is not used" in output
    code, output = lock(root)
    assert code == 2 and "run `flashc lock --force` to replace it" in output
    assert lock(root, "--force")[0] == 0
    assert 'created-by = "flashc"' in (root / "pylock.toml").read_text()


def test_gpu_packages_stay_when_a_cpu_resource_needs_them(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "torch", "2.9.1", requires=["triton"])
    make_wheel(offline_index, "triton", "3.5.1")
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
        "torch==2.9.1",
        "torchmetrics==1.0",
        "triton==3.5.1",
    ]


def test_same_lock_and_sources_give_the_same_archive(tmp_path: Path) -> None:
    first, second = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    assert lock(first)[0] == 0
    shutil.copy(first / "pylock.toml", second / "pylock.toml")
    digests = [json.loads(build(root, "--json")[1])["sha256"] for root in (first, second)]
    assert digests[0] == digests[1]
    with tarfile.open(first / ".flash" / "archive.tar.gz") as tar:
        assert "_flashc/site/numpy/__init__.py" in tar.getnames()


def test_source_date_epoch_is_an_input_of_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = checkout(tmp_path)
    first = json.loads(build(root, "--json")[1])
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    stamped = json.loads(build(root, "--json")[1])
    assert stamped["up_to_date"] is False and stamped["sha256"] != first["sha256"]
    assert json.loads(build(root, "--json", "--force")[1])["sha256"] == stamped["sha256"]
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_resources_that_need_conflicting_versions_get_a_site_each(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "numpy", "1.26.2", files={"numpy/__init__.py": b"V = 1\n", "numpy/big.bin": bytes(4000)})
    make_wheel(offline_index, "numpy", "2.1.0", files={"numpy/__init__.py": b"V = 2\n", "numpy/big.bin": bytes(4000)})
    make_wheel(offline_index, "requests", "2.32.0", payload=3000)
    root = project_with(
        tmp_path,
        {
            "a.py": "from tetra_rp import LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="a"), dependencies=["numpy==1.26.2", "requests"])\ndef f(x):\n    return x\n',
            "b.py": "from tetra_rp import LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="b"), dependencies=["numpy>=2", "requests"])\ndef g(x):\n    return x\n',
        },
    )
    code, output = build(root)
    assert code == 0, output
    assert (
        "a.py:4:1: warning: the resources need versions that cannot be installed together, so they get 2 site "
        "folders (_flashc/sites/a for 'a'; _flashc/sites/b for 'b'): Because you require numpy==1.26.2 and numpy>=2"
        in output
    )
    assert "b.py:4:1: note: 'numpy>=2' is required here (dependencies of b:g)" in output
    assert "  _flashc/sites/a: a (2 distributions)" in output and "  _flashc/sites/b: b (2 distributions)" in output
    manifest = json.loads((root / ".flash" / "flash_manifest.json").read_text())
    assert {name: r["site"] for name, r in manifest["resources"].items()} == {
        "a": "_flashc/sites/a",
        "b": "_flashc/sites/b",
    }
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("_flashc/sites/a/numpy/__init__.py").read() == b"V = 1\n"  # type: ignore[union-attr]
        assert tar.extractfile("_flashc/sites/b/numpy/__init__.py").read() == b"V = 2\n"  # type: ignore[union-attr]
    # What both sites hold is stored once: the second copy is a hard link to the first.
    assert members["_flashc/sites/b/requests/blob.bin"].islnk()
    assert members["_flashc/sites/b/requests/blob.bin"].linkname == "_flashc/sites/a/requests/blob.bin"
    assert members["_flashc/sites/b/numpy/big.bin"].islnk()  # same bytes in two versions of numpy


def test_conflicting_pins_inside_one_resource_stop_the_build_naming_both(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "numpy", "2.1.0")
    root = project_with(
        tmp_path,
        {
            "a.py": "from tetra_rp import LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="a"), dependencies=["numpy==1.26.4"])\ndef f(x):\n    return x\n\n'
            '@remote(LiveServerless(name="a"), dependencies=["numpy>=2"])\ndef g(x):\n    return x\n',
        },
    )
    code, output = build(root)
    assert code == 1
    assert "conflicting requirements for numpy: 'numpy==1.26.4' (dependencies of a:f" in output
    assert "'numpy>=2' (dependencies of a:g" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()


def test_a_requirement_without_a_wheel_is_reported_at_the_function(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "onlymac", "1.0", tag="cp311-cp311-macosx_11_0_arm64")
    root = project_with(
        tmp_path,
        {
            "a.py": "from tetra_rp import LiveServerless, remote\n\n"
            '@remote(LiveServerless(name="a"), dependencies=["onlymac"])\ndef f(x):\n    return x\n',
            "requirements.txt": "numpy==1.26.4\nnotonindex>=1\n",
        },
    )
    code, output = build(root, "--python-version", "3.11")
    assert code == 1
    assert "a.py:4:1: error: 'onlymac' (dependencies of a:f) cannot be installed on the worker" in output
    assert "requirements.txt:2:1: error: 'notonindex>=1' cannot be installed on the worker" in output
    assert "flashc: error: 2 errors found" in output


def test_a_repeat_build_needs_no_index(tmp_path: Path, offline_index: Path) -> None:
    root = checkout(tmp_path)
    first = json.loads(build(root, "--json")[1])
    shutil.rmtree(offline_index)  # the index is gone: the resolution, wheels and layers are cached
    again = json.loads(build(root, "--json", "--force")[1])
    assert again["sha256"] == first["sha256"]
    assert json.loads(build(root, "--json", "--force", "--offline")[1])["sha256"] == first["sha256"]


def test_an_old_flash_lock_is_named_not_silently_ignored(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    (root / "flash.lock").write_text("{}\n")
    code, output = build(root)
    assert code == 0
    assert "flash.lock is no longer read" in output and "`flashc lock` writes pylock.toml" in output


def test_a_damaged_cached_layer_is_built_again_never_shipped(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    first = json.loads(build(root, "--json")[1])
    cache = Path(os.environ["FLASHC_CACHE_DIR"])
    (layer,) = [p for p in (cache / "layers").glob("*.gz")]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte, same size: the metadata's size check cannot see it
    layer.write_bytes(bytes(data))
    again = json.loads(build(root, "--json", "--force")[1])
    assert again["sha256"] == first["sha256"]  # the layer was built again, so the archive is whole
    unpack(root / ".flash" / "archive.tar.gz", tmp_path / "unpacked")  # checks every gzip member's CRC
    assert layer.read_bytes() != bytes(data)


def test_a_lock_holds_in_another_checkout_and_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = checkout(tmp_path / "a")
    make_wheel(first / "wheels", "numpy", "1.26.4", payload=100)
    (first / "requirements.txt").write_text("--no-index\n--find-links wheels\n")
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.delenv("PIP_NO_INDEX")
    assert lock(first)[0] == 0
    assert 'path = "wheels/numpy-1.26.4-py3-none-any.whl"' in (first / "pylock.toml").read_text()
    second = tmp_path / "b" / "demo"
    shutil.copytree(first, second)
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.invalid/simple")  # another shell: not asked
    summaries = [json.loads(build(root, "--json")[1]) for root in (first, second)]
    assert [s["locked"] for s in summaries] == [True, True]
    assert summaries[0]["sha256"] == summaries[1]["sha256"]


def test_a_lock_for_another_target_says_which(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    assert lock(root, "--python-version", "3.11")[0] == 0
    code, output = build(root, "--python-version", "3.12")
    assert code == 1
    assert "pylock.toml was locked for CPython 3.11 with glibc 2.35, but this build is for CPython 3.12" in output
    assert "run `flashc lock --python-version 3.12 --glibc 2.35`" in output


def test_a_wheel_the_index_replaced_makes_the_build_resolve_again(tmp_path: Path, offline_index: Path) -> None:
    make_wheel(offline_index, "alpha", "1.0", files={"alpha/__init__.py": b"A = 1\n"})
    root = project_with(
        tmp_path,
        {
            "app.py": "from tetra_rp import CpuLiveServerless, remote\n\n"
            '@remote(CpuLiveServerless(name="cpu"), dependencies=["alpha"])\ndef f(x):\n    return x\n',
        },
    )
    assert build(root)[0] == 0
    cache = Path(os.environ["FLASHC_CACHE_DIR"])
    shutil.rmtree(cache / "wheels")
    shutil.rmtree(cache / "layers")
    make_wheel(offline_index, "alpha", "1.0", files={"alpha/__init__.py": b"A = 2\n"})  # same name, other bytes
    code, output = build(root, "--force")
    assert code == 0, output
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        assert tar.extractfile("_flashc/site/alpha/__init__.py").read() == b"A = 2\n"  # type: ignore[union-attr]
    # A newer release is picked up when asked for: --refresh resolves again.
    make_wheel(offline_index, "alpha", "1.1")
    assert json.loads(build(root, "--json")[1])["up_to_date"] is True
    assert json.loads(build(root, "--json", "--refresh")[1])["dependencies"] == ["alpha==1.1"]


def test_requirement_files_and_a_lock_the_ignore_rules_leave_out_are_read_and_watched(
    tmp_path: Path, offline_index: Path
) -> None:
    make_wheel(offline_index, "alpha", "1.0")
    make_wheel(offline_index, "beta", "1.0")
    root = checkout(tmp_path)
    (root / "reqs").mkdir()
    (root / "reqs" / "extra.txt").write_text("alpha\n")
    (root / "requirements.txt").write_text("-r reqs/extra.txt\n")
    (root / ".flashignore").write_text("reqs/\npylock.toml\n")
    assert json.loads(build(root, "--json")[1])["dependencies"] == ["alpha==1.0", "numpy==1.26.4"]
    (root / "reqs" / "extra.txt").write_text("alpha\nbeta\n")  # outside the archive, still an input
    rebuilt = json.loads(build(root, "--json")[1])
    assert rebuilt["up_to_date"] is False and "beta==1.0" in rebuilt["dependencies"]
    assert lock(root)[0] == 0
    assert json.loads(build(root, "--json")[1])["locked"] is True  # ignored by .flashignore, still the lock


def test_a_build_with_warnings_is_up_to_date_and_says_them_again(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    (root / "flash.lock").write_text("{}\n")
    first = build(root)[1]
    assert "flash.lock is no longer read" in first
    code, again = build(root)
    assert (code == 0 and again.startswith("up to date")) or "up to date" in again
    assert "flash.lock is no longer read" in again
