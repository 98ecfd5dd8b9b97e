"""Link module summaries: resolve names across the modules of a project, by scope.

A module-level name means its last binding above the line that uses it; an import follows the
imported module (relative imports, package `__init__` re-exports and `import *` included); a
name imported from `tetra_rp`, `runpod_flash` or `flashc_runtime` is an SDK symbol. Inside a
function body, the body's own imports and local names come first. The Linker also collects the
diagnostics of the whole analysis, each reported once.

Resolution runs on a stack of its own and remembers every name it resolves, so a chain of
re-exports resolves however long it is, in time linear in its length. Names whose imports come
back round (`a: from b import x`, `b: from a import x`) are an error at the import that closes
the cycle, where Python fails with ImportError; `import *` of a module still running is not one.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Generator, Iterable, Mapping

import flashc_runtime

from ..diagnostics import Diagnostic, Note, Span
from ..modules import ModuleFile
from . import ir

__all__ = [
    "SDK_ROOTS",
    "DefRef",
    "ExternalRef",
    "Linker",
    "LocalRef",
    "ModuleRef",
    "SdkRef",
    "Symbol",
    "Undefined",
    "ValueRef",
    "dotted",
    "module_key",
]

SDK_ROOTS = ("flashc_runtime", "tetra_rp", "runpod_flash")
SDK_EXPORTS = frozenset(flashc_runtime.__all__)


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
    """A name that means nothing there; `reported` when the linker has said why (an import cycle).

    `reported` takes no part in comparisons: a caller that reports undefined names stays silent
    about a reported one.
    """

    name: str
    reported: bool = dataclasses.field(default=False, compare=False)


@dataclasses.dataclass(frozen=True)
class LocalRef:
    """A name bound inside a function body by something other than an import."""

    name: str


Symbol = SdkRef | ModuleRef | ExternalRef | DefRef | ValueRef | Undefined | LocalRef


SummaryLoader = Callable[[str], ir.ModuleSummary]

_Step = Generator["_Step", Symbol, Symbol]
"""A resolution step: yields the steps it needs, is sent each one's symbol, returns its own."""


@dataclasses.dataclass
class _Frame:
    """A name being resolved, and the import or assignment it is following (to locate a cycle)."""

    module: str
    name: str
    edge: ir.Binding | ir.StarImport | None = None


class Linker:
    """Resolves names and evaluates expressions over the modules of one project.

    `load(path)` returns a file's summary, scanning it on first use; only files that a name
    leads to are ever loaded. Diagnostics accumulate in `diagnostics`, each reported once.
    """

    def __init__(self, files: Mapping[str, ModuleFile], load: SummaryLoader) -> None:
        self._load = load
        # A file without a module path still links under a private key, so its own names resolve.
        self._by_module = {module_key(f): f for f in files.values()}
        self._packages = _packages_above(m for m in self._by_module if m[0] != "<")
        self._tables: dict[str, dict[str, list[ir.Binding]]] = {}
        self._exports: dict[str, frozenset[str] | None] = {}
        self._resolved: dict[tuple[str, str, int | None], Symbol] = {}
        self._active: list[_Frame] = []  # the names being resolved, outermost first
        self._active_at: dict[tuple[str, str, int | None], int] = {}  # their places in `_active`
        self._seen: set[tuple[str, Span | None, str]] = set()
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
        show_source: bool = True,
    ) -> None:
        key = (path, span, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.diagnostics.append(
            Diagnostic(path, span, severity, code, message, hint, notes, show_source)  # type: ignore[arg-type]
        )

    # --- modules -------------------------------------------------------------------------

    def module_file(self, module: str) -> ModuleFile | None:
        return self._by_module.get(module)

    def summary(self, module: str) -> ir.ModuleSummary | None:
        f = self._by_module.get(module)
        if f is None:
            return None
        return self.load(f.path)

    def load(self, path: str) -> ir.ModuleSummary:
        """A file's summary; a file that does not parse is reported, once, whoever asks for it first."""
        summary = self._load(path)
        failure = summary.parse_failure
        if failure is not None:
            self.report(
                path,
                Span(failure.line, failure.col, failure.line, failure.col + 1),
                "parse-error",
                f"cannot parse this file: {failure.message}",
                "fix the syntax error, or exclude the file in .flashignore",
            )
        return summary

    def binding_at(self, module: str, name: str, position: int | None) -> ir.Binding | None:
        """The module-level binding of `name` in force just before `position`, ignoring `import *`."""
        bindings = [b for b in self._table(module).get(name, ()) if position is None or b.index < position]
        return bindings[-1] if bindings else None

    def later_bindings(self, module: str, name: str, position: int) -> list[ir.Binding]:
        """Module-level bindings of `name` made after statement `position`."""
        return [b for b in self._table(module).get(name, ()) if b.index > position]

    def _star_exports(self, module: str) -> frozenset[str] | None:
        """Names `from module import *` binds: its static `__all__`, or None for every public name."""
        if module not in self._exports:
            exported: frozenset[str] | None = None
            b = self.binding_at(module, "__all__", None)
            if isinstance(b, ir.AssignBinding) and isinstance(b.value, ir.Seq):
                names = [item.value for item in b.value.items if isinstance(item, ir.Const)]
                if len(names) == len(b.value.items) and all(isinstance(n, str) for n in names):
                    exported = frozenset(str(n) for n in names)
            self._exports[module] = exported
        return self._exports[module]

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
    #
    # Resolution is written as steps: generators that yield the steps they need and receive their
    # symbols. `_drive` runs them on a list of its own, so a re-export chain may be as long as a
    # project makes it without nearing Python's recursion limit, and every name is resolved once.

    def resolve_name(self, module: str, name: str, position: int | None) -> Symbol:
        """What `name` means in `module` just before statement `position` (None: after the whole module).

        Memoised, so resolution is linear in the size of the import graph. A name whose imports
        come back to where they started is reported at the import that closes the cycle, once,
        and resolves to an Undefined marked `reported`.
        """
        return self._drive(self._name(module, name, position, via_star=False))

    def binding_symbol(self, module: str, b: ir.Binding) -> Symbol:
        return self._drive(self._binding(module, b))

    def member(self, base: Symbol, attr: str) -> Symbol:
        """`base.attr`, also what `from base import attr` binds."""
        return self._drive(self._member(base, attr, via_star=False))

    def resolve_expr(self, module: str, expr: ir.Expr, position: int | None, scope: ir.Scope | None) -> Symbol:
        """Resolve a name or dotted attribute chain, honouring a function body's own bindings."""
        return self._drive(self._expr(module, expr, position, scope))

    def names_bound_to(self, module: str, target: Symbol, position: int | None) -> list[str]:
        """Module-level names that mean `target` at `position`, in source order."""
        names = []
        for name in self._table(module):
            if self.resolve_name(module, name, position) == target:
                names.append(name)
        return names

    def _drive(self, step: _Step) -> Symbol:
        """Run `step` and every step it asks for, depth first, on an explicit stack."""
        stack: list[_Step] = []
        started: _Step | None = step
        result: Symbol = Undefined("")
        try:
            while True:
                try:
                    if started is not None:
                        stack.append(started)
                        started = next(started)
                    else:
                        started = stack[-1].send(result)
                except StopIteration as done:
                    stack.pop()
                    result, started = done.value, None
                    if not stack:
                        return result
        finally:
            for pending in reversed(stack):  # an exception: leave `_active` as it was
                pending.close()

    def _name(self, module: str, name: str, position: int | None, via_star: bool) -> _Step:
        key = (module, name, position)
        known = self._resolved.get(key)
        if known is not None:
            return known
        at = self._active_at.get(key)
        if at is not None:
            if via_star:
                # `import *` of a module still running binds what it has so far: not this name yet.
                return Undefined(name)
            return self._cycle(self._active[at:], name)
        frame = _Frame(module, name)
        self._active_at[key] = len(self._active)
        self._active.append(frame)
        try:
            last = self.binding_at(module, name, position)
            last_index = last.index if last else -1
            summary = self.summary(module)
            sym: Symbol = Undefined(name)
            for star in reversed(summary.star_imports if summary else ()):
                if last_index < star.index and (position is None or star.index < position):
                    target = self.absolute(module, star.level, star.module)
                    if target is None:
                        continue
                    frame.edge = star
                    found = yield self._star_member(target, name)
                    if not isinstance(found, Undefined) or found.reported:
                        sym = found
                        break
            else:
                if last is not None:
                    frame.edge = last
                    sym = yield self._binding(module, last)
        finally:
            self._active.pop()
            del self._active_at[key]
        self._resolved[key] = sym
        return sym

    def _cycle(self, frames: list[_Frame], name: str) -> Undefined:
        """Report the cycle `frames` make, at the import in the last one that leads back to the first."""
        modules = [f.module for i, f in enumerate(frames) if i == 0 or f.module != frames[i - 1].module]
        shown = modules if len(modules) <= 8 else [*modules[:4], "...", *modules[-3:]]
        count = f" ({len(modules)} modules)" if len(modules) > 8 else ""
        closing = frames[-1]
        error = "AttributeError" if isinstance(closing.edge, ir.AssignBinding) else "ImportError"
        notes = tuple(
            Note(self.path_of(f.module), f.edge.span, f"'{name}' is imported from '{nxt.module}' here")
            for f, nxt in itertools.pairwise(frames)
            if f.edge is not None and f.module != nxt.module
        )[:5]
        cycle = (
            f"module '{modules[0]}' imports '{name}' from itself"
            if len(modules) == 1
            else f"modules import '{name}' from each other: {' -> '.join([*shown, modules[0]])}{count}"
        )
        self.report(
            self.path_of(closing.module),
            closing.edge.span if closing.edge is not None else None,
            "import-cycle",
            f"{cycle}, so Python fails here with {error} (a partially initialized module)",
            f"import '{name}' from the module that defines it",
            notes,
        )
        return Undefined(name, reported=True)

    def _star_member(self, target: str, name: str) -> _Step:
        """What `from target import *` binds to `name`, if anything."""
        ref = self.module_ref(target)
        if ref.origin == "external":
            return Undefined(name)  # flashc cannot see what an outside module exports; assume not this
        if ref.origin == "sdk":
            return SdkRef(name) if name in SDK_EXPORTS else Undefined(name)
        exports = self._star_exports(target) if target in self._by_module else None
        if (exports is not None and name not in exports) or (exports is None and name.startswith("_")):
            return Undefined(name)
        return (yield self._member(ref, name, via_star=True))

    def _binding(self, module: str, b: ir.Binding) -> _Step:
        if isinstance(b, ir.ImportBinding):
            if b.attr is None:
                return self.module_ref(b.module)
            base = self.absolute(module, b.level, b.module)
            if base is None:
                return Undefined(b.attr)
            return (yield self._member(self.module_ref(base), b.attr, via_star=False))
        if isinstance(b, ir.AssignBinding):
            if isinstance(b.value, (ir.Name, ir.Attr)) and not b.conditional:
                # `alias = something`: the alias means what its right-hand side meant there.
                target = yield self._expr(module, b.value, b.index, None)
                if isinstance(target, (SdkRef, ModuleRef, DefRef, ExternalRef, ValueRef)):
                    return target
                if isinstance(target, Undefined) and target.reported:
                    return target
            return ValueRef(module, b)
        return DefRef(module, b.name, b.kind)

    def _member(self, base: Symbol, attr: str, via_star: bool) -> _Step:
        if isinstance(base, ModuleRef):
            qualified = f"{base.name}.{attr}"
            if base.origin == "sdk":
                return SdkRef(attr) if attr in SDK_EXPORTS else ModuleRef(qualified, "sdk")
            if base.origin == "external":
                return ExternalRef(qualified)
            if base.name in self._by_module and (attr in self._table(base.name) or self._has_star(base.name)):
                sym = yield self._name(base.name, attr, None, via_star)
                if not isinstance(sym, Undefined) or sym.reported:
                    return sym
            if qualified in self._by_module or qualified in self._packages:
                return ModuleRef(qualified, "project")
            return Undefined(qualified)
        if isinstance(base, ExternalRef):
            return ExternalRef(f"{base.qualname}.{attr}")
        if isinstance(base, Undefined) and base.reported:
            return base
        return Undefined(attr)

    def _has_star(self, module: str) -> bool:
        summary = self.summary(module)
        return bool(summary and summary.star_imports)

    def _expr(self, module: str, expr: ir.Expr, position: int | None, scope: ir.Scope | None) -> _Step:
        if isinstance(expr, ir.Name):
            if scope is not None:
                for imp in reversed(scope.imports):
                    if imp.name == expr.id:
                        return (yield self._binding(module, imp))
                if expr.id in scope.locals:
                    return LocalRef(expr.id)
            return (yield self._name(module, expr.id, position, via_star=False))
        if isinstance(expr, ir.Attr):
            base = yield self._expr(module, expr.base, position, scope)
            return (yield self._member(base, expr.attr, via_star=False))
        return Undefined("")

    def broken_reexport(self, module: str, name: str) -> tuple[str, ir.ImportBinding, str, str] | None:
        """Where the chain of `from x import name` that `module` re-exports `name` through breaks.

        Returns (module of the import, the import, its module, the name it imports) for the import
        whose module binds no such name; None when `module` does not import `name` that way, or
        the chain takes another turn (an `import *`, an assignment) before it breaks.
        """
        visited = set()
        while (module, name) not in visited and not self._has_star(module):
            visited.add((module, name))
            b = self.binding_at(module, name, None)
            if not isinstance(b, ir.ImportBinding) or b.attr is None:
                return None
            target = self.absolute(module, b.level, b.module)
            if target is None or self.summary(target) is None:
                return None
            if not self._table(target).get(b.attr) and not self._has_star(target):
                return module, b, target, b.attr
            module, name = target, b.attr
        return None

    def path_of(self, module: str) -> str:
        return self._by_module[module].path


def _packages_above(modules: Iterable[str]) -> set[str]:
    """Every package some module lies in: `a` and `a.b` for `a.b.c`, each found once however deep."""
    packages: set[str] = set()
    for module in modules:
        end = module.rfind(".")
        while end > 0 and module[:end] not in packages:
            packages.add(module[:end])
            end = module.rfind(".", 0, end)
    return packages


def module_key(f: ModuleFile) -> str:
    """The name a file links under: its module path, or a private key when it has none."""
    return f.module or f"<{f.path}>"


def dotted(expr: ir.Expr) -> str | None:
    """`a.b.c` for a name or attribute chain, None for anything else."""
    if isinstance(expr, ir.Name):
        return expr.id
    if isinstance(expr, ir.Attr):
        base = dotted(expr.base)
        return f"{base}.{expr.attr}" if base else None
    return None
