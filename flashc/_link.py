"""Link module summaries: resolve names across modules and evaluate resource configs statically.

Names resolve by scope, as Python would bind them: a module-level name means its last binding
above the line that uses it; an import follows the imported module (relative imports, package
`__init__` re-exports and `import *` included); a name imported from `tetra_rp`, `runpod_flash`
or `flashc_runtime` is an SDK symbol. Values are computed only from literals, constants, SDK
enum members and SDK config constructors; anything that needs the program to run is reported at
its exact span.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flashc_runtime
from flashc_runtime.enums import CpuInstanceType, GpuGroup, ServerlessScalerType
from flashc_runtime.resources import RESOURCE_CLASSES, NetworkVolume, PodTemplate
from flashc_runtime.schema import ParamProblem, SchemaModel, suggest, validate_params

from . import _ir as ir
from .diagnostics import Diagnostic, Note, Span
from .modules import ModuleFile

__all__ = ["INVALID", "SDK_ROOTS", "DefRef", "Linker", "ModuleRef", "SdkRef", "module_key"]

SDK_ROOTS = ("flashc_runtime", "tetra_rp", "runpod_flash")
SDK_EXPORTS = frozenset(flashc_runtime.__all__)
_ENUMS: dict[str, type[enum.Enum]] = {c.__name__: c for c in (GpuGroup, CpuInstanceType, ServerlessScalerType)}
_CONFIG_CLASSES: dict[str, type[SchemaModel]] = {
    **RESOURCE_CLASSES,
    "PodTemplate": PodTemplate,
    "NetworkVolume": NetworkVolume,
}
_ENV_READERS = ("os.getenv", "os.environ.get", "os.environ.setdefault", "os.environ.__getitem__")


class _Invalid:
    """The value of an expression that could not be evaluated; its problem is already reported."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

# --- symbols -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SdkRef:
    """A name exported by the SDK (`remote`, `LiveServerless`, `GpuGroup`...)."""

    name: str


@dataclasses.dataclass(frozen=True)
class ModuleRef:
    name: str
    origin: str  # "project", "sdk" or "external"


@dataclasses.dataclass(frozen=True)
class ExternalRef:
    """Something from a module outside the project, which flashc never reads."""

    qualname: str


@dataclasses.dataclass(frozen=True)
class DefRef:
    """A module-level def, class or other binding that is not a static value."""

    module: str
    name: str
    kind: str


@dataclasses.dataclass(frozen=True)
class ValueRef:
    module: str
    binding: ir.AssignBinding


@dataclasses.dataclass(frozen=True)
class Undefined:
    name: str


@dataclasses.dataclass(frozen=True)
class LocalRef:
    """A name bound inside a function body by something other than an import."""

    name: str


Symbol = SdkRef | ModuleRef | ExternalRef | DefRef | ValueRef | Undefined | LocalRef


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


SummaryLoader = Callable[[str], "ir.ModuleSummary | None"]


class Linker:
    """Resolves names and evaluates expressions over the modules of one project.

    `load(path)` returns a file's summary, scanning it on first use; only files that a name
    leads to are ever loaded. Diagnostics accumulate in `diagnostics`, each reported once.
    """

    def __init__(self, files: Mapping[str, ModuleFile], load: SummaryLoader) -> None:
        self._load = load
        # A file without a module path still links under a private key, so its own names resolve.
        self._by_module = {module_key(f): f for f in files.values()}
        self._packages = {
            m.rsplit(".", i)[0] for m in self._by_module if m[0] != "<" for i in range(1, m.count(".") + 1)
        }
        self._tables: dict[str, dict[str, list[ir.Binding]]] = {}
        self._values: dict[tuple[str, int, str], Any] = {}
        self._in_progress: set[tuple[str, int, str]] = set()
        self._seen: set[tuple[str, Span | None, str]] = set()
        self.origins: dict[int, Origin] = {}
        self.diagnostics: list[Diagnostic] = []

    # --- diagnostics ---------------------------------------------------------------------

    def report(
        self,
        path: str,
        span: Span | None,
        code: str,
        message: str,
        hint: str | None = None,
        notes: tuple[Note, ...] = (),
        severity: str = "error",
    ) -> None:
        key = (path, span, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.diagnostics.append(
            Diagnostic(path, span, severity, code, message, hint, notes)  # type: ignore[arg-type]
        )

    # --- modules -------------------------------------------------------------------------

    def module_file(self, module: str) -> ModuleFile | None:
        return self._by_module.get(module)

    def summary(self, module: str) -> ir.ModuleSummary | None:
        f = self._by_module.get(module)
        if f is None:
            return None
        return self._load(f.path)

    def _table(self, module: str) -> dict[str, list[ir.Binding]]:
        table = self._tables.get(module)
        if table is None:
            table = {}
            summary = self.summary(module)
            for b in summary.bindings if summary else ():
                table.setdefault(b.name, []).append(b)
            self._tables[module] = table
        return table

    def module_ref(self, name: str) -> ModuleRef:
        if name.split(".")[0] in SDK_ROOTS:
            return ModuleRef(name, "sdk")
        if name in self._by_module or name in self._packages:
            return ModuleRef(name, "project")
        return ModuleRef(name, "external")

    def absolute(self, module: str, level: int, target: str) -> str | None:
        """The absolute module a `from <dots><target> import` in `module` refers to."""
        if level == 0:
            return target
        f = self._by_module.get(module)
        package = module if f is not None and f.is_package else module.rpartition(".")[0]
        parts = package.split(".") if package else []
        if level - 1 > len(parts):
            return None
        base = parts[: len(parts) - (level - 1)]
        if target:
            base.append(target)
        return ".".join(base) if base else None

    # --- name resolution -----------------------------------------------------------------

    def resolve_name(self, module: str, name: str, position: int | None, _depth: int = 0) -> Symbol:
        """What `name` means in `module` just before statement `position` (None: after the whole module)."""
        if _depth > 50:
            return Undefined(name)
        bindings = [b for b in self._table(module).get(name, ()) if position is None or b.index < position]
        last_index = bindings[-1].index if bindings else -1
        summary = self.summary(module)
        for star in reversed(summary.star_imports if summary else ()):
            if last_index < star.index and (position is None or star.index < position):
                target = self.absolute(module, star.level, star.module)
                if target is None:
                    continue
                sym = self.member(self.module_ref(target), name, _depth + 1)
                if not isinstance(sym, Undefined):
                    return sym
        if not bindings:
            return Undefined(name)
        return self.binding_symbol(module, bindings[-1], _depth + 1)

    def binding_symbol(self, module: str, b: ir.Binding, _depth: int = 0) -> Symbol:
        if isinstance(b, ir.ImportBinding):
            if b.attr is None:
                return self.module_ref(b.module)
            base = self.absolute(module, b.level, b.module)
            if base is None:
                return Undefined(b.attr)
            return self.member(self.module_ref(base), b.attr, _depth + 1)
        if isinstance(b, ir.AssignBinding):
            return ValueRef(module, b)
        return DefRef(module, b.name, b.kind)

    def member(self, base: Symbol, attr: str, _depth: int = 0) -> Symbol:
        """`base.attr`, also what `from base import attr` binds."""
        if isinstance(base, ModuleRef):
            qualified = f"{base.name}.{attr}"
            if base.origin == "sdk":
                return SdkRef(attr) if attr in SDK_EXPORTS else ModuleRef(qualified, "sdk")
            if base.origin == "external":
                return ExternalRef(qualified)
            if base.name in self._by_module and (attr in self._table(base.name) or self._has_star(base.name)):
                sym = self.resolve_name(base.name, attr, None, _depth + 1)
                if not isinstance(sym, Undefined):
                    return sym
            if qualified in self._by_module or qualified in self._packages:
                return ModuleRef(qualified, "project")
            return Undefined(qualified)
        if isinstance(base, ExternalRef):
            return ExternalRef(f"{base.qualname}.{attr}")
        return Undefined(attr)

    def _has_star(self, module: str) -> bool:
        summary = self.summary(module)
        return bool(summary and summary.star_imports)

    def names_bound_to(self, module: str, target: Symbol, position: int | None) -> list[str]:
        """Module-level names that mean `target` at `position`, in source order."""
        names = []
        for name in self._table(module):
            if self.resolve_name(module, name, position) == target:
                names.append(name)
        return names

    def resolve_expr(self, module: str, expr: ir.Expr, position: int | None, scope: ir.Scope | None) -> Symbol:
        """Resolve a name or dotted attribute chain, honouring a function body's own bindings."""
        if isinstance(expr, ir.Name):
            if scope is not None:
                for imp in reversed(scope.imports):
                    if imp.name == expr.id:
                        return self.binding_symbol(module, imp)
                if expr.id in scope.locals:
                    return LocalRef(expr.id)
            return self.resolve_name(module, expr.id, position)
        if isinstance(expr, ir.Attr):
            return self.member(self.resolve_expr(module, expr.base, position, scope), expr.attr)
        return Undefined("")

    # --- evaluation ----------------------------------------------------------------------

    def evaluate(self, module: str, expr: ir.Expr, position: int | None, where: Where) -> Any:
        """The static value of `expr`, or INVALID after reporting why it has none."""
        path = self._path(module)
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

    def _path(self, module: str) -> str:
        return self._by_module[module].path

    def _not_static(self, path: str, span: Span, where: Where, what: str, hint: str | None = None) -> None:
        self.report(
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
                    self._not_static(self._path(module), value_expr.span, where, f"**{type(value).__name__}")
                    ok = False
                else:
                    ok = False
                continue
            key = self.evaluate(module, key_expr, position, where)
            if key is INVALID or value is INVALID:
                ok = False
                continue
            if not isinstance(key, (str, int, float, bool, type(None), tuple)):
                self._not_static(self._path(module), key_expr.span, where, f"a {type(key).__name__} as a dict key")
                ok = False
                continue
            result[key] = value
        return result if ok else INVALID

    def _reference(self, module: str, expr: ir.Name | ir.Attr, position: int | None, where: Where) -> Any:
        path = self._path(module)
        if isinstance(expr, ir.Attr):
            base_sym = self.resolve_expr(module, expr.base, position, None)
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
        sym = self.resolve_expr(module, expr, position, None)
        if isinstance(sym, ValueRef):
            return self._binding_value(sym, path, expr.span, where)
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
        if isinstance(sym, SdkRef):
            self._not_static(path, expr.span, where, f"the SDK name '{sym.name}' itself", _sdk_hint(sym.name))
            return INVALID
        if isinstance(sym, DefRef):
            what = {"function": "a function", "class": "a class"}.get(sym.kind, "a name bound by a statement")
            self._not_static(path, expr.span, where, f"{what} ('{sym.name}')")
            return INVALID
        if isinstance(sym, ModuleRef):
            self._not_static(path, expr.span, where, f"the module '{sym.name}'")
            return INVALID
        root: ir.Expr = expr
        while isinstance(root, ir.Attr):
            root = root.base
        if isinstance(root, ir.Name) and isinstance(self.resolve_expr(module, root, position, None), Undefined):
            expr = root  # report the undefined name itself, not the attribute chain built on it
        name = expr.id if isinstance(expr, ir.Name) else _dotted(expr)
        self.report(
            path,
            expr.span,
            "undefined-name",
            f"'{name}' is not defined at this point, so {where.what} cannot be known at build time",
            "define it above this line as a module-level constant, or import it from a project module",
            where.notes,
        )
        return INVALID

    def _binding_value(self, ref: ValueRef, use_path: str, use_span: Span, where: Where) -> Any:
        key = (ref.module, ref.binding.index, ref.binding.name)
        if key in self._values:
            return self._values[key]
        if key in self._in_progress:
            self.report(use_path, use_span, "not-static", f"'{ref.binding.name}' refers to itself")
            return INVALID
        self._in_progress.add(key)
        note = Note(use_path, use_span, f"'{ref.binding.name}' is used here")
        inner = Where(where.what, (*where.notes, note))
        value = self.evaluate(ref.module, ref.binding.value, ref.binding.index, inner)
        self._in_progress.discard(key)
        self._values[key] = value
        return value

    def _enum_member(self, path: str, cls: type[enum.Enum], expr: ir.Attr, where: Where) -> Any:
        try:
            return cls[expr.attr]
        except KeyError:
            guess = suggest(expr.attr, [m.name for m in cls])
            self.report(
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
        path = self._path(module)
        sym = self.resolve_expr(module, expr.func, position, None)
        if isinstance(sym, SdkRef) and sym.name in _CONFIG_CLASSES:
            return self.construct(module, _CONFIG_CLASSES[sym.name], expr, position, where.notes)
        if isinstance(sym, SdkRef) and sym.name in _ENUMS and len(expr.args) == 1 and not expr.keywords:
            value = self.evaluate(module, expr.args[0], position, where)
            if value is INVALID:
                return INVALID
            try:
                return _ENUMS[sym.name](value)
            except ValueError:
                self.report(path, expr.span, "unknown-member", f"{value!r} is not a valid {sym.name}")
                return INVALID
        if isinstance(sym, ExternalRef) and sym.qualname in _ENV_READERS:
            self._env(path, expr.span, where)
            return INVALID
        name = _dotted(expr.func) or "a function"
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
        path = self._path(module)
        owner = cls.__name__
        ok = True
        for arg in expr.args:
            self.report(
                path,
                arg.span,
                "config-param",
                f"{owner} takes keyword arguments only",
                "write name=value",
                notes,
            )
            ok = False
        kwargs: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        failed: set[str] = set()
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
        _, problems = validate_params(cls, kwargs)
        for problem in problems:
            if problem.param is None and (failed or expr.args):
                continue  # "requires 'name'" is noise when name was given but could not be evaluated
            self._param_problem(path, problem, spans, expr.span, notes)
            ok = False
        if not ok:
            return INVALID
        instance = cls(**kwargs)
        self.origins[id(instance)] = Origin(path, expr.span)
        return instance

    def _param_problem(
        self,
        path: str,
        problem: ParamProblem,
        spans: Mapping[str, Span],
        default: Span,
        notes: tuple[Note, ...],
    ) -> None:
        span = spans.get(problem.param, default) if problem.param else default
        self.report(path, span, "config-param", problem.message, problem.hint, notes)

    def _binop(self, module: str, expr: ir.BinOp, position: int | None, where: Where) -> Any:
        left = self.evaluate(module, expr.left, position, where)
        right = self.evaluate(module, expr.right, position, where)
        if left is INVALID or right is INVALID:
            return INVALID
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        same_seq = type(left) is type(right) and isinstance(left, (str, list, tuple))
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
        except (ZeroDivisionError, OverflowError) as exc:
            self.report(self._path(module), expr.span, "not-static", f"cannot compute this value: {exc}")
            return INVALID
        self._not_static(
            self._path(module),
            expr.span,
            where,
            f"{type(left).__name__} {expr.op} {type(right).__name__}, which flashc does not compute",
        )
        return INVALID

    def _fstring(self, module: str, expr: ir.FString, position: int | None, where: Where) -> Any:
        out = []
        for part in expr.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = self.evaluate(module, part, position, where)
            if value is INVALID:
                return INVALID
            if isinstance(value, enum.Enum):
                value = value.value
            if not isinstance(value, (str, int, float)):
                self._not_static(self._path(module), part.span, where, f"a {type(value).__name__} inside an f-string")
                return INVALID
            out.append(str(value))
        return "".join(out)

    def _subscript(self, module: str, expr: ir.Subscript, position: int | None, where: Where) -> Any:
        sym = self.resolve_expr(module, expr.base, position, None)
        if isinstance(sym, ExternalRef) and sym.qualname == "os.environ":
            self._env(self._path(module), expr.span, where)
            return INVALID
        base = self.evaluate(module, expr.base, position, where)
        index = self.evaluate(module, expr.index, position, where)
        if base is INVALID or index is INVALID:
            return INVALID
        try:
            return base[index]
        except (KeyError, IndexError, TypeError):
            self.report(
                self._path(module),
                expr.span,
                "not-static",
                f"cannot look up {index!r} in this {type(base).__name__}",
                None,
                where.notes,
            )
            return INVALID

    # --- helpers for the analyzer --------------------------------------------------------

    def iter_modules(self) -> Iterator[ModuleFile]:
        yield from sorted(self._by_module.values(), key=lambda f: f.path)


def module_key(f: ModuleFile) -> str:
    """The name a file links under: its module path, or a private key when it has none."""
    return f.module or f"<{f.path}>"


def _dotted(expr: ir.Expr) -> str | None:
    if isinstance(expr, ir.Name):
        return expr.id
    if isinstance(expr, ir.Attr):
        base = _dotted(expr.base)
        return f"{base}.{expr.attr}" if base else None
    return None


def _sdk_hint(name: str) -> str:
    if name in _CONFIG_CLASSES:
        return f"call it: {name}(name=...)"
    if name in _ENUMS:
        return f"pick a member: {name}.{next(iter(_ENUMS[name])).name}"
    return "use a value here"
