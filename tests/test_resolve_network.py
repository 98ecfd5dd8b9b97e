"""Real packages from the index, for two target Pythons: few, and marked `network`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement as Req

from flashc.requirements import IndexOptions, Origin, Requirement
from flashc.resolve import WheelCache, resolve
from flashc.target import Target, wheel_fits

pytestmark = pytest.mark.network


def req(text: str) -> Requirement:
    parsed = Req(text)
    return Requirement(parsed.name, text, str(parsed.specifier), (), None, None, Origin("test", None, "test"))


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_numpy_and_pandas_resolve_to_linux_wheels_for_the_target(python: str, tmp_path: Path) -> None:
    target = Target(python)
    resolution = resolve(
        [req("numpy>=1.26,<3"), req("pandas>=2.2,<3")], target, IndexOptions(), cache=WheelCache(tmp_path)
    )
    names = {w.name for w in resolution.wheels}
    assert {"numpy", "pandas", "python-dateutil"} <= names
    for wheel in resolution.wheels:
        assert wheel_fits(wheel.filename, target), wheel.filename
        if wheel.name in ("numpy", "pandas"):
            assert f"cp{python.replace('.', '')}" in wheel.filename and "manylinux" in wheel.filename
        with zipfile.ZipFile(WheelCache(tmp_path).path(wheel.sha256, wheel.filename)) as zf:
            assert zf.testzip() is None
