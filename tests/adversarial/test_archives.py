"""Archives made by hand to hurt the machine that unpacks or deploys them."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from flashc_runtime.unpack import Limits, UnpackError, unpack

from flashc.cli import main

APP = (
    "from tetra_rp import CpuLiveServerless, remote\n\n"
    '@remote(CpuLiveServerless(name="cpu"))\ndef f(x):\n    return x\n'
)


def member(
    name: str, data: bytes = b"", *, link: str | None = None, hard: bool = False
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = link
    else:
        info.size = len(data)
    return info, data


def write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


# Unpack: links


def test_a_symlink_that_climbs_through_a_later_link_is_refused(tmp_path: Path) -> None:
    src = write(tmp_path / "a.tar.gz", [member("s", link="t/.."), member("t", link=".")])
    with pytest.raises(UnpackError) as exc:
        unpack(src, tmp_path / "out")
    assert str(exc.value) == (
        f"refusing to unpack '{src}': link 's' points up ('t/..'): symlinks may only point into their own folder"
    )
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]


@pytest.mark.parametrize(
    "members",
    [
        [member("a/b/up", link="../x"), member("a/x", b"1")],  # inside, but climbs: a later link could move it
        [member("d", link="sub"), member("sub", link="./../.."), member("d/x", b"1")],
        [member("s", link="")],
    ],
)
def test_symlinks_that_climb_at_all_are_refused(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with pytest.raises(UnpackError, match=r"symlinks may only point into their own folder|points outside"):
        unpack(write(tmp_path / "a.tar.gz", members), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_links_that_point_down_unpack_and_stay_inside(tmp_path: Path) -> None:
    src = write(
        tmp_path / "a.tar.gz",
        [member("pkg/mod.py", b"x"), member("alias", link="pkg"), member("pkg/a.py", link="mod.py"),
         member("h.py", link="pkg/mod.py", hard=True)],
    )  # fmt: skip
    unpack(src, tmp_path / "out")
    assert (tmp_path / "out" / "alias" / "a.py").read_bytes() == b"x"
    assert (tmp_path / "out" / "h.py").read_bytes() == b"x"


# Unpack: bombs


def zeros(path: Path, count: int, size: int) -> Path:
    """An archive of `count` files of `size` zero bytes each, written as a stream (nothing that big in memory)."""
    with gzip.open(path, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for n in range(count):
            info = tarfile.TarInfo(f"f{n}")
            info.size = size
            tar.addfile(info, _Zeros(size))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_a_zip_bomb_is_refused_by_its_ratio_before_anything_is_written(tmp_path: Path) -> None:
    src = zeros(tmp_path / "bomb.tar.gz", 1, 64 * 1024 * 1024)
    limits = Limits(ratio_floor=1024 * 1024)
    with pytest.raises(UnpackError) as exc:
        unpack(src, tmp_path / "out", limits)
    compressed = src.stat().st_size
    assert str(exc.value) == (
        f"refusing to unpack '{src}': its files add up to more than {200 * compressed:,} bytes, "
        f"over 200 times its {compressed:,} compressed bytes"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["bomb.tar.gz"]


def test_total_size_and_member_count_are_bounded(tmp_path: Path) -> None:
    src = zeros(tmp_path / "a.tar.gz", 20, 1000)
    with pytest.raises(UnpackError, match=r"it holds more than 10 members$"):
        unpack(src, tmp_path / "out", Limits(members=10))
    with pytest.raises(UnpackError, match=r"its files add up to more than 10,000 bytes$"):
        unpack(src, tmp_path / "out", Limits(total_bytes=10_000))
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]
    assert len(unpack(src, tmp_path / "out", Limits(members=20, total_bytes=40_000))) == 20


def test_the_default_limits_allow_a_repetitive_archive_under_the_floor(tmp_path: Path) -> None:
    src = zeros(tmp_path / "a.tar.gz", 2, 8 * 1024 * 1024)  # ratio ~1000, but only 16 MB
    assert unpack(src, tmp_path / "out") == ["f0", "f1"]


# Deploy


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "app.py").write_text(APP)
    result = CliRunner().invoke(main, ["build", str(root)])
    assert result.exit_code == 0, result.output
    return root


def deploy(root: Path, archive: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["deploy", str(root), "--archive", str(archive)])
    return result.exit_code, result.output


def rewritten(project: Path, path: Path, *, drop: str = "", edit: dict[str, str] | None = None) -> Path:
    """The project's archive with the members under `drop` left out and the resources' fields set to `edit`."""
    with tarfile.open(project / ".flash" / "archive.tar.gz", "r:*") as src, tarfile.open(path, "w:gz") as out:
        for info in src.getmembers():
            if drop and info.name.startswith(drop):
                continue
            data = src.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            if info.name == "flash_manifest.json" and edit:
                manifest = json.loads(data)
                for resource in manifest["resources"].values():
                    resource.update(edit)
                data = json.dumps(manifest).encode()
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def left_behind(project: Path) -> list[str]:
    deployed = project / ".flash" / "deploy"
    return sorted(p.name for p in deployed.iterdir()) if deployed.exists() else []


def test_a_truncated_archive_is_a_clear_error_and_leaves_nothing(project: Path, tmp_path: Path) -> None:
    whole = (project / ".flash" / "archive.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    code, output = deploy(project, cut)
    assert code == 1
    assert f"flashc: error: cannot unpack '{cut}': the file is damaged or cut short" in output
    assert "internal error" not in output
    assert left_behind(project) == []


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([member("app.py", b"x = 1")], "has no flash_manifest.json: flashc did not build it"),
        ([member("flash_manifest.json", b"{not json")], "is not JSON"),
        ([member("flash_manifest.json", b'{"schema_version": 1}')], "is not valid"),
    ],
)
def test_an_archive_without_a_valid_manifest_is_a_clear_error(
    project: Path, tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], message: str
) -> None:
    code, output = deploy(project, write(tmp_path / "x.tar.gz", members))
    assert code == 1
    assert message in output
    assert "internal error" not in output
    assert left_behind(project) == []


def test_an_archive_without_flashc_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    code, output = deploy(project, rewritten(project, tmp_path / "x.tar.gz", drop="_flashc/"))
    assert code == 1
    assert "is incomplete: it has no _flashc/flashc_runtime/server.py, _flashc/flashc_handlers/handler_cpu.py" in output
    assert left_behind(project) == []


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        ({"handler_module": "x./../../../outside/evil"}, "handler_module 'x./../../../outside/evil'"),
        ({"handler_module": "flashc_handlers.handler_cpu/../../x"}, "handler_module"),
        ({"handler_path": "../../etc/passwd"}, "handler_path '../../etc/passwd'"),
    ],
)
def test_manifest_names_that_become_paths_are_checked(
    project: Path, tmp_path: Path, edit: dict[str, str], shown: str
) -> None:
    code, output = deploy(project, rewritten(project, tmp_path / "x.tar.gz", edit=edit))
    assert code == 1, output
    assert "is not valid: names that flashc does not write: " + shown in output
    assert left_behind(project) == []
    assert not (tmp_path / "outside").exists()
    assert not (project / ".flash" / "logs").exists()


def test_a_huge_extended_header_is_refused_before_it_is_read_into_memory(tmp_path: Path) -> None:
    src = tmp_path / "a.tar.gz"
    with gzip.open(src, "wb") as gz:
        header = tarfile.TarInfo("x")
        header.type = tarfile.XHDTYPE
        header.size = 1 << 32  # 4 GiB of pax records, never written: the refusal must come before reading them
        gz.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        gz.write(bytes(1 << 20))
    with pytest.raises(UnpackError) as exc:
        unpack(src, tmp_path / "out")
    assert str(exc.value) == (
        f"refusing to unpack '{src}': it holds an extended header of {1 << 32:,} bytes, over {1 << 20:,}"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]
