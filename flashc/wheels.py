"""Unpack wheels into a bundle folder, the way an installer would for a worker's `sys.path`.

pypa/installer does the unpacking (it checks every file against the wheel's RECORD and refuses
paths that leave the target); this module only chooses where each part of a wheel goes:

    purelib, platlib, data   the bundle root, which is on the worker's sys.path
    scripts, headers         nothing: console scripts and C headers are of no use on a worker

No bytecode is compiled: the worker's Python writes its own, and .pyc files would make the
bundle bigger and depend on the build machine's Python.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import RecordEntry
from installer.sources import WheelFile
from installer.utils import Scheme

from .errors import ProjectError

if TYPE_CHECKING:
    from installer.scripts import ScriptSection

__all__ = ["InstalledWheel", "install_wheel"]

_DROPPED: frozenset[str] = frozenset({"scripts", "headers"})


@dataclasses.dataclass(frozen=True, slots=True)
class InstalledWheel:
    """What a wheel put into the bundle: its distribution, version and files (POSIX, bundle-relative)."""

    name: str
    version: str
    files: tuple[str, ...]
    size: int


class _BundleDestination(SchemeDictionaryDestination):
    """Writes libraries and data into the bundle, and drops scripts and headers."""

    def __init__(self, bundle: Path) -> None:
        root = str(bundle)
        super().__init__(
            scheme_dict={"purelib": root, "platlib": root, "data": root, "scripts": root, "headers": root},
            interpreter="/usr/bin/python3",
            script_kind="posix",
            bytecode_optimization_levels=(),
        )
        self.written: list[str] = []
        self.size = 0

    def write_file(
        self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        if scheme in _DROPPED:
            return RecordEntry(str(path), None, None)
        entry = super().write_file(scheme, path, stream, is_executable)
        self.written.append(str(path))
        self.size += entry.size or 0
        return entry

    def write_script(self, name: str, module: str, attr: str, section: ScriptSection) -> RecordEntry:
        return RecordEntry(name, None, None)

    def finalize_installation(
        self, scheme: Scheme, record_file_path: str, records: Iterable[tuple[Scheme, RecordEntry]]
    ) -> None:
        kept = [(s, r) for s, r in records if s not in _DROPPED]
        super().finalize_installation(scheme, record_file_path, kept)
        self.written.append(record_file_path)


def install_wheel(wheel: Path, bundle: Path) -> InstalledWheel:
    """Unpack `wheel` into `bundle`; ProjectError if the wheel is damaged or clashes with a file there."""
    bundle.mkdir(parents=True, exist_ok=True)
    destination = _BundleDestination(bundle)
    try:
        with WheelFile.open(wheel) as source:
            source.validate_record()
            name, version = source.distribution, source.version
            with warnings.catch_warnings():
                # installer skips files a wheel carries in __pycache__ folders and warns about it;
                # skipping them is right, and the warning means nothing to a user of flashc.
                warnings.simplefilter("ignore", RuntimeWarning)
                install(source, destination, {"INSTALLER": b"flashc\n"})
    except (InstallerError, zipfile.BadZipFile, ValueError, FileExistsError, KeyError) as exc:
        raise ProjectError(f"cannot install wheel '{wheel.name}': {exc}", "delete it from the wheel cache") from exc
    return InstalledWheel(name, version, tuple(sorted(destination.written)), destination.size)
