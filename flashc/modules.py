"""Module paths from file paths: which dotted name the runtime imports each project file by.

The project root is on `sys.path`, and so is a top-level `src/` folder that is not itself a
package (the src layout). Folders without `__init__.py` are namespace packages. A name part need
not be an identifier: `importlib.import_module("examples.01_hello")` works, so `01_hello.py` is
importable by its path. A dot inside a file or folder name cannot be expressed in a module path;
such files get no module name.

Where files compete for a name, the one CPython's path finder imports wins (each rule below was
checked with `importlib.import_module` on CPython 3.11; `tests/test_modules.py` re-checks them):

- a name is looked up along a search path, `sys.path` for a top-level name and the parent
  package's `__path__` below it, and the first folder on it that holds a match wins;
- within one folder a regular package (`name/__init__.py`) beats a module (`name.py`), and a
  module beats a namespace package (a bare `name/` folder);
- a namespace package exists only if no folder on the search path holds a package or module of
  that name, and its `__path__` is every `name/` folder on the search path, in order;
- nothing below a module can be imported (`'pkg.ns' is not a package`), nor anything in a folder
  left out of its package's `__path__` (`src/pkg/x.py` when `pkg/__init__.py` is at the root).

A file that loses gets no module name; `shadowed_by` is the file imported in its place, at the
level where its path was lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

__all__ = ["ModuleFile", "import_roots", "module_files"]

# What importing a name finds: the module or package `__init__.py` (None for a namespace
# package), and the package's `__path__` (empty for a module).
_Found = tuple[str | None, tuple[str, ...]]


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleFile:
    """A Python file of the project and the module path it is imported by (None if it has none)."""

    path: str
    module: str | None
    is_package: bool
    shadowed_by: str | None = None  # the file imported instead, by this file's module path or a parent's


def import_roots(files: Iterable[str]) -> tuple[str, ...]:
    """Folders put on `sys.path`, relative to the project root ('' is the root itself)."""
    paths = set(files)
    has_src = any(p.startswith("src/") for p in paths) and "src/__init__.py" not in paths
    return ("", "src") if has_src else ("",)


def module_files(files: Iterable[str]) -> dict[str, ModuleFile]:
    """Map every `.py` file of the project (POSIX relative paths) to its module path.

    Pure: only the paths are looked at. When files compete for a module path, the one the import
    system finds keeps it; the others, and every file that can no longer be reached below them,
    get `module=None` and `shadowed_by` (see the module docstring).
    """
    py_files = sorted(f for f in files if f.endswith(".py"))
    roots = import_roots(py_files)
    file_set = set(py_files)
    folders: set[str] = set()
    for path in py_files:
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]

    # For each folder: its module path ('' for an import root, None if a part is not a name, as
    # in `v1.2/`), and either the search path for the names directly inside it (its package's
    # `__path__`) or the file that keeps the import system out of it. A folder sorts after its
    # parent, so the parent's entries are always ready.
    dotted: dict[str, str | None] = dict.fromkeys(roots, "")
    search: dict[str, tuple[str, ...] | str | None] = dict.fromkeys(roots, roots)
    for folder in sorted(folders):
        if folder in search:  # `src`, an import root
            continue
        parent, _, tail = folder.rpartition("/")
        outer, prefix = search[parent], dotted[parent]
        if prefix is None or not (tail.isidentifier() or _is_name(tail)):
            dotted[folder] = search[folder] = None
            continue
        dotted[folder] = f"{prefix}.{tail}" if prefix else tail
        if isinstance(outer, tuple):
            file, package_path = _find(outer, tail, file_set, folders)
            search[folder] = package_path if folder in package_path else file
        else:
            search[folder] = outer

    result: dict[str, ModuleFile] = {}
    for path in py_files:
        folder, _, name = path.rpartition("/")
        tail = name[: -len(".py")]
        prefix, where = dotted[folder], search[folder]
        is_package = tail == "__init__"
        if is_package:
            module = prefix
        elif prefix is not None and (tail.isidentifier() or _is_name(tail)):
            module = f"{prefix}.{tail}" if prefix else tail
        else:
            module = None
        if not module:
            result[path] = ModuleFile(path, None, is_package)
            continue
        # A package's `__init__.py` is imported exactly when its folder is on the search path; a
        # module must also be the first match there (a package first within each folder).
        if isinstance(where, tuple) and not is_package:
            winner = path
            for portion in where:
                base = f"{portion}/{tail}" if portion else tail
                winner = f"{base}/__init__.py"
                if winner in file_set:
                    break
                winner = f"{base}.py"
                if winner in file_set:
                    break
            where = None if winner == path else winner
        if isinstance(where, str):
            result[path] = ModuleFile(path, None, is_package, where)
        else:
            result[path] = ModuleFile(path, module, is_package)
    return result


def _find(search: tuple[str, ...], tail: str, files: set[str], folders: set[str]) -> _Found:
    """What CPython's path finder imports for `tail` along `search` (folders, '' the root)."""
    portions: list[str] = []
    for folder in search:
        base = f"{folder}/{tail}" if folder else tail
        if f"{base}/__init__.py" in files:
            return f"{base}/__init__.py", (base,)
        if f"{base}.py" in files:
            return f"{base}.py", ()
        if base in folders:
            portions.append(base)
    return None, tuple(portions)


def _is_name(part: str) -> bool:
    """Whether a file or folder name gets a module path part: not empty, blank or dotted.

    Callers try the faster `str.isidentifier` first.
    """
    return bool(part) and "." not in part and not part.isspace()
