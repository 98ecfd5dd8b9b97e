"""Finding a CPython of the worker's minor version on this machine, asking each candidate its version."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flashc.deploy.interpreters import Interpreter, find_interpreter
from flashc.errors import UsageError


class Machine:
    """A tmp folder of fake Pythons: on PATH, under PYENV_ROOT and uv's folder; `ask` answers their versions."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.bin = root / "bin"
        self.pyenv = root / "pyenv"
        self.bin.mkdir()
        monkeypatch.setenv("PATH", str(self.bin))
        monkeypatch.setenv("PYENV_ROOT", str(self.pyenv))
        monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(root / "uv-pythons"))
        self.versions: dict[str, str] = {}
        self.asked: list[str] = []

    def python(self, relative: str, version: str | None, *, executable: bool = True) -> str:
        """A fake interpreter at `root/relative` that answers `version` (None: it does not run)."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 1\n")
        path.chmod(0o755 if executable else 0o644)
        if version is not None:
            self.versions[str(path)] = version
        return str(path)

    def ask(self, executable: str) -> Interpreter | None:
        self.asked.append(executable)
        version = self.versions.get(executable)  # the machine's own Pythons answer nothing here
        return Interpreter(executable, version) if version is not None else None

    def asked_here(self) -> list[str]:
        return [path for path in self.asked if path.startswith(str(self.root))]


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(tmp_path, monkeypatch)


def test_the_first_candidate_of_the_minor_version_is_taken(machine: Machine) -> None:
    on_path = machine.python("bin/python3.12", "3.12.3")
    machine.python("pyenv/versions/3.12.8/bin/python3.12", "3.12.8")
    assert find_interpreter("3.12", ask=machine.ask) == Interpreter(on_path, "3.12.3")
    assert machine.asked_here() == [on_path]


def test_a_candidate_answering_another_version_is_skipped(machine: Machine) -> None:
    shim = machine.python("bin/python3.12", "3.11.9")  # a pyenv shim whose local version is 3.11
    other = machine.python("bin/python3", "3.13.1")
    pyenv = machine.python("pyenv/versions/3.12.8/bin/python3.12", "3.12.8")
    assert find_interpreter("3.12", ask=machine.ask) == Interpreter(pyenv, "3.12.8")
    assert machine.asked_here() == [shim, other, pyenv]


def test_a_minor_version_is_not_a_prefix_match(machine: Machine) -> None:
    pyenv = machine.python("pyenv/versions/3.1.5/bin/python3.1", "3.1.5")
    machine.python("bin/python3.1", "3.12.1")
    assert find_interpreter("3.1", ask=machine.ask).path == pyenv


def test_a_candidate_that_does_not_run_is_skipped(machine: Machine) -> None:
    broken = machine.python("bin/python3.12", None)
    pyenv = machine.python("pyenv/versions/3.12.8/bin/python3.12", "3.12.8")
    assert find_interpreter("3.12", ask=machine.ask).path == pyenv
    assert machine.asked_here() == [broken, pyenv]


def test_a_file_that_is_not_executable_is_skipped_unasked(machine: Machine) -> None:
    not_executable = machine.python("pyenv/versions/3.12.9/bin/python3.12", "3.12.9", executable=False)
    executable = machine.python("pyenv/versions/3.12.1/bin/python3.12", "3.12.1")
    assert find_interpreter("3.12", ask=machine.ask).path == executable
    assert not_executable not in machine.asked


def test_pyenv_versions_are_tried_newest_patch_first(machine: Machine) -> None:
    for patch in ("3.12.2", "3.12.10", "3.12.9"):
        machine.python(f"pyenv/versions/{patch}/bin/python3.12", patch)
    assert find_interpreter("3.12", ask=machine.ask).version == "3.12.10"


def test_uv_managed_pythons_are_candidates(machine: Machine) -> None:
    uv_python = machine.python("uv-pythons/cpython-3.12.7-linux-x86_64-gnu/bin/python3.12", "3.12.7")
    assert find_interpreter("3.12", ask=machine.ask).path == uv_python


def test_the_same_python_reached_twice_is_asked_once(machine: Machine) -> None:
    real = machine.python("bin/python3.12", "3.11.9")
    os.symlink(real, machine.bin / "python3")
    with pytest.raises(UsageError):
        find_interpreter("3.12", ask=machine.ask)
    assert machine.asked_here() == [real]


def test_no_python_of_the_minor_version_says_how_to_get_one(machine: Machine) -> None:
    machine.python("bin/python3.12", "3.11.9")
    machine.python("bin/python3", "3.13.1")
    with pytest.raises(UsageError) as caught:
        find_interpreter("3.12", ask=machine.ask)
    assert caught.value.message.startswith("no CPython 3.12 on this machine")
    assert caught.value.hint is not None
    assert "`uv python install 3.12`" in caught.value.hint
    assert "--python-version" in caught.value.hint
    assert caught.value.exit_code == 2


def test_the_running_minor_version_is_found_for_real() -> None:
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = find_interpreter(minor)
    assert found.version.rsplit(".", 1)[0] == minor
    assert os.access(found.path, os.X_OK)
