"""The one schema of resource configs and @remote options, shared by the runtime and the compiler.

Each config is a frozen dataclass whose fields *are* the schema: name, type and default. User code
builds them at run time (`LiveServerless(name="x")`); flashc's analyzer evaluates the same call
from source, without running it, and checks the arguments with `validate_params`, so both report
the same problems in the same words. Only the standard library is imported here: the runtime must
start fast on a worker.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "ParamProblem",
    "SchemaModel",
    "config_hash",
    "describe_type",
    "suggest",
    "validate_params",
]

_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class ParamProblem:
    """One thing wrong with the arguments of a config or decorator.

    `param` names the argument at fault; None means the call as a whole (a required argument
    is missing, say). `hint` says what to write instead, when there is something to say.
    """

    param: str | None
    message: str
    hint: str | None = None


class ConfigError(TypeError):
    """Raised at run time when a config or @remote is given arguments its schema refuses."""

    def __init__(self, owner: str, problems: Sequence[ParamProblem]) -> None:
        self.owner = owner
        self.problems = tuple(problems)
        lines = [f"invalid arguments to {owner}:"]
        for problem in self.problems:
            line = f"  {problem.message}"
            if problem.hint:
                line += f" ({problem.hint})"
            lines.append(line)
        super().__init__("\n".join(lines))


class SchemaModel:
    """Base of every schema class: built from keyword arguments only, validated, then read-only.

    Subclasses are `@dataclasses.dataclass(frozen=True, init=False, kw_only=True, eq=False)`; their
    fields are the parameters. `_extra_checks` adds rules that span several fields. Two models are
    equal when they have the same type and the same values; their hash follows their JSON form,
    so configs holding lists can still be dict keys.
    """

    display_name: ClassVar[str | None] = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        owner = type(self).__name__
        if args:
            raise ConfigError(
                owner,
                [ParamProblem(None, f"{owner} takes keyword arguments only", "write name=value")],
            )
        values, problems = validate_params(type(self), kwargs)
        if problems:
            raise ConfigError(owner, problems)
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "given", frozenset(kwargs))

    given: ClassVar[frozenset[str]]  # per instance, in fact: the parameters set explicitly

    @classmethod
    def _normalise(cls, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as the schema reads them; by default, as given."""
        return dict(kwargs)

    @classmethod
    def _extra_checks(cls, values: Mapping[str, Any], given: frozenset[str]) -> list[ParamProblem]:
        return []

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps([type(self).__name__, self.to_dict()], sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        """The full config, defaults included, as JSON-compatible data (enums become their values)."""
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, SchemaModel):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


def config_hash(kind: str, config: Mapping[str, Any], *, exclude: frozenset[str] = frozenset({"env"})) -> str:
    """sha256 of a config's canonical JSON, leaving out `exclude` (env changes must not cause drift)."""
    kept = {k: v for k, v in config.items() if k not in exclude}
    canonical = json.dumps({"type": kind, "config": kept}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def suggest(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate a misspelt `name` most likely meant, if any is close."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def validate_params(cls: type[SchemaModel], kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], list[ParamProblem]]:
    """Check keyword arguments against `cls`'s fields; return the full values and every problem.

    Values are normalised: tuples become lists, enum values become enum members, defaults are
    filled in. The caller decides whether problems raise (the runtime) or become diagnostics
    (the analyzer).
    """
    owner = cls.display_name or cls.__name__
    kwargs = cls._normalise(kwargs)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _type_hints(cls)
    problems: list[ParamProblem] = []
    values: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in fields:
            guess = suggest(key, list(fields))
            problems.append(
                ParamProblem(
                    key,
                    f"{owner} has no parameter '{key}'",
                    f"did you mean '{guess}'?" if guess else f"valid parameters: {', '.join(fields)}",
                )
            )
            continue
        ok, normalised = _coerce(value, hints[key])
        if not ok:
            problems.append(
                ParamProblem(
                    key,
                    f"parameter '{key}' of {owner} expects {describe_type(hints[key])}, got {_describe_value(value)}",
                    _type_hint(key, value, hints[key]),
                )
            )
            continue
        values[key] = normalised
    for name, f in fields.items():
        if name in values or name in kwargs:
            continue
        if f.default is not _MISSING:
            values[name] = f.default
        elif f.default_factory is not _MISSING:
            values[name] = f.default_factory()
        else:
            problems.append(ParamProblem(None, f"{owner} requires '{name}'", f"add {name}=..."))
    if not problems:
        problems.extend(cls._extra_checks(values, frozenset(kwargs)))
    return values, problems


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    hints = _HINT_CACHE.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINT_CACHE[cls] = hints
    return hints


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether `value` fits type `tp`, and its normalised form."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            ok, out = _coerce(value, option)
            if ok:
                return True, out
        return False, None
    if tp is type(None):
        return value is None, None
    if tp is Any:
        return True, value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False, None
        items = []
        for item in value:
            ok, out = _coerce(item, item_tp)
            if not ok:
                return False, None
            items.append(out)
        return True, items
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            return False, None
        result = {}
        for k, v in value.items():
            ok_k, out_k = _coerce(k, key_tp)
            ok_v, out_v = _coerce(v, value_tp)
            if not (ok_k and ok_v):
                return False, None
            result[out_k] = out_v
        return True, result
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return True, value
        try:
            return True, tp(value)
        except ValueError:
            pass
        if isinstance(value, str) and value in tp.__members__:
            return True, tp[value]  # the member's name, as in GpuGroup.AMPERE_80
        return False, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if isinstance(tp, type):
        return isinstance(value, tp), value
    raise TypeError(f"unsupported schema type {tp!r}")  # a bug in this module, not user input


def describe_type(tp: Any) -> str:
    """A type as a user reads it: `int`, `list of GpuGroup`, `str or None`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(option) for option in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if origin is list:
        return f"list of {describe_type(typing.get_args(tp)[0])}"
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        return f"dict of {describe_type(key_tp)} to {describe_type(value_tp)}"
    if tp is Any:
        return "any value"
    return getattr(tp, "__name__", repr(tp))


def _type_hint(key: str, value: Any, tp: Any) -> str | None:
    """A fix for common slips: one item where a list is expected, a string that is no enum member."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    for option in options:
        item_tp = typing.get_args(option)[0] if typing.get_origin(option) is list else None
        if item_tp is not None and _coerce(value, item_tp)[0]:
            return f"wrap it in a list: {key}=[{_show(value)}]"
        enum_tp = item_tp if item_tp is not None else option
        if isinstance(enum_tp, type) and issubclass(enum_tp, enum.Enum):
            items = value if item_tp is not None and isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, str) and not _coerce(item, enum_tp)[0]:
                    names = [m.name for m in enum_tp]
                    guess = suggest(item, names + [str(m.value) for m in enum_tp])
                    if guess is not None and guess not in names:
                        guess = enum_tp(guess).name
                    if guess is not None:
                        return f"'{item}' is not a {enum_tp.__name__}; did you mean {enum_tp.__name__}.{guess}?"
                    return f"'{item}' is not a {enum_tp.__name__}; use one of {', '.join(names)}"
    return None


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return repr(value)


def _describe_value(value: Any) -> str:
    shown = _show(value)
    if isinstance(value, enum.Enum):
        return shown
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{type(value).__name__} {shown}"
