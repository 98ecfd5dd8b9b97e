"""`flash.lock`: the wheels a build installs for its target, pinned by file name and sha256.

`flashc lock` resolves the project's requirements once and writes the result; later builds install exactly those
wheels and check each file against its digest, so a build does not change because an index did. The lock records
the `Target` it was resolved for and a digest of the requirements (`inputs`), so a caller can tell when it is stale.

The file is canonical JSON (sorted keys, two-space indent, trailing newline), so the same lock is the same bytes and
diffs stay small. Reading is strict: anything this module would not have written is a `ProjectError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ._atomic import write_atomic
from .errors import ProjectError
from .resolve import ResolvedWheel
from .target import Target

__all__ = [
    "LOCK_FILE",
    "LOCK_SCHEMA_VERSION",
    "Lock",
    "LockedWheel",
    "lock_text",
    "parse_lock",
    "read_lock",
    "verify_wheel",
    "write_lock",
]

LOCK_FILE = "flash.lock"
LOCK_SCHEMA_VERSION = 1

_HINT = "run `flashc lock` to write it again"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-f]+")
_NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TOP_KEYS = ("inputs", "schema_version", "target", "wheels")
_TARGET_KEYS = ("glibc", "implementation", "machine", "python_version")
_WHEEL_KEYS = ("filename", "name", "requires", "sha256", "size", "version")
_CHUNK = 1 << 20


# One pinned wheel is exactly what resolution chose: `name` normalised (PEP 503), `size` in bytes,
# `requires` the names it depends on for the target.
LockedWheel = ResolvedWheel


@dataclass(frozen=True, slots=True)
class Lock:
    """Every wheel a build for `target` installs; `inputs` is a hex digest of the requirements resolved."""

    target: Target
    inputs: str
    wheels: tuple[LockedWheel, ...]


def lock_text(lock: Lock) -> str:
    """The lock's canonical text; wheels are written sorted by name and each one's `requires` sorted."""
    target = lock.target
    data = {
        "schema_version": LOCK_SCHEMA_VERSION,
        "target": {
            "python_version": target.python_version,
            "glibc": target.glibc,
            "machine": target.machine,
            "implementation": target.implementation,
        },
        "inputs": lock.inputs,
        "wheels": [
            {
                "name": wheel.name,
                "version": wheel.version,
                "filename": wheel.filename,
                "sha256": wheel.sha256,
                "size": wheel.size,
                "requires": sorted(wheel.requires),
            }
            for wheel in sorted(lock.wheels, key=lambda wheel: wheel.name)
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_lock(text: str, path: str = LOCK_FILE) -> Lock:
    """Read a lock's text; `path` only names the file in errors.

    Raises `ProjectError` ("<path>: <reason>", one line) for text that is not JSON, another `schema_version`, a
    missing, unknown or repeated key, a value of the wrong type, a name not in normal form, a sha256 that is not 64
    lowercase hex digits, a version that does not parse, a name locked twice, or a `filename` that is not a wheel
    of the entry's name and version. The wheels come back sorted by name.
    """
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise _error(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _DuplicateKey as exc:
        raise _error(path, f"not valid JSON: key '{exc.key}' appears twice in one object") from None
    if not isinstance(data, dict):
        raise _error(path, f"expected a JSON object, got {_kind(data)}")
    # A lock from another flashc version would fail on many keys; name the real cause once.
    if "schema_version" not in data:
        raise _error(path, f"no schema_version; this flashc reads schema_version {LOCK_SCHEMA_VERSION}")
    version = data["schema_version"]
    # `type(...) is int`: JSON `true` and `1.0` equal 1 in Python but are not schema_version 1.
    if type(version) is not int or version != LOCK_SCHEMA_VERSION:
        raise _error(
            path,
            f"schema_version {json.dumps(version)} is not supported; this flashc reads schema_version"
            f" {LOCK_SCHEMA_VERSION}",
        )
    _check_keys(path, "", data, _TOP_KEYS)
    target = _parse_target(path, data["target"])
    inputs = data["inputs"]
    if not isinstance(inputs, str) or not _HEX_RE.fullmatch(inputs):
        raise _error(path, f"inputs: expected a lowercase hex digest, got {_shown(inputs)}")
    wheels_data = data["wheels"]
    if not isinstance(wheels_data, list):
        raise _error(path, f"wheels: expected an array, got {_kind(wheels_data)}")
    wheels: dict[str, tuple[int, LockedWheel]] = {}
    for index, item in enumerate(wheels_data):
        wheel = _parse_wheel(path, f"wheels[{index}]", item)
        if wheel.name in wheels:
            first, _ = wheels[wheel.name]
            raise _error(path, f"wheels[{index}]: {_shown(wheel.name)} is locked twice (also wheels[{first}])")
        wheels[wheel.name] = (index, wheel)
    return Lock(target=target, inputs=inputs, wheels=tuple(wheels[name][1] for name in sorted(wheels)))


def read_lock(root: Path) -> Lock | None:
    """The lock in the project folder `root`, or None when it has none.

    Raises `ProjectError` if the file cannot be read or is not a valid lock (see `parse_lock`).
    """
    path = root / LOCK_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProjectError(
            f"{path}: cannot read the lock file: {exc.strerror or exc}", "check the file's permissions"
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(str(path), "not valid UTF-8") from None
    return parse_lock(text, str(path))


def write_lock(root: Path, lock: Lock) -> Path:
    """Write `lock` to `root/flash.lock` (mode 644) and return that path.

    The text goes to a temporary file in `root` first, then replaces the lock in one step, so a crash leaves the
    old lock or the new one, never half of one. Raises `ProjectError` if the folder cannot be written.
    """
    path = root / LOCK_FILE
    try:
        write_atomic(path, lock_text(lock).encode("utf-8"))
    except OSError as exc:
        raise _write_error(path, exc) from exc
    return path


def verify_wheel(path: Path, locked: LockedWheel) -> None:
    """Check that the wheel file at `path` is the one locked: raise `ProjectError` unless its sha256 matches."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read the wheel: {exc.strerror or exc}") from exc
    actual = digest.hexdigest()
    if actual != locked.sha256:
        raise ProjectError(
            f"{path}: sha256 is {actual}, but {LOCK_FILE} has {locked.sha256}",
            "the wheel changed since the lock was written: run `flashc lock` if that is expected",
        )


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` keeps the last of a repeated key silently; a lock with one was not written by flashc."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


def _parse_target(path: str, data: Any) -> Target:
    if not isinstance(data, dict):
        raise _error(path, f"target: expected an object, got {_kind(data)}")
    _check_keys(path, "target", data, _TARGET_KEYS)
    for key in _TARGET_KEYS:
        if not isinstance(data[key], str):
            raise _error(path, f"target.{key}: expected a string, got {_kind(data[key])}")
    try:
        return Target(
            python_version=data["python_version"],
            glibc=data["glibc"],
            machine=data["machine"],
            implementation=data["implementation"],
        )
    except ValueError as exc:
        raise _error(path, f"target: {exc}") from None


def _parse_wheel(path: str, where: str, data: Any) -> LockedWheel:
    if not isinstance(data, dict):
        raise _error(path, f"{where}: expected an object, got {_kind(data)}")
    _check_keys(path, where, data, _WHEEL_KEYS)
    for key in ("filename", "name", "sha256", "version"):
        if not isinstance(data[key], str):
            raise _error(path, f"{where}.{key}: expected a string, got {_kind(data[key])}")
    name, version, filename, sha256 = data["name"], data["version"], data["filename"], data["sha256"]
    size, requires = data["size"], data["requires"]
    _check_name(path, f"{where}.name", name)
    try:
        # `Version` forgives surrounding spaces; a lock written by flashc has none.
        parsed_version = Version(version) if version == version.strip() else None
    except InvalidVersion:
        parsed_version = None
    if parsed_version is None:
        raise _error(path, f"{where}.version: {_shown(version)} is not a valid version")
    if not _SHA256_RE.fullmatch(sha256):
        raise _error(path, f"{where}.sha256: expected 64 lowercase hex digits, got {_shown(sha256)}")
    # `type(...) is int`: JSON `true` is an int to Python but is not a size.
    if type(size) is not int or size < 0:
        raise _error(path, f"{where}.size: expected a byte count, got {_shown(size)}")
    if not isinstance(requires, list) or not all(isinstance(item, str) for item in requires):
        raise _error(path, f"{where}.requires: expected an array of names")
    for number, required in enumerate(requires):
        _check_name(path, f"{where}.requires[{number}]", required)
    try:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        raise _error(path, f"{where}.filename: {_shown(filename)} is not a wheel file name") from None
    if wheel_name != name or wheel_version != parsed_version:
        raise _error(
            path,
            f"{where}.filename: {_shown(filename)} is {wheel_name} {wheel_version}, but the entry is {name} {version}",
        )
    return LockedWheel(
        name=name, version=version, filename=filename, sha256=sha256, size=size, requires=tuple(requires)
    )


def _check_keys(path: str, where: str, data: dict[str, Any], expected: tuple[str, ...]) -> None:
    prefix = f"{where}: " if where else ""
    missing = [key for key in expected if key not in data]
    if missing:
        raise _error(path, f"{prefix}missing {_keys(missing)}")
    unknown = sorted(key for key in data if key not in expected)
    if unknown:
        raise _error(path, f"{prefix}unknown {_keys(unknown)}")


def _check_name(path: str, where: str, name: str) -> None:
    if _NAME_RE.fullmatch(name):
        return
    normal = canonicalize_name(name)
    if _NAME_RE.fullmatch(normal):
        raise _error(path, f"{where}: {_shown(name)} is not in normal form (PEP 503): write {_shown(normal)}")
    raise _error(path, f"{where}: {_shown(name)} is not a distribution name")


def _keys(keys: list[str]) -> str:
    listed = ", ".join(f"'{key}'" for key in keys)
    return f"key {listed}" if len(keys) == 1 else f"keys {listed}"


def _kind(value: Any) -> str:
    """The JSON type of `value`, as a user reading the file would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    """A scalar as it appears in the file, or its kind for anything bigger."""
    if isinstance(value, (dict, list)):
        return _kind(value)
    return json.dumps(value, ensure_ascii=False)


def _error(path: str, reason: str) -> ProjectError:
    return ProjectError(f"{path}: {reason}", _HINT)


def _write_error(path: Path, exc: OSError) -> ProjectError:
    return ProjectError(
        f"cannot write '{path}': {exc.strerror or exc}", "check the folder's permissions and free disk space"
    )
