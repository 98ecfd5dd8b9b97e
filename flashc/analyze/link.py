"""Link module summaries: resolve names across the modules of a project, by scope.

A module-level name means its last binding above the line that uses it; an import follows the
imported module (relative imports, package `__init__` re-exports and `import *` included); a
name imported from `tetra_rp`, `runpod_flash` or `flashc_runtime` is an SDK symbol. Inside a
function body, the body's own imports and local names come first. The Linker also collects the
diagnostics of the whole analysis, each reported once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

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

# Steps (about three per module) one name's resolution may take: a re-export chain of 95 modules
# or aliases resolves, and the recursion stays far from Python's default limit of 1,000 frames.
_MAX_RESOLVE_DEPTH = 300


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


SummaryLoader = Callable[[str], ir.ModuleSummary]


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
        self._final: dict[tuple[str, str], Symbol] = {}
        self._resolving: set[tuple[str, str]] = set()
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

    def _star_member(self, target: str, name: str, depth: int) -> Symbol:
        """What `from target import *` binds to `name`, if anything."""
        ref = self.module_ref(target)
        if ref.origin == "external":
            return Undefined(name)  # flashc cannot see what an outside module exports; assume not this
        if ref.origin == "sdk":
            return SdkRef(name) if name in SDK_EXPORTS else Undefined(name)
        exports = self._star_exports(target) if target in self._by_module else None
        if (exports is not None and name not in exports) or (exports is None and name.startswith("_")):
            return Undefined(name)
        return self.member(ref, name, depth)

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
        """What `name` means in `module` just before statement `position` (None: after the whole module).

        Final bindings (position None) are memoised, and a name already being resolved (a cycle of
        `import *`) resolves to Undefined, so resolution is linear in the size of the import graph.
        """
        key = (module, name)
        if position is None and key in self._final:
            return self._final[key]
        if _depth > _MAX_RESOLVE_DEPTH or key in self._resolving:
            return Undefined(name)
        self._resolving.add(key)
        try:
            sym = self._resolve_name(module, name, position, _depth)
        finally:
            self._resolving.discard(key)
        if position is None:
            self._final[key] = sym
        return sym

    def _resolve_name(self, module: str, name: str, position: int | None, depth: int) -> Symbol:
        last = self.binding_at(module, name, position)
        last_index = last.index if last else -1
        summary = self.summary(module)
        for star in reversed(summary.star_imports if summary else ()):
            if last_index < star.index and (position is None or star.index < position):
                target = self.absolute(module, star.level, star.module)
                if target is None:
                    continue
                sym = self._star_member(target, name, depth + 1)
                if not isinstance(sym, Undefined):
                    return sym
        if last is None:
            return Undefined(name)
        return self.binding_symbol(module, last, depth + 1)

    def binding_symbol(self, module: str, b: ir.Binding, _depth: int = 0) -> Symbol:
        if isinstance(b, ir.ImportBinding):
            if b.attr is None:
                return self.module_ref(b.module)
            base = self.absolute(module, b.level, b.module)
            if base is None:
                return Undefined(b.attr)
            return self.member(self.module_ref(base), b.attr, _depth + 1)
        if isinstance(b, ir.AssignBinding):
            if isinstance(b.value, (ir.Name, ir.Attr)) and not b.conditional:
                # `alias = something`: the alias means what its right-hand side meant there.
                target = self.resolve_expr(module, b.value, b.index, None, _depth + 1)
                if isinstance(target, (SdkRef, ModuleRef, DefRef, ExternalRef, ValueRef)):
                    return target
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

    def resolve_expr(
        self, module: str, expr: ir.Expr, position: int | None, scope: ir.Scope | None, _depth: int = 0
    ) -> Symbol:
        """Resolve a name or dotted attribute chain, honouring a function body's own bindings."""
        if isinstance(expr, ir.Name):
            if scope is not None:
                for imp in reversed(scope.imports):
                    if imp.name == expr.id:
                        return self.binding_symbol(module, imp, _depth + 1)
                if expr.id in scope.locals:
                    return LocalRef(expr.id)
            return self.resolve_name(module, expr.id, position, _depth + 1)
        if isinstance(expr, ir.Attr):
            return self.member(self.resolve_expr(module, expr.base, position, scope, _depth + 1), expr.attr, _depth + 1)
        return Undefined("")

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
