"""A wheel read the way a worker's installer would lay it out, before anything is decompressed.

Where each part of the wheel goes, relative to its site folder (on the worker's `sys.path`):

    purelib, platlib, data   the site folder's root
    scripts, headers         nothing: console scripts and C headers are of no use on a worker
    .../__pycache__/...      nothing: the worker's Python writes its own bytecode
    x.pyc beside x.py        nothing: Python never loads it while the source is there
    <dist>.dist-info/        as in the wheel, with INSTALLER ("flashc") and RECORD rewritten to list
                             the installed files (site-relative, sha256 and size), as pypa/installer does

`read_wheel` costs the zip's directory, RECORD and WHEEL: it checks that every entry is in RECORD
with a sha256 and size, and where it would land. Contents are decompressed once, when a layer is
built: `verified_blocks` checks each file against RECORD while it streams it. pypa/installer finds
the .dist-info folder, parses RECORD's rows and other hashes, and writes the new RECORD.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import stat
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from installer.exceptions import InstallerError
from installer.records import Hash, InvalidRecordEntry, RecordEntry, parse_record_file
from installer.sources import WheelFile
from installer.utils import SCHEME_NAMES, Scheme, construct_record_file, parse_metadata_file

from ..errors import ProjectError
from ._names import arcname_problem

__all__ = ["Content", "Installed", "Wheel", "read_wheel", "verified_blocks", "wheel_error"]

INSTALLER = b"flashc\n"
_DROPPED: frozenset[str] = frozenset({"scripts", "headers"})
# Signatures of RECORD: RECORD does not list them, and they are of no use once installed.
_SIGNATURES: frozenset[str] = frozenset({"RECORD.jws", "RECORD.p7s"})
_READ = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Content:
    """What a file holds, as RECORD says."""

    sha256: str
    """Hex digest."""
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class Installed:
    """One file the wheel installs."""

    path: str
    """POSIX, relative to the site folder."""
    content: Content
    executable: bool
    source: str | None
    """The zip entry it is copied from; None for the files the install writes (INSTALLER, RECORD)."""
    data: bytes | None = None
    """The content of a written file."""


@dataclasses.dataclass(frozen=True, slots=True)
class Wheel:
    """A wheel's installed files, and what each of its zip entries must hold."""

    path: Path
    distribution: str
    version: str
    files: tuple[Installed, ...]
    """Sorted by path."""
    entries: dict[str, Content]
    """Every zip entry but RECORD, installed or not. A build checks them all, so whether a wheel is
    accepted never depends on which of its files are dropped or stood in for by another copy."""


def wheel_error(wheel: Path, problems: Sequence[str]) -> ProjectError:
    """The error for a damaged wheel: its file name, every problem, and how to get a good copy."""
    listed = f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
    what = problems[0] if len(problems) == 1 else listed
    return ProjectError(
        f"cannot install wheel '{wheel.name}': {what}",
        f"delete '{wheel}' from the wheel cache; the next build downloads it again",
    )


def read_wheel(path: Path) -> Wheel:
    """Where every file of the wheel at `path` goes; a ProjectError naming every problem if it is damaged."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _read(path, zf)
    except _Damaged as exc:
        raise wheel_error(path, exc.problems) from exc
    except (zipfile.BadZipFile, InstallerError, InvalidRecordEntry, ValueError, KeyError, EOFError, zlib.error) as exc:
        raise wheel_error(path, [_describe(exc)]) from exc
    except OSError as exc:
        raise wheel_error(path, [exc.strerror or str(exc)]) from exc


def verified_blocks(zf: zipfile.ZipFile, wheel: Path, name: str, content: Content) -> Iterator[bytes]:
    """The zip entry `name`, decompressed once, in blocks; a ProjectError at its end unless it is `content`."""
    digest = hashlib.sha256()
    size = 0
    try:
        with zf.open(name) as stream:
            while block := stream.read(_READ):
                digest.update(block)
                size += len(block)
                yield block
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        raise wheel_error(wheel, [f"'{name}' cannot be read: {exc}"]) from exc
    if size != content.size or digest.hexdigest() != content.sha256:
        raise wheel_error(wheel, [f"'{name}' does not match its sha256 and size in RECORD"])


class _Damaged(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _read(path: Path, zf: zipfile.ZipFile) -> Wheel:
    # Before installer sees them: it fails on an absolute name with an error that says nothing of it.
    escaping = [name for name in zf.namelist() if name.startswith("/") or ".." in name.split("/")]
    if escaping:
        raise _Damaged([f"'{name}' would be installed outside the site folder" for name in sorted(escaping)])
    source = WheelFile(zf)
    dist_info = source.dist_info_dir  # installer checks there is one, named after the wheel
    wheel_version = parse_metadata_file(source.read_dist_info("WHEEL"))["Wheel-Version"] or ""
    if not wheel_version.startswith("1."):
        raise _Damaged([f"Wheel-Version is {wheel_version or 'missing'}; flashc installs version 1.x wheels"])
    record_path = f"{dist_info}/RECORD"
    # installer's validate_record checks what this loop does, but parses every row twice over and
    # costs half of a warm build's look-up of large wheels; its row parsing is used here instead.
    records = {row[0]: row for row in parse_record_file(source.read_dist_info("RECORD").splitlines())}
    problems: list[str] = []
    entries: dict[str, Content] = {}
    placed: dict[str, Installed] = {}
    for info in zf.infolist():
        name = info.filename
        folder, _, base = name.rpartition("/")
        if name.endswith("/") or name == record_path or (folder == dist_info and base in _SIGNATURES):
            continue
        row = records.get(name)
        if row is None:
            problems.append(f"'{name}' is not in RECORD")
            continue
        content = _content(zf, info, row, problems)
        destination = _destination(name, source.data_dir, problems)
        if content is None:
            continue
        entries[name] = content
        if destination is None or "__pycache__" in destination.split("/")[:-1]:
            continue
        if destination in placed:
            problems.append(f"'{placed[destination].source}' and '{name}' are both installed as '{destination}'")
            continue
        placed[destination] = Installed(destination, content, _executable(info), name)
    if problems:
        raise _Damaged(problems)
    # The install writes its own INSTALLER, as pip writes "pip".
    installer_path = f"{dist_info}/INSTALLER"
    files = [f for path, f in placed.items() if path != installer_path and not _shadowed_bytecode(path, placed)]
    files.append(_written(installer_path, INSTALLER))
    files.append(_written(record_path, _record(files, record_path)))
    files.sort(key=lambda f: f.path)
    return Wheel(path, source.distribution, source.version, tuple(files), entries)


def _content(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, row: tuple[str, str, str], problems: list[str]
) -> Content | None:
    """What RECORD's `row` says `info` holds, or None after adding why it cannot be trusted to `problems`."""
    name, hash_, size = row
    if not (hash_.startswith("sha256=") and size.isdigit()):
        return _other_content(zf, info, row, problems)
    # Nearly every row: parsed here, without building installer's objects for it.
    value = hash_[len("sha256=") :]
    try:
        digest = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        problems.append(f"RECORD's sha256 for '{name}' is not a sha256 digest")
        return None
    return _sized(info, Content(digest.hex(), int(size)), problems)


def _other_content(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, row: tuple[str, str, str], problems: list[str]
) -> Content | None:
    """A row with another hash than sha256 (PEP 376 allows any), or none, or a malformed one."""
    name = row[0]
    try:
        record = RecordEntry.from_elements(*row)
    except InvalidRecordEntry as exc:
        problems.append(f"RECORD's entry for '{name}' is invalid: {', '.join(exc.issues)}")
        return None
    if record.hash_ is None or record.size is None:
        problems.append(f"RECORD gives no hash or no size for '{name}'")
        return None
    if _sized(info, Content("", record.size), problems) is None:
        return None
    # Checked now, to learn the sha256 that layers are keyed by and checked against.
    data = zf.read(info)
    if not record.hash_.validate(data):
        problems.append(f"'{name}' does not match its {record.hash_.name} in RECORD")
        return None
    return Content(hashlib.sha256(data).hexdigest(), len(data))


def _sized(info: zipfile.ZipInfo, content: Content, problems: list[str]) -> Content | None:
    if content.size != info.file_size:
        problems.append(f"'{info.filename}' is {info.file_size} bytes, but RECORD says {content.size}")
        return None
    return content


def _destination(name: str, data_dir: str, problems: list[str]) -> str | None:
    """Where the zip entry `name` goes relative to the site folder, or None if it is not installed."""
    destination = name
    if name.startswith(data_dir + "/"):
        scheme, _, destination = name[len(data_dir) + 1 :].partition("/")
        if scheme not in SCHEME_NAMES or not destination:
            problems.append(f"'{name}' is not in a valid .data subfolder")
            return None
        if scheme in _DROPPED:
            return None
    if destination.startswith("/") or ".." in destination.split("/"):
        problems.append(f"'{name}' would be installed outside the site folder")
        return None
    problem = arcname_problem(destination)
    if problem is not None:
        problems.append(f"'{name}' cannot be installed: {problem}")
        return None
    return destination


def _executable(info: zipfile.ZipInfo) -> bool:
    # pypa/installer's rule (WheelFile.get_contents), itself borrowed from pip.
    mode = info.external_attr >> 16
    return bool(mode and stat.S_ISREG(mode) and mode & 0o111)


def _shadowed_bytecode(path: str, placed: dict[str, Installed]) -> bool:
    stem, dot, suffix = path.rpartition(".")
    return bool(dot) and suffix in ("pyc", "pyo") and f"{stem}.py" in placed


def _written(path: str, data: bytes) -> Installed:
    return Installed(path, Content(hashlib.sha256(data).hexdigest(), len(data)), False, None, data)


def _record(files: Sequence[Installed], record_path: str) -> bytes:
    """RECORD for the installed `files` and itself, in pypa/installer's format (sorted, csv, sha256 base64)."""
    entries = [(Scheme("purelib"), RecordEntry(f.path, _hash(f.content), f.content.size)) for f in files]
    entries.append((Scheme("purelib"), RecordEntry(record_path, None, None)))
    with construct_record_file(entries) as stream:
        return stream.read()


def _hash(content: Content) -> Hash:
    value = base64.urlsafe_b64encode(bytes.fromhex(content.sha256)).decode("ascii").rstrip("=")
    return Hash("sha256", value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:  # zipfile's "There is no item named ..." without the quotes
        return str(exc.args[0])
    return str(exc) or type(exc).__name__
