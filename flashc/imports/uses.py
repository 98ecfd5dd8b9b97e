"""The imports one file makes, read with `ast`: each module it needs, when it runs and how it is guarded."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from collections.abc import Iterable
from typing import Literal, NamedTuple

from ..diagnostics import Span
from .guards import (
    IGNORE_WORD,
    catches_import_error,
    ignored_lines,
    is_type_checking,
    raises,
    spec_guards,
    spec_names,
    static_truth,
    suppresses_import_error,
)

__all__ = ["Guard", "ImportUse", "When", "scan_imports"]

When = Literal["load", "call"]
# except: a handler catches the ImportError; find_spec: it runs only when `find_spec` found a module;
# type_checking: only type checkers run it; static: a version or platform condition is false on the
# worker. Only `except` and `find_spec` imports run (and are followed).
Guard = Literal["except", "find_spec", "type_checking", "static"]


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
        scanner.spec_names = spec_names(tree)
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
        self.ignored_lines = ignored_lines(source) if IGNORE_WORD in source else frozenset()
        # Names assigned a `find_spec` test once in the file: what `if name:` guards, as `spec_guards`.
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
            suppresses = any(suppresses_import_error(item.context_expr) for item in node.items)
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
        first = next((h for h in handlers if catches_import_error(h.type)), None)
        guards = first is not None and not raises(first.body)
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
        if is_type_checking(test):
            return "type_checking", None
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and is_type_checking(test.operand):
            return None, "type_checking"
        truth = static_truth(test, self.target, self.module)
        if truth is not None:
            return ("static" if truth is False else None), ("static" if truth is True else None)
        body, orelse = spec_guards(test, self.spec_names)
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
