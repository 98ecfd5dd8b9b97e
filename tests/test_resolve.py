"""Resolution for the worker: markers judged for the target, tags checked, wheels cached."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from wheelhouse import LINUX_311, LINUX_312, isolated_pip, make_wheel

from flashc.requirements import IndexOptions, Origin, Requirement
from flashc.resolve import Resolution, ResolveError, WheelCache, resolve
from flashc.target import Target

ORIGIN = Origin("requirements.txt", 1, "requirements.txt")


def req(text: str) -> Requirement:
    from packaging.requirements import Requirement as Req
    from packaging.utils import canonicalize_name

    parsed = Req(text)
    marker = str(parsed.marker) if parsed.marker else None
    return Requirement(
        canonicalize_name(parsed.name), text, str(parsed.specifier), tuple(sorted(parsed.extras)), marker, None, ORIGIN
    )


def run(house: Path, cache: Path, texts: Sequence[str], python: str = "3.12", **kwargs: object) -> Resolution:
    options = IndexOptions(no_index=True, find_links=(str(house),))
    return resolve(
        [req(t) for t in texts],
        Target(python),
        options,
        cache=WheelCache(cache),
        pip=isolated_pip,
        **kwargs,  # type: ignore[arg-type]
    )


def versions(resolution: Resolution) -> dict[str, str]:
    return {w.name: w.version for w in resolution.wheels}


@pytest.mark.skipif(sys.version_info[:2] == (3, 12), reason="needs a target Python other than the host's")
def test_markers_are_judged_for_the_target_not_this_machine(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(
        house,
        "alpha",
        "1.0",
        requires=[
            'beta; python_version >= "3.12"',  # the host is not 3.12: pip alone would drop it
            'gamma; sys_platform == "win32"',
            'delta; platform_machine == "x86_64"',
            'epsilon; platform_machine == "aarch64"',
            "zeta; extra == 'fast'",
        ],
    )
    for name in ("beta", "gamma", "delta", "epsilon", "zeta"):
        make_wheel(house, name, "1.0")
    assert versions(run(house, tmp_path / "c1", ["alpha"], "3.12")) == {"alpha": "1.0", "beta": "1.0", "delta": "1.0"}
    assert versions(run(house, tmp_path / "c2", ["alpha"], "3.11")) == {"alpha": "1.0", "delta": "1.0"}
    assert "zeta" in versions(run(house, tmp_path / "c3", ["alpha[fast]"], "3.12"))
    # Markers on direct requirements too.
    direct = run(house, tmp_path / "c4", ['beta; python_version >= "3.12"', 'gamma; sys_platform == "win32"'], "3.12")
    assert versions(direct) == {"beta": "1.0"}


def test_specifiers_from_several_dependents_are_merged(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "app", "1.0", requires=["lib>=2", "tool"])
    make_wheel(house, "tool", "1.0", requires=["lib<3"])
    for v in ("1.0", "2.0", "3.0"):
        make_wheel(house, "lib", v)
    resolution = run(house, tmp_path / "cache", ["app"])
    assert versions(resolution) == {"app": "1.0", "lib": "2.0", "tool": "1.0"}
    assert {w.name: w.requires for w in resolution.wheels}["app"] == ("lib", "tool")


def test_platform_wheels_are_chosen_for_the_target(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "fastmath", "1.0", tag=LINUX_311)
    make_wheel(house, "fastmath", "1.0", tag=LINUX_312)
    make_wheel(house, "fastmath", "1.0", tag="cp312-cp312-macosx_11_0_arm64")
    assert [w.filename for w in run(house, tmp_path / "c", ["fastmath"], "3.12").wheels] == [
        f"fastmath-1.0-{LINUX_312}.whl"
    ]


def test_no_wheel_for_the_target_is_explained(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "onlymac", "1.0", tag="cp312-cp312-macosx_11_0_arm64")
    (house / "sdistonly-1.0.tar.gz").write_bytes(b"not really")
    found = {
        "onlymac": "on the index: version 1.0 exists; 1.0 has wheels for macOS arm64 (cp312)",
        "sdistonly": "on the index: version 1.0 exists; 1.0 has a source distribution, which flashc does not build",
    }
    for name, available in found.items():
        with pytest.raises(ResolveError) as info:
            run(house, tmp_path / name, [name], "3.12")
        assert info.value.message.startswith(
            f"no wheel of {name} fits the target (CPython 3.12, Linux x86_64, glibc <= 2.35); "
            "needed by your requirements"
        )
        assert info.value.message.endswith(available)
        assert info.value.hint is not None and "manylinux wheel" in info.value.hint


def test_second_resolution_comes_from_the_cache_without_pip(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0", requires=["beta"])
    make_wheel(house, "beta", "1.0")
    first = run(house, tmp_path / "cache", ["alpha"])
    assert not first.from_cache

    def no_network(args: Sequence[str]) -> tuple[int, str]:
        raise AssertionError(f"pip was called: {args}")

    options = IndexOptions(no_index=True, find_links=(str(house),))
    again = resolve([req("alpha")], Target("3.12"), options, cache=WheelCache(tmp_path / "cache"), pip=no_network)
    assert again.from_cache and again.wheels == first.wheels
    offline = resolve(
        [req("alpha")], Target("3.12"), options, cache=WheelCache(tmp_path / "cache"), pip=no_network, offline=True
    )
    assert offline.wheels == first.wheels
    with pytest.raises(ResolveError, match="--offline forbids asking the index"):
        resolve(
            [req("beta")], Target("3.12"), options, cache=WheelCache(tmp_path / "cache"), pip=no_network, offline=True
        )


def test_no_deps_takes_only_the_direct_requirements(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0", requires=["beta"])
    make_wheel(house, "beta", "1.0")
    assert versions(run(house, tmp_path / "cache", ["alpha"], no_deps=True)) == {"alpha": "1.0"}


def test_skipped_distributions_are_not_downloaded_but_stay_in_the_graph(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "app", "1.0", requires=["torch", "numpy"])
    make_wheel(house, "numpy", "1.0")
    make_wheel(house, "triton", "1.0")
    make_wheel(house, "torch", "1.0", requires=["triton"])
    resolution = run(house, tmp_path / "cache", ["app"], skip=frozenset({"torch"}))
    assert versions(resolution) == {"app": "1.0", "numpy": "1.0"}
    assert {w.name: w.requires for w in resolution.wheels}["app"] == ("numpy", "torch")
    assert not list((tmp_path / "cache").glob("wheels/*/torch-*"))
