"""The per-file summary the scanner extracts from a module, and its JSON form for the cache.

A summary holds only what analysis needs: module-level bindings in source order, the decorated
definitions, and the static expressions they use, each with its span. It depends on the file's
bytes alone (relative imports keep their level), so it is cached by content hash and linked
with other modules' summaries later without parsing again.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ..diagnostics import Span
from ..models import Method, Param

# --- expressions -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Const:
    value: str | int | float | bool | None
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Seq:
    """A list or tuple display."""

    kind: Literal["list", "tuple"]
    items: tuple[Expr, ...]
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class DictExpr:
    """A dict display; a None key marks a `**spread` entry."""

    keys: tuple[Expr | None, ...]
    values: tuple[Expr, ...]
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Attr:
    base: Expr
    attr: str
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Keyword:
    """A call argument: `name=value`, or `**value` when name is None; span covers the whole argument."""

    name: str | None
    value: Expr
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    func: Expr
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class BinOp:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class UnaryOp:
    op: str
    operand: Expr
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class FString:
    """An f-string whose parts are text or plain `{expr}` fields (no conversion, no format spec)."""

    parts: tuple[str | Expr, ...]
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Subscript:
    base: Expr
    index: Expr
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Opaque:
    """An expression that only running the program can evaluate; `what` names it for the user."""

    what: str
    span: Span


Expr = Const | Seq | DictExpr | Name | Attr | Call | BinOp | UnaryOp | FString | Subscript | Opaque

# --- bindings ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ImportBinding:
    """`import module [as name]` (attr None) or `from .module import attr [as name]` (level = dots)."""

    name: str
    index: int
    span: Span
    module: str
    attr: str | None
    level: int


@dataclasses.dataclass(frozen=True, slots=True)
class AssignBinding:
    """`name = value`; `conditional` when it stands in a branch that may not run (if, loop, match, except)."""

    name: str
    index: int
    span: Span
    value: Expr
    conditional: bool


@dataclasses.dataclass(frozen=True, slots=True)
class DefBinding:
    """A name bound by something that is not a static value: def, class, loop target, `with ... as`, `del`."""

    name: str
    index: int
    span: Span
    kind: Literal["function", "class", "other", "deleted"]


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation:
    """A module-level statement that changes a name's object in place: `X.append(...)`, `X[k] = v`."""

    name: str
    index: int
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class StarImport:
    index: int
    module: str
    level: int
    span: Span


Binding = ImportBinding | AssignBinding | DefBinding

# --- definitions -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CallSite:
    """A call made inside a function body, by a plain name or dotted attribute chain."""

    func: Expr
    span: Span


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """Names a function body binds itself: imports are resolvable, other local names shadow globals."""

    imports: tuple[ImportBinding, ...]
    locals: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class DecoratedDef:
    """A decorated module-level function or class."""

    name: str
    kind: Literal["function", "class"]
    index: int
    span: Span
    decorators: tuple[Expr, ...]
    is_async: bool
    is_generator: bool
    params: tuple[Param, ...]
    methods: tuple[Method, ...]
    init_params: tuple[Param, ...] | None
    has_bases: bool
    calls: tuple[CallSite, ...]
    scope: Scope


@dataclasses.dataclass(frozen=True, slots=True)
class MisplacedDef:
    """A decorated definition that cannot be deployed where it stands; decorators are checked at link time."""

    name: str
    qualname: str
    where: Literal["nested", "method", "main"]
    span: Span
    decorators: tuple[Expr, ...]
    scope: Scope


@dataclasses.dataclass(frozen=True, slots=True)
class Application:
    """`f(...)(arg)`: a decorator factory applied by hand, possibly to a lambda."""

    func: Expr
    arg_kind: Literal["lambda", "other"]
    span: Span
    scope: Scope


@dataclasses.dataclass(frozen=True, slots=True)
class ParseFailure:
    message: str
    line: int
    col: int


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleSummary:
    bindings: tuple[Binding, ...]
    star_imports: tuple[StarImport, ...]
    defs: tuple[DecoratedDef, ...]
    misplaced: tuple[MisplacedDef, ...]
    applications: tuple[Application, ...]
    mutations: tuple[Mutation, ...]
    parse_failure: ParseFailure | None = None


# --- JSON codec --------------------------------------------------------------------------

_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Span,
        Const,
        Seq,
        DictExpr,
        Name,
        Attr,
        Keyword,
        Call,
        BinOp,
        UnaryOp,
        FString,
        Subscript,
        Opaque,
        ImportBinding,
        AssignBinding,
        DefBinding,
        StarImport,
        Mutation,
        Param,
        Method,
        CallSite,
        Scope,
        DecoratedDef,
        MisplacedDef,
        Application,
        ParseFailure,
        ModuleSummary,
    )
}
_FIELDS = {name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in _TYPES.items()}


def encode(obj: Any) -> Any:
    """Turn a summary into JSON data: each node becomes `[type name, field values...]`."""
    if dataclasses.is_dataclass(obj):
        name = type(obj).__name__
        return [name, *(encode(getattr(obj, f)) for f in _FIELDS[name])]
    if isinstance(obj, tuple):
        return {"t": [encode(v) for v in obj]}
    return obj


def decode(data: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(data, list):
        name, *values = data
        return _TYPES[name](*(decode(v) for v in values))
    if isinstance(data, dict):
        return tuple(decode(v) for v in data["t"])
    return data
