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


@pytest.mark.parametrize("round_", range(3))
def test_two_builds_sharing_a_cold_cache_both_succeed_with_the_same_bytes(tmp_path: Path, round_: int) -> None:
    house = tmp_path / "house"
    for name in ("alpha", "beta", "gamma"):
        make_wheel(house, name, "1.0", payload=200_000)
    env = {
        **os.environ,
        "PIP_FIND_LINKS": str(house),
        "PIP_NO_INDEX": "1",
        "UV_FIND_LINKS": str(house),
        "UV_NO_INDEX": "1",
        "FLASHC_CACHE_DIR": str(tmp_path / "cache"),  # cold, and shared by both
        "SOURCE_DATE_EPOCH": "315532800",
    }
    roots = [write_project(tmp_path / side / "proj", {"app.py": APP}) for side in ("a", "b")]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "flashc", "build", str(root), "-q"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for root in roots
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    digests = {hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() for root in roots}
    assert len(digests) == 1  # the same bytes, as two builds one after the other give
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == []
