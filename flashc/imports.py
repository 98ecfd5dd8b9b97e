"""Whether every module an endpoint imports exists on its worker, checked from the sources at build time.

A worker whose module imports a package that is neither shipped nor preinstalled crashes at cold
start. `check_imports` finds that before deploying, for one resource at a time: from the modules of
its functions it follows the project modules they import, reads each file's import statements with
`ast` (no code runs) and checks that the top-level name of every imported module is available:

- the project's own top-level modules and packages, which win over any other module of the same
  name (the project root comes before the standard library on the worker's `sys.path`), and its
  compiled modules (`fastmath.cpython-312-x86_64-linux-gnu.so`), named by the caller;
- `__future__`, `__main__` and the runtime's `flashc_runtime`, `tetra_rp` and `runpod_flash`;
- the standard library of the target Python: `sys.stdlib_module_names` of the Python running
  flashc, corrected for the modules added or removed between 3.10 and 3.14 and without the
  Windows- and macOS-only ones. A module the worker's Python was built without (`tkinter` on a slim
  image) still counts as present. A module the target Python removed from the standard library
  (`imp`, `distutils`, PEP 594's) is missing like any other, with a hint that says so;
- what the shipped wheels install and what the worker image provides (both given by the caller).

When an import runs decides how bad a missing module is:

- at load time (module level, including `if`/`for`/`with`/`try` bodies and class bodies, decorators
  and default values): importing the module fails, so the endpoint never starts: an error;
- at call time (the body of a `def`, `async def` or `lambda`): only that call fails: a warning.

The project modules an import loads are followed, transitively; a package's `__init__.py` runs
before its modules. Whatever a call-time import loads is itself call-time, so every problem found
along such a path is a warning. Guarded imports are never a problem, nor is anything they load:

- in the body of a `try` with a handler for `ImportError` or `ModuleNotFoundError` (alone or in a
  tuple), for `Exception` or `BaseException`, or a bare `except:`, unless the first such handler
  raises again (a `raise` statement directly in its body: the endpoint still fails); in the body of
  a `with suppress(...)` of one of those;
- in the branch of an `if` that runs only when `find_spec` found a module: the body of `if
  find_spec("x"):` or `if find_spec("x") is not None:` (also `importlib.util.find_spec`,
  `util.find_spec`, `!= None`), the `else` of `if find_spec("x") is None:` or `if not
  find_spec("x"):`, combined with `not`, `and`, `or`; or of `if HAS_X:` where `HAS_X` is a name
  assigned such a test once in the file. Like a `try`, the check guards every import in the branch,
  not only the module it names;
- in `if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:` (the `else` branch runs, so is not guarded);
- in a branch that never runs on the worker, a CPython of the target version on Linux: of an `if`
  whose condition compares `sys.version_info` (or `[:n]`, `.major`, `.minor`) with a literal tuple or
  number, `sys.platform`, `os.name` or `platform.system()` with a string, `sys.platform.startswith`,
  or `__name__` with `"__main__"`, possibly combined with `not`, `and`, `or`. Any other condition is
  assumed to take both branches.

An import whose statement carries the comment `# flashc: ignore` on any of its lines (for
`__import__`/`import_module`, on a line of the call) is not checked: the user knows something else
provides it, such as a vendored folder put on `sys.path` or an optional import guarded by an
environment variable. It is never reported nor counted as taken from the worker image; a project
module it names is still followed.

`__import__("name")` and `importlib.import_module("name")` (also `import_module`, and relative with a
literal or `__package__` as the package) count as imports; a computed name is not checked. A file
that does not parse with the running Python is skipped (the report lists it in `unparsed`): flashc
reports syntax errors elsewhere, but code using syntax newer than the running Python goes unchecked.
Only top-level names are checked: a missing submodule of an available package, or a relative import
above the top-level package, is not reported here.

Use: build one `ProjectImports` per build, then call `check_imports` once per resource with that
resource's `Worker`. Each file is parsed once, when a resource first reaches it, and kept for the
others. Parsing dominates (about 0.7 ms per KB of source on CPython 3.11), so a resource whose
closure is a few dozen files is checked in about a tenth of a second however large the project is;
call-time imports are followed too, so functions that import half the project cost half its parse.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import io
import operator
import re
import sys
import tokenize
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, Literal, NamedTuple

from .diagnostics import Diagnostic, Note, Span, sort_key
from .modules import ModuleFile, module_files

__all__ = [
    "ALWAYS_AVAILABLE",
    "Guard",
    "ImportReport",
    "ImportUse",
    "ProjectImports",
    "When",
    "Worker",
    "check_imports",
    "scan_imports",
    "stdlib_modules",
]

When = Literal["load", "call"]
# except: a handler catches the ImportError; find_spec: it runs only when `find_spec` found a module;
# type_checking: only type checkers run it; static: a version or platform condition is false on the
# worker. Only `except` and `find_spec` imports run (and are followed).
Guard = Literal["except", "find_spec", "type_checking", "static"]
# The guards of imports that run, but only where they cannot fail.
_RUNS_GUARDED: tuple[Guard, ...] = ("except", "find_spec")

ALWAYS_AVAILABLE = frozenset({"__future__", "__main__", "flashc_runtime", "tetra_rp", "runpod_flash"})


@dataclasses.dataclass(frozen=True, slots=True)
class ImportUse:
    """One module an import statement (or `__import__`/`import_module` with a literal) needs.

    `module` is absolute: `a.b` for `import a.b`, `import a.b as c`, `from a.b import c`, and for
    `from .b import c` in package `a`. For a `from` import, `names` are the names it imports, each
    either a submodule (`module.name`) or an attribute. `span` covers the module's name as written,
    or the statement where the name is not written (`from . import x`). `function` is the qualified
    name of the function whose body holds a call-time import. `ignored`: its line carries
    `# flashc: ignore`.
    """

    path: str
    module: str
    names: tuple[str, ...]
    span: Span
    when: When
    function: str | None
    guard: Guard | None
    ignored: bool = False

    @property
    def top(self) -> str:
        return self.module.partition(".")[0]


@dataclasses.dataclass(frozen=True, slots=True)
class Worker:
    """What a resource's worker can import besides the project, the standard library and the runtime.

    `shipped`: top-level names the archive's wheels for this resource install. `image_provides`: the
    top-level names the worker image preinstalls, each with the distribution that installs it.
    """

    image: str
    shipped: frozenset[str]
    image_provides: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    """What checking one resource found.

    `diagnostics`: the problems, sorted (errors when the endpoint cannot start, warnings when a call
    can fail). `loaded`: the project modules imported when the endpoint starts, guarded imports
    included. `image_at_load` / `image_at_call`: the top-level names that only the worker image
    provides, imported when the endpoint starts / only while a function runs (unguarded imports).
    `image_uses`: for each of those names, its first import: one that runs at start if any, then the
    first by path and position. `unparsed`: the paths of the files reached that do not parse, whose
    imports went unchecked.
    """

    resource: str
    diagnostics: tuple[Diagnostic, ...]
    loaded: frozenset[str]
    image_at_load: frozenset[str]
    image_at_call: frozenset[str]
    image_uses: Mapping[str, ImportUse]
    unparsed: frozenset[str]


class ProjectImports:
    """The project's Python files, their module paths and the target Python, read once per build.

    Pass the same instance to `check_imports` for every resource: each file is parsed the first
    time a resource reaches it and its imports are kept (a cache of `scan_imports`, which is pure).
    """

    def __init__(
        self,
        sources: Mapping[str, bytes],
        python_version: str,
        modules: Mapping[str, ModuleFile] | None = None,
        *,
        native: Iterable[str] = (),
    ) -> None:
        """`sources`: every Python file (POSIX path relative to the root) and its content; `modules`:
        `flashc.modules.module_files` of those paths, computed when not given; `python_version`: "3.12";
        `native`: the top-level names of the project's compiled modules (`fastmath` for
        `fastmath.cpython-312-x86_64-linux-gnu.so`), which are available but have no imports to follow."""
        self.sources = sources
        self.target = _parse_version(python_version)
        self.modules = modules if modules is not None else module_files(sources)
        self.by_module: dict[str, ModuleFile] = {f.module: f for f in self.modules.values() if f.module}
        self.native = frozenset(native)
        self.top_level = frozenset(m.partition(".")[0] for m in self.by_module) | self.native
        self._uses: dict[str, tuple[ImportUse, ...] | None] = {}

    def uses(self, path: str) -> tuple[ImportUse, ...] | None:
        """The imports of the file at `path`; None when it does not parse."""
        if path not in self._uses:
            file = self.modules[path]
            self._uses[path] = scan_imports(self.sources[path], path, file.module or "", file.is_package, self.target)
        return self._uses[path]


def check_imports(
    project: ProjectImports,
    resource: str,
    entry_modules: Iterable[str],
    worker: Worker,
    distribution_for: Callable[[str], str],
    elsewhere: Collection[tuple[str, str]] = (),
) -> ImportReport:
    """Check every import the endpoint of `resource` runs, from the modules of its functions.

    `elsewhere` holds (module, qualname) of the remote functions of other resources: calling one
    sends the call to its endpoint, so what its body imports never runs in this one.

    `distribution_for` names the distribution to add for a missing module, given the full dotted
    name the code imports (`cv2` -> `opencv-python`, `google.protobuf` -> `protobuf`, `yaml.loader` ->
    `PyYAML`); it is called only for problems, and not for a module the target Python removed from
    the standard library (the hint says so instead). Each (file, line, top-level name) is reported once.
    """
    stdlib = stdlib_modules(project.target)
    walk = _Walk(project)
    entries = [m for m in entry_modules if m in project.by_module]
    for module in entries:
        walk.enter(module, _LOAD, None)
    for module in entries:
        parts = module.split(".")
        for i in range(1, len(parts)):  # a.b.c runs a/__init__.py and a/b/__init__.py first
            walk.enter(".".join(parts[:i]), _LOAD, (module, _LOAD, None))

    problems: dict[tuple[str, int, str], Diagnostic] = {}
    image_load: set[str] = set()
    image_call: set[str] = set()
    # The first import of each name only the image provides: those that run at start first.
    image_uses: dict[str, tuple[tuple[bool, str, int, int], ImportUse]] = {}
    unparsed: set[str] = set()
    for module, mode in walk:
        path = project.by_module[module].path
        uses = project.uses(path)
        if uses is None:
            unparsed.add(path)
        for use in uses or ():
            if use.guard in ("type_checking", "static"):
                continue
            if use.function is not None and _runs_elsewhere(module, use.function, elsewhere):
                continue
            reached = _Mode(mode.call or use.when == "call", mode.guarded or use.guard in _RUNS_GUARDED)
            top = use.top
            if top in project.top_level:
                candidates = [use.module, *(f"{use.module}.{name}" for name in use.names)]
                for candidate in candidates:
                    parts = candidate.split(".")
                    for i in range(1, len(parts) + 1):
                        walk.enter(".".join(parts[:i]), reached, (module, mode, use))
                continue
            if use.ignored or reached.guarded or top in ALWAYS_AVAILABLE or top in stdlib or top in worker.shipped:
                continue
            if top in worker.image_provides:
                (image_call if reached.call else image_load).add(top)
                order = (reached.call, use.path, use.span.line, use.span.col)
                if top not in image_uses or order < image_uses[top][0]:
                    image_uses[top] = (order, use)
                continue
            key = (use.path, use.span.line, top)
            if key not in problems:
                chain = walk.chain(module, mode)
                problems[key] = _problem(use, resource, worker, chain, _hint(use, project.target, distribution_for))
    return ImportReport(
        resource,
        tuple(sorted(problems.values(), key=sort_key)),
        frozenset(walk.loaded),
        frozenset(image_load),
        frozenset(image_call - image_load),
        {top: use for top, (_, use) in sorted(image_uses.items())},
        frozenset(unparsed),
    )


def _hint(use: ImportUse, target: tuple[int, int], distribution_for: Callable[[str], str]) -> str:
    removed = _STDLIB_CHANGES.get(use.top, (None, None))[1]
    if removed is not None and target >= removed:
        return (
            f"{use.top} was removed from the standard library in Python {removed[0]}.{removed[1]}"
            f"{_REMOVAL_NOTES.get(use.top, '')}"
        )
    return f"add {distribution_for(use.module)} to the function's dependencies or to requirements.txt"


def _runs_elsewhere(module: str, function: str, elsewhere: Collection[tuple[str, str]]) -> bool:
    """Whether `function` (a qualname) is, or is inside, a remote function or class of another resource."""
    return any(m == module and (function == q or function.startswith(f"{q}.")) for m, q in elsewhere)


def _problem(use: ImportUse, resource: str, worker: Worker, chain: list[_Link], hint: str) -> Diagnostic:
    function = next((u.function for _, u in chain if u is not None and u.when == "call"), use.function)
    when = f"when the endpoint '{resource}' starts" if function is None else f"when '{resource}' runs {function}()"
    notes = []
    for i, (source, via) in enumerate(chain):
        target = chain[i + 1][0] if i + 1 < len(chain) else use.path
        if via is None:
            notes.append(Note(source, None, f"{target} runs first, as the package of {source}"))
        else:
            notes.append(Note(source, via.span, f"{source} imports {target}"))
    return Diagnostic(
        use.path,
        use.span,
        "warning" if function is not None else "error",
        "import",
        f"'{use.top}' is imported {when}, but neither the archive nor the worker image ({worker.image}) provides it",
        hint,
        tuple(notes),
    )


class _Mode(NamedTuple):
    """How a module is reached: only by a call (or at load time), only through a guarded import."""

    call: bool
    guarded: bool


_LOAD = _Mode(False, False)
# The order modes are processed in: a mode is never reached from a later one, so the first time a
# module is processed in a mode that dominates another, the other need not be processed at all.
_ORDER = (_LOAD, _Mode(True, False), _Mode(False, True), _Mode(True, True))

# Why a module runs: the module and mode it was reached from and the import (None: it is the
# package of that module). None for an entry module.
_Reason = tuple[str, _Mode, ImportUse | None] | None
# One link of the chain that makes a module run: the file, and the import in it (None: its package).
_Link = tuple[str, ImportUse | None]


class _Walk:
    """The project modules a resource runs, each in the strongest modes it is reached in."""

    def __init__(self, project: ProjectImports) -> None:
        self.project = project
        self.queues: dict[_Mode, deque[str]] = {mode: deque() for mode in _ORDER}
        self.modes: dict[str, list[_Mode]] = {}
        self.reasons: dict[tuple[str, _Mode], _Reason] = {}
        self.loaded: set[str] = set()

    def enter(self, module: str, mode: _Mode, reason: _Reason) -> None:
        if module not in self.project.by_module:
            return
        modes = self.modes.setdefault(module, [])
        if any(m.call <= mode.call and m.guarded <= mode.guarded for m in modes):
            return
        modes.append(mode)
        self.reasons[(module, mode)] = reason
        self.queues[mode].append(module)

    def __iter__(self) -> Iterator[tuple[str, _Mode]]:
        for mode in _ORDER:
            queue = self.queues[mode]
            while queue:
                module = queue.popleft()
                if not mode.call:
                    self.loaded.add(module)
                yield module, mode

    def chain(self, module: str, mode: _Mode) -> list[_Link]:
        """The links from an entry module to `module`, first link first."""
        links: list[_Link] = []
        reason = self.reasons[(module, mode)]
        while reason is not None:
            source, source_mode, use = reason
            links.append((self.project.by_module[source].path, use))
            reason = self.reasons[(source, source_mode)]
        links.reverse()
        return links


def _parse_version(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# PEP 594's dead batteries removed in 3.13 (lib2to3 went too).
_PEP_594_IN_3_13 = [
    "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis",
    "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
]  # fmt: skip
# Standard-library modules added or removed since 3.10: (first version with it, first without).
_STDLIB_CHANGES: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    "tomllib": ((3, 11), None),
    "annotationlib": ((3, 14), None),
    "compression": ((3, 14), None),
    "binhex": (None, (3, 11)),
    **dict.fromkeys(["asynchat", "asyncore", "distutils", "imp", "smtpd"], (None, (3, 12))),
    **dict.fromkeys([*_PEP_594_IN_3_13, "lib2to3"], (None, (3, 13))),
}
# What the hint for a module removed from the standard library adds after "removed in Python 3.N".
_REMOVAL_NOTES = {
    "imp": ": use importlib",
    "distutils": " (PEP 632): add setuptools, which provides it, or use sysconfig/shutil",
    "asynchat": " (PEP 594): use asyncio",
    "asyncore": " (PEP 594): use asyncio",
    "smtpd": " (PEP 594): add aiosmtpd",
    **dict.fromkeys(_PEP_594_IN_3_13, " (PEP 594)"),
}
_NOT_ON_LINUX = frozenset(
    {"_msi", "_overlapped", "_scproxy", "_winapi", "_wmi", "msilib", "msvcrt", "nt", "winreg", "winsound"}
)


@functools.lru_cache(maxsize=8)
def stdlib_modules(target: tuple[int, int]) -> frozenset[str]:
    """The top-level standard-library modules a CPython of version `target` has on Linux.

    The running Python's `sys.stdlib_module_names`, corrected by a table of the modules added or
    removed from 3.10 to 3.14; other differences between versions are private `_` modules.
    """
    names = set(sys.stdlib_module_names) | set(_STDLIB_CHANGES)
    for name, (added, removed) in _STDLIB_CHANGES.items():
        if (added is not None and target < added) or (removed is not None and target >= removed):
            names.discard(name)
    return frozenset(names - _NOT_ON_LINUX)


def scan_imports(
    source: bytes, path: str, module: str, is_package: bool, target: tuple[int, int]
) -> tuple[ImportUse, ...] | None:
    """Every import in one file, in source order; None when the file does not parse.

    `module` is the file's module path ("" when it has none: relative imports are then skipped) and
    `target` the worker's (major, minor) Python version, for static `sys.version_info` conditions.
    """
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError):
        return None
    scanner = _Scanner(source, path, module, module if is_package else module.rpartition(".")[0], target)
    if b"find_spec" in source:
        scanner.spec_names = _spec_names(tree)
    scanner.body(tree.body, _Context("", None, None))
    return tuple(scanner.uses)


class _Context(NamedTuple):
    prefix: str  # of qualified names defined here: "C." in class C, "f.<locals>." in def f
    function: str | None  # the function whose body runs this code; None at load time
    guard: Guard | None

    def guarded(self, guard: Guard | None) -> _Context:
        if guard is None or self.guard in ("type_checking", "static"):
            return self  # code that never runs stays so
        return self._replace(guard=guard)


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
_FROM_NAME = re.compile(r"from\s*(?:\.\s*)*([^\W\d]\w*(?:\s*\.\s*[^\W\d]\w*)*)")
_DYNAMIC = (b"__import__", b"import_module")
# The statements not handled one by one that can hold other statements.
_COMPOUND = (ast.For, ast.AsyncFor, ast.While, ast.Match)


class _Scanner:
    """Walks one module's statements, recording each import with the context it runs in."""

    def __init__(self, source: bytes, path: str, module: str, package: str, target: tuple[int, int]) -> None:
        self.source = source
        self.path = path
        self.module = module
        self.package = package
        self.target = target
        # Expressions are walked only when they can hold `__import__` or `import_module`.
        self.dynamic = any(word in source for word in _DYNAMIC)
        self.ascii = source.isascii()
        self._lines: list[bytes] | None = None
        self.ignored_lines = _ignored_lines(source) if _IGNORE_WORD in source else frozenset()
        # Names assigned a `find_spec` test once in the file: what `if name:` guards, as `_spec_guards`.
        self.spec_names: dict[str, tuple[bool, bool]] = {}
        self.uses: list[ImportUse] = []

    def body(self, statements: Iterable[ast.stmt], ctx: _Context) -> None:
        for node in statements:
            self.statement(node, ctx)

    def statement(self, node: ast.stmt, ctx: _Context) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                end = alias.end_col_offset if alias.asname is None else alias.col_offset + len(alias.name.encode())
                span = self.span(alias.lineno, alias.col_offset, alias.end_lineno or alias.lineno, end or 0)
                self.add(alias.name, (), span, ctx, node)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node.level, node.module or "", self.package)
            if module is not None:
                self.add(module, tuple(a.name for a in node.names if a.name != "*"), self.from_span(node), ctx, node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if self.dynamic:  # decorators, defaults and annotations run where the def stands
                self.expressions([*node.decorator_list, node.args, *([node.returns] if node.returns else [])], ctx)
            qualname = ctx.prefix + node.name
            self.body(node.body, _Context(f"{qualname}.<locals>.", qualname, ctx.guard))
        elif isinstance(node, ast.ClassDef):
            if self.dynamic:
                self.expressions([*node.decorator_list, *node.bases, *node.keywords], ctx)
            self.body(node.body, ctx._replace(prefix=f"{ctx.prefix}{node.name}."))
        elif isinstance(node, ast.If):
            if self.dynamic:
                self.expressions([node.test], ctx)
            body_guard, else_guard = self.branch_guards(node.test)
            self.body(node.body, ctx.guarded(body_guard))
            self.body(node.orelse, ctx.guarded(else_guard))
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.try_(node, ctx)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            if self.dynamic:
                self.expressions([item.context_expr for item in node.items], ctx)
            suppresses = any(_suppresses_import_error(item.context_expr) for item in node.items)
            self.body(node.body, ctx.guarded("except" if suppresses else None))
        elif self.dynamic or isinstance(node, _COMPOUND):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.statement(child, ctx)
                elif isinstance(child, ast.match_case):
                    self.body(child.body, ctx)
                    if self.dynamic and child.guard is not None:
                        self.expressions([child.guard], ctx)
                elif self.dynamic:
                    self.expressions([child], ctx)

    def try_(self, node: ast.stmt, ctx: _Context) -> None:
        handlers: list[ast.ExceptHandler] = getattr(node, "handlers", [])
        # The first handler for ImportError takes it: it guards unless it raises again.
        first = next((h for h in handlers if _catches_import_error(h.type)), None)
        guards = first is not None and not _raises(first.body)
        self.body(getattr(node, "body", []), ctx.guarded("except" if guards else None))
        for handler in handlers:
            if self.dynamic and handler.type is not None:
                self.expressions([handler.type], ctx)
            self.body(handler.body, ctx)
        self.body(getattr(node, "orelse", []), ctx)
        self.body(getattr(node, "finalbody", []), ctx)

    def expressions(self, nodes: Iterable[ast.AST], ctx: _Context) -> None:
        """Record the `__import__` and `import_module` calls with a literal name in `nodes`."""
        pending = [(node, ctx) for node in reversed(list(nodes))]  # a stack: source order, first on top
        while pending:
            node, here = pending.pop()
            if isinstance(node, ast.Lambda):
                qualname = f"{here.prefix}<lambda>"
                pending.append((node.body, _Context(f"{qualname}.<locals>.", qualname, here.guard)))
                pending.append((node.args, here))
                continue
            if isinstance(node, ast.Call):
                self.dynamic_import(node, here)
            pending.extend((child, here) for child in reversed(list(ast.iter_child_nodes(node))))

    def dynamic_import(self, call: ast.Call, ctx: _Context) -> None:
        func = call.func
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        first = call.args[0] if call.args else keywords.get("name")
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            return
        name = first.value
        if isinstance(func, ast.Name) and func.id == "__import__":
            level_node = call.args[4] if len(call.args) > 4 else keywords.get("level")
            level = level_node.value if isinstance(level_node, ast.Constant) else None if level_node else 0
            if not isinstance(level, int):
                return
            module = _resolve(level, name, self.package)
        elif (isinstance(func, ast.Name) and func.id == "import_module") or (
            isinstance(func, ast.Attribute)
            and func.attr == "import_module"
            and isinstance(func.value, ast.Name)
            and func.value.id == "importlib"
        ):
            stripped = name.lstrip(".")
            if stripped == name:
                module = name
            else:
                anchor = call.args[1] if len(call.args) > 1 else keywords.get("package")
                if isinstance(anchor, ast.Name) and anchor.id == "__package__":
                    package = self.package
                elif isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
                    package = anchor.value
                else:
                    return
                module = _resolve(len(name) - len(stripped), stripped, package or "")
        else:
            return
        if module:
            end_line = first.end_lineno or first.lineno
            span = self.span(first.lineno, first.col_offset, end_line, first.end_col_offset or 0)
            self.add(module, (), span, ctx, call)

    def branch_guards(self, test: ast.expr) -> tuple[Guard | None, Guard | None]:
        """Why the body and the `else` of an `if` on `test` never run on the worker, if they do not."""
        if _is_type_checking(test):
            return "type_checking", None
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_type_checking(test.operand):
            return None, "type_checking"
        truth = _static_truth(test, self.target, self.module)
        if truth is not None:
            return ("static" if truth is False else None), ("static" if truth is True else None)
        body, orelse = _spec_guards(test, self.spec_names)
        return ("find_spec" if body else None), ("find_spec" if orelse else None)

    def add(self, module: str, names: tuple[str, ...], span: Span, ctx: _Context, node: ast.stmt | ast.expr) -> None:
        """Record an import of `module` by `node`, the statement or call, whose lines may opt out."""
        when: When = "load" if ctx.function is None else "call"
        lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        ignored = bool(self.ignored_lines) and any(line in self.ignored_lines for line in lines)
        self.uses.append(ImportUse(self.path, module, names, span, when, ctx.function, ctx.guard, ignored))

    def span(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        """A Span from ast positions (UTF-8 byte offsets): 1-based character columns."""
        return Span(line, self.column(line, col), end_line, self.column(end_line, end_col))

    def column(self, line: int, offset: int) -> int:
        if self.ascii:
            return offset + 1
        return len(self.line(line)[:offset].decode("utf-8", "replace")) + 1

    def line(self, number: int) -> bytes:
        """Line `number` in UTF-8, what ast's offsets count (a file in another encoding, or with a BOM, is decoded)."""
        if self._lines is None:
            if self.ascii:
                self._lines = self.source.splitlines()
            else:
                self._lines = [line.encode() for line in importlib.util.decode_source(self.source).split("\n")]
        return self._lines[number - 1] if 0 < number <= len(self._lines) else b""

    def from_span(self, node: ast.ImportFrom) -> Span:
        """The span of the module's name in `from <name> import`; the statement's when not written there."""
        text = self.line(node.lineno).decode("utf-8", "replace")
        start = self.column(node.lineno, node.col_offset) - 1
        match = _FROM_NAME.match(text, start)
        if match is not None and node.module and "".join(match.group(1).split()) == node.module:
            return Span(node.lineno, match.start(1) + 1, node.lineno, match.end(1) + 1)
        end_line = node.end_lineno or node.lineno
        return self.span(node.lineno, node.col_offset, end_line, node.end_col_offset or 0)


def _resolve(level: int, name: str, package: str) -> str | None:
    """The absolute module of a relative import of `name` with `level` dots from `package`."""
    if not level:
        return name
    parts = package.split(".") if package else []
    if level > len(parts):
        return None  # above the top-level package (or no package): the import itself fails
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _catches_import_error(kind: ast.expr | None) -> bool:
    if kind is None:
        return True
    if isinstance(kind, ast.Tuple):
        return any(_catches_import_error(k) for k in kind.elts)
    return _name_of(kind) in _IMPORT_ERRORS


def _raises(body: list[ast.stmt]) -> bool:
    return any(isinstance(s, ast.Raise) for s in body)


def _suppresses_import_error(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call)
        and _name_of(expr.func) == "suppress"
        and any(_catches_import_error(arg) for arg in expr.args)
    )


def _name_of(expr: ast.expr) -> str | None:
    """`name` for `name` or `anything.name`."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return _name_of(test) == "TYPE_CHECKING"


_FIND_SPEC = frozenset({"find_spec", "util.find_spec", "importlib.util.find_spec"})


def _spec_guards(test: ast.expr, names: Mapping[str, tuple[bool, bool]]) -> tuple[bool, bool]:
    """Whether the body / the `else` of an `if` on `test` runs only when a `find_spec` found its module.

    `names`: the same answer for the names assigned such a test.
    """
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        body, orelse = _spec_guards(test.operand, names)
        return orelse, body
    if isinstance(test, ast.BoolOp):
        branches = [_spec_guards(value, names) for value in test.values]
        if isinstance(test.op, ast.And):  # the body needs every value true; the else, any one false
            return any(body for body, _ in branches), all(orelse for _, orelse in branches)
        return all(body for body, _ in branches), any(orelse for _, orelse in branches)
    if isinstance(test, ast.Name):
        return names.get(test.id, (False, False))
    if _is_find_spec(test):
        return True, False
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], (ast.Is, ast.IsNot, ast.Eq, ast.NotEq))
        and _is_find_spec(test.left)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    ):
        found = isinstance(test.ops[0], (ast.IsNot, ast.NotEq))
        return found, not found
    return False, False


def _is_find_spec(expr: ast.expr) -> bool:
    if isinstance(expr, ast.NamedExpr):  # `(spec := find_spec("x")) is not None`
        expr = expr.value
    return isinstance(expr, ast.Call) and bool(expr.args) and _dotted(expr.func) in _FIND_SPEC


def _spec_names(tree: ast.Module) -> dict[str, tuple[bool, bool]]:
    """The names assigned a `find_spec` test (`HAS_X = find_spec("x") is not None`) and bound nowhere else."""
    bound: dict[str, int] = {}
    found: dict[str, tuple[bool, bool]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound[node.id] = bound.get(node.id, 0) + 1
        elif isinstance(node, ast.arg):
            bound[node.arg] = bound.get(node.arg, 0) + 1
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            guards = _spec_guards(node.value, {})
            if guards != (False, False):
                found[node.targets[0].id] = guards
    return {name: guards for name, guards in found.items() if bound.get(name) == 1}


_IGNORE_WORD = b"flashc:"
_IGNORE = re.compile(r"#\s*flashc:\s*ignore\b")


def _ignored_lines(source: bytes) -> frozenset[int]:
    """The lines with a `# flashc: ignore` comment (a comment, not a string that looks like one)."""
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # ast parsed it, so unlikely: read the lines instead
        text = importlib.util.decode_source(source)
        return frozenset(n for n, line in enumerate(text.splitlines(), 1) if _IGNORE.search(line))
    return frozenset(t.start[0] for t in tokens if t.type == tokenize.COMMENT and _IGNORE.search(t.string))


class _VersionInfo:
    """`sys.version_info` of the worker, whose micro version is unknown."""

    def __init__(self, target: tuple[int, int]) -> None:
        self.target = target

    def compare(self, other: tuple[int, ...]) -> int | None:
        """-1, 0 or 1 as `sys.version_info` compares with `other`; None when the micro version decides."""
        head, known = other[:2], self.target[: len(other)]
        if known != head:
            try:
                return -1 if known < head else 1
            except TypeError:  # a string where a number should be
                return None
        if len(other) <= 2 or (len(other) == 3 and other[2] == 0):
            return 1  # (3, 12, micro, "final", 0) is longer, or has micro >= 0
        return None


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_UNKNOWN = object()


def _static_truth(test: ast.expr, target: tuple[int, int], module: str) -> bool | None:
    """Whether `test` is true on the worker (Linux, CPython `target`); None when it cannot be told."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _static_truth(test.operand, target, module)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        values = [_static_truth(v, target, module) for v in test.values]
        stop = isinstance(test.op, ast.Or)  # `or` is decided by a True, `and` by a False
        if stop in values:
            return stop
        return None if None in values else not stop
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "startswith":
        subject = _static_value(test.func.value, target, module)
        prefix = _static_value(test.args[0], target, module) if len(test.args) == 1 else _UNKNOWN
        if isinstance(subject, str) and isinstance(prefix, (str, tuple)):
            return subject.startswith(prefix)
        return None
    if isinstance(test, ast.Compare) and all(type(op) in _COMPARE for op in test.ops):
        left = _static_value(test.left, target, module)
        for op, right_node in zip(test.ops, test.comparators, strict=True):
            right = _static_value(right_node, target, module)
            outcome = _compare(_COMPARE[type(op)], left, right)
            if outcome is not True:
                return outcome
            left = right
        return True
    return None


def _compare(op: Callable[[Any, Any], bool], left: object, right: object) -> bool | None:
    if left is _UNKNOWN or right is _UNKNOWN:
        return None
    if isinstance(left, _VersionInfo) or isinstance(right, _VersionInfo):
        version, other, sign = (left, right, 1) if isinstance(left, _VersionInfo) else (right, left, -1)
        if not isinstance(version, _VersionInfo) or not isinstance(other, tuple):
            return None
        order = version.compare(other)
        return None if order is None else op(order * sign, 0)
    try:
        return op(left, right)
    except TypeError:
        return None


def _static_value(expr: ast.expr, target: tuple[int, int], module: str) -> object:
    """The value `expr` has on the worker, when it is a literal or a known fact; else `_UNKNOWN`."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, (int, str)):
        return expr.value
    if isinstance(expr, ast.Tuple):
        items = [_static_value(e, target, module) for e in expr.elts]
        return tuple(items) if all(isinstance(i, (int, str)) for i in items) else _UNKNOWN
    if isinstance(expr, ast.Name) and expr.id == "__name__":
        return module or _UNKNOWN
    dotted = _dotted(expr)
    if dotted == "sys.version_info":
        return _VersionInfo(target)
    if dotted in ("sys.version_info.major", "sys.version_info.minor"):
        return target[0] if dotted.endswith("major") else target[1]
    if dotted == "sys.platform":
        return "linux"
    if dotted == "os.name":
        return "posix"
    if isinstance(expr, ast.Call) and _dotted(expr.func) == "platform.system" and not expr.args:
        return "Linux"
    if isinstance(expr, ast.Subscript) and _dotted(expr.value) == "sys.version_info":
        index = expr.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, int) and index.value in (0, 1):
            return target[index.value]
        if (
            isinstance(index, ast.Slice)
            and index.lower is None
            and index.step is None
            and isinstance(index.upper, ast.Constant)
            and isinstance(index.upper.value, int)
            and index.upper.value in (1, 2)
        ):
            return target[: index.upper.value]
    return _UNKNOWN


def _dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value)
        return None if base is None else f"{base}.{expr.attr}"
    return None
