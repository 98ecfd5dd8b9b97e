"""Target: what a worker is, said the way pip and `packaging` need to hear it.

A worker runs one CPython 3 minor version on glibc-based Linux. The dependency stage resolves wheels on a build host
that may be anything (a Mac laptop, a CI runner with another Python), so it must never ask the host what it is.
Two questions are answered here, each purely from a `Target`:

    which wheels install   `platform_tags` (the `--platform` values for pip), `supported_tags`, `wheel_fits`,
                           and `explain_misfit` for a user-facing reason when one does not
    which requirements     `marker_environment` and `marker_applies`: PEP 508 markers evaluated for the worker,
    apply                  because pip evaluates them for the host (pypa/pip#6117) whatever `--platform` says

pip takes each `--platform manylinux_2_Y_x86_64` literally (only the legacy `manylinux2014`/`manylinux2010` aliases
are expanded), so a sparse list silently picks older or pure-Python releases; `platform_tags` is therefore the whole
ladder, as `packaging.tags` would compute it on the worker itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import UsageError

if TYPE_CHECKING:
    from packaging.tags import Tag

__all__ = [
    "Target",
    "explain_misfit",
    "marker_applies",
    "marker_environment",
    "parse_glibc",
    "parse_python_version",
    "platform_tags",
    "supported_tags",
    "wheel_fits",
]

# 3.8 dropped the pymalloc "m" ABI flag, so from there on a release has exactly one ABI tag, `cp3Y`.
_OLDEST_MINOR = 8
# manylinux2014 (CentOS 7). Older worker images are long out of support; newer ones are all that matters.
_OLDEST_GLIBC_MINOR = 17
_PYTHON_HINT = f"use a CPython 3 version such as 3.11 (3.{_OLDEST_MINOR} or newer)"
_GLIBC_HINT = "give the worker image's glibc as MAJOR.MINOR, such as 2.35 (`ldd --version` prints it)"

_PYTHON_RE = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?")
_GLIBC_RE = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)")
# The legacy names stand for a glibc floor (PEP 513, 571, 599); packaging yields each right after its PEP 600 twin.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_GLIBC = {name: glibc for glibc, name in _LEGACY_MANYLINUX.items()}
_MANYLINUX_RE = re.compile(r"manylinux_(?P<major>\d+)_(?P<minor>\d+)_(?P<arch>.+)")
_LEGACY_RE = re.compile(r"(?P<name>manylinux1|manylinux2010|manylinux2014)_(?P<arch>.+)")
_INTERPRETER_RE = re.compile(r"(?P<impl>[a-z]+?)(?P<version>\d+)")
_IMPLEMENTATIONS = {"cp": "CPython", "pp": "PyPy", "ip": "IronPython", "jy": "Jython", "graalpy": "GraalPy"}


@dataclass(frozen=True, slots=True)
class Target:
    """The worker a build is for. Build it from user text with `parse_python_version` and `parse_glibc`.

    `glibc` is the highest manylinux glibc the worker image supports (Ubuntu 22.04, the usual CUDA base, has 2.35).
    Fields must be in canonical form ("3.11", "2.35"); anything else is a programming error (`ValueError`).
    """

    python_version: str
    glibc: str = "2.35"
    machine: str = "x86_64"
    implementation: Literal["cp"] = "cp"

    def __post_init__(self) -> None:
        match = _PYTHON_RE.fullmatch(self.python_version)
        if match is None or self.python_version != _canonical(match):
            raise ValueError(f"python_version must look like '3.11', not {self.python_version!r}")
        match = _GLIBC_RE.fullmatch(self.glibc)
        if match is None or self.glibc != _canonical(match):
            raise ValueError(f"glibc must look like '2.35', not {self.glibc!r}")
        if self.implementation != "cp":
            raise ValueError(f"only CPython ('cp') workers exist, not {self.implementation!r}")


def parse_python_version(text: str) -> str:
    """Return the worker's Python as "3.Y" from "3.Y" or "3.Y.Z"; the patch level is dropped.

    Raises `UsageError` for anything else: "3", "3.x", "2.7", "4.0", or a 3.Y older than 3.8.
    """
    stripped = text.strip()
    match = _PYTHON_RE.fullmatch(stripped)
    if match is None:
        raise UsageError(f"invalid Python version '{text}'", _PYTHON_HINT)
    if int(match["major"]) != 3 or int(match["minor"]) < _OLDEST_MINOR:
        raise UsageError(f"unsupported Python version '{text}'", _PYTHON_HINT)
    return _canonical(match)


def parse_glibc(text: str) -> str:
    """Return the worker's glibc as "2.N" with N >= 17 (manylinux2014); raise `UsageError` otherwise."""
    stripped = text.strip()
    match = _GLIBC_RE.fullmatch(stripped)
    if match is None or int(match["major"]) != 2:
        raise UsageError(f"invalid glibc version '{text}'", _GLIBC_HINT)
    if int(match["minor"]) < _OLDEST_GLIBC_MINOR:
        raise UsageError(
            f"glibc '{text}' is too old: workers need glibc 2.{_OLDEST_GLIBC_MINOR} (manylinux2014) or newer",
            _GLIBC_HINT,
        )
    return _canonical(match)


def platform_tags(target: Target) -> tuple[str, ...]:
    """Every platform tag a worker accepts, most preferred first.

    For glibc 2.N on x86_64 that is `manylinux_2_N_x86_64` down to `manylinux_2_5_x86_64`, each legacy alias right
    after its PEP 600 twin (`manylinux2014_x86_64` after 2_17, `manylinux2010_x86_64` after 2_12, `manylinux1_x86_64`
    last), the same list `packaging.tags` computes on such a machine. The ladder goes below the 2.17 floor of the
    worker image on purpose: an old-glibc wheel runs on a newer glibc, and some packages only ship one (torch 2.1 to
    2.3 pin `nvidia-cublas-cu12==12.1.3.1`, whose only Linux wheel is `manylinux1_x86_64`). Other architectures
    start at 2.17, the oldest manylinux defined for them.

    `linux_x86_64` comes last: pip on the worker accepts it, and so does uv for the target, so a private index or
    find-links folder of plain linux wheels resolves. Such a wheel promises nothing about the glibc it was built
    against (PyPI refuses them), so any manylinux wheel of the same release is preferred to it.
    """
    return _platform_tags(target)


def supported_tags(target: Target) -> list[Tag]:
    """Every wheel tag a worker accepts, most preferred first; `P` runs over `platform_tags(target)` in its order.

    For CPython 3.Y this is what pip computes on the worker itself:

        cp3Y-cp3Y-P                  version-specific ABI (one ABI: no debug or pymalloc variant from 3.8 on)
        cp3Y-abi3-P                  stable ABI built for this version,
        cp3Y-none-P                  then this interpreter with no ABI,
        cp3X-abi3-P                  then stable ABI built for older versions, X = Y-1 down to 2
        py3Y-none-P, py3-none-P, py3X-none-P    X = Y-1 down to 0
        cp3Y-none-any
        py3Y-none-any, py3-none-any, py3X-none-any    X = Y-1 down to 0

    A fresh list on every call; the tuple behind it is cached per target.
    """
    return list(_supported_tags(target))


def wheel_fits(filename: str, target: Target) -> bool:
    """True if any tag of the wheel named `filename` is one the worker accepts.

    Raises `packaging.utils.InvalidWheelFilename` (a `ValueError`) if `filename` is not a wheel's file name.
    """
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(filename)
    return not _supported_tag_set(target).isdisjoint(tags)


def explain_misfit(filename: str, target: Target) -> str:
    """One sentence saying why the wheel `filename` does not install on the worker, for a diagnostic.

    The platform is judged first: a macOS wheel is reported as macOS even if it is also for another Python. Among
    several platform tags the one closest to fitting speaks (too new a glibc, then musl, plain linux, another
    architecture, macOS or Windows, anything else). Raises `ValueError` if the wheel fits, and
    `packaging.utils.InvalidWheelFilename` if `filename` is not a wheel's file name.
    """
    if wheel_fits(filename, target):
        raise ValueError(f"{filename} fits the target")
    interpreters, abis, platforms = (part.lower().split(".") for part in filename[: -len(".whl")].split("-")[-3:])
    accepted = set(_platform_tags(target)) | {"any"}
    if not accepted.intersection(platforms):
        return f"{filename} {_platform_reason(platforms, target)}"
    reason = _python_reason(interpreters, abis, target)
    if reason is not None:
        return f"{filename} {reason}"
    # Each part fits on its own but no combination does, e.g. a `py3-cp311-...` tag.
    return (
        f"{filename} has no tag that a CPython {target.python_version} worker accepts"
        f" (Linux {target.machine}, glibc {target.glibc})"
    )


def marker_environment(target: Target) -> dict[str, str]:
    """The PEP 508 environment of a worker for `target`, with no value taken from the host.

    The worker's patch release is unknown at build time, so `python_full_version` and `implementation_version` are
    "3.Y.0", the oldest the worker can run; pip's `--python-version 3.Y` and uv mean 3.Y.0 too. Markers almost
    always bound the patch from above to pull in a backport (`python_full_version < "3.11.4"`), so assuming the
    oldest patch installs a package too many rather than one too few. `platform_release` and `platform_version`
    describe the kernel, which a build cannot know: they are empty, so a marker on them compares against "".
    """
    version = target.python_version
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{version}.0",
        "os_name": "posix",
        "platform_machine": target.machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{version}.0",
        "python_version": version,
        "sys_platform": "linux",
    }


def marker_applies(marker: str | None, target: Target, extras: Iterable[str] = ()) -> bool:
    """True if the PEP 508 `marker` holds on the worker; no marker always holds.

    As pip does, the marker is evaluated once per requested extra (with `extra` set to it) and applies if any
    evaluation holds; with no extras it is evaluated with `extra == ""`, so `extra == "gpu"` does not hold.
    Extra names are compared normalized (PEP 685). Raises `packaging.markers.InvalidMarker` for a malformed marker.
    """
    if marker is None:
        return True
    from packaging.markers import Marker  # loaded when used: the config reads targets without markers

    parsed = Marker(marker)
    environment = marker_environment(target)
    return any(parsed.evaluate({**environment, "extra": extra}) for extra in (list(extras) or [""]))


def _canonical(match: re.Match[str]) -> str:
    """MAJOR.MINOR without leading zeros, from a match of `_PYTHON_RE` or `_GLIBC_RE`."""
    return f"{int(match['major'])}.{int(match['minor'])}"


def _minor(version: str) -> int:
    return int(version.split(".")[1])


@functools.cache
def _platform_tags(target: Target) -> tuple[str, ...]:
    floor = 5 if target.machine in ("x86_64", "i686") else _OLDEST_GLIBC_MINOR
    tags: list[str] = []
    for minor in range(_minor(target.glibc), floor - 1, -1):
        tags.append(f"manylinux_2_{minor}_{target.machine}")
        if legacy := _LEGACY_MANYLINUX.get((2, minor)):
            tags.append(f"{legacy}_{target.machine}")
    tags.append(f"linux_{target.machine}")
    return tuple(tags)


@functools.cache
def _supported_tags(target: Target) -> tuple[Tag, ...]:
    from packaging.tags import compatible_tags, cpython_tags

    version = (3, _minor(target.python_version))
    interpreter = f"cp3{version[1]}"
    platforms = _platform_tags(target)
    return (
        *cpython_tags(python_version=version, abis=[interpreter], platforms=platforms),
        *compatible_tags(python_version=version, interpreter=interpreter, platforms=platforms),
    )


@functools.cache
def _supported_tag_set(target: Target) -> frozenset[Tag]:
    return frozenset(_supported_tags(target))


def _platform_reason(platforms: list[str], target: Target) -> str:
    worker = f"workers run Linux {target.machine}"
    # (rank, family, platform, glibc needed): the lowest rank is the nearest miss and gives the sentence.
    misses: list[tuple[int, str, str, tuple[int, int]]] = []
    for platform in platforms:
        glibc, arch = _manylinux(platform)
        if arch == target.machine:
            # Below the ladder's floor (manylinux_2_4) is no real tag; "other" keeps it from reading as too new.
            too_new = glibc > (2, _minor(target.glibc))
            misses.append((0, "glibc", platform, glibc) if too_new else (5, "other", platform, (0, 0)))
        elif platform.startswith("musllinux_"):
            misses.append((1, "musl", platform, (0, 0)))
        elif arch is not None or platform.startswith("linux_"):
            arch = arch or platform.removeprefix("linux_")
            misses.append((3, f"arch {arch}", platform, (0, 0)))
        elif platform.startswith("macosx_"):
            misses.append((4, "macOS", platform, (0, 0)))
        elif platform == "win32" or platform.startswith("win_"):
            misses.append((4, "Windows", platform, (0, 0)))
        else:
            misses.append((5, "other", platform, (0, 0)))
    rank, family, _, _ = min(misses)
    nearest = [miss for miss in misses if miss[:2] == (rank, family)]
    listed = ", ".join(platform for _, _, platform, _ in nearest)
    if family == "glibc":
        major, minor = min(glibc for _, _, _, glibc in nearest)
        return f"needs glibc {major}.{minor} (manylinux_{major}_{minor}), newer than the worker's {target.glibc}"
    if family == "musl":
        return f"is for musl-based Linux ({listed}), but workers run glibc-based Linux {target.machine}"
    if family.startswith("arch "):
        return f"is for {family.removeprefix('arch ')} ({listed}), but {worker}"
    if family in ("macOS", "Windows"):
        return f"is for {family} ({listed}), but {worker}"
    return f"is for another platform ({listed}), but {worker}"


def _manylinux(platform: str) -> tuple[tuple[int, int], str | None]:
    """The glibc floor and architecture of a manylinux platform tag; ((0, 0), None) for any other tag."""
    if match := _MANYLINUX_RE.fullmatch(platform):
        return (int(match["major"]), int(match["minor"])), match["arch"]
    if match := _LEGACY_RE.fullmatch(platform):
        return _LEGACY_GLIBC[match["name"]], match["arch"]
    return (0, 0), None


def _python_reason(interpreters: list[str], abis: list[str], target: Target) -> str | None:
    """Why no interpreter/ABI pair of the wheel suits the target's CPython, or None if some pair does."""
    wanted = f"CPython {target.python_version}"
    own_abi = f"cp3{_minor(target.python_version)}"
    for interpreter in interpreters:
        match = _INTERPRETER_RE.fullmatch(interpreter)
        if match is None:
            continue
        impl, digits = match["impl"], match["version"]
        version = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits
        if impl == "py":
            # py3 and py3X for X up to the target's minor are accepted; py2, py3Z with Z newer are not.
            if digits[0] != "3" or (len(digits) > 1 and int(digits[1:]) > _minor(target.python_version)):
                return f"is for Python {version}, but the target is {wanted}"
            continue
        if impl != "cp":
            name = _IMPLEMENTATIONS.get(impl, "another Python implementation")
            return f"is for {name} ({interpreter}), but the target is {wanted}"
        if "abi3" in abis and digits[0] == "3" and int(digits[1:] or 0) > _minor(target.python_version):
            return f"needs CPython {version} or newer (abi3), but the target is {wanted}"
        if version != target.python_version and "abi3" not in abis:
            return f"is for CPython {version}, but the target is {wanted}"
        odd_abis = [abi for abi in abis if abi not in (own_abi, "abi3", "none")]
        if version == target.python_version and odd_abis:
            return f"is built for the {', '.join(odd_abis)} ABI, but the target's {wanted} uses {own_abi}"
    return None
