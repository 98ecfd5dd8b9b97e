"""Scan one module's source with libcst into a `ModuleSummary`, without importing or running it.

The scan is a pure function of the file's bytes. It records module-level bindings in source
order (so a name resolves to what it meant at the line that uses it), every decorated
definition with the expressions of its decorators, and decorated definitions that stand where
nothing can be deployed (nested, in a class, under `if __name__ == "__main__"`). Whether a
decorator is the SDK's `remote` is decided later, when modules are linked.

Hostile or extreme source must never crash or hang flashc. libcst's native parser segfaults on
expressions CPython refuses to nest (3,000 parentheses, 100,000 `[`), and its time grows with the
square of an operator chain (measured with libcst 1.9 on CPython 3.11: 1,000 `+` take 0.24 s,
5,000 take 18 s; ordinary code parses at about 200 KB/s). So before libcst sees a file:

- CPython must accept it (`compile(..., PyCF_ONLY_AST)`): that rejects nesting past 200 brackets,
  chains past about 3,000 operands, NUL bytes and every other syntax error, at their line;
- it is at most `_MAX_BYTES` (2 MB, about 10 s of libcst on ordinary code);
- no expression nests deeper than `_MAX_EXPR_DEPTH` (200 levels, a chain of 200 operands), and the
  sum over expression nodes of their depth, which grows like libcst's time, stays under
  `_MAX_EXPR_WEIGHT` (2,000,000: about 2 s of libcst beyond ordinary code; flashc's own source
  weighs about 200,000 per megabyte). These checks cost about a sixth of libcst's parse.

Such files are reported like syntax errors. libcst also refuses more than 3,000 implicitly joined
strings, which Python accepts: longer runs are folded into their first string before libcst parses.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from ..diagnostics import Span
from ..models import Method, Param
from . import ir

__all__ = ["scan_source"]


# IR expressions nest at most this deep (encoding, linking and evaluation recurse over them).
_MAX_DEPTH = 100
# libcst walks trees recursively; long chains (a prompt of 400 implicitly joined strings) need depth.
_RECURSION_LIMIT = 20_000
# Limits checked before libcst parses a file (see the module docstring for how they were measured).
_MAX_BYTES = 2_000_000
_MAX_EXPR_DEPTH = 200
_MAX_EXPR_WEIGHT = 2_000_000
# libcst's parser refuses more implicitly joined strings than this (Python takes any number).
_MAX_JOINED_STRINGS = 3_000


def scan_source(source: bytes) -> ir.ModuleSummary:
    """Summarise a module; a file that does not parse gives a summary with `parse_failure` set."""
    failure = _precheck(source)
    if failure is not None:
        return _failed(failure)
    overrides: dict[tuple[int, int], ir.Expr] = {}
    try:
        module = cst.parse_module(source)
    except (cst.ParserSyntaxError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        folded = _fold_joined_strings(source, overrides)
        if folded is None:
            return _failed(_parse_failure(source, exc))
        try:
            module = cst.parse_module(folded)
        except (cst.ParserSyntaxError, UnicodeDecodeError, SyntaxError, ValueError):
            return _failed(_parse_failure(source, exc))
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, _RECURSION_LIMIT))
    try:
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        positions = wrapper.resolve(PositionProvider)
        scanner = _ModuleScanner(positions)
        scanner.overrides = overrides
        scanner.statements(module.body)
        nested = _NestedFinder(scanner)
        # Only statements holding an indented decorator or a `f(...)(x)` can hold what the finder
        # looks for; skipping the others saves a full walk of most files.
        hint_lines = _lines_matching(source, _NESTED_HINTS)
        for stmt in module.body:
            r = positions[stmt]
            if any(r.start.line <= line <= r.end.line for line in hint_lines):
                stmt.visit(nested)
    except RecursionError:
        return _failed(ir.ParseFailure("this file nests expressions too deeply for flashc to analyze", 1, 1))
    finally:
        sys.setrecursionlimit(previous)
    return ir.ModuleSummary(
        bindings=tuple(scanner.bindings),
        star_imports=tuple(scanner.star_imports),
        defs=tuple(scanner.defs),
        misplaced=tuple(nested.misplaced),
        applications=tuple(nested.applications),
        mutations=tuple(scanner.mutations),
    )


_NESTED_HINTS = re.compile(rb"^[ \t]+@|\)\s*\(", re.MULTILINE)


def _lines_matching(source: bytes, pattern: re.Pattern[bytes]) -> list[int]:
    """1-based numbers of the lines where `pattern` matches (its start)."""
    lines = []
    line, last = 1, 0
    for match in pattern.finditer(source):
        line += source.count(b"\n", last, match.start())
        last = match.start()
        lines.append(line)
    return lines


def _precheck(source: bytes) -> ir.ParseFailure | None:
    """Why libcst must not parse `source` (it could crash or take minutes), or None."""
    if len(source) > _MAX_BYTES:
        return ir.ParseFailure(
            f"this file is {len(source):,} bytes; flashc analyzes files of at most {_MAX_BYTES:,} bytes", 1, 1
        )
    nul = source.find(b"\0")
    if nul >= 0:
        line = source.count(b"\n", 0, nul) + 1
        return ir.ParseFailure("source code cannot contain null bytes", line, nul - source.rfind(b"\n", 0, nul))
    try:
        tree = compile(_decode(source), "<source>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as err:
        return ir.ParseFailure(err.msg, err.lineno or 1, err.offset or 1)
    except (ValueError, UnicodeDecodeError) as err:
        return ir.ParseFailure(str(err), 1, 1)
    except (RecursionError, MemoryError):
        return ir.ParseFailure("this file nests expressions too deeply for flashc to analyze", 1, 1)
    return _expression_limits(tree)


def _expression_limits(tree: ast.AST) -> ir.ParseFailure | None:
    """The first expression past `_MAX_EXPR_DEPTH` or `_MAX_EXPR_WEIGHT`, as a failure at its line."""
    weight = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            depth += 1
            weight += depth
            if depth > _MAX_EXPR_DEPTH or weight > _MAX_EXPR_WEIGHT:
                what = (
                    f"an expression nested more than {_MAX_EXPR_DEPTH} deep (an operator chain counts each operand)"
                    if depth > _MAX_EXPR_DEPTH
                    else "expressions too long and deeply nested in total"
                )
                return ir.ParseFailure(f"{what}: flashc cannot analyze this file", node.lineno, node.col_offset + 1)
        else:
            depth = 0
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    return None


def _fold_joined_strings(source: bytes, overrides: dict[tuple[int, int], ir.Expr]) -> str | None:
    """`source` with each run of more than `_MAX_JOINED_STRINGS` joined strings blanked but its first.

    The run's value (or an Opaque) goes to `overrides`, keyed by the first string's line and
    0-based column, so positions elsewhere in the file do not move. None when there is no such run.
    """
    text = _decode(source)
    if isinstance(text, bytes):
        return None
    lines = text.splitlines(keepends=True)
    runs: list[list[tokenize.TokenInfo]] = []
    run: list[tokenize.TokenInfo] = []
    fstring_parts = {
        getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, n)
    }
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NL, tokenize.COMMENT):
                continue
            if tok.type == tokenize.STRING or tok.type in fstring_parts:
                run.append(tok)
                continue
            if len(run) > _MAX_JOINED_STRINGS:
                runs.append(run)
            run = []
    except (tokenize.TokenError, SyntaxError):
        return None
    if not runs:
        return None
    chars = [list(line) for line in lines]
    for run in runs:
        first, last = run[0], run[-1]
        span = Span(first.start[0], first.start[1] + 1, last.end[0], last.end[1] + 1)
        try:
            values = [ast.literal_eval(tok.string) for tok in run]
        except (ValueError, SyntaxError):
            values = []
        if values and all(isinstance(v, str) for v in values):
            overrides[first.start] = ir.Const("".join(values), span)
        else:
            overrides[first.start] = ir.Opaque("implicitly joined strings that are not all plain text", span)
        for tok in run[1:]:
            for row in range(tok.start[0], tok.end[0] + 1):
                line = chars[row - 1]
                start = tok.start[1] if row == tok.start[0] else 0
                end = tok.end[1] if row == tok.end[0] else len(line)
                for col in range(start, end):
                    if line[col] not in "\r\n":
                        line[col] = " "
    return "".join("".join(line) for line in chars)


def _failed(failure: ir.ParseFailure) -> ir.ModuleSummary:
    return ir.ModuleSummary((), (), (), (), (), (), failure)


def _decode(source: bytes) -> str | bytes:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        return source.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return source


def _parse_failure(source: bytes, exc: Exception) -> ir.ParseFailure:
    """Where and why a file does not parse, in CPython's words when CPython agrees it is broken."""
    try:
        # Decoded first, so that CPython reports columns in characters, not bytes.
        ast.parse(_decode(source))
    except SyntaxError as err:
        return ir.ParseFailure(err.msg, err.lineno or 1, err.offset or 1)
    except ValueError as err:  # null bytes
        return ir.ParseFailure(str(err), 1, 1)
    if isinstance(exc, cst.ParserSyntaxError):
        return ir.ParseFailure(exc.message, exc.editor_line, exc.editor_column)
    return ir.ParseFailure(str(exc), 1, 1)


# List, dict and set methods that change the object they are called on.
_MUTATING_METHODS = frozenset(
    [
        "append",
        "extend",
        "insert",
        "remove",
        "pop",
        "clear",
        "update",
        "setdefault",
        "popitem",
        "add",
        "discard",
        "sort",
        "reverse",
        "__setitem__",
    ]
)

_BINOPS = {
    cst.Add: "+",
    cst.Subtract: "-",
    cst.Multiply: "*",
    cst.Divide: "/",
    cst.FloorDivide: "//",
    cst.Modulo: "%",
    cst.Power: "**",
}
_UNARYOPS = {cst.Minus: "-", cst.Plus: "+", cst.Not: "not", cst.BitInvert: "~"}
_OPAQUE = {
    cst.Lambda: "a lambda",
    cst.IfExp: "a conditional expression",
    cst.ListComp: "a list comprehension",
    cst.SetComp: "a set comprehension",
    cst.DictComp: "a dict comprehension",
    cst.GeneratorExp: "a generator expression",
    cst.Await: "an await expression",
    cst.NamedExpr: "an assignment expression",
    cst.Comparison: "a comparison",
    cst.BooleanOperation: "a boolean expression",
    cst.Set: "a set",
    cst.Yield: "a yield expression",
    cst.Ellipsis: "an ellipsis",
    cst.Imaginary: "an imaginary number",
}


class _Converter:
    """Turns libcst expressions into static-expression IR with spans."""

    def __init__(self, positions: object) -> None:
        self._positions = positions
        self._depth = 0
        # What runs of joined strings too long for libcst stand for (see _fold_joined_strings).
        self.overrides: dict[tuple[int, int], ir.Expr] = {}

    def span(self, node: cst.CSTNode) -> Span:
        r: CodeRange = self._positions[node]  # type: ignore[index]
        return Span(r.start.line, r.start.column + 1, r.end.line, r.end.column + 1)

    def expr(self, node: cst.BaseExpression) -> ir.Expr:
        """The IR of an expression; deeper than _MAX_DEPTH it is opaque, so later stages never recurse far."""
        if self._depth >= _MAX_DEPTH:
            return ir.Opaque("an expression nested too deeply for flashc", self.span(node))
        self._depth += 1
        try:
            return self._expr(node)
        finally:
            self._depth -= 1

    def _expr(self, node: cst.BaseExpression) -> ir.Expr:
        span = self.span(node)
        if self.overrides and isinstance(node, (cst.SimpleString, cst.FormattedString)):
            folded = self.overrides.get((span.line, span.col - 1))
            if folded is not None:
                return folded
        if isinstance(node, cst.SimpleString):
            value = node.evaluated_value
            if isinstance(value, bytes):
                return ir.Opaque("a bytes literal", span)
            return ir.Const(value, span)
        if isinstance(node, (cst.Integer, cst.Float)):
            return ir.Const(node.evaluated_value, span)
        if isinstance(node, cst.Name):
            if node.value in ("True", "False", "None"):
                return ir.Const({"True": True, "False": False, "None": None}[node.value], span)
            return ir.Name(node.value, span)
        if isinstance(node, cst.Attribute):
            return ir.Attr(self.expr(node.value), node.attr.value, span)
        if isinstance(node, (cst.List, cst.Tuple)):
            items: list[ir.Expr] = []
            for el in node.elements:
                if isinstance(el, cst.StarredElement):
                    items.append(ir.Opaque("unpacking with *", self.span(el)))
                else:
                    items.append(self.expr(el.value))
            return ir.Seq("list" if isinstance(node, cst.List) else "tuple", tuple(items), span)
        if isinstance(node, cst.Dict):
            keys: list[ir.Expr | None] = []
            values = []
            for entry in node.elements:
                if isinstance(entry, cst.DictElement):
                    keys.append(self.expr(entry.key))
                else:
                    keys.append(None)
                values.append(self.expr(entry.value))
            return ir.DictExpr(tuple(keys), tuple(values), span)
        if isinstance(node, cst.Call):
            return self.call(node)
        if isinstance(node, cst.BinaryOperation):
            op = _BINOPS.get(type(node.operator))
            if op is None:
                return ir.Opaque("a bitwise operation", span)
            return ir.BinOp(op, self.expr(node.left), self.expr(node.right), span)
        if isinstance(node, cst.UnaryOperation):
            return ir.UnaryOp(_UNARYOPS[type(node.operator)], self.expr(node.expression), span)
        if isinstance(node, cst.ConcatenatedString):
            # "a" "b" is one constant: fold it here, so a long implicitly joined prompt stays flat.
            parts: list[cst.BaseExpression] = []
            rest: cst.BaseExpression = node
            while isinstance(rest, cst.ConcatenatedString):
                parts.append(rest.left)
                rest = rest.right
            parts.append(rest)
            if all(isinstance(p, cst.SimpleString) and isinstance(p.evaluated_value, str) for p in parts):
                return ir.Const("".join(str(p.evaluated_value) for p in parts), span)  # type: ignore[attr-defined]
            return ir.BinOp("+", self.expr(node.left), self.expr(node.right), span)
        if isinstance(node, cst.FormattedString):
            return self.fstring(node)
        if isinstance(node, cst.Subscript):
            if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
                return ir.Subscript(self.expr(node.value), self.expr(node.slice[0].slice.value), span)
            return ir.Opaque("a slice", span)
        for kind, what in _OPAQUE.items():
            if isinstance(node, kind):
                return ir.Opaque(what, span)
        return ir.Opaque(f"a {type(node).__name__} expression", span)

    def call(self, node: cst.Call) -> ir.Call:
        args: list[ir.Expr] = []
        keywords: list[ir.Keyword] = []
        for arg in node.args:
            if arg.keyword is not None:
                keywords.append(ir.Keyword(arg.keyword.value, self.expr(arg.value), self.span(arg)))
            elif arg.star == "**":
                keywords.append(ir.Keyword(None, self.expr(arg.value), self.span(arg)))
            elif arg.star == "*":
                args.append(ir.Opaque("unpacking with *", self.span(arg)))
            else:
                args.append(self.expr(arg.value))
        return ir.Call(self.expr(node.func), tuple(args), tuple(keywords), self.span(node))

    def fstring(self, node: cst.FormattedString) -> ir.Expr:
        parts: list[str | ir.Expr] = []
        for part in node.parts:
            if isinstance(part, cst.FormattedStringText):
                parts.append(part.value.replace("{{", "{").replace("}}", "}"))
            elif not isinstance(part, cst.FormattedStringExpression):
                return ir.Opaque("an unusual f-string", self.span(part))
            elif part.conversion is not None or part.format_spec is not None:
                return ir.Opaque("an f-string with a conversion or format spec", self.span(part))
            else:
                parts.append(self.expr(part.expression))
        return ir.FString(tuple(parts), self.span(node))


class _ModuleScanner(_Converter):
    """Walks module-level statements in order, recording bindings and decorated definitions."""

    def __init__(self, positions: object) -> None:
        super().__init__(positions)
        self.bindings: list[ir.Binding] = []
        self.star_imports: list[ir.StarImport] = []
        self.defs: list[ir.DecoratedDef] = []
        self.mutations: list[ir.Mutation] = []
        self.index = 0
        self.conditional = 0

    def statements(self, body: Sequence[cst.BaseStatement | cst.BaseSmallStatement]) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt: cst.CSTNode) -> None:
        self.index += 1
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.small(small)
        elif isinstance(stmt, cst.FunctionDef):
            self.bind_def(stmt.name, "function")
            if stmt.decorators:
                self.defs.append(self.function_def(stmt))
        elif isinstance(stmt, cst.ClassDef):
            self.bind_def(stmt.name, "class")
            if stmt.decorators:
                self.defs.append(self.class_def(stmt))
        elif isinstance(stmt, cst.If):
            if _is_main_guard(stmt.test):
                # The body runs only as a script, never on import (misplaced defs are found
                # separately); an `else:` runs on every import.
                if isinstance(stmt.orelse, cst.Else):
                    self.block(stmt.orelse.body)
                return
            with self.branch():
                self.block(stmt.body)
                if isinstance(stmt.orelse, cst.If):
                    self.statement(stmt.orelse)
                elif stmt.orelse is not None:
                    self.block(stmt.orelse.body)
        elif isinstance(stmt, (cst.Try, cst.TryStar)):
            before = {b.name for b in self.bindings}
            self.block(stmt.body)
            bound_by_body = {b.name for b in self.bindings} - before
            for handler in stmt.handlers:
                # The fallback of `try: import x / except ImportError:` runs only when the body fails:
                # the body's bindings win.
                start = len(self.bindings)
                with self.branch():
                    self.block(handler.body)
                self.bindings[start:] = [b for b in self.bindings[start:] if b.name not in bound_by_body]
            if stmt.orelse is not None:
                self.block(stmt.orelse.body)
            if stmt.finalbody is not None:
                self.block(stmt.finalbody.body)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                if item.asname is not None:
                    self.bind_targets(item.asname.name)
            self.block(stmt.body)
        elif isinstance(stmt, (cst.For, cst.While)):
            with self.branch():
                if isinstance(stmt, cst.For):
                    self.bind_targets(stmt.target)
                self.block(stmt.body)
                if stmt.orelse is not None:
                    self.block(stmt.orelse.body)
        elif isinstance(stmt, cst.Match):
            with self.branch():
                for case in stmt.cases:
                    for name in _pattern_names(case.pattern):
                        self.bindings.append(ir.DefBinding(name.value, self.index, self.span(name), "other"))
                    self.block(case.body)

    @contextlib.contextmanager
    def branch(self) -> Iterator[None]:
        """Bindings made inside may or may not happen when the module runs."""
        self.conditional += 1
        try:
            yield
        finally:
            self.conditional -= 1

    def block(self, suite: cst.BaseSuite) -> None:
        if isinstance(suite, cst.IndentedBlock):
            self.statements(suite.body)
        elif isinstance(suite, cst.SimpleStatementSuite):
            for small in suite.body:
                self.small(small)

    def small(self, node: cst.BaseSmallStatement) -> None:
        if isinstance(node, cst.Import):
            self.bindings.extend(_import_bindings(node, self.index, self.span(node)))
        elif isinstance(node, cst.ImportFrom):
            bindings, star = _import_from_bindings(node, self.index, self.span(node))
            self.bindings.extend(bindings)
            if star is not None:
                self.star_imports.append(star)
        elif isinstance(node, cst.Assign):
            value = self.expr(node.value)
            for target in node.targets:
                self.assign(target.target, node.value, value)
        elif isinstance(node, cst.AnnAssign):
            if node.value is not None:
                self.assign(node.target, node.value, self.expr(node.value))
        elif isinstance(node, cst.AugAssign):
            if isinstance(node.target, cst.Name) and type(node.operator) is cst.AddAssign:
                span = self.span(node)
                value = ir.BinOp("+", ir.Name(node.target.value, span), self.expr(node.value), span)
                self.bindings.append(ir.AssignBinding(node.target.value, self.index, span, value, self.conditional > 0))
            else:
                self.bind_targets(node.target)
        elif isinstance(node, cst.Del):
            for name in _target_names(node.target):
                self.bindings.append(ir.DefBinding(name.value, self.index, self.span(name), "deleted"))
            for changed in _changed_objects(node.target):
                self.mutations.append(ir.Mutation(changed.value, self.index, self.span(node)))
        elif isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            func = node.value.func
            if (
                isinstance(func, cst.Attribute)
                and isinstance(func.value, cst.Name)
                and func.attr.value in _MUTATING_METHODS
            ):
                self.mutations.append(ir.Mutation(func.value.value, self.index, self.span(node)))
        if isinstance(node, cst.Expr):
            for walrus in _walrus_targets(node.value):
                self.bindings.append(ir.DefBinding(walrus.value, self.index, self.span(walrus), "other"))

    def assign(self, target: cst.BaseExpression, value_node: cst.BaseExpression, value: ir.Expr) -> None:
        if isinstance(target, cst.Name):
            self.bindings.append(
                ir.AssignBinding(target.value, self.index, self.span(target), value, self.conditional > 0)
            )
        elif (
            isinstance(target, (cst.Tuple, cst.List))
            and isinstance(value_node, (cst.Tuple, cst.List))
            and isinstance(value, ir.Seq)
            and len(target.elements) == len(value.items)
            and not any(isinstance(e, cst.StarredElement) for e in target.elements)
        ):
            for el, item_node, item in zip(target.elements, value_node.elements, value.items, strict=True):
                self.assign(el.value, item_node.value, item)
        else:
            self.bind_targets(target)

    def bind_targets(self, target: cst.CSTNode) -> None:
        """Names a statement binds to non-static values; `X[k] = ...` and `X.a = ...` change X in place."""
        for name in _target_names(target):
            self.bindings.append(ir.DefBinding(name.value, self.index, self.span(name), "other"))
        for changed in _changed_objects(target):
            self.mutations.append(ir.Mutation(changed.value, self.index, self.span(target)))

    def bind_def(self, name: cst.Name, kind: Literal["function", "class"]) -> None:
        self.bindings.append(ir.DefBinding(name.value, self.index, self.span(name), kind))

    def function_def(self, node: cst.FunctionDef) -> ir.DecoratedDef:
        body = _BodyFacts(self, node)
        return ir.DecoratedDef(
            name=node.name.value,
            kind="function",
            index=self.index,
            span=self.span(node.name),
            decorators=tuple(self.expr(d.decorator) for d in node.decorators),
            is_async=node.asynchronous is not None,
            is_generator=_is_generator(node),
            params=_params(node.params),
            methods=(),
            init_params=None,
            has_bases=False,
            calls=tuple(body.calls),
            scope=body.scope(),
        )

    def class_def(self, node: cst.ClassDef) -> ir.DecoratedDef:
        methods = []
        init_params = None
        for stmt in _suite_statements(node.body):
            if not isinstance(stmt, cst.FunctionDef):
                continue
            name = stmt.name.value
            kind = _method_kind(stmt)
            params = _params(stmt.params)
            if kind != "static":
                params = params[1:]  # self, or cls
            if name == "__init__":
                init_params = params
            elif not name.startswith("_") and kind != "property":
                methods.append(Method(name, stmt.asynchronous is not None, _is_generator(stmt), params))
        if init_params is None and any(_decorator_name(d.decorator) == "dataclass" for d in node.decorators):
            init_params = _dataclass_init(node)
        has_bases = any(
            arg.keyword is None and not (isinstance(arg.value, cst.Name) and arg.value.value == "object")
            for arg in node.bases
        )
        body = _BodyFacts(self, node)
        return ir.DecoratedDef(
            name=node.name.value,
            kind="class",
            index=self.index,
            span=self.span(node.name),
            decorators=tuple(self.expr(d.decorator) for d in node.decorators),
            is_async=False,
            is_generator=False,
            params=(),
            methods=tuple(methods),
            init_params=init_params,
            has_bases=has_bases,
            calls=tuple(body.calls),
            scope=body.scope(),
        )


class _BodyFacts(cst.CSTVisitor):
    """Calls and local bindings of a function or class body (nested scopes folded in)."""

    def __init__(self, converter: _Converter, node: cst.FunctionDef | cst.ClassDef) -> None:
        self.converter = converter
        self.calls: list[ir.CallSite] = []
        self.imports: list[ir.ImportBinding] = []
        self.locals: set[str] = set()
        self.globals: set[str] = set()
        # A class body's own names (its methods) are not visible inside its methods.
        self.class_level = (
            {id(s) for s in _suite_statements(node.body) if isinstance(s, cst.FunctionDef)}
            if isinstance(node, cst.ClassDef)
            else set()
        )
        if isinstance(node, cst.FunctionDef):
            self.locals.update(p.name for p in _params(node.params))
        node.body.visit(self)

    def scope(self) -> ir.Scope:
        imported = {b.name for b in self.imports}
        names = self.locals - self.globals - imported
        return ir.Scope(tuple(self.imports), tuple(sorted(names)))

    def visit_Call(self, node: cst.Call) -> None:
        if _is_dotted(node.func):
            self.calls.append(ir.CallSite(self.converter.expr(node.func), self.converter.span(node)))
        # A function handed to another one is called by it: `run_in_executor(None, f, x)`, `partial(f)`.
        for arg in node.args:
            if arg.keyword is None and not arg.star and _is_dotted(arg.value):
                self.calls.append(ir.CallSite(self.converter.expr(arg.value), self.converter.span(arg.value)))

    def visit_Import(self, node: cst.Import) -> None:
        self.imports.extend(_import_bindings(node, -1, self.converter.span(node)))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        bindings, _ = _import_from_bindings(node, -1, self.converter.span(node))
        self.imports.extend(bindings)

    def visit_Global(self, node: cst.Global) -> None:
        self.globals.update(n.name.value for n in node.names)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if id(node) not in self.class_level:
            self.locals.add(node.name.value)
        self.locals.update(p.name for p in _params(node.params))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.locals.add(node.name.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self.locals.update(n.value for n in _target_names(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.locals.update(n.value for n in _target_names(node.target))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.locals.update(n.value for n in _target_names(node.target))

    def visit_For(self, node: cst.For) -> None:
        self.locals.update(n.value for n in _target_names(node.target))

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.locals.update(n.value for n in _target_names(node.target))

    def visit_AsName(self, node: cst.AsName) -> None:
        # `import x as y` is recorded as an import; `with ... as y` and `except E as y` bind locals.
        if isinstance(node.name, cst.Name):
            self.locals.add(node.name.value)
        else:
            self.locals.update(n.value for n in _target_names(node.name))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.locals.update(n.value for n in _target_names(node.target))


class _NestedFinder(cst.CSTVisitor):
    """Finds decorated definitions that cannot be deployed, and decorator factories applied by hand."""

    def __init__(self, converter: _Converter) -> None:
        self.converter = converter
        self.misplaced: list[ir.MisplacedDef] = []
        self.applications: list[ir.Application] = []
        self.stack: list[cst.FunctionDef | cst.ClassDef] = []
        self.main_depth = 0

    def visit_If(self, node: cst.If) -> bool:
        if not _is_main_guard(node.test):
            return True
        # Only the body is script-only; an `else:` runs on import like any module code.
        self.main_depth += 1
        node.body.visit(self)
        self.main_depth -= 1
        if node.orelse is not None:
            node.orelse.visit(self)
        return False

    def _enter(self, node: cst.FunctionDef | cst.ClassDef) -> None:
        if node.decorators and (self.stack or self.main_depth):
            if self.stack:
                where: Literal["nested", "method", "main"] = (
                    "method" if isinstance(self.stack[-1], cst.ClassDef) else "nested"
                )
            else:
                where = "main"
            qualname = ".".join([*(n.name.value for n in self.stack), node.name.value])
            self.misplaced.append(
                ir.MisplacedDef(
                    name=node.name.value,
                    qualname=qualname,
                    where=where,
                    span=self.converter.span(node.name),
                    decorators=tuple(self.converter.expr(d.decorator) for d in node.decorators),
                    scope=self._scope(),
                )
            )
        self.stack.append(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._enter(node)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.stack.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._enter(node)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.stack.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Call) and _is_dotted(node.func.func) and len(node.args) == 1:
            arg_kind: Literal["lambda", "other"] = "lambda" if isinstance(node.args[0].value, cst.Lambda) else "other"
            self.applications.append(
                ir.Application(self.converter.expr(node.func.func), arg_kind, self.converter.span(node), self._scope())
            )

    def _scope(self) -> ir.Scope:
        functions = [n for n in self.stack if isinstance(n, cst.FunctionDef)]
        if not functions:
            return ir.Scope((), ())
        return _BodyFacts(self.converter, functions[-1]).scope()


def _is_dotted(node: cst.BaseExpression) -> bool:
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name)


def _is_main_guard(test: cst.BaseExpression) -> bool:
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    target = test.comparisons[0]
    if not isinstance(target.operator, cst.Equal):
        return False
    sides = {_plain(test.left), _plain(target.comparator)}
    return sides == {"name:__name__", "str:__main__"}


def _plain(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return f"name:{node.value}"
    if isinstance(node, cst.SimpleString):
        return f"str:{node.evaluated_value!s}"
    return None


def _dotted_name(node: cst.BaseExpression | None) -> str:
    if node is None:
        return ""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr.value}"
    raise ValueError("not a dotted name")


def _import_bindings(node: cst.Import, index: int, span: Span) -> list[ir.ImportBinding]:
    out = []
    for alias in node.names:
        module = _dotted_name(alias.name)
        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
            out.append(ir.ImportBinding(alias.asname.name.value, index, span, module, None, 0))
        else:
            top = module.split(".")[0]
            out.append(ir.ImportBinding(top, index, span, top, None, 0))
    return out


def _import_from_bindings(
    node: cst.ImportFrom, index: int, span: Span
) -> tuple[list[ir.ImportBinding], ir.StarImport | None]:
    module = _dotted_name(node.module)
    level = len(node.relative)
    if isinstance(node.names, cst.ImportStar):
        return [], ir.StarImport(index, module, level, span)
    out = []
    for alias in node.names:
        attr = _dotted_name(alias.name)
        name = attr
        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
            name = alias.asname.name.value
        out.append(ir.ImportBinding(name, index, span, module, attr, level))
    return out, None


def _changed_objects(node: cst.CSTNode) -> Iterable[cst.Name]:
    """The names whose objects an assignment target changes in place: `X[k]`, `X.a`, `X[k].a`."""
    if isinstance(node, (cst.Subscript, cst.Attribute)):
        base: cst.BaseExpression = node.value
        while isinstance(base, (cst.Subscript, cst.Attribute)):
            base = base.value
        if isinstance(base, cst.Name):
            yield base
    elif isinstance(node, (cst.Tuple, cst.List)):
        for el in node.elements:
            yield from _changed_objects(el.value)
    elif isinstance(node, cst.StarredElement):
        yield from _changed_objects(node.value)


class _NameCollector(cst.CSTVisitor):
    """Names bound by `:=` (outside lambdas) and by `case` patterns, in the subtree it visits."""

    def __init__(self) -> None:
        self.names: list[cst.Name] = []

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        if isinstance(node.target, cst.Name):
            self.names.append(node.target)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_MatchAs(self, node: cst.MatchAs) -> None:
        if node.name is not None:
            self.names.append(node.name)

    def visit_MatchStar(self, node: cst.MatchStar) -> None:
        if node.name is not None:
            self.names.append(node.name)

    def visit_MatchMapping(self, node: cst.MatchMapping) -> None:
        if node.rest is not None:
            self.names.append(node.rest)


def _walrus_targets(node: cst.CSTNode) -> list[cst.Name]:
    """Names bound by `:=` anywhere in a module-level expression statement."""
    collector = _NameCollector()
    node.visit(collector)
    return collector.names


def _pattern_names(pattern: cst.MatchPattern) -> list[cst.Name]:
    """Names a `case` pattern captures."""
    collector = _NameCollector()
    pattern.visit(collector)
    return collector.names


def _target_names(node: cst.CSTNode) -> Iterable[cst.Name]:
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, (cst.Tuple, cst.List)):
        for el in node.elements:
            yield from _target_names(el.value)
    elif isinstance(node, cst.StarredElement):
        yield from _target_names(node.value)


def _params(params: cst.Parameters) -> tuple[Param, ...]:
    out = [Param(p.name.value, "positional_only", p.default is not None) for p in params.posonly_params]
    out += [Param(p.name.value, "positional_or_keyword", p.default is not None) for p in params.params]
    if isinstance(params.star_arg, cst.Param):
        out.append(Param(params.star_arg.name.value, "var_positional", False))
    out += [Param(p.name.value, "keyword_only", p.default is not None) for p in params.kwonly_params]
    if params.star_kwarg is not None:
        out.append(Param(params.star_kwarg.name.value, "var_keyword", False))
    return tuple(out)


def _suite_statements(suite: cst.BaseSuite) -> Sequence[cst.CSTNode]:
    if isinstance(suite, cst.IndentedBlock):
        return suite.body
    return ()


def _decorator_name(expr: cst.BaseExpression) -> str | None:
    """The last name of a decorator: `dataclass` for `@dataclasses.dataclass(frozen=True)`."""
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Name):
        return expr.value
    return None


def _method_kind(node: cst.FunctionDef) -> Literal["method", "static", "class", "property"]:
    for d in node.decorators:
        name = _decorator_name(d.decorator)
        if name == "staticmethod":
            return "static"
        if name == "classmethod":
            return "class"
        if name is not None and (name.endswith("property") or name in ("setter", "getter", "deleter")):
            return "property"
    return "method"


def _dataclass_init(node: cst.ClassDef) -> tuple[Param, ...]:
    """The parameters of the `__init__` that @dataclass writes: annotated fields, in order."""
    params = []
    for stmt in _suite_statements(node.body):
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                annotation = small.annotation.annotation
                if isinstance(annotation, cst.Subscript):
                    annotation = annotation.value
                if _decorator_name(annotation) == "ClassVar":
                    continue
                has_default = small.value is not None and not (
                    isinstance(small.value, cst.Call)
                    and _decorator_name(small.value) == "field"
                    and not any(
                        a.keyword and a.keyword.value in ("default", "default_factory") for a in small.value.args
                    )
                )
                params.append(Param(small.target.value, "positional_or_keyword", has_default))
    return tuple(params)


class _YieldFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Yield(self, node: cst.Yield) -> None:
        self.found = True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a nested function's yield makes that function a generator, not this one

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def _is_generator(node: cst.FunctionDef) -> bool:
    finder = _YieldFinder()
    node.body.visit(finder)
    return finder.found
