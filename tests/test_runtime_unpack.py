"""Unpacking an archive on a worker: nothing may land outside the target folder."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from flashc_runtime.unpack import UnpackError, unpack


def archive(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def file(name: str, size: int = 3) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def test_a_flashc_archive_unpacks(tmp_path: Path) -> None:
    src = archive(
        tmp_path / "a.tar.gz", [file("flash_manifest.json"), file("pkg/mod.py"), link("pkg/alias.py", "mod.py")]
    )
    names = unpack(src, tmp_path / "out")
    assert names == ["flash_manifest.json", "pkg/alias.py", "pkg/mod.py"]
    assert (tmp_path / "out" / "pkg" / "alias.py").read_bytes() == b"xxx"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file("../evil.py"), "'../evil.py' points outside the target"),
        (file("pkg/../../evil.py"), "'pkg/../../evil.py' points outside the target"),
        (file("/etc/cron.d/evil"), "'/etc/cron.d/evil' points outside the target"),
        (link("data", "/etc/passwd"), "link 'data' points outside the target (to '/etc/passwd')"),
        (link("pkg/up", "../../secret"), "link 'pkg/up' points outside the target (to '../../secret')"),
        (link("hard", "../outside", hard=True), "link 'hard' points outside the target (to '../outside')"),
    ],
)
def test_members_that_escape_are_refused_and_nothing_is_written(
    tmp_path: Path, member: tarfile.TarInfo, reason: str
) -> None:
    src = archive(tmp_path / "bad.tar.gz", [file("ok.py"), member])
    with pytest.raises(UnpackError) as info:
        unpack(src, tmp_path / "out")
    assert str(info.value) == f"refusing to unpack '{src}': {reason}"
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_devices_are_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("dev/sda")
    device.type = tarfile.BLKTYPE
    src = archive(tmp_path / "dev.tar.gz", [device])
    with pytest.raises(UnpackError, match="'dev/sda' is a device or FIFO"):
        unpack(src, tmp_path / "out")


def test_existing_target_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    src = archive(tmp_path / "a.tar.gz", [file("a.py")])
    with pytest.raises(UnpackError, match="already exists"):
        unpack(src, tmp_path / "out")


def incompressible(path: Path) -> bytes:
    """A .tar.gz of random bytes, which gzip stores as they are; its bytes."""
    import random

    noise = random.Random(0).randbytes(200_000)
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(file("noise.bin", len(noise)), io.BytesIO(noise))
    return path.read_bytes()


def cut_in_half(path: Path) -> None:
    raw = incompressible(path)
    path.write_bytes(raw[: len(raw) // 2])


def damaged_in_the_middle(path: Path) -> None:
    raw = bytearray(incompressible(path))  # stored blocks: only gzip's CRC at the end can tell
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))


def damaged_deflate_data(path: Path) -> None:
    text = "".join(f"line {i}: {i * i}\n" for i in range(20_000)).encode()
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(file("text.txt", len(text)), io.BytesIO(text))
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_bytes(b"not gzip"), "the file is not a .tar.gz archive"),
        (lambda p: p.mkdir(), "Is a directory"),
        (lambda p: None, "No such file or directory"),
        (
            cut_in_half,
            "the file is damaged or cut short (Compressed file ended before the end-of-stream marker was reached)",
        ),
        (damaged_in_the_middle, "the file is damaged or cut short (CRC check failed "),
        (damaged_deflate_data, "the file is damaged or cut short ("),
    ],
    ids=["empty", "not-gzip", "folder", "missing", "truncated", "damaged-stored", "damaged-deflate"],
)
def test_a_file_that_is_no_whole_archive_is_an_unpack_error_and_nothing_is_written(
    tmp_path: Path, make: Callable[[Path], object], reason: str
) -> None:
    src = tmp_path / "bad.tar.gz"
    make(src)
    with pytest.raises(UnpackError) as info:
        unpack(src, tmp_path / "deploy" / "out")
    assert str(info.value).startswith(f"cannot unpack '{src}': {reason}")
    assert not (tmp_path / "deploy").exists() or not any((tmp_path / "deploy").iterdir())  # no staging folder


def test_a_built_archive_unpacks_and_its_handlers_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import shutil
    import sys

    from flashc_runtime.manifest import load_manifest

    from flashc.pipeline import build_project

    monkeypatch.setenv("FLASHC_CACHE_DIR", str(tmp_path / "cache"))
    project = tmp_path / "routes"
    shutil.copytree(Path(__file__).resolve().parent.parent / "fixtures" / "routes", project)
    built = build_project(project)
    out = tmp_path / "worker"
    names = unpack(built.archive.path, out)
    assert "flash_manifest.json" in names and "_flashc/flashc_runtime/handler.py" in names
    manifest = load_manifest(out / "flash_manifest.json")
    # The worker's sys.path: the runtime folder first, then the project, then the dependencies.
    site = str(out / next(iter(manifest["resources"].values()))["site"])
    monkeypatch.setattr(sys, "path", [str(out / "_flashc"), str(out), site, *sys.path])
    modules = dict(sys.modules)
    try:
        for name in [m for m in sys.modules if m.split(".")[0] in ("flashc_runtime", "flashc_handlers", "api")]:
            del sys.modules[name]
        for resource in manifest["resources"].values():
            handler_module = importlib.import_module(resource["handler_module"])
            assert handler_module.__file__ is not None and handler_module.__file__.startswith(str(out))
            runtime = importlib.import_module("flashc_runtime")
            assert runtime.__file__ is not None and runtime.__file__.startswith(str(out))  # the archive's own
    finally:
        sys.modules.clear()
        sys.modules.update(modules)
