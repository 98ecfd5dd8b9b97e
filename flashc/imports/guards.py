"""When an import cannot fail on the worker: the guards around it (`try`/`except ImportError`,
`find_spec`, `TYPE_CHECKING`), the conditions that are false there (`sys.version_info`,
`sys.platform`), and `# flashc: ignore` lines."""

from __future__ import annotations

import ast
import importlib.util
import io
import operator
import re
import tokenize
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "IGNORE_WORD",
    "catches_import_error",
    "ignored_lines",
    "is_type_checking",
    "raises",
    "spec_guards",
    "spec_names",
    "static_truth",
    "suppresses_import_error",
]


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def catches_import_error(kind: ast.expr | None) -> bool:
    if kind is None:
        return True
    if isinstance(kind, ast.Tuple):
        return any(catches_import_error(k) for k in kind.elts)
    return _name_of(kind) in _IMPORT_ERRORS


def raises(body: list[ast.stmt]) -> bool:
    return any(isinstance(s, ast.Raise) for s in body)


def suppresses_import_error(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call)
        and _name_of(expr.func) == "suppress"
        and any(catches_import_error(arg) for arg in expr.args)
    )


def _name_of(expr: ast.expr) -> str | None:
    """`name` for `name` or `anything.name`."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def is_type_checking(test: ast.expr) -> bool:
    return _name_of(test) == "TYPE_CHECKING"


_FIND_SPEC = frozenset({"find_spec", "util.find_spec", "importlib.util.find_spec"})


def spec_guards(test: ast.expr, names: Mapping[str, tuple[bool, bool]]) -> tuple[bool, bool]:
    """Whether the body / the `else` of an `if` on `test` runs only when a `find_spec` found its module.

    `names`: the same answer for the names assigned such a test.
    """
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        body, orelse = spec_guards(test.operand, names)
        return orelse, body
    if isinstance(test, ast.BoolOp):
        branches = [spec_guards(value, names) for value in test.values]
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


def spec_names(tree: ast.Module) -> dict[str, tuple[bool, bool]]:
    """The names assigned a `find_spec` test (`HAS_X = find_spec("x") is not None`) and bound nowhere else."""
    bound: dict[str, int] = {}
    found: dict[str, tuple[bool, bool]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound[node.id] = bound.get(node.id, 0) + 1
        elif isinstance(node, ast.arg):
            bound[node.arg] = bound.get(node.arg, 0) + 1
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            guards = spec_guards(node.value, {})
            if guards != (False, False):
                found[node.targets[0].id] = guards
    return {name: guards for name, guards in found.items() if bound.get(name) == 1}


IGNORE_WORD = b"flashc:"


_IGNORE = re.compile(r"#\s*flashc:\s*ignore\b")


def ignored_lines(source: bytes) -> frozenset[int]:
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


def static_truth(test: ast.expr, target: tuple[int, int], module: str) -> bool | None:
    """Whether `test` is true on the worker (Linux, CPython `target`); None when it cannot be told."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = static_truth(test.operand, target, module)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        values = [static_truth(v, target, module) for v in test.values]
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
