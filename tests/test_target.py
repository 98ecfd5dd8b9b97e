from __future__ import annotations

import sys

import pytest
from packaging import _manylinux
from packaging.markers import InvalidMarker
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename

from flashc.deps.target import (
    Target,
    explain_misfit,
    marker_applies,
    marker_environment,
    parse_glibc,
    parse_python_version,
    platform_tags,
    supported_tags,
    wheel_fits,
)
from flashc.errors import UsageError

PY311 = Target("3.11")
PY312 = Target("3.12")

NUMPY = "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
PYDANTIC_CORE = "pydantic_core-2.20.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SIX = "six-1.16.0-py2.py3-none-any.whl"
CRYPTOGRAPHY = "cryptography-43.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
NEW_GLIBC = "tokenizers-0.21.0-cp311-cp311-manylinux_2_39_x86_64.whl"
CUBLAS = "nvidia_cublas_cu12-12.1.3.1-py3-none-manylinux1_x86_64.whl"


# --- parsing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("3.11", "3.11"), ("3.11.7", "3.11"), ("3.8", "3.8"), (" 3.13 ", "3.13")]
)
def test_parse_python_version(text: str, expected: str) -> None:
    assert parse_python_version(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "invalid Python version '3'"),
        ("3.x", "invalid Python version '3.x'"),
        ("3.11.7.1", "invalid Python version '3.11.7.1'"),
        ("3.13t", "invalid Python version '3.13t'"),
        ("", "invalid Python version ''"),
        ("2.7", "unsupported Python version '2.7'"),
        ("4.0", "unsupported Python version '4.0'"),
        ("3.7", "unsupported Python version '3.7'"),
    ],
)
def test_parse_python_version_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_python_version(text)
    assert caught.value.message == message
    assert caught.value.hint == "use a CPython 3 version such as 3.11 (3.8 or newer)"


@pytest.mark.parametrize(("text", "expected"), [("2.35", "2.35"), ("2.17", "2.17"), ("2.039", "2.39")])
def test_parse_glibc(text: str, expected: str) -> None:
    assert parse_glibc(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "invalid glibc version '2'"),
        ("2.35.1", "invalid glibc version '2.35.1'"),
        ("manylinux_2_35", "invalid glibc version 'manylinux_2_35'"),
        ("2.12", "glibc '2.12' is too old: workers need glibc 2.17 (manylinux2014) or newer"),
        ("3.0", "invalid glibc version '3.0'"),
    ],
)
def test_parse_glibc_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_glibc(text)
    assert caught.value.message == message
    assert caught.value.hint == "give the worker image's glibc as MAJOR.MINOR, such as 2.35 (`ldd --version` prints it)"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"python_version": "3.11.7"}, "python_version must look like '3.11', not '3.11.7'"),
        ({"python_version": "3.11", "glibc": "2.035"}, "glibc must look like '2.35', not '2.035'"),
        ({"python_version": "3.11", "implementation": "pp"}, "only CPython ('cp') workers exist, not 'pp'"),
    ],
)
def test_target_rejects_non_canonical_fields(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Target(**fields)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_target_defaults() -> None:
    assert Target("3.11", glibc="2.35", machine="x86_64", implementation="cp") == PY311


# --- platform tags -----------------------------------------------------------------------------------------------


def test_platform_ladder_for_glibc_2_35() -> None:
    tags = platform_tags(PY311)
    assert tags[:3] == ("manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_33_x86_64")
    assert tags[-2:] == ("manylinux1_x86_64", "linux_x86_64")  # a plain linux wheel last: pip takes it there
    assert "manylinux_2_28_x86_64" in tags
    # Each legacy alias follows its PEP 600 twin, as packaging orders them.
    assert tags[tags.index("manylinux_2_17_x86_64") + 1] == "manylinux2014_x86_64"
    assert tags[tags.index("manylinux_2_12_x86_64") + 1] == "manylinux2010_x86_64"
    assert tags[-3] == "manylinux_2_5_x86_64"
    assert len(tags) == (35 - 5 + 1) + 3 + 1


def test_platform_ladder_is_complete() -> None:
    pep600 = [tag for tag in platform_tags(PY311) if tag.startswith("manylinux_")]
    assert pep600 == [f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)]


def test_platform_ladder_follows_the_worker_glibc() -> None:
    assert platform_tags(Target("3.11", glibc="2.39"))[0] == "manylinux_2_39_x86_64"
    assert platform_tags(Target("3.11", glibc="2.17"))[:2] == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")


def test_platform_ladder_for_aarch64_starts_at_manylinux2014() -> None:
    tags = platform_tags(Target("3.11", machine="aarch64"))
    assert tags[0] == "manylinux_2_35_aarch64"
    assert tags[-3:] == ("manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64")


@pytest.mark.parametrize(("glibc", "machine"), [("2.35", "x86_64"), ("2.17", "x86_64"), ("2.39", "aarch64")])
def test_platform_ladder_matches_packaging_on_such_a_worker(
    glibc: str, machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # packaging only computes the ladder for the running machine; pretend to be the worker.
    major, minor = (int(part) for part in glibc.split("."))
    monkeypatch.setattr(_manylinux, "_have_compatible_abi", lambda executable, archs: True)
    monkeypatch.setattr(_manylinux, "_get_glibc_version", lambda: (major, minor))
    monkeypatch.setattr(_manylinux, "_get_manylinux_module", lambda: None)
    # packaging then yields the plain linux tag last, as pip on a real Linux worker accepts it.
    expected = (*_manylinux.platform_tags([machine]), f"linux_{machine}")
    assert platform_tags(Target("3.11", glibc=glibc, machine=machine)) == expected


# --- supported tags ----------------------------------------------------------------------------------------------


def test_supported_tags_order() -> None:
    tags = [str(tag) for tag in supported_tags(PY311)]
    assert tags[0] == "cp311-cp311-manylinux_2_35_x86_64"
    assert tags[-1] == "py30-none-any"
    first = [
        "cp311-cp311-manylinux1_x86_64",
        "cp311-abi3-manylinux_2_35_x86_64",
        "cp311-none-manylinux_2_35_x86_64",
        "cp310-abi3-manylinux_2_35_x86_64",
        "cp32-abi3-manylinux1_x86_64",
        "py311-none-manylinux_2_35_x86_64",
        "py3-none-manylinux_2_35_x86_64",
        "py30-none-manylinux1_x86_64",
        "cp311-none-any",
        "py311-none-any",
        "py3-none-any",
        "py310-none-any",
    ]
    assert [tags.index(tag) for tag in first] == sorted(tags.index(tag) for tag in first)


def test_supported_tags_have_one_abi_and_no_host_platform() -> None:
    tags = supported_tags(PY312)
    assert {tag.abi for tag in tags} == {"cp312", "abi3", "none"}
    assert {tag.platform for tag in tags} == {*platform_tags(PY312), "any"}
    assert len(tags) == len(set(tags))
    assert tags.index(Tag("cp312", "cp312", "linux_x86_64")) > tags.index(Tag("cp312", "cp312", "manylinux1_x86_64"))
    assert Tag("cp312", "cp312", "linux_aarch64") not in tags


def test_supported_tags_returns_a_fresh_list() -> None:
    supported_tags(PY311).clear()
    assert supported_tags(PY311)


# --- wheel_fits / explain_misfit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    [NUMPY, PYDANTIC_CORE, SIX, CRYPTOGRAPHY, CUBLAS, "torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl"],
)
def test_wheels_that_fit_3_11(filename: str) -> None:
    assert wheel_fits(filename, PY311)


@pytest.mark.parametrize(
    ("filename", "target", "reason"),
    [
        (NUMPY, PY312, "is for CPython 3.11, but the target is CPython 3.12"),
        (PYDANTIC_CORE, Target("3.10"), "is for CPython 3.11, but the target is CPython 3.10"),
        (NEW_GLIBC, PY311, "needs glibc 2.39 (manylinux_2_39), newer than the worker's 2.35"),
        (
            "numpy-1.26.4-cp311-cp311-macosx_11_0_arm64.whl",
            PY311,
            "is for macOS (macosx_11_0_arm64), but workers run Linux x86_64",
        ),
        (
            "numpy-1.26.4-cp311-cp311-macosx_10_9_x86_64.macosx_11_0_arm64.whl",
            PY311,
            "is for macOS (macosx_10_9_x86_64, macosx_11_0_arm64), but workers run Linux x86_64",
        ),
        (
            "numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
            PY311,
            "is for aarch64 (manylinux_2_17_aarch64, manylinux2014_aarch64), but workers run Linux x86_64",
        ),
        (
            "numpy-1.26.4-cp311-cp311-musllinux_1_1_x86_64.whl",
            PY311,
            "is for musl-based Linux (musllinux_1_1_x86_64), but workers run glibc-based Linux x86_64",
        ),
        ("numpy-1.26.4-cp311-cp311-win_amd64.whl", PY311, "is for Windows (win_amd64), but workers run Linux x86_64"),
        (
            "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            PY311,
            "is for CPython 3.12, but the target is CPython 3.11",
        ),
        (
            "cryptography-43.0.0-cp312-abi3-manylinux_2_28_x86_64.whl",
            PY311,
            "needs CPython 3.12 or newer (abi3), but the target is CPython 3.11",
        ),
        ("futures-3.4.0-py2-none-any.whl", PY311, "is for Python 2, but the target is CPython 3.11"),
        ("newlib-1.0-py312-none-any.whl", PY311, "is for Python 3.12, but the target is CPython 3.11"),
        (
            "numpy-1.26.4-pp39-pypy39_pp73-manylinux_2_17_x86_64.whl",
            PY311,
            "is for PyPy (pp39), but the target is CPython 3.11",
        ),
        (
            "numpy-2.1.0-cp313-cp313t-manylinux_2_17_x86_64.whl",
            Target("3.13"),
            "is built for the cp313t ABI, but the target's CPython 3.13 uses cp313",
        ),
    ],
)
def test_misfits_are_explained(filename: str, target: Target, reason: str) -> None:
    assert not wheel_fits(filename, target)
    assert explain_misfit(filename, target) == f"{filename} {reason}"


def test_glibc_wheel_fits_a_newer_worker() -> None:
    assert not wheel_fits(NEW_GLIBC, PY311)
    assert wheel_fits(NEW_GLIBC, Target("3.11", glibc="2.39"))


def test_abi3_fits_newer_cpython_only() -> None:
    assert wheel_fits(CRYPTOGRAPHY, Target("3.9"))
    assert wheel_fits(CRYPTOGRAPHY, Target("3.13"))
    assert not wheel_fits(CRYPTOGRAPHY, Target("3.8"))


def test_nearest_platform_miss_speaks() -> None:
    filename = "x-1.0-cp311-cp311-macosx_11_0_arm64.manylinux_2_39_x86_64.win_amd64.whl"
    assert (
        explain_misfit(filename, PY311) == f"{filename} needs glibc 2.39 (manylinux_2_39), newer than the worker's 2.35"
    )


def test_platform_is_explained_before_python() -> None:
    filename = "numpy-2.1.0-cp312-cp312-macosx_11_0_arm64.whl"
    assert (
        explain_misfit(filename, PY311) == f"{filename} is for macOS (macosx_11_0_arm64), but workers run Linux x86_64"
    )


def test_explain_misfit_refuses_a_wheel_that_fits() -> None:
    with pytest.raises(ValueError, match="fits the target"):
        explain_misfit(NUMPY, PY311)


def test_not_a_wheel_filename() -> None:
    with pytest.raises(InvalidWheelFilename):
        wheel_fits("numpy-1.26.4.tar.gz", PY311)


# --- markers -----------------------------------------------------------------------------------------------------


def test_marker_environment_is_the_worker() -> None:
    assert marker_environment(PY312) == {
        "implementation_name": "cpython",
        "implementation_version": "3.12.0",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.12.0",
        "python_version": "3.12",
        "sys_platform": "linux",
    }


@pytest.mark.skipif(sys.version_info[:2] == (3, 12), reason="needs a host Python other than the 3.12 target")
@pytest.mark.parametrize(
    ("marker", "applies"),
    [
        ('python_version >= "3.12"', True),
        ('python_version < "3.12"', False),
        ('python_full_version >= "3.12.0"', True),
        ('python_full_version < "3.12.4"', True),
        ('sys_platform == "win32"', False),
        ('sys_platform == "linux"', True),
        ('platform_system == "Darwin"', False),
        ('platform_machine == "x86_64"', True),
        ('platform_machine == "aarch64"', False),
        ('implementation_name == "cpython"', True),
        ('os_name == "nt"', False),
        ('platform_system == "Linux" and platform_machine == "x86_64" and python_version >= "3.12"', True),
    ],
)
def test_markers_are_evaluated_for_the_target(marker: str, applies: bool) -> None:
    assert marker_applies(marker, PY312) is applies


def test_platform_machine_follows_the_target() -> None:
    assert marker_applies('platform_machine == "aarch64"', Target("3.11", machine="aarch64"))


def test_no_marker_applies() -> None:
    assert marker_applies(None, PY312)


@pytest.mark.parametrize(
    ("extras", "applies"),
    [((), False), (["cpu"], False), (["gpu"], True), (["cpu", "gpu"], True), (["GPU"], True), (iter(["gpu"]), True)],
)
def test_extra_marker_applies_only_when_requested(extras: list[str], applies: bool) -> None:
    assert marker_applies('extra == "gpu"', PY312, extras) is applies


def test_extra_marker_combines_with_platform() -> None:
    assert not marker_applies('extra == "gpu" and sys_platform == "darwin"', PY312, ["gpu"])


def test_invalid_marker() -> None:
    with pytest.raises(InvalidMarker):
        marker_applies('python_version >= "3.12" and', PY312)
