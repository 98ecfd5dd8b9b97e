"""System packages the workers install with apt: which are missing here, and what the user is told."""

from __future__ import annotations

import platform
import shutil
from collections import Counter
from collections.abc import Iterable

import pytest

from flashc.deploy.system import (
    HOST,
    PROVIDES,
    Missing,
    Probe,
    _parse_ldconfig,
    describe,
    install_hint,
    is_apt_name,
    missing_packages,
    provides,
)


class FakeMachine:
    """A machine made of sets: what dpkg has installed (None: no dpkg), programs on PATH, sonames."""

    def __init__(
        self,
        dpkg: Iterable[str] | None = (),
        programs: Iterable[str] = (),
        libraries: Iterable[str] = (),
    ) -> None:
        self.dpkg = None if dpkg is None else set(dpkg)
        self.programs = set(programs)
        self.libraries = set(libraries)
        self.calls: Counter[tuple[str, str]] = Counter()

    def installed(self, package: str) -> bool | None:
        self.calls["installed", package] += 1
        return None if self.dpkg is None else package in self.dpkg

    def program(self, name: str) -> bool:
        self.calls["program", name] += 1
        return name in self.programs

    def library(self, soname: str) -> bool:
        self.calls["library", soname] += 1
        return soname in self.libraries

    @property
    def probe(self) -> Probe:
        return Probe(installed=self.installed, program=self.program, library=self.library)


def test_present_when_dpkg_says_installed_even_with_nothing_on_path() -> None:
    machine = FakeMachine(dpkg={"ffmpeg", "libgl1:amd64"})
    assert missing_packages({"gpu": ["ffmpeg", "libgl1:amd64"]}, machine.probe) == ()
    assert set(machine.calls) == {("installed", "ffmpeg"), ("installed", "libgl1:amd64")}  # no fallback asked


def test_program_fallback_when_dpkg_does_not_know_the_package() -> None:
    machine = FakeMachine(dpkg=(), programs={"ffprobe", "jq"})
    # Any one of a package's programs is enough; an unlisted package is looked for as a program of its name.
    assert missing_packages({"gpu": ["ffmpeg", "jq"]}, machine.probe) == ()


def test_program_fallback_without_dpkg() -> None:
    machine = FakeMachine(dpkg=None, programs={"tesseract"})
    assert missing_packages({"ocr": ["tesseract-ocr", "poppler-utils"]}, machine.probe) == (
        Missing("poppler-utils", ("ocr",), ("program pdftotext", "program pdftoppm")),
    )


def test_library_fallback_needs_every_soname() -> None:
    machine = FakeMachine(dpkg=(), libraries={"libGL.so.1", "libglib-2.0.so.0"})
    # libglib2.0-0t64 is Ubuntu 24.04's name: dpkg on another release does not know it, the soname is the same.
    got = missing_packages({"cv": ["libgl1", "libglib2.0-0t64", "libsm6"]}, machine.probe)
    assert got == (Missing("libsm6", ("cv",), ("dpkg", "library libSM.so.6")),)


def test_arch_suffix_goes_to_dpkg_as_written_and_is_dropped_for_the_fallback() -> None:
    machine = FakeMachine(dpkg=(), libraries={"libGL.so.1"})
    assert missing_packages({"cv": ["libgl1:amd64"]}, machine.probe) == ()
    assert machine.calls["installed", "libgl1:amd64"] == 1
    assert provides("libgl1:amd64") == PROVIDES["libgl1"]


def test_missing_package_named_once_with_every_resource_that_wants_it() -> None:
    machine = FakeMachine(dpkg=())
    wanted = {"gpu_worker": ["libgl1", "ffmpeg", "libgl1"], "cpu_worker": ("libgl1",), "idle": []}
    got = missing_packages(wanted, machine.probe)
    assert got == (
        Missing("ffmpeg", ("gpu_worker",), ("dpkg", "program ffmpeg", "program ffprobe")),
        Missing("libgl1", ("cpu_worker", "gpu_worker"), ("dpkg", "library libGL.so.1")),
    )
    assert machine.calls["installed", "libgl1"] == 1
    assert machine.calls["library", "libGL.so.1"] == 1


def test_dpkg_is_not_in_looked_for_when_there_is_none() -> None:
    machine = FakeMachine(dpkg=None)
    assert missing_packages({"w": ["libgomp1"]}, machine.probe) == (
        Missing("libgomp1", ("w",), ("library libgomp.so.1",)),
    )


@pytest.mark.parametrize(
    "name",
    ["ffmpeg", "libgl1", "g++", "libglib2.0-0t64", "libgl1:amd64", "r-base-core", "7zip", "xz-utils:arm64"],
)
def test_apt_names(name: str) -> None:
    assert is_apt_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x",
        "FFmpeg",
        "-ffmpeg",
        ".hidden",
        "ffmpeg=7:5.1",
        "ffmpeg/bookworm",
        "lib gl1",
        "ffmpeg\n",
        "libgl1:",
        "a_b",
    ],
)
def test_not_apt_names(name: str) -> None:
    assert not is_apt_name(name)


def test_invalid_names_are_reported_not_looked_for() -> None:
    machine = FakeMachine(dpkg=None, programs={"x", "FFmpeg"})
    got = missing_packages({"gpu": ["FFmpeg", "x"], "cpu": ["x"]}, machine.probe)
    assert got == (
        Missing("FFmpeg", ("gpu",), (), "invalid-name"),
        Missing("x", ("cpu", "gpu"), (), "invalid-name"),
    )
    assert not machine.calls


def test_a_string_instead_of_a_list_is_a_caller_bug() -> None:
    with pytest.raises(TypeError, match="packages of resource 'gpu' must be a list of names, not the string 'ffmpeg'"):
        missing_packages({"gpu": "ffmpeg"}, FakeMachine().probe)


def test_describe_and_install_hint() -> None:
    machine = FakeMachine(dpkg=None, programs={"apt-get"})
    missing = missing_packages({"gpu_worker": ["ffmpeg", "libgl1"], "cpu_worker": ["libgl1"]}, machine.probe)
    assert describe(missing) == (
        "system packages the workers install with apt are missing on this machine: "
        "ffmpeg (for gpu_worker; looked for the programs ffmpeg, ffprobe), "
        "libgl1 (for cpu_worker, gpu_worker; looked for libGL.so.1)"
    )
    assert install_hint(missing, machine.probe) == "sudo apt-get install -y ffmpeg libgl1"


def test_describe_says_dpkg_was_asked_and_names_one_program() -> None:
    missing = missing_packages({"w": ["jq"]}, FakeMachine(dpkg=()).probe)
    assert describe(missing) == (
        "system packages the workers install with apt are missing on this machine: "
        "jq (for w; looked in dpkg and for the program jq)"
    )


def test_install_hint_without_apt_get() -> None:
    machine = FakeMachine(dpkg=None)
    missing = missing_packages({"gpu": ["ffmpeg", "libgl1"]}, machine.probe)
    assert install_hint(missing, machine.probe) == (
        "this machine has no apt-get: install the equivalents of ffmpeg, libgl1 with its package manager"
    )


def test_describe_and_hint_for_invalid_names_next_to_missing_ones() -> None:
    machine = FakeMachine(dpkg=(), programs={"apt-get"})
    missing = missing_packages({"gpu": ["FFmpeg", "sox", "-x"]}, machine.probe)
    assert describe(missing) == (
        "system packages the workers install with apt are missing on this machine: "
        "sox (for gpu; looked in dpkg and for the program sox); "
        "system_dependencies that are not apt package names, so no machine can install them: "
        "'-x' (for gpu), 'FFmpeg' (for gpu)"
    )
    assert install_hint(missing, machine.probe) == (
        "sudo apt-get install -y sox; write system_dependencies as apt package names: lowercase letters, digits, "
        "'+', '-' and '.', at least 2 characters, starting with a letter or digit (did you mean 'FFmpeg' -> 'ffmpeg'?)"
    )


def test_nothing_missing_says_nothing() -> None:
    assert describe(()) == ""
    assert install_hint((), FakeMachine().probe) == ""


def test_every_table_entry_looks_for_something() -> None:
    for package, wants in PROVIDES.items():
        assert is_apt_name(package)
        assert wants.programs or wants.libraries, package


def test_parse_ldconfig() -> None:
    text = (
        "3 libs found in cache `/etc/ld.so.cache'\n"
        "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n"
        "\tlibGL.so.1 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libGL.so.1\n"
        "\tld-linux.so.2 (ELF) => /lib/ld-linux.so.2\n"
        "Cache generated by: ldconfig (Debian GLIBC 2.36-9+deb12u14) stable release version 2.36\n"
    )
    assert _parse_ldconfig(text) == {"libz.so.1", "libGL.so.1", "ld-linux.so.2"}


def test_host_probe() -> None:
    # `sh` is no Debian package, so dpkg (if any) does not know it and the fallback finds the program.
    assert missing_packages({"w": ["sh", "flashc-no-such-package-xyz"]}) == (
        Missing(
            "flashc-no-such-package-xyz",
            ("w",),
            ("dpkg", "program flashc-no-such-package-xyz")
            if shutil.which("dpkg-query")
            else ("program flashc-no-such-package-xyz",),
        ),
    )


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="libc.so.6 is glibc's soname")
def test_host_finds_libc() -> None:
    assert HOST.library("libc.so.6")
    assert not HOST.library("libflashc-no-such-library.so.1")
