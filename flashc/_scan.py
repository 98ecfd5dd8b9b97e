"""Scan one module's source with libcst into a `ModuleSummary`, without importing or running it.

The scan is a pure function of the file's bytes. It records module-level bindings in source
order (so a name resolves to what it meant at the line that uses it), every decorated
definition with the expressions of its decorators, and decorated definitions that stand where
nothing can be deployed (nested, in a class, under `if __name__ == "__main__"`). Whether a
decorator is the SDK's `remote` is decided later, when modules are linked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Literal

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from . import _ir as ir
from .diagnostics import Span
from .models import Method, Param

__all__ = ["scan_source"]


def scan_source(source: bytes) -> ir.ModuleSummary:
    """Summarise a module; a file that does not parse gives a summary with `parse_failure` set."""
    try:
        module = cst.parse_module(source)
    except (cst.ParserSyntaxError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        return ir.ModuleSummary((), (), (), (), (), _parse_failure(source, exc))
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    scanner = _ModuleScanner(positions)
    scanner.statements(module.body)
    nested = _NestedFinder(scanner)
    module.visit(nested)
    return ir.ModuleSummary(
        bindings=tuple(scanner.bindings),
        star_imports=tuple(scanner.star_imports),
        defs=tuple(scanner.defs),
        misplaced=tuple(nested.misplaced),
        applications=tuple(nested.applications),
    )


def _parse_failure(source: bytes, exc: Exception) -> ir.ParseFailure:
    """Where and why a file does not parse, in CPython's words when CPython agrees it is broken."""
    try:
        ast.parse(source)
    except SyntaxError as err:
        return ir.ParseFailure(err.msg, err.lineno or 1, err.offset or 1)
    except ValueError as err:  # null bytes
        return ir.ParseFailure(str(err), 1, 1)
    if isinstance(exc, cst.ParserSyntaxError):
        return ir.ParseFailure(exc.message, exc.editor_line, exc.editor_column)
    return ir.ParseFailure(str(exc), 1, 1)


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

    def span(self, node: cst.CSTNode) -> Span:
        r: CodeRange = self._positions[node]  # type: ignore[index]
        return Span(r.start.line, r.start.column + 1, r.end.line, r.end.column + 1)

    def expr(self, node: cst.BaseExpression) -> ir.Expr:
        span = self.span(node)
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
        self.index = 0

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
                return  # runs only as a script, never on import; misplaced defs are found separately
            self.block(stmt.body)
            if stmt.orelse is not None:
                if isinstance(stmt.orelse, cst.If):
                    self.statement(stmt.orelse)
                else:
                    self.block(stmt.orelse.body)
        elif isinstance(stmt, cst.Try):
            before = {b.name for b in self.bindings}
            self.block(stmt.body)
            bound_by_body = {b.name for b in self.bindings} - before
            for handler in stmt.handlers:
                # The fallback of `try: import x / except ImportError:` runs only when the body fails:
                # the body's bindings win.
                start = len(self.bindings)
                self.block(handler.body)
                self.bindings[start:] = [b for b in self.bindings[start:] if b.name not in bound_by_body]
            if stmt.orelse is not None:
                self.block(stmt.orelse.body)
            if stmt.finalbody is not None:
                self.block(stmt.finalbody.body)
        elif isinstance(stmt, (cst.For, cst.While, cst.With)):
            if isinstance(stmt, cst.For):
                self.bind_targets(stmt.target)
            if isinstance(stmt, cst.With):
                for item in stmt.items:
                    if item.asname is not None:
                        self.bind_targets(item.asname.name)
            self.block(stmt.body)
            orelse = getattr(stmt, "orelse", None)
            if orelse is not None:
                self.block(orelse.body)

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
                self.bindings.append(ir.AssignBinding(node.target.value, self.index, span, value))
            else:
                self.bind_targets(node.target)

    def assign(self, target: cst.BaseExpression, value_node: cst.BaseExpression, value: ir.Expr) -> None:
        if isinstance(target, cst.Name):
            self.bindings.append(ir.AssignBinding(target.value, self.index, self.span(target), value))
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
        for name in _target_names(target):
            self.bindings.append(ir.DefBinding(name.value, self.index, self.span(name), "other"))

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
            if name == "__init__":
                init_params = _params(stmt.params)[1:]
            elif not name.startswith("_") and not _is_property(stmt):
                methods.append(
                    Method(name, stmt.asynchronous is not None, _is_generator(stmt), _params(stmt.params)[1:])
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

    def visit_Import(self, node: cst.Import) -> None:
        self.imports.extend(_import_bindings(node, -1, self.converter.span(node)))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        bindings, _ = _import_from_bindings(node, -1, self.converter.span(node))
        self.imports.extend(bindings)

    def visit_Global(self, node: cst.Global) -> None:
        self.globals.update(n.name.value for n in node.names)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
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

    def visit_If(self, node: cst.If) -> None:
        if _is_main_guard(node.test):
            self.main_depth += 1

    def leave_If(self, node: cst.If) -> None:
        if _is_main_guard(node.test):
            self.main_depth -= 1

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


def _is_property(node: cst.FunctionDef) -> bool:
    for d in node.decorators:
        expr = d.decorator
        if isinstance(expr, cst.Name) and expr.value in ("property", "staticmethod", "classmethod"):
            return expr.value == "property"
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("setter", "getter", "deleter"):
            return True
    return False


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
