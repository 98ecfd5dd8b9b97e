from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flashc.errors import ProjectError
from flashc.lockfile import (
    LOCK_FILE,
    Lock,
    LockedWheel,
    lock_text,
    parse_lock,
    read_lock,
    verify_wheel,
    write_lock,
)
from flashc.target import Target

HINT = "run `flashc lock` to write it again"
INPUTS = hashlib.sha256(b"requests\nnumpy\n").hexdigest()
NUMPY_WHL = "numpy-2.1.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"

NUMPY = LockedWheel(name="numpy", version="2.1.1", filename=NUMPY_WHL, sha256="a" * 64, size=16_300_000, requires=())
REQUESTS = LockedWheel(
    name="requests",
    version="2.32.3",
    filename="requests-2.32.3-py3-none-any.whl",
    sha256="b" * 64,
    size=64_928,
    requires=("idna", "urllib3"),
)
LOCK = Lock(target=Target("3.11"), inputs=INPUTS, wheels=(NUMPY, REQUESTS))


def test_lock_text_is_canonical_json() -> None:
    lock = Lock(target=Target("3.12", glibc="2.28"), inputs="0f", wheels=(REQUESTS,))
    assert lock_text(lock) == (
        "{\n"
        '  "inputs": "0f",\n'
        '  "schema_version": 1,\n'
        '  "target": {\n'
        '    "glibc": "2.28",\n'
        '    "implementation": "cp",\n'
        '    "machine": "x86_64",\n'
        '    "python_version": "3.12"\n'
        "  },\n"
        '  "wheels": [\n'
        "    {\n"
        '      "filename": "requests-2.32.3-py3-none-any.whl",\n'
        '      "name": "requests",\n'
        '      "requires": [\n'
        '        "idna",\n'
        '        "urllib3"\n'
        "      ],\n"
        f'      "sha256": "{"b" * 64}",\n'
        '      "size": 64928,\n'
        '      "version": "2.32.3"\n'
        "    }\n"
        "  ]\n"
        "}\n"
    )


def test_round_trip() -> None:
    assert parse_lock(lock_text(LOCK)) == LOCK
    empty = Lock(target=Target("3.10", glibc="2.17", machine="aarch64"), inputs=INPUTS, wheels=())
    assert parse_lock(lock_text(empty)) == empty


def test_same_lock_same_bytes_whatever_the_order() -> None:
    shuffled = Lock(
        target=Target("3.11"),
        inputs=INPUTS,
        wheels=(
            LockedWheel(
                name="requests",
                version="2.32.3",
                filename="requests-2.32.3-py3-none-any.whl",
                sha256="b" * 64,
                size=64_928,
                requires=("urllib3", "idna"),
            ),
            NUMPY,
        ),
    )
    assert lock_text(shuffled).encode() == lock_text(LOCK).encode()
    assert lock_text(parse_lock(lock_text(LOCK))) == lock_text(LOCK)


def test_parse_sorts_the_wheels_by_name() -> None:
    data = json.loads(lock_text(LOCK))
    data["wheels"].reverse()
    assert parse_lock(json.dumps(data)).wheels == (NUMPY, REQUESTS)


# --- parse_lock errors -------------------------------------------------------------------------------------------


def changed(edit: Callable[[dict[str, Any]], object]) -> str:
    data = copy.deepcopy(json.loads(lock_text(LOCK)))
    edit(data)
    return json.dumps(data)


def put(where: str, value: Any) -> Callable[[dict[str, Any]], object]:
    """An edit setting the key at dotted `where` (`wheels.0.size`) to `value`."""

    def edit(data: dict[str, Any]) -> None:
        *parents, last = where.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value

    return edit


def drop(where: str, *keys: str) -> Callable[[dict[str, Any]], object]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        for part in where.split(".") if where else []:
            node = node[int(part)] if isinstance(node, list) else node[part]
        for key in keys:
            del node[key]

    return edit


SCIPY_WHL = "scipy-1.14.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
PARSE_ERRORS: list[tuple[str, str]] = [
    ("not json", "not valid JSON: Expecting value at line 1 column 1"),
    ('{"inputs": "0f", "inputs": "0f"}', "not valid JSON: key 'inputs' appears twice in one object"),
    ("[]", "expected a JSON object, got an array"),
    (changed(drop("", "schema_version")), "no schema_version; this flashc reads schema_version 1"),
    (changed(put("schema_version", 2)), "schema_version 2 is not supported; this flashc reads schema_version 1"),
    (changed(put("schema_version", True)), "schema_version true is not supported; this flashc reads schema_version 1"),
    (changed(put("schema_version", "1")), 'schema_version "1" is not supported; this flashc reads schema_version 1'),
    (changed(drop("", "inputs")), "missing key 'inputs'"),
    (changed(drop("", "target", "wheels")), "missing keys 'target', 'wheels'"),
    (changed(put("extra", 1)), "unknown key 'extra'"),
    (changed(lambda d: d.update(extra=1, comment="hi")), "unknown keys 'comment', 'extra'"),
    (changed(put("target", "3.11")), "target: expected an object, got a string"),
    (changed(drop("target", "glibc")), "target: missing key 'glibc'"),
    (changed(put("target.os", "linux")), "target: unknown key 'os'"),
    (changed(put("target.machine", 64)), "target.machine: expected a string, got a number"),
    (changed(put("target.python_version", "3")), "target: python_version must look like '3.11', not '3'"),
    (changed(put("target.glibc", "2.035")), "target: glibc must look like '2.35', not '2.035'"),
    (changed(put("target.implementation", "pp")), "target: only CPython ('cp') workers exist, not 'pp'"),
    (changed(put("inputs", "XYZ")), 'inputs: expected a lowercase hex digest, got "XYZ"'),
    (changed(put("inputs", "")), 'inputs: expected a lowercase hex digest, got ""'),
    (changed(put("inputs", None)), "inputs: expected a lowercase hex digest, got null"),
    (changed(put("wheels", {})), "wheels: expected an array, got an object"),
    (changed(put("wheels.0", "numpy")), "wheels[0]: expected an object, got a string"),
    (changed(drop("wheels.0", "size", "sha256")), "wheels[0]: missing keys 'sha256', 'size'"),
    (changed(put("wheels.1.url", "https://example.com")), "wheels[1]: unknown key 'url'"),
    (changed(put("wheels.0.name", 1)), "wheels[0].name: expected a string, got a number"),
    (changed(put("wheels.0.filename", None)), "wheels[0].filename: expected a string, got null"),
    (
        changed(put("wheels.0.name", "NumPy")),
        'wheels[0].name: "NumPy" is not in normal form (PEP 503): write "numpy"',
    ),
    (changed(put("wheels.0.name", "num py")), 'wheels[0].name: "num py" is not a distribution name'),
    (changed(put("wheels.0.name", "num\npy")), 'wheels[0].name: "num\\npy" is not a distribution name'),
    (changed(put("wheels.0.version", "banana")), 'wheels[0].version: "banana" is not a valid version'),
    (changed(put("wheels.0.version", "2.1.1 ")), 'wheels[0].version: "2.1.1 " is not a valid version'),
    (changed(put("wheels.0.sha256", "abc")), 'wheels[0].sha256: expected 64 lowercase hex digits, got "abc"'),
    (
        changed(put("wheels.0.sha256", "A" * 64)),
        f'wheels[0].sha256: expected 64 lowercase hex digits, got "{"A" * 64}"',
    ),
    (changed(put("wheels.0.size", -1)), "wheels[0].size: expected a byte count, got -1"),
    (changed(put("wheels.0.size", 1.5)), "wheels[0].size: expected a byte count, got 1.5"),
    (changed(put("wheels.0.size", True)), "wheels[0].size: expected a byte count, got true"),
    (changed(put("wheels.0.size", "12")), 'wheels[0].size: expected a byte count, got "12"'),
    (changed(put("wheels.1.requires", "idna")), "wheels[1].requires: expected an array of names"),
    (changed(put("wheels.1.requires", ["idna", 3])), "wheels[1].requires: expected an array of names"),
    (
        changed(put("wheels.1.requires", ["idna", "URLLib3"])),
        'wheels[1].requires[1]: "URLLib3" is not in normal form (PEP 503): write "urllib3"',
    ),
    (
        changed(put("wheels.0.filename", "numpy-2.1.1.tar.gz")),
        'wheels[0].filename: "numpy-2.1.1.tar.gz" is not a wheel file name',
    ),
    (
        changed(put("wheels.0.filename", SCIPY_WHL)),
        f'wheels[0].filename: "{SCIPY_WHL}" is scipy 1.14.1, but the entry is numpy 2.1.1',
    ),
    (
        changed(put("wheels.0.filename", NUMPY_WHL.replace("2.1.1", "2.0.0"))),
        f'wheels[0].filename: "{NUMPY_WHL.replace("2.1.1", "2.0.0")}" is numpy 2.0.0, but the entry is numpy 2.1.1',
    ),
    (
        changed(lambda d: d["wheels"].append(d["wheels"][0])),
        'wheels[2]: "numpy" is locked twice (also wheels[0])',
    ),
]


@pytest.mark.parametrize(("text", "reason"), PARSE_ERRORS)
def test_parse_errors_are_pinned(text: str, reason: str) -> None:
    with pytest.raises(ProjectError) as info:
        parse_lock(text)
    assert info.value.message == f"flash.lock: {reason}"
    assert info.value.hint == HINT
    assert len(info.value.message.splitlines()) == 1


def test_parse_names_the_path_it_is_given() -> None:
    with pytest.raises(ProjectError) as info:
        parse_lock("{}", "app/flash.lock")
    assert info.value.message == "app/flash.lock: no schema_version; this flashc reads schema_version 1"


def test_a_version_in_another_spelling_still_matches_the_filename() -> None:
    text = changed(put("wheels.0.version", "2.1.1.0"))
    assert parse_lock(text).wheels[0].version == "2.1.1.0"


# --- read_lock and write_lock ------------------------------------------------------------------------------------


def test_write_then_read(tmp_path: Path) -> None:
    path = write_lock(tmp_path, LOCK)
    assert path == tmp_path / LOCK_FILE
    assert path.read_text(encoding="utf-8") == lock_text(LOCK)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == [LOCK_FILE]
    assert read_lock(tmp_path) == LOCK


def test_write_replaces_an_existing_lock(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("old", encoding="utf-8")
    other = Lock(target=Target("3.12"), inputs="0f", wheels=())
    write_lock(tmp_path, other)
    assert read_lock(tmp_path) == other
    assert sorted(os.listdir(tmp_path)) == [LOCK_FILE]


def test_no_lock_reads_as_none(tmp_path: Path) -> None:
    assert read_lock(tmp_path) is None
    assert read_lock(tmp_path / "missing") is None


def test_an_unreadable_lock_is_a_project_error(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).mkdir()
    with pytest.raises(ProjectError) as info:
        read_lock(tmp_path)
    assert info.value.message == f"{tmp_path / LOCK_FILE}: cannot read the lock file: Is a directory"
    assert info.value.hint == "check the file's permissions"


def test_read_names_the_file_in_parse_errors(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_bytes(b'{"schema_version": 1, "inputs": "\xff"}')
    with pytest.raises(ProjectError) as info:
        read_lock(tmp_path)
    assert info.value.message == f"{tmp_path / LOCK_FILE}: not valid UTF-8"
    assert info.value.hint == HINT

    (tmp_path / LOCK_FILE).write_text('{"schema_version": 0}', encoding="utf-8")
    with pytest.raises(ProjectError) as info:
        read_lock(tmp_path)
    assert info.value.message == (
        f"{tmp_path / LOCK_FILE}: schema_version 0 is not supported; this flashc reads schema_version 1"
    )


def test_write_into_a_missing_folder_is_a_project_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        write_lock(tmp_path / "missing", LOCK)
    assert info.value.message == f"cannot write '{tmp_path / 'missing' / LOCK_FILE}': No such file or directory"
    assert info.value.hint == "check the folder's permissions and free disk space"


def test_a_failed_replace_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(ProjectError, match="cannot write"):
        write_lock(tmp_path, LOCK)
    assert sorted(os.listdir(tmp_path)) == [LOCK_FILE]


# --- verify_wheel ------------------------------------------------------------------------------------------------


def wheel_file(tmp_path: Path, content: bytes) -> tuple[Path, LockedWheel]:
    path = tmp_path / "requests-2.32.3-py3-none-any.whl"
    path.write_bytes(content)
    locked = LockedWheel(
        name="requests",
        version="2.32.3",
        filename=path.name,
        sha256=hashlib.sha256(b"the wheel").hexdigest(),
        size=len(content),
        requires=(),
    )
    return path, locked


def test_verify_accepts_the_locked_file(tmp_path: Path) -> None:
    path, locked = wheel_file(tmp_path, b"the wheel")
    verify_wheel(path, locked)


def test_verify_refuses_a_changed_file(tmp_path: Path) -> None:
    path, locked = wheel_file(tmp_path, b"another wheel")
    with pytest.raises(ProjectError) as info:
        verify_wheel(path, locked)
    actual = hashlib.sha256(b"another wheel").hexdigest()
    assert info.value.message == f"{path}: sha256 is {actual}, but flash.lock has {locked.sha256}"
    assert info.value.hint == "the wheel changed since the lock was written: run `flashc lock` if that is expected"


def test_verify_a_missing_file(tmp_path: Path) -> None:
    path, locked = wheel_file(tmp_path, b"the wheel")
    path.unlink()
    with pytest.raises(ProjectError) as info:
        verify_wheel(path, locked)
    assert info.value.message == f"{path}: cannot read the wheel: No such file or directory"
