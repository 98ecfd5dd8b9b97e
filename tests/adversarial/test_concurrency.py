"""Concurrent runs share the wheel cache and layers: they must give what sequential runs give."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wheelhouse import make_wheel, write_project

APP = """from tetra_rp import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="cpu"), dependencies=["alpha", "beta", "gamma"])
def f(x):
    return x
"""


def local_index(tmp_path: Path, payload: int) -> dict[str, str]:
    """The environment of a build whose three wheels come from a local folder, with a cold cache
    of its own (shared by the builds that get it) and a fixed SOURCE_DATE_EPOCH."""
    house = tmp_path / "house"
    for name in ("alpha", "beta", "gamma"):
        make_wheel(house, name, "1.0", payload=payload)
    return {
        **os.environ,
        "PIP_FIND_LINKS": str(house),
        "PIP_NO_INDEX": "1",
        "UV_FIND_LINKS": str(house),
        "UV_NO_INDEX": "1",
        "FLASHC_CACHE_DIR": str(tmp_path / "cache"),
        "SOURCE_DATE_EPOCH": "315532800",
    }


def start_build(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flashc", "build", str(root), "-q"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("round_", range(3))
def test_two_builds_sharing_a_cold_cache_both_succeed_with_the_same_bytes(tmp_path: Path, round_: int) -> None:
    env = local_index(tmp_path, payload=200_000)  # the cache: cold, and shared by both
    roots = [write_project(tmp_path / side / "proj", {"app.py": APP}) for side in ("a", "b")]
    runs = [start_build(root, env) for root in roots]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    digests = {hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() for root in roots}
    assert len(digests) == 1  # the same bytes, as two builds one after the other give
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == []


def test_builds_of_one_project_at_once_give_what_one_build_gives(tmp_path: Path) -> None:
    """Builds share the project's `.flash/` (the archive, the analysis cache, the lock, the
    state): four at once all succeed, and leave the archive one build alone gives, nothing half-written."""
    env = local_index(tmp_path, payload=50_000)
    files = {"app.py": APP, **{f"lib/m{i}.py": f"VALUE = {i}\n" for i in range(40)}}
    alone = write_project(tmp_path / "alone" / "proj", files)
    subprocess.run([sys.executable, "-m", "flashc", "build", str(alone), "-q"], env=env, check=True, timeout=300)
    expected = hashlib.sha256((alone / ".flash" / "archive.tar.gz").read_bytes()).hexdigest()
    root = write_project(tmp_path / "shared" / "proj", files)
    runs = [start_build(root, env) for _ in range(4)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    assert hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() == expected
    leftovers = [p.name for p in (root / ".flash").rglob("*") if p.name.endswith((".tmp", ".part")) or ".tmp" in p.name]
    assert leftovers == []
    again = subprocess.run(
        [sys.executable, "-m", "flashc", "build", str(root)], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout + again.stderr  # the state they left reads back
