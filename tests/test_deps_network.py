"""Real dependency sets against the package index: few, and marked `network`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from flashc._toml import loads
from flashc.cli import main

pytestmark = pytest.mark.network

# Three functions of one public example project: the hand-written resolver of flashc 0.1 failed
# on this set ("no wheel of numpy fits the target"), since the newest scipy and opencv-python
# need numpy>=1.26.4 and numpy>=2 while pandas 2.1.3 pins numpy==1.26.2.
PROJECT = {
    "workers/analysis.py": """\
from tetra_rp import CpuLiveServerless, remote


@remote(
    CpuLiveServerless(name="analysis"),
    dependencies=["pandas==2.1.3", "numpy==1.26.2", "scipy>=1.11.0", "matplotlib"],
)
def describe(values):
    import pandas as pd

    return pd.Series(values).describe().to_dict()
""",
    "workers/vision.py": """\
from tetra_rp import GpuGroup, LiveServerless, remote


@remote(
    LiveServerless(name="vision", gpus=[GpuGroup.AMPERE_24]),
    dependencies=["torch==2.1.0", "torchvision", "Pillow>=10.0.0", "numpy<2.0.0"],
)
def classify(image):
    import torch

    return torch.__version__
""",
    "workers/fetch.py": """\
from tetra_rp import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="fetcher"), dependencies=["opencv-python", "requests"])
def thumbnail(url):
    import cv2

    return cv2.__version__
""",
}


def test_a_real_set_that_needs_backtracking_locks_for_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "project"
    for path, text in PROJECT.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    result = CliRunner().invoke(main, ["lock", str(root), "--python-version", "3.11"])
    assert result.exit_code == 0, result.output
    lock = loads((root / "pylock.toml").read_text())
    packages = {p["name"]: p for p in lock["packages"]}
    assert packages["numpy"]["version"] == "1.26.2" and packages["pandas"]["version"] == "2.1.3"
    assert {"scipy", "matplotlib", "opencv-python", "requests", "pillow", "torchvision"} <= packages.keys()
    for package in packages.values():
        (wheel,) = package["wheels"]
        assert wheel["name"].endswith(".whl") and len(wheel["hashes"]["sha256"]) == 64
        assert "macosx" not in wheel["name"] and "win" not in wheel["name"].rsplit("-", 1)[-1]
    assert "cp311" in packages["numpy"]["wheels"][0]["name"] and "manylinux" in packages["numpy"]["wheels"][0]["name"]
    # The GPU image has torch 2.9.1; the project pins 2.1.0, so that ships, and the lock says why.
    assert packages["torch"]["version"] == "2.1.0" and "left-out" not in packages["torch"]["tool"]["flashc"]
    (shadows,) = packages["torch"]["tool"]["flashc"]["shadows"]
    assert shadows == {
        "image": "Runpod's GPU image for queue-based resources",
        "version": "2.9.1",
        "resources": ["vision"],
    }
    assert packages["torch"]["wheels"][0]["size"] > 100_000_000
    assert "torch 2.1.0 ships although Runpod's GPU image for queue-based resources has 2.9.1" in result.output
    # requests is on every worker image: the resolver took the image's version, and it stays out.
    assert packages["requests"]["version"] == "2.32.5"
    assert packages["requests"]["tool"]["flashc"]["left-out"] == (
        "provided by Runpod's CPU image for queue-based resources and Runpod's GPU image for queue-based resources"
    )
    assert "left-out" not in packages["numpy"]["tool"]["flashc"]  # numpy<2 for vision: it ships over the image's 2
    assert "tool" not in packages["pandas"]


def test_markers_follow_the_target_python_and_wheels_are_verified_from_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "project"
    root.mkdir()
    (root / "app.py").write_text(
        "from tetra_rp import CpuLiveServerless, remote\n\n\n"
        '@remote(CpuLiveServerless(name="cpu"),\n'
        '        dependencies=["tabulate==0.9.0", "numpy==2.2.6; python_version >= \'3.12\'"])\n'
        "def f(x):\n    return x\n"
    )
    result = CliRunner().invoke(main, ["lock", str(root), "--python-version", "3.12"])
    assert result.exit_code == 0, result.output
    packages = {p["name"]: p for p in loads((root / "pylock.toml").read_text())["packages"]}
    assert set(packages) == {"numpy", "tabulate"}
    assert "-cp312-cp312-manylinux" in packages["numpy"]["wheels"][0]["name"]
    (root / "pylock.toml").unlink()
    # For 3.11 the marker drops numpy: only tabulate is downloaded, checked against the index's sha256.
    result = CliRunner().invoke(main, ["build", str(root), "--python-version", "3.11", "--json"])
    assert result.exit_code == 0, result.output
    assert '"tabulate==0.9.0"' in result.stdout and "numpy" not in result.stdout
    assert len(list((tmp_path / "cache" / "wheels").glob("*/tabulate-0.9.0-*.whl"))) == 1
