"""Module paths from file paths: which dotted name the runtime imports each project file by.

The project root is on `sys.path`, and so is a top-level `src/` folder that is not itself a
package (the src layout). Folders without `__init__.py` are namespace packages. A name part need
not be an identifier: `importlib.import_module("examples.01_hello")` works, so `01_hello.py` is
importable by its path. A dot inside a file or folder name cannot be expressed in a module path;
such files get no module name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

__all__ = ["ModuleFile", "import_roots", "module_files"]


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleFile:
    """A Python file of the project and the module path it is imported by (None if it has none)."""

    path: str
    module: str | None
    is_package: bool
    shadowed_by: str | None = None  # the file that already has this file's module path


def import_roots(files: Iterable[str]) -> tuple[str, ...]:
    """Folders put on `sys.path`, relative to the project root ('' is the root itself)."""
    paths = set(files)
    has_src = any(p.startswith("src/") for p in paths) and "src/__init__.py" not in paths
    return ("", "src") if has_src else ("",)


def module_files(files: Iterable[str]) -> dict[str, ModuleFile]:
    """Map every `.py` file of the project (POSIX relative paths) to its module path.

    When two files claim the same module (`pkg/x.py` and `src/pkg/x.py`), the earlier import root
    wins, as it would on `sys.path`.
    """
    py_files = sorted(f for f in files if f.endswith(".py"))
    roots = import_roots(py_files)
    result: dict[str, ModuleFile] = {}
    claimed: dict[str, str] = {}
    for root in roots:
        prefix = f"{root}/" if root else ""
        for path in py_files:
            if not path.startswith(prefix) or (path in result and result[path].module):
                continue
            if not root and "src" in roots and path.startswith("src/"):
                continue
            module, is_package = _module_name(path[len(prefix) :])
            if module is not None and module in claimed:
                result[path] = ModuleFile(path, None, is_package, shadowed_by=claimed[module])
                continue
            if module is not None:
                claimed[module] = path
            result[path] = ModuleFile(path, module, is_package)
    return result


def _module_name(relative: str) -> tuple[str | None, bool]:
    parts = relative[: -len(".py")].split("/")
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    if not parts or any(not p or "." in p or p.isspace() for p in parts):
        return None, is_package
    return ".".join(parts), is_package
