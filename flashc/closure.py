"""Which project files an endpoint can run: the import closure of its functions' modules.

A redeploy restarts an endpoint only when something it can run changed. That set is found from
the sources, without importing them: the modules that define the resource's functions, the
packages above them (their `__init__.py` runs first), and every project module they import,
transitively. Imports are read from the text of each file wherever they stand (module level,
function bodies, `if` branches, even strings and comments), so the set can only be too large,
which costs a needless restart, never too small, which would leave stale code running.

A file that imports by computed name (`importlib.import_module`, `__import__`, `runpy`,
`exec`) can reach anything: the closure is then every file of the project. Files other than
Python sources (data, config, requirements) are not followed here; callers count them for
every resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .modules import module_files

__all__ = ["import_closure", "resource_files"]

# The patterns start with a literal so `re` can scan for it fast; word boundaries are checked on
# each match instead (`_standalone`), which costs far less than `\b` in the pattern.
_FROM = re.compile(rb"from[ \t]+(\.*)[ \t]*([\w.]*)[ \t]+import[ \t]*(\([^)]*\)|[^\n;#]*(?:\\\r?\n[^\n;#]*)*)")
_IMPORT = re.compile(rb"import[ \t]+([^\n;#]*(?:\\\r?\n[^\n;#]*)*)")
_DYNAMIC = re.compile(rb"import_module|__import__|runpy|exec|spec_from_file_location")
_NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*|\*")


def import_closure(sources: Mapping[str, bytes], entry_modules: Iterable[str]) -> frozenset[str] | None:
    """The `.py` files (relative POSIX paths) reachable from `entry_modules` by import.

    `sources` maps every Python file of the project to its content. None means a reachable file
    imports by computed name, so any file may run.
    """
    return _ImportGraph(sources).closure(entry_modules)


class _ImportGraph:
    """The project's modules and what each file imports, read once for any number of closures."""

    def __init__(self, sources: Mapping[str, bytes]) -> None:
        self.sources = sources
        self.by_module = {f.module: f for f in module_files(sources).values() if f.module}
        self.imports: dict[str, list[str] | None] = {}  # per path; None: imports by computed name

    def closure(self, entry_modules: Iterable[str]) -> frozenset[str] | None:
        reached: set[str] = set()
        pending = list(entry_modules)
        seen: set[str] = set()
        while pending:
            module = pending.pop()
            if module in seen:
                continue
            seen.add(module)
            parts = module.split(".")
            # Importing a.b.c first imports a and a.b.
            pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
            found = self.by_module.get(module)
            if found is None:
                continue
            reached.add(found.path)
            imported = self._imports_of(found.path, module if found.is_package else module.rpartition(".")[0])
            if imported is None:
                return None
            pending.extend(imported)
        return frozenset(reached)

    def _imports_of(self, path: str, package: str) -> list[str] | None:
        if path not in self.imports:
            text = self.sources[path]
            dynamic = any(_standalone(text, m, after_dot=True) for m in _DYNAMIC.finditer(text))
            self.imports[path] = None if dynamic else _imported(text, package)
        return self.imports[path]


def _imported(text: bytes, package: str) -> list[str]:
    """Every module name an import statement in `text` may load, resolved against `package`."""
    out: list[str] = []
    for match in _FROM.finditer(text):
        if not _standalone(text, match):
            continue
        dots, name, names = (g.decode("utf-8", "replace") for g in match.groups())
        base = _absolute(len(dots), name, package)
        if base is None:
            continue
        if base:
            out.append(base)
        for item in _NAME.findall(names.replace("\\", " ")):
            if item not in ("as", "*"):
                out.append(f"{base}.{item}" if base else item)
    for match in _IMPORT.finditer(text):
        if not _standalone(text, match):
            continue
        # `from x import a` matches here too, reading `a` as a top-level module: a harmless extra.
        for item in _NAME.findall(match.group(1).decode("utf-8", "replace").replace("\\", " ")):
            if item != "as":
                out.append(item)
    return out


def _standalone(text: bytes, match: re.Match[bytes], *, after_dot: bool = False) -> bool:
    """Whether the match is a word of its own: not `reimport`, `executor` or (unless `after_dot`) `x.from`."""
    start, end = match.span()
    before = text[start - 1 : start]
    if before.isalnum() or before == b"_" or (before == b"." and not after_dot):
        return False
    after = text[end : end + 1]
    return not (after.isalnum() or after == b"_")


def _absolute(level: int, name: str, package: str) -> str | None:
    """The absolute module of `from <dots><name> import`; None when it climbs above the root."""
    if not level:
        return name
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def resource_files(
    contents: Mapping[str, bytes], modules_by_resource: Mapping[str, Iterable[str]]
) -> dict[str, list[tuple[str, bytes]]]:
    """Per resource, the shipped files an endpoint serving functions of its modules can run or read.

    `contents` holds every shipped project file. The Python files outside a resource's import
    closure are left out; every other file is kept, since any code may open it.
    """
    graph = _ImportGraph({path: data for path, data in contents.items() if path.endswith(".py")})
    out = {}
    for resource, modules in modules_by_resource.items():
        closure = graph.closure(modules)
        out[resource] = [
            (p, d) for p, d in contents.items() if closure is None or not p.endswith(".py") or p in closure
        ]
    return out
