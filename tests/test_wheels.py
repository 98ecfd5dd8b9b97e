"""Unpacking wheels into the bundle: libraries and data in, scripts, headers and bytecode out."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from flashc.errors import ProjectError
from flashc.wheels import install_wheel


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(folder: Path, files: dict[str, bytes], *, name: str = "demo_pkg", version: str = "1.0") -> Path:
    """A minimal, valid wheel holding `files` plus its dist-info."""
    dist_info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    contents[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    contents[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\ndemo-cli = demo_pkg:main\n"
    record = [_record_line(path, data) for path, data in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in contents.items():
            zf.writestr(path, data)
    return wheel


def test_libraries_and_data_are_installed_scripts_headers_and_bytecode_are_not(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        {
            "demo_pkg/__init__.py": b"def main():\n    return 1\n",
            "demo_pkg/data.json": b"{}",
            "demo_pkg-1.0.data/platlib/demo_native.py": b"NATIVE = True\n",
            "demo_pkg-1.0.data/data/share/demo/readme.txt": b"hello",
            "demo_pkg-1.0.data/scripts/demo-tool": b"#!python\nprint('x')\n",
            "demo_pkg-1.0.data/headers/demo.h": b"int x;",
        },
    )
    bundle = tmp_path / "bundle"
    installed = install_wheel(wheel, bundle)
    assert (installed.name, installed.version) == ("demo_pkg", "1.0")
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert on_disk == [
        "demo_native.py",
        "demo_pkg-1.0.dist-info/INSTALLER",
        "demo_pkg-1.0.dist-info/METADATA",
        "demo_pkg-1.0.dist-info/RECORD",
        "demo_pkg-1.0.dist-info/WHEEL",
        "demo_pkg-1.0.dist-info/entry_points.txt",
        "demo_pkg/__init__.py",
        "demo_pkg/data.json",
        "share/demo/readme.txt",
    ]
    assert not list(bundle.rglob("*.pyc")) and not (bundle / "bin").exists()
    assert "demo-cli" not in (bundle / "demo_pkg-1.0.dist-info" / "RECORD").read_text()


def test_a_tampered_wheel_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {"demo_pkg/__init__.py": b"X = 1\n"})
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("demo_pkg/extra.py", b"import os\n")  # not in RECORD
    with pytest.raises(ProjectError, match=re.escape("cannot install wheel 'demo_pkg-1.0-py3-none-any.whl'")):
        install_wheel(wheel, tmp_path / "bundle")


def test_two_wheels_writing_the_same_file_clash(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_wheel(tmp_path / "a", {"shared/x.py": b"A\n"})
    second = make_wheel(tmp_path / "b", {"shared/x.py": b"B\n"}, name="other_pkg")
    install_wheel(first, tmp_path / "bundle")
    with pytest.raises(ProjectError, match="File already exists"):
        install_wheel(second, tmp_path / "bundle")
