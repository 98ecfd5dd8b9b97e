"""Evaluate resource configs and decorator options statically, from their source expressions.

Values are computed only from literals, constants, SDK enum members and SDK config
constructors, following names through the Linker; anything that needs the program to run is
reported at its exact span, naming the argument it was meant for and what to write instead.
Config constructors are checked against the runtime's own schema (`validate_params`).

A value computed from another, and that from another (`a2 = a1 + "x"`, across modules too),
is evaluated however long the chain: past a few dozen levels the rest is computed deepest first
on a stack of its own (`_compute_first`), never recursing per link.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from typing import Any

import flashc_runtime
from flashc_runtime.endpoint import EndpointParams, endpoint_problems
from flashc_runtime.enums import (
    CpuInstanceType,
    CudaVersion,
    DataCenter,
    GpuGroup,
    GpuType,
    ServerlessScalerType,
    ServerlessType,
)
from flashc_runtime.resources import RESOURCE_CLASSES, NetworkVolume, PodTemplate
from flashc_runtime.schema import ParamProblem, SchemaModel, suggest, validate_params

from ..diagnostics import Note, Span
from ..envvars import looks_secret
from . import ir
from .link import SDK_EXPORTS, SDK_ROOTS, DefRef, ExternalRef, Linker, ModuleRef, SdkRef, Undefined, ValueRef, dotted

__all__ = ["INVALID", "Evaluator", "Origin", "Where", "sdk_import_line", "unimported_sdk_name"]

_ENUMS: dict[str, type[enum.Enum]] = {
    c.__name__: c
    for c in (GpuGroup, GpuType, CpuInstanceType, DataCenter, CudaVersion, ServerlessScalerType, ServerlessType)
}
_CONFIG_CLASSES: dict[str, type[SchemaModel]] = {
    **RESOURCE_CLASSES,
    "PodTemplate": PodTemplate,
    "NetworkVolume": NetworkVolume,
    "Endpoint": EndpointParams,
}
# SDK constants, by value.
_CONSTANTS = {
    name: getattr(flashc_runtime, name) for name in ("CPU_DATACENTERS", "DEFAULT_WORKERS_MIN", "DEFAULT_WORKERS_MAX")
}
_MAX_SIZE = 1_000_000  # characters or items a computed config value may have
_MAX_NUMBER = 10**100  # the largest number flashc computes with (a config needs far smaller ones)
_MAX_BITS = 333  # bits of 10**100
# Assignments evaluated inside one another before `_compute_first` evaluates the rest of a chain
# deepest first, and the most that may nest all the same (a chain through calls): past it, an error.
_NESTED = 40
_MAX_NESTED = 80  # about 9 frames each through a config call: well within Python's 1,000
_ENV_READERS = ("os.getenv", "os.environ.get", "os.environ.setdefault", "os.environ.__getitem__")


class _Invalid:
    """The value of an expression that could not be evaluated; its problem is already reported."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a config value was constructed."""

    path: str
    span: Span


@dataclasses.dataclass(frozen=True)
class Where:
    """What an expression is being evaluated for, to word diagnostics ("argument 'x' of Y")."""

    what: str
    notes: tuple[Note, ...] = ()


class Evaluator:
    """Static values of expressions in one project; each problem is reported once, through the Linker."""

    def __init__(self, linker: Linker) -> None:
        self.linker = linker
        self._values: dict[tuple[str, int, str], Any] = {}
        self._in_progress: set[tuple[str, int, str]] = set()
        self._computing_first = False
        self.origins: dict[int, Origin] = {}

    def evaluate(self, module: str, expr: ir.Expr, position: int | None, where: Where) -> Any:
        """The static value of `expr`, or INVALID after reporting why it has none."""
        path = self.linker.path_of(module)
        if isinstance(expr, ir.Const):
            return expr.value
        if isinstance(expr, ir.Seq):
            items = [self.evaluate(module, item, position, where) for item in expr.items]
            if any(v is INVALID for v in items):
                return INVALID
            return items if expr.kind == "list" else tuple(items)
        if isinstance(expr, ir.DictExpr):
            return self._dict(module, expr, position, where)
        if isinstance(expr, (ir.Name, ir.Attr)):
            return self._reference(module, expr, position, where)
        if isinstance(expr, ir.Call):
            return self.call(module, expr, position, where)
        if isinstance(expr, ir.BinOp):
            return self._binop(module, expr, position, where)
        if isinstance(expr, ir.UnaryOp):
            value = self.evaluate(module, expr.operand, position, where)
            if value is INVALID:
                return INVALID
            if expr.op == "not":
                return not value
            if isinstance(value, (int, float)) and not isinstance(value, bool) and expr.op in "-+":
                return -value if expr.op == "-" else value
            self._not_static(path, expr.span, where, f"the operator {expr.op} applied to {type(value).__name__}")
            return INVALID
        if isinstance(expr, ir.FString):
            return self._fstring(module, expr, position, where)
        if isinstance(expr, ir.Subscript):
            return self._subscript(module, expr, position, where)
        self._not_static(path, expr.span, where, expr.what)
        return INVALID

    def _not_static(self, path: str, span: Span, where: Where, what: str, hint: str | None = None) -> None:
        self.linker.report(
            path,
            span,
            "not-static",
            f"{where.what} must be known at build time, but this is {what}",
            hint or "write a literal value, or a module-level constant defined with one",
            where.notes,
        )

    def _dict(self, module: str, expr: ir.DictExpr, position: int | None, where: Where) -> Any:
        result: dict[Any, Any] = {}
        ok = True
        for key_expr, value_expr in zip(expr.keys, expr.values, strict=True):
            value = self.evaluate(module, value_expr, position, where)
            if key_expr is None:
                if isinstance(value, dict):
                    result.update(value)
                elif value is not INVALID:
                    self._not_static(self.linker.path_of(module), value_expr.span, where, f"**{type(value).__name__}")
                    ok = False
                else:
                    ok = False
                continue
            key = self.evaluate(module, key_expr, position, where)
            if key is INVALID or value is INVALID:
                ok = False
                continue
            if not isinstance(key, (str, int, float, bool, type(None), tuple)) or not _hashable(key):
                self.linker.report(
                    self.linker.path_of(module),
                    key_expr.span,
                    "not-static",
                    f"{where.what} has a dict key that Python cannot hash "
                    f"(a {type(key).__name__} holding a list or dict)",
                    "use a string as the key",
                    where.notes,
                )
                ok = False
                continue
            result[key] = value
        return result if ok else INVALID

    def _reference(self, module: str, expr: ir.Name | ir.Attr, position: int | None, where: Where) -> Any:
        path = self.linker.path_of(module)
        if isinstance(expr, ir.Attr):
            base_sym = self.linker.resolve_expr(module, expr.base, position, None)
            if isinstance(base_sym, ValueRef):
                base = self.evaluate(module, expr.base, position, where)
                if base is INVALID:
                    return INVALID
                if isinstance(base, SchemaModel) and expr.attr in {f.name for f in dataclasses.fields(base)}:  # type: ignore[arg-type]
                    return getattr(base, expr.attr)
                self._not_static(path, expr.span, where, f"the attribute '{expr.attr}' of a {type(base).__name__}")
                return INVALID
            if isinstance(base_sym, SdkRef) and base_sym.name in _ENUMS:
                return self._enum_member(path, _ENUMS[base_sym.name], expr, where)
        sym = self.linker.resolve_expr(module, expr, position, None)
        if isinstance(sym, ValueRef):
            # Another module has run to its end when this one imports it; this one only up to here.
            until = position if sym.module == module else None
            return self._binding_value(sym, path, expr.span, where, until)
        if isinstance(sym, ExternalRef):
            if sym.qualname == "os.environ":
                self._env(path, expr.span, where)
            else:
                self._not_static(
                    path,
                    expr.span,
                    where,
                    f"'{sym.qualname}', which comes from outside the project",
                    "flashc reads only the project's own sources: write the value here, "
                    "or define it as a constant in a project module",
                )
            return INVALID
        if isinstance(sym, SdkRef) and sym.name in _CONSTANTS:
            value = _CONSTANTS[sym.name]
            return sorted(value) if isinstance(value, frozenset) else value
        if isinstance(sym, SdkRef):
            self._not_static(path, expr.span, where, f"the SDK name '{sym.name}' itself", _sdk_hint(sym.name))
            return INVALID
        if isinstance(sym, DefRef):
            what = {"function": "a function", "class": "a class", "deleted": "a name removed with `del`"}.get(
                sym.kind, "a name bound by a statement"
            )
            self._not_static(path, expr.span, where, f"{what} ('{sym.name}')")
            return INVALID
        if isinstance(sym, ModuleRef):
            self._not_static(path, expr.span, where, f"the module '{sym.name}'")
            return INVALID
        if isinstance(sym, Undefined) and sym.reported:
            return INVALID  # the linker has said why (an import cycle)
        root: ir.Expr = expr
        while isinstance(root, ir.Attr):
            root = root.base
        if isinstance(root, ir.Name) and isinstance(self.linker.resolve_expr(module, root, position, None), Undefined):
            expr = root  # report the undefined name itself, not the attribute chain built on it
        name = expr.id if isinstance(expr, ir.Name) else dotted(expr)
        if isinstance(expr, ir.Name) and self._missing_import(module, expr, position, where):
            return INVALID
        later = isinstance(expr, ir.Name) and self.linker.later_bindings(module, expr.id, (position or 0) - 1)
        if isinstance(expr, ir.Name) and not later and self._unimported(module, expr, where):
            return INVALID
        self.linker.report(
            path,
            expr.span,
            "undefined-name",
            f"'{name}' is not defined at this point, so {where.what} cannot be known at build time",
            f"'{name}' is only defined further down, at line {later[0].span.line}: move that definition above this use"
            if later
            else "define it above this line as a module-level constant, or import it from a project module",
            where.notes,
        )
        return INVALID

    def _unimported(self, module: str, expr: ir.Name, where: Where) -> bool:
        """Report an SDK name used without its import; False if `expr` is not one."""
        found = unimported_sdk_name(self.linker, module, expr.id)
        if found is None:
            return False
        message, hint = found
        self.linker.report(self.linker.path_of(module), expr.span, "undefined-name", message, hint, where.notes)
        return True

    def _missing_import(self, module: str, expr: ir.Name, position: int | None, where: Where) -> bool:
        """Report `from project_module import NAME` where the module has no NAME; False if that is not the case."""
        b = self.linker.binding_at(module, expr.id, position)
        if not isinstance(b, ir.ImportBinding) or b.attr is None:
            return False
        source = self.linker.absolute(module, b.level, b.module)
        summary = self.linker.summary(source) if source else None
        if source is None or summary is None:
            return False
        broken = self.linker.broken_reexport(source, b.attr)
        if broken is None:
            owner, missing, notes = source, b.attr, where.notes
            message = f"module '{source}' has no name '{b.attr}'"
        else:
            # `source` does import the name, through a chain of re-exports that ends without it.
            importer, link, owner, missing = broken
            message = (
                f"'{b.attr}' cannot be imported from module '{source}': its imports lead to "
                f"module '{owner}', which has no name '{missing}'"
            )
            note = Note(self.linker.path_of(importer), link.span, f"'{missing}' is imported from '{owner}' here")
            notes = (*where.notes, note)
        owner_summary = self.linker.summary(owner)
        guess = suggest(missing, sorted({x.name for x in owner_summary.bindings})) if owner_summary else None
        self.linker.report(
            self.linker.path_of(module),
            b.span,
            "undefined-name",
            f"{message}, so {where.what} cannot be known at build time",
            f"did you mean '{guess}'?" if guess else f"define '{missing}' in {self.linker.path_of(owner)}",
            notes,
        )
        return True

    def _binding_value(self, ref: ValueRef, use_path: str, use_span: Span, where: Where, until: int | None) -> Any:
        """The value of a module-level assignment, as the code that uses it (before `until`) sees it."""
        b = ref.binding
        note = Note(use_path, use_span, f"'{b.name}' is used here")
        inner = Where(where.what, (*where.notes, note))
        path = self.linker.path_of(ref.module)
        if b.conditional:
            self.linker.report(
                path,
                b.span,
                "not-static",
                f"'{b.name}' is assigned inside a branch (if, loop, match or except), "
                f"so {where.what} cannot be known until the program runs",
                "assign it once, outside any branch, above its use",
                inner.notes,
            )
            return INVALID
        summary = self.linker.summary(ref.module)
        for change in summary.mutations if summary else ():
            if change.name == b.name and b.index < change.index and (until is None or change.index < until):
                self.linker.report(
                    path,
                    change.span,
                    "not-static",
                    f"'{b.name}' is changed in place here, so {where.what} cannot be known until the program runs",
                    "write the final value in the assignment itself",
                    inner.notes,
                )
                return INVALID
        key = (ref.module, b.index, b.name)
        if key in self._values:
            return self._values[key]
        if key in self._in_progress:
            self.linker.report(use_path, use_span, "not-static", f"'{b.name}' refers to itself")
            return INVALID
        if len(self._in_progress) >= _NESTED and not self._computing_first:
            self._compute_first(ref, inner)
        if len(self._in_progress) >= _MAX_NESTED:
            self.linker.report(
                path,
                b.span,
                "not-static",
                f"flashc follows at most {_MAX_NESTED} values computed one from another, "
                f"and '{b.name}' is one more, so {where.what} cannot be known at build time",
                "compute the value in fewer steps, or write it out",
                (*inner.notes[:1], *inner.notes[-1:]),  # where the chain starts and where it got to
            )
            return INVALID
        self._in_progress.add(key)
        value = self.evaluate(ref.module, b.value, b.index, inner)
        self._in_progress.discard(key)
        self._values[key] = value
        return value

    def _compute_first(self, ref: ValueRef, where: Where) -> None:
        """Evaluate the assignments `ref`'s value is computed from, deepest first, on a stack of its own.

        Evaluating `ref` then finds them done and nests a level or two, however long the chain
        (`a1 = a0 + "x"`, `a2 = a1 + "x"`...); their diagnostics carry `where`'s notes, not one
        note per link. Only what evaluating `ref` certainly evaluates is followed.
        """
        self._computing_first = True
        try:
            stack: list[tuple[ValueRef, str, Span, int | None, bool]] = [
                (ref, self.linker.path_of(ref.module), ref.binding.span, None, False)
            ]
            expanded = set()
            while stack:
                dep, use_path, use_span, until, ready = stack.pop()
                key = (dep.module, dep.binding.index, dep.binding.name)
                if key in self._values or key in self._in_progress:
                    continue
                if ready:
                    self._binding_value(dep, use_path, use_span, where, until)
                elif key not in expanded:
                    expanded.add(key)
                    if dep is not ref:
                        stack.append((dep, use_path, use_span, until, True))
                    if not dep.binding.conditional:  # its value is never evaluated, only reported
                        stack.extend((*used, False) for used in self._values_used(dep))
        finally:
            self._computing_first = False

    def _values_used(self, ref: ValueRef) -> Iterator[tuple[ValueRef, str, Span, int | None]]:
        """The assignments evaluating `ref`'s value evaluates in any case, with where each is used."""
        module, b = ref.module, ref.binding
        path = self.linker.path_of(module)
        exprs: list[ir.Expr] = [b.value]
        while exprs:
            expr = exprs.pop()
            if isinstance(expr, (ir.Name, ir.Attr)):
                sym = self.linker.resolve_expr(module, expr, b.index, None)
                if isinstance(sym, ValueRef):
                    yield sym, path, expr.span, b.index if sym.module == module else None
                elif isinstance(expr, ir.Attr):
                    exprs.append(expr.base)
            elif isinstance(expr, ir.BinOp):
                exprs += [expr.left, expr.right]
            elif isinstance(expr, ir.UnaryOp):
                exprs.append(expr.operand)
            elif isinstance(expr, ir.Seq):
                exprs += expr.items
            elif isinstance(expr, ir.DictExpr):
                exprs += [*expr.values, *(k for k in expr.keys if k is not None)]
            elif isinstance(expr, ir.FString):
                exprs += [part for part in expr.parts if not isinstance(part, str)]
            elif isinstance(expr, ir.Subscript):
                exprs += [expr.base, expr.index]
            elif isinstance(expr, ir.Call):
                sym = self.linker.resolve_expr(module, expr.func, b.index, None)
                if isinstance(sym, SdkRef) and sym.name in _CONFIG_CLASSES:  # as `construct` evaluates them
                    exprs += [kw.value for kw in expr.keywords]
                    exprs += expr.args[:1] if _CONFIG_CLASSES[sym.name] is EndpointParams else ()
                elif isinstance(sym, SdkRef) and sym.name in _ENUMS and len(expr.args) == 1 and not expr.keywords:
                    exprs.append(expr.args[0])

    def _enum_member(self, path: str, cls: type[enum.Enum], expr: ir.Attr, where: Where) -> Any:
        try:
            return cls[expr.attr]
        except KeyError:
            guess = suggest(expr.attr, [m.name for m in cls])
            self.linker.report(
                path,
                expr.span,
                "unknown-member",
                f"{cls.__name__} has no member '{expr.attr}'",
                f"did you mean '{cls.__name__}.{guess}'?" if guess else f"members: {', '.join(m.name for m in cls)}",
                where.notes,
            )
            return INVALID

    def _env(self, path: str, span: Span, where: Where) -> None:
        self._not_static(
            path,
            span,
            where,
            "an environment variable read when the program runs",
            "write the value itself; to give the worker environment variables, use env={...} on the resource config",
        )

    def call(self, module: str, expr: ir.Call, position: int | None, where: Where) -> Any:
        path = self.linker.path_of(module)
        sym = self.linker.resolve_expr(module, expr.func, position, None)
        if isinstance(sym, SdkRef) and sym.name in _CONFIG_CLASSES:
            return self.construct(module, _CONFIG_CLASSES[sym.name], expr, position, where.notes)
        if isinstance(sym, SdkRef) and sym.name in _ENUMS and len(expr.args) == 1 and not expr.keywords:
            value = self.evaluate(module, expr.args[0], position, where)
            if value is INVALID:
                return INVALID
            try:
                return _ENUMS[sym.name](value)
            except ValueError:
                self.linker.report(path, expr.span, "unknown-member", f"{value!r} is not a valid {sym.name}")
                return INVALID
        if isinstance(sym, ExternalRef) and sym.qualname in _ENV_READERS:
            self._env(path, expr.span, where)
            return INVALID
        if isinstance(sym, Undefined) and sym.reported:
            return INVALID
        if (
            isinstance(sym, Undefined)
            and isinstance(expr.func, ir.Name)
            and not self.linker.later_bindings(module, expr.func.id, (position or 0) - 1)
            and self._unimported(module, expr.func, where)
        ):
            return INVALID
        name = dotted(expr.func) or "a function"
        self._not_static(
            path,
            expr.span,
            where,
            f"a call to {name}() that only runs with the program",
            "write the value itself: a literal, or a module-level constant defined with one",
        )
        return INVALID

    def construct(
        self,
        module: str,
        cls: type[SchemaModel],
        expr: ir.Call,
        position: int | None,
        notes: tuple[Note, ...] = (),
    ) -> Any:
        """Evaluate `Cls(...)` of an SDK config and check it against the shared schema."""
        path = self.linker.path_of(module)
        owner = cls.display_name or cls.__name__
        ok = True
        kwargs: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        failed: set[str] = set()
        args = expr.args
        if cls is EndpointParams and args:  # Endpoint("name", ...): its one positional parameter
            spans["name"] = args[0].span
            value = self.evaluate(module, args[0], position, Where(f"argument 'name' of {owner}", notes))
            if value is INVALID:
                failed.add("name")
                ok = False
            else:
                kwargs["name"] = value
            args = args[1:]
        for arg in args:
            self.linker.report(
                path,
                arg.span,
                "config-param",
                f"{owner} takes keyword arguments only" + (" after its name" if cls is EndpointParams else ""),
                "write name=value",
                notes,
            )
            ok = False
        for kw in expr.keywords:
            if kw.name is None:
                spread = self.evaluate(module, kw.value, position, Where(f"**arguments of {owner}", notes))
                if isinstance(spread, dict) and all(isinstance(k, str) for k in spread):
                    kwargs.update(spread)
                    spans.update({k: kw.span for k in spread})
                else:
                    ok = False
                continue
            value = self.evaluate(module, kw.value, position, Where(f"argument '{kw.name}' of {owner}", notes))
            spans[kw.name] = kw.span
            if value is INVALID:
                failed.add(kw.name)
                ok = False
            else:
                kwargs[kw.name] = value
        _, problems = endpoint_problems(kwargs) if cls is EndpointParams else validate_params(cls, kwargs)
        for problem in problems:
            if problem.param is None and (failed or expr.args):
                continue  # "requires 'name'" is noise when name was given but could not be evaluated
            self._param_problem(path, problem, spans, expr.span, notes)
            ok = False
        if not ok:
            return INVALID
        self._secret_warnings(path, owner, kwargs.get("env"), spans.get("env", expr.span), notes)
        instance = cls(**kwargs)
        self.origins[id(instance)] = Origin(path, expr.span)
        return instance

    def _secret_warnings(self, path: str, owner: str, env: Any, span: Span, notes: tuple[Note, ...]) -> None:
        """Warn about literal env values that look like credentials: they would be stored in the archive."""
        pairs = env.items() if isinstance(env, dict) else [(e.get("key"), e.get("value")) for e in env or ()]
        for name, value in pairs:
            if isinstance(name, str) and isinstance(value, str) and looks_secret(name, value):
                self.linker.report(
                    path,
                    span,
                    "secret",
                    f"the env value of {name} in {owner} looks like a secret: it would be written into "
                    "flash_manifest.json, inside the archive",
                    f"refer to it instead, {_reference_form(env, name)}, and set {name} in .env or the shell: "
                    "deploy fills it in, and it never enters the archive",
                    (),  # the notes would show the line again
                    severity="warning",
                    show_source=False,  # the line holds the secret: not into the log as well
                )

    def _param_problem(
        self,
        path: str,
        problem: ParamProblem,
        spans: Mapping[str, Span],
        default: Span,
        notes: tuple[Note, ...],
    ) -> None:
        span = spans.get(problem.param, default) if problem.param else default
        self.linker.report(path, span, "config-param", problem.message, problem.hint, notes)

    def _binop(self, module: str, expr: ir.BinOp, position: int | None, where: Where) -> Any:
        left = self.evaluate(module, expr.left, position, where)
        right = self.evaluate(module, expr.right, position, where)
        if left is INVALID or right is INVALID:
            return INVALID
        # The SDK's enums are str subclasses whose str() is their value, as "gpu-" + GpuGroup.ANY is.
        left, right = (v.value if isinstance(v, enum.Enum) else v for v in (left, right))
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        same_seq = type(left) is type(right) and isinstance(left, (str, list, tuple))
        path = self.linker.path_of(module)
        if _too_large(expr.op, left, right):
            self.linker.report(path, expr.span, "not-static", "this value is too large for a config", None, where.notes)
            return INVALID
        try:
            if expr.op == "+" and (numbers or same_seq):
                return left + right
            if expr.op == "*" and (numbers or (isinstance(left, (str, list, tuple)) and isinstance(right, int))):
                return left * right
            if numbers and expr.op in ("-", "/", "//", "%", "**"):
                return {
                    "-": lambda: left - right,
                    "/": lambda: left / right,
                    "//": lambda: left // right,
                    "%": lambda: left % right,
                    "**": lambda: left**right,
                }[expr.op]()
        except (ZeroDivisionError, OverflowError, ValueError) as exc:
            self.linker.report(
                self.linker.path_of(module), expr.span, "not-static", f"cannot compute this value: {exc}"
            )
            return INVALID
        self._not_static(
            self.linker.path_of(module),
            expr.span,
            where,
            f"{type(left).__name__} {expr.op} {type(right).__name__}, which flashc does not compute",
        )
        return INVALID

    def _fstring(self, module: str, expr: ir.FString, position: int | None, where: Where) -> Any:
        out = []
        length = 0
        for part in expr.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self.evaluate(module, part, position, where)
            if value is INVALID:
                return INVALID
            if isinstance(value, enum.Enum):
                value = value.value
            if isinstance(value, int) and abs(value) > _MAX_NUMBER:
                self._not_static(self.linker.path_of(module), part.span, where, "a number too large to format")
                return INVALID
            if not isinstance(value, (str, int, float)):
                self._not_static(
                    self.linker.path_of(module), part.span, where, f"a {type(value).__name__} inside an f-string"
                )
                return INVALID
            out.append(str(value))
            length += len(out[-1])
            if length > _MAX_SIZE:
                self.linker.report(
                    self.linker.path_of(module),
                    expr.span,
                    "not-static",
                    "this value is too large for a config",
                    None,
                    where.notes,
                )
                return INVALID
        return "".join(out)

    def _subscript(self, module: str, expr: ir.Subscript, position: int | None, where: Where) -> Any:
        sym = self.linker.resolve_expr(module, expr.base, position, None)
        if isinstance(sym, ExternalRef) and sym.qualname == "os.environ":
            self._env(self.linker.path_of(module), expr.span, where)
            return INVALID
        base = self.evaluate(module, expr.base, position, where)
        index = self.evaluate(module, expr.index, position, where)
        if base is INVALID or index is INVALID:
            return INVALID
        try:
            return base[index]
        except (KeyError, IndexError, TypeError):
            self.linker.report(
                self.linker.path_of(module),
                expr.span,
                "not-static",
                f"cannot look up {index!r} in this {type(base).__name__}",
                None,
                where.notes,
            )
            return INVALID


def unimported_sdk_name(linker: Linker, module: str, name: str) -> tuple[str, str] | None:
    """The error and hint for the SDK's `name` (`LiveServerless`, `Endpoint`...) used in `module`
    without being imported; None when `name` is not one of the SDK's, or when an `import *` from
    outside the project may bring it."""
    if name not in SDK_EXPORTS:
        return None
    summary = linker.summary(module)
    if summary is None or any(linker.module_ref(s.module).origin == "external" for s in summary.star_imports):
        return None
    line = sdk_import_line(linker, module, name)
    return (
        f"'{name}' is not imported, so importing this module fails (NameError)",
        f"add `{line}` to the file's imports",
    )


def sdk_import_line(linker: Linker, module: str, name: str) -> str:
    """`from <sdk> import <name>`, with the SDK module the file imports from already (the first
    `from ... import`, else the first `import`), else `runpod_flash`, the SDK's current name."""
    summary = linker.summary(module)
    imports = [
        b
        for b in (summary.bindings if summary else ())
        if isinstance(b, ir.ImportBinding) and not b.level and b.module.split(".")[0] in SDK_ROOTS
    ]
    imports.sort(key=lambda b: (b.attr is None, b.index))
    return f"from {imports[0].module.split('.')[0] if imports else 'runpod_flash'} import {name}"


def _too_large(op: str, left: Any, right: Any) -> bool:
    """Whether `left op right` would build a value no config needs (and could exhaust memory or time).

    Sizes count every item and character of nested values, so `[[[0] * 999] * 999] * 999`, which
    shares its lists, is as large as it would be written out; numbers stay within `_MAX_NUMBER`.
    """
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if op == "*" and isinstance(left, (str, list, tuple)) and isinstance(right, int):
        return right > 0 and _size(left) * right > _MAX_SIZE
    if op == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        return _size(left) + _size(right) > _MAX_SIZE
    if not numbers:
        return False
    if max(abs(left), abs(right)) > _MAX_NUMBER:
        return True
    if op == "**":
        if abs(right) > 1_000:
            return True
        # |left| ** right has about right * log2|left| bits.
        return isinstance(left, int) and right > 0 and abs(left) > 1 and abs(left).bit_length() * right > _MAX_BITS
    if op == "*":
        return bool(abs(left) * abs(right) > _MAX_NUMBER)
    return False


def _size(value: Any) -> int:
    """Items and characters in `value`, nested ones included; stops counting past `_MAX_SIZE`."""
    total = 0
    stack = [value]
    while stack and total <= _MAX_SIZE:
        item = stack.pop()
        total += 1
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _sdk_hint(name: str) -> str:
    if name in _CONFIG_CLASSES:
        return f"call it: {name}(name=...)"
    if name in _ENUMS:
        return f"pick a member: {name}.{next(iter(_ENUMS[name])).name}"
    return "use a value here"


def _reference_form(env: Any, name: str) -> str:
    """How to write `name` as a reference in the form the config uses (a dict, or PodTemplate's list)."""
    reference = "${" + name + "}"
    if isinstance(env, dict):
        return f'env={{"{name}": "{reference}"}}'
    return f'env=[{{"key": "{name}", "value": "{reference}"}}]'
