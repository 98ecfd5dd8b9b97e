"""System packages: does this machine have what the workers install with apt?

A resource's `system_dependencies` are apt package names that Runpod's worker installs before it
runs the function. A local deploy cannot do the same: it may have no root, and it must not change
the host. So before any endpoint starts, it checks every package once and names what is missing,
with the command that would add it.

A package is present when dpkg says it is installed (`ii`, or `hi` if held). When dpkg lacks it
(a source build in /usr/local, a renamed package such as Ubuntu 24.04's `libglib2.0-0t64`) or
there is no dpkg (another distribution), the package counts as present if what it provides is
here: any one of its programs on PATH, and all of its shared libraries known to the loader
(`ldconfig -p`) or in the usual library folders. `PROVIDES` lists common packages; any other package
is looked for as a program with the package's name. An architecture suffix (`libgl1:amd64`) goes
to dpkg as written and is dropped for the fallback.

A name apt would not accept comes back as a `Missing` with reason `"invalid-name"` instead of
raising: no machine can install it, and the caller reports it along with the missing packages and
fails once.

    missing = missing_packages({"gpu_worker": ["ffmpeg", "libgl1"], "cpu_worker": ["libgl1"]})
    if missing:
        raise ProjectError(describe(missing), install_hint(missing))

Everything here is pure except `HOST`, the probe that asks this machine; tests pass a `Probe` of fakes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal

__all__ = [
    "HOST",
    "PROVIDES",
    "Missing",
    "Probe",
    "Provides",
    "Reason",
    "describe",
    "endpoint_probe",
    "install_hint",
    "is_apt_name",
    "missing_packages",
    "provides",
]

Reason = Literal["not-found", "invalid-name"]

# Debian policy 5.6.1: lowercase letters, digits, '+', '-', '.'; at least two characters, the first
# alphanumeric. apt-get also takes an architecture after a colon (`libgl1:amd64`).
_APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.\-]+(?::[a-z0-9][a-z0-9\-]*)?")
_APT_NAME_RULE = "lowercase letters, digits, '+', '-' and '.', at least 2 characters, starting with a letter or digit"


@dataclasses.dataclass(frozen=True, slots=True)
class Provides:
    """What an installed package puts on a machine, looked for when dpkg cannot answer."""

    programs: tuple[str, ...] = ()  # present when any one is on PATH
    libraries: tuple[str, ...] = ()  # present when every soname is found


def _programs(*names: str) -> Provides:
    return Provides(programs=names)


def _libraries(*sonames: str) -> Provides:
    return Provides(libraries=sonames)


PROVIDES: Mapping[str, Provides] = MappingProxyType(
    {
        "build-essential": _programs("gcc", "g++", "make"),
        "cmake": _programs("cmake"),
        "curl": _programs("curl"),
        "espeak-ng": _programs("espeak-ng"),
        "ffmpeg": _programs("ffmpeg", "ffprobe"),
        "g++": _programs("g++"),
        "gcc": _programs("gcc"),
        "ghostscript": _programs("gs"),
        "git": _programs("git"),
        "imagemagick": _programs("convert"),
        "libgl1": _libraries("libGL.so.1"),
        "libglib2.0-0": _libraries("libglib-2.0.so.0"),
        "libglib2.0-0t64": _libraries("libglib-2.0.so.0"),
        "libgomp1": _libraries("libgomp.so.1"),
        "libmagic1": _libraries("libmagic.so.1"),
        "libopenblas-dev": _libraries("libopenblas.so.0"),
        "libopenblas0": _libraries("libopenblas.so.0"),
        "libpq-dev": _libraries("libpq.so.5"),
        "libpq5": _libraries("libpq.so.5"),
        "libsm6": _libraries("libSM.so.6"),
        "libsndfile1": _libraries("libsndfile.so.1"),
        "libxext6": _libraries("libXext.so.6"),
        "libxrender1": _libraries("libXrender.so.1"),
        "make": _programs("make"),
        "nodejs": _programs("node"),
        "poppler-utils": _programs("pdftotext", "pdftoppm"),
        "sox": _programs("sox"),
        "tesseract-ocr": _programs("tesseract"),
        "unzip": _programs("unzip"),
        "wget": _programs("wget"),
        "zip": _programs("zip"),
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """The lookups the check makes on a machine. `HOST` asks this one; tests pass fakes."""

    installed: Callable[[str], bool | None]  # dpkg: True installed, False not installed or unknown, None no dpkg
    program: Callable[[str], bool]  # an executable of that name on PATH
    library: Callable[[str], bool]  # a shared library of that soname the loader can find


@dataclasses.dataclass(frozen=True, slots=True)
class Missing:
    """A system package some resources want that this machine lacks, or a name apt cannot install.

    `looked_for` says what was asked, in order: `"dpkg"` when dpkg answered that it is not installed,
    then `"program <name>"` and `"library <soname>"` entries. It is empty for an invalid name,
    which is not looked for.
    """

    package: str
    resources: tuple[str, ...]  # sorted
    looked_for: tuple[str, ...]
    reason: Reason = "not-found"


# The host probe. -----------------------------------------------------------------------------------------


def _dpkg_installed(package: str) -> bool | None:
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query is None:
        return None
    try:
        done = subprocess.run(
            [dpkg_query, "--show", "--showformat=${db:Status-Abbrev}\\n", "--", package],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 1:  # dpkg-query: no such package
        return False
    if done.returncode != 0:  # it could not read its database: no answer either way
        return None
    # One line per architecture the name has. The second letter is the state: `ii ` is installed, and
    # so is `hi ` (installed and held).
    return any(line[1:2] == "i" for line in done.stdout.splitlines())


def _on_path(name: str) -> bool:
    return shutil.which(name) is not None


def _parse_ldconfig(text: str) -> frozenset[str]:
    """The sonames in `ldconfig -p` output: lines like `\\tlibGL.so.1 (libc6,x86-64) => /usr/lib/.../libGL.so.1`."""
    return frozenset(line.split()[0] for line in text.splitlines() if " => " in line)


def _library_dirs() -> tuple[str, ...]:
    triplet = f"{platform.machine()}-linux-gnu"
    dirs = [
        "/lib",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        f"/lib/{triplet}",
        f"/usr/lib/{triplet}",
        "/lib64",
        "/usr/lib64",
        "/usr/local/lib",
    ]
    # The endpoints do not inherit LD_LIBRARY_PATH: only what the loader finds by itself counts.
    return tuple(dict.fromkeys(dirs))


@functools.cache
def _host_libraries() -> frozenset[str]:
    """Every soname this machine's loader can find; read once, as a deploy asks for several."""
    names: set[str] = set()
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.access(p, os.X_OK)), None
    )
    if ldconfig is not None:
        try:
            done = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass
        else:
            if done.returncode == 0:
                names |= _parse_ldconfig(done.stdout)
    for folder in _library_dirs():
        try:
            with os.scandir(folder) as entries:
                names.update(entry.name for entry in entries if ".so" in entry.name)
        except OSError:
            continue
    return frozenset(names)


def _host_library(soname: str) -> bool:
    return soname in _host_libraries()


HOST = Probe(installed=_dpkg_installed, program=_on_path, library=_host_library)
"""This machine: dpkg-query, PATH, and the loader's cache plus the usual library folders (scanned once)."""


def endpoint_probe(path: str) -> Probe:
    """This machine as an endpoint sees it: programs on the endpoint's PATH, not the deploying shell's."""
    return dataclasses.replace(HOST, program=lambda name: shutil.which(name, path=path) is not None)


def is_apt_name(name: str) -> bool:
    """True when apt-get could install a package called `name`, with or without an `:arch` suffix."""
    return _APT_NAME.fullmatch(name) is not None


def provides(package: str) -> Provides:
    """What `package` puts on a machine: its `PROVIDES` entry, else a program named like it."""
    name = package.partition(":")[0]
    return PROVIDES.get(name, Provides(programs=(name,)))


def missing_packages(wanted: Mapping[str, Iterable[str]], probe: Probe = HOST) -> tuple[Missing, ...]:
    """The packages in `wanted` (resource name -> its apt packages) that are not on the probed machine.

    Each package is looked for once, however many resources want it, and comes back once with all of
    them. A name apt would not accept comes back with reason `"invalid-name"`. Sorted by package.
    """
    by_package: dict[str, set[str]] = {}
    for resource, packages in wanted.items():
        if isinstance(packages, str):
            raise TypeError(f"packages of resource {resource!r} must be a list of names, not the string {packages!r}")
        for package in packages:
            by_package.setdefault(package, set()).add(resource)
    missing: list[Missing] = []
    for package, resources in sorted(by_package.items()):
        if not is_apt_name(package):
            missing.append(Missing(package, tuple(sorted(resources)), (), "invalid-name"))
            continue
        looked_for = _look(package, probe)
        if looked_for is not None:
            missing.append(Missing(package, tuple(sorted(resources)), looked_for))
    return tuple(missing)


def _look(package: str, probe: Probe) -> tuple[str, ...] | None:
    """None when `package` is present, else what was looked for in vain."""
    dpkg = probe.installed(package)
    if dpkg:
        return None
    wants = provides(package)
    # Short-circuits on purpose: a found program spares the next lookups.
    has_program = not wants.programs or any(probe.program(name) for name in wants.programs)
    if has_program and all(probe.library(soname) for soname in wants.libraries):
        return None
    return (
        (("dpkg",) if dpkg is False else ())
        + tuple(f"program {name}" for name in wants.programs)
        + tuple(f"library {soname}" for soname in wants.libraries)
    )


def describe(missing: Sequence[Missing]) -> str:
    """One line for the user naming every missing package and invalid name; empty when there is none.

    system packages the workers install with apt are missing on this machine: ffmpeg (for gpu_worker;
    looked for the programs ffmpeg, ffprobe), libgl1 (for cpu_worker, gpu_worker; looked for libGL.so.1)
    """
    parts: list[str] = []
    absent = [m for m in missing if m.reason == "not-found"]
    if absent:
        items = ", ".join(f"{m.package} (for {', '.join(m.resources)}; {_looked(m.looked_for)})" for m in absent)
        parts.append(f"system packages the workers install with apt are missing on this machine: {items}")
    invalid = [m for m in missing if m.reason == "invalid-name"]
    if invalid:
        items = ", ".join(f"'{m.package}' (for {', '.join(m.resources)})" for m in invalid)
        parts.append(f"system_dependencies that are not apt package names, so no machine can install them: {items}")
    return "; ".join(parts)


def _looked(looked_for: Sequence[str]) -> str:
    programs = [item.removeprefix("program ") for item in looked_for if item.startswith("program ")]
    libraries = [item.removeprefix("library ") for item in looked_for if item.startswith("library ")]
    things: list[str] = []
    if programs:
        things.append(f"the program{'s' if len(programs) > 1 else ''} {', '.join(programs)}")
    things.extend(libraries)
    what = ", ".join(things)
    if "dpkg" in looked_for:
        return f"looked in dpkg and for {what}" if what else "looked in dpkg"
    return f"looked for {what}"


def install_hint(missing: Sequence[Missing], probe: Probe = HOST) -> str:
    """What the user can do: the `apt-get install` line for the missing packages, and how to fix invalid names.

    Without apt-get on the probed machine, it says to install the equivalents with the system's package
    manager. Empty when `missing` is.
    """
    hints: list[str] = []
    absent = [m.package for m in missing if m.reason == "not-found"]
    if absent:
        if probe.program("apt-get"):
            hints.append(f"sudo apt-get install -y {' '.join(absent)}")
        else:
            hints.append(
                f"this machine has no apt-get: install the equivalents of {', '.join(absent)} with its package manager"
            )
    invalid = [m.package for m in missing if m.reason == "invalid-name"]
    if invalid:
        guesses = [f"'{name}' -> '{_guess(name)}'" for name in invalid if _guess(name)]
        hint = f"write system_dependencies as apt package names: {_APT_NAME_RULE}"
        hints.append(f"{hint} (did you mean {', '.join(guesses)}?)" if guesses else hint)
    return "; ".join(hints)


def _guess(name: str) -> str | None:
    """The apt name `name` was probably meant to be: lowercased, without `=version` or `/release`."""
    guess = re.split(r"[=/]", name.strip().lower(), maxsplit=1)[0]
    return guess if is_apt_name(guess) and guess != name else None
