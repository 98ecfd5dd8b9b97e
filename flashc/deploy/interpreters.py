"""Finding a CPython of a given minor version on this machine, for the endpoints' environments.

The worker image runs one CPython (3.12 for Runpod's images); a local endpoint must run the same
minor version, whatever Python runs flashc. It is looked for where Pythons are installed: uv's
own search (PATH, uv-managed Pythons), then the usual names on PATH, pyenv's versions, uv's and
the system's folders. Every candidate is asked for its version, so a pyenv shim that would run
another Python, or a broken symlink, is never taken. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import UsageError

__all__ = ["Interpreter", "find_interpreter"]

_ASK = "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.implementation.name, sys.executable)"


@dataclasses.dataclass(frozen=True, slots=True)
class Interpreter:
    path: str  # the executable, as found (a venv is made from it)
    version: str  # "3.12.1"


Ask = Callable[[str], "Interpreter | None"]


def find_interpreter(minor: str, *, uv: str | None = None, ask: Ask | None = None) -> Interpreter:
    """A CPython `minor` ("3.12") on this machine; UsageError naming how to get one when there is none."""
    ask = ask or _ask
    seen: set[str] = set()
    for candidate in _candidates(minor, uv):
        real = os.path.realpath(candidate)
        if real in seen or not os.access(candidate, os.X_OK):
            continue
        seen.add(real)
        found = ask(candidate)
        if found is not None and found.version.rsplit(".", 1)[0] == minor:
            return found
    raise UsageError(
        f"no CPython {minor} on this machine: the archive is built for it, and local endpoints run the worker's Python",
        f"install it (`uv python install {minor}`, pyenv, or the system's python{minor} package), or build for a "
        f"Python this machine has: flashc build --python-version <version>",
    )


def _candidates(minor: str, uv: str | None) -> Iterable[str]:
    if uv is not None:
        yield from _uv_find(uv, minor)
    for name in (f"python{minor}", "python3", "python"):
        found = shutil.which(name)
        if found:
            yield found
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    uv_pythons = os.environ.get("UV_PYTHON_INSTALL_DIR") or str(Path.home() / ".local/share/uv/python")
    patterns: Sequence[str] = (
        f"{pyenv}/versions/{minor}.*/bin/python{minor}",
        f"{pyenv}/versions/{minor}/bin/python{minor}",
        f"{uv_pythons}/cpython-{minor}.*-linux-*/bin/python{minor}",
        f"/usr/local/bin/python{minor}",
        f"/usr/bin/python{minor}",
        f"/opt/python/*/bin/python{minor}",
    )
    for pattern in patterns:
        # Newest patch first: "3.12.10" sorts after "3.12.9" by its numbers, not its text.
        yield from sorted(glob.glob(pattern), key=_patch_order, reverse=True)


def _patch_order(path: str) -> tuple[int, ...]:
    numbers = [int(part) for part in "".join(c if c.isdigit() else " " for c in path).split()]
    return tuple(numbers)


def _uv_find(uv: str, minor: str) -> list[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        proc = subprocess.run(
            [uv, "python", "find", "--no-config", "--system", minor],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [proc.stdout.strip()] if proc.returncode == 0 and proc.stdout.strip() else []


def _ask(executable: str) -> Interpreter | None:
    """The version of the CPython at `executable`, or None when it is not one that runs."""
    try:
        proc = subprocess.run(
            [executable, "-I", "-c", _ASK],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) != 3 or parts[1] != "cpython":
        return None
    return Interpreter(executable, parts[0])
