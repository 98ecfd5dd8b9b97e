"""A damaged cache heals: the next build succeeds with the same bytes and leaves a good entry behind.

Every cache flashc keeps (wheels, layers, resolutions, uv's own) is damaged the ways a crash, a
full disk or a hand could damage it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from wheelhouse import make_wheel, write_project

from flashc.cli import main
from flashc.deps.fetch import FetchError, WheelCache, fetch_wheels
from flashc.deps.models import Wheel
from flashc.deps.requirements import IndexOptions
from flashc.deps.target import Target
from flashc.deps.uv import Unsatisfiable, compile_pins

APP = """from tetra_rp import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="cpu"), dependencies=["alpha"])
def f(x):
    return x
"""
WHEEL = "alpha-1.0-py3-none-any.whl"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No index but what a test sets; a cache of the test's own (returned)."""
    for name in [k for k in os.environ if k.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's retries would only make failing tests slower
    monkeypatch.setattr("flashc.deps.fetch.time.sleep", lambda seconds: None)  # so would flashc's back-off
    cache = tmp_path / "cache"
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def house(tmp_path: Path) -> Path:
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0", payload=3000)
    return house


@pytest.fixture
def local(env: Path, house: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Wheels from a find-links folder: the cache, returned."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return env


def build(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.output


def archive_digest(root: Path) -> str:
    return hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest()


def leftovers(*folders: Path) -> list[Path]:
    """Temporary files a write left behind."""
    return [p for folder in folders for p in folder.rglob("*") if p.name.endswith((".part", ".tmp"))]


def built_clean(root: Path, *args: str) -> str:
    """Build, asserting it succeeded with no more than warnings; the archive's sha256."""
    code, output = build(root, "--force", *args)
    assert code == 0, output
    assert "internal error" not in output and "Traceback" not in output
    return archive_digest(root)


# --- the wheel cache ------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 can tell
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"<html>503 Service Unavailable</html>\n")


def _no_record(path: Path) -> None:
    """A whole zip, but without RECORD: what a tool that rewrote the file could leave."""
    with zipfile.ZipFile(path) as zf:
        kept = [(info, zf.read(info)) for info in zf.infolist() if not info.filename.endswith("/RECORD")]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in kept:
            zf.writestr(info, data)


def _folder(path: Path) -> None:
    path.unlink()
    (path / "stray").mkdir(parents=True)


def _file_for_folder(path: Path) -> None:
    shutil.rmtree(path.parent)
    path.parent.write_bytes(b"")


def _deleted(path: Path) -> None:
    shutil.rmtree(path.parent)


WHEEL_DAMAGE = {
    "truncated": _truncate,
    "same size, a byte flipped": _flip,
    "garbage": _garbage,
    "no RECORD": _no_record,
    "a folder instead": _folder,
    "a file instead of its folder": _file_for_folder,
    "deleted": _deleted,
}


@pytest.mark.parametrize("damage", WHEEL_DAMAGE, ids=list(WHEEL_DAMAGE))
def test_a_damaged_cached_wheel_is_fetched_again_and_the_archive_is_the_same(
    tmp_path: Path, local: Path, damage: str
) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    (cached,) = (local / "wheels").glob(f"*/{WHEEL}")
    good = cached.read_bytes()
    WHEEL_DAMAGE[damage](cached)
    # The layers are cached: the wheel is not even read, and the archive is the same.
    assert built_clean(root) == first
    # Without them, the wheel is needed: checked against its sha256, fetched again.
    shutil.rmtree(local / "layers")
    assert built_clean(root) == first
    assert cached.read_bytes() == good
    assert leftovers(local, root / ".flash") == []


def test_a_damaged_wheel_offline_is_named_not_installed(tmp_path: Path, local: Path) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    built_clean(root)
    (cached,) = (local / "wheels").glob(f"*/{WHEEL}")
    _truncate(cached)
    shutil.rmtree(local / "layers")
    code, output = build(root, "--force", "--offline")
    assert code == 1
    assert f"flashc: error: --offline, but the wheel cache lacks {WHEEL}" in output
    assert "internal error" not in output


def test_a_wheel_cache_that_cannot_be_written_is_a_cache_error(tmp_path: Path) -> None:
    data = b"PK\x05\x06" + bytes(18)
    wheel = Wheel(WHEEL, (tmp_path / WHEEL).as_uri(), len(data), hashlib.sha256(data).hexdigest())
    (tmp_path / WHEEL).write_bytes(data)
    (tmp_path / "cache").write_bytes(b"")  # a file where the cache folder should be
    with pytest.raises(FetchError) as info:
        fetch_wheels([wheel], WheelCache(tmp_path / "cache"))
    assert info.value.message.startswith(f"cannot write to the wheel cache '{tmp_path / 'cache' / 'wheels'}': ")
    assert info.value.hint == "check free disk space and the folder's permissions (FLASHC_CACHE_DIR chooses another)"


def test_builds_fetching_the_same_wheel_at_once_never_see_half_of_it(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    wheel = Wheel(WHEEL, "https://files.example/" + WHEEL, len(data), hashlib.sha256(data).hexdigest())
    started = threading.Barrier(4)

    def slow(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            for at in range(0, len(data), 1 << 18):
                yield data[at : at + (1 << 18)]

        return httpx.Response(200, content=body())

    def one() -> bytes:
        started.wait()
        paths = fetch_wheels([wheel], WheelCache(tmp_path), client=httpx.Client(transport=httpx.MockTransport(slow)))
        return paths[wheel.sha256].read_bytes()

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(one())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == data for r in results)
    assert leftovers(tmp_path) == []


# --- the layer cache ------------------------------------------------------------------------------


def _layer_files(cache: Path, suffix: str) -> list[Path]:
    return [p for p in (cache / "layers").glob(f"*{suffix}")]


LAYER_DAMAGE = {
    "layer truncated": lambda cache: [_truncate(p) for p in _layer_files(cache, ".gz")],
    "layer deleted": lambda cache: [p.unlink() for p in _layer_files(cache, ".gz")],
    "metadata garbage": lambda cache: [p.write_text("{") for p in _layer_files(cache, ".json")],
    "metadata deleted": lambda cache: [p.unlink() for p in _layer_files(cache, ".json")],
    "plan garbage": lambda cache: [p.write_text('{"layers": 5}') for p in (cache / "layers" / "plans").iterdir()],
}


@pytest.mark.parametrize("damage", LAYER_DAMAGE, ids=list(LAYER_DAMAGE))
def test_a_damaged_layer_is_built_again_never_shipped(tmp_path: Path, local: Path, damage: str) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    assert LAYER_DAMAGE[damage](local)
    assert built_clean(root) == first
    assert built_clean(root) == first  # and the cache holds a good layer again


# --- the resolution cache -------------------------------------------------------------------------


def _resolution(cache: Path) -> Path:
    (path,) = (cache / "resolutions").glob("*.json")
    return path


def _edit_wheel(field: str, value: object) -> object:
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        data["sites"][0]["pins"][0]["wheel"][field] = value
        path.write_text(json.dumps(data))

    return edit


RESOLUTION_DAMAGE = {
    "truncated": _truncate,
    "not an object": lambda path: path.write_text("[]"),
    "sha256 a number": _edit_wheel("sha256", 5),
    "sha256 a relative path": _edit_wheel("sha256", "../../elsewhere"),
    "file name with a folder": _edit_wheel("filename", "../../escape.whl"),
    "size a string": _edit_wheel("size", "big"),
}


@pytest.mark.parametrize("damage", RESOLUTION_DAMAGE, ids=list(RESOLUTION_DAMAGE))
def test_a_damaged_resolution_is_resolved_again(tmp_path: Path, local: Path, damage: str) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    edit = RESOLUTION_DAMAGE[damage]
    assert callable(edit)
    edit(_resolution(local))
    shutil.rmtree(local / "layers")  # so that the wheel named by the resolution is needed
    assert built_clean(root) == first
    assert json.loads(_resolution(local).read_text())["sites"][0]["pins"][0]["wheel"]["filename"] == WHEEL
    # Fields that become a path in the cache are checked: nothing was written outside it.
    assert not (tmp_path / "elsewhere").exists() and not (local / "escape.whl").exists()


# --- uv's cache -----------------------------------------------------------------------------------


def _unpacked(cache: Path) -> Path:
    """uv's unpacked copy of the find-links wheel, in flashc's cache."""
    (folder,) = (cache / "uv" / "archive-v0").iterdir()
    return folder


UV_DAMAGE = {
    "METADATA deleted": lambda cache: (_unpacked(cache) / "alpha-1.0.dist-info" / "METADATA").unlink(),
    "METADATA garbage": lambda cache: (_unpacked(cache) / "alpha-1.0.dist-info" / "METADATA").write_bytes(b"\xff"),
    "unpacked wheel deleted": lambda cache: shutil.rmtree(_unpacked(cache)),
    "pointer garbage": lambda cache: [p.write_text("garbage") for p in (cache / "uv").rglob("*.rev")],
}


@pytest.mark.parametrize("damage", UV_DAMAGE, ids=list(UV_DAMAGE))
def test_a_damaged_entry_of_uvs_cache_is_removed_and_resolved_again(tmp_path: Path, local: Path, damage: str) -> None:
    """uv itself trusts its cache: without flashc's cleaning, every later resolution says
    "alpha==1.0 has an invalid package format" (or a decoding error), for ever."""
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    UV_DAMAGE[damage](local)
    assert built_clean(root, "--refresh") == first  # --refresh: flashc resolves again, with uv
    metadata = (_unpacked(local) / "alpha-1.0.dist-info" / "METADATA").read_text()
    assert "Name: alpha" in metadata


def test_uvs_cache_is_cleaned_only_for_damage_and_at_most_twice(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def damaged(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        calls.append(list(args[:2]) if args[0] == "pip" else list(args))
        return (
            1,
            "",
            (
                "error: No solution found when resolving dependencies:\n"
                "  cause: Because alpha==1.0 has an invalid package format and you require alpha, ...\n"
                "hint: The structure of `alpha` (v1.0) was invalid:\n"
                "  failed to open file `/c/uv/archive-v0/Xy/alpha-1.0.dist-info/METADATA`: No such file\n"
            ),
        )

    answer = compile_pins(["alpha"], Target("3.12"), IndexOptions(), uv=damaged)
    assert isinstance(answer, Unsatisfiable)  # still broken after cleaning: the wheel itself, then
    assert calls == [
        ["pip", "compile"],
        ["cache", "clean", "--no-config", "alpha"],
        ["pip", "compile"],
        ["cache", "clean", "--no-config"],
        ["pip", "compile"],
    ]
    calls.clear()

    def missing(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        calls.append(list(args[:2]))
        return 1, "", "error: No solution found\n  cause: Because there are no versions of alpha, ...\n"

    assert isinstance(compile_pins(["alpha"], Target("3.12"), IndexOptions(), uv=missing), Unsatisfiable)
    assert calls == [["pip", "compile"]]
