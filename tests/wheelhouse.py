"""Tiny wheels with chosen names, tags and dependencies, for offline resolution tests."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

ANY = "py3-none-any"
LINUX_311 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
LINUX_312 = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    tag: str = ANY,
    requires: Sequence[str] = (),
    files: dict[str, bytes] | None = None,
    payload: int = 0,
) -> Path:
    """Write `<name>-<version>-<tag>.whl` into `folder` with a package `<name>/` and the given Requires-Dist."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    contents = dict(files or {f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode()})
    if payload:
        contents[f"{dist}/blob.bin"] = bytes(payload)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    contents[f"{dist_info}/METADATA"] = metadata.encode()
    wheel_tags = "".join(f"Tag: {t}\n" for t in _expand(tag))
    contents[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n{wheel_tags}".encode()
    )
    record = [_record_line(path, data) for path, data in contents.items()] + [f"{dist_info}/RECORD,,"]
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in sorted(contents.items()):
            zf.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return wheel


def _expand(tag: str) -> list[str]:
    interpreters, abis, platforms = tag.split("-")
    return [f"{i}-{a}-{p}" for i in interpreters.split(".") for a in abis.split(".") for p in platforms.split(".")]


def isolated_pip(args: Sequence[str]) -> tuple[int, str]:
    """pip without this machine's configuration (its extra indexes, find-links and constraints)."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def serve_locally(base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make pip and uv take wheels only from `base/house` (returned, empty), with a cache under `base`."""
    house = base / "house"
    house.mkdir(parents=True, exist_ok=True)
    config = base / "pip.conf"
    config.write_text(f"[global]\nno-index = true\nfind-links = {house}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))  # environment beats config files in pip
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(base / "cache"))
    return house


def write_project(root: Path, files: dict[str, str]) -> Path:
    """A project folder at `root` holding `files` (path -> text)."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root
