"""The `@remote` decorator: marks a function or class to run on a resource's endpoint.

The decorator records its options on the object it wraps; flashc reads the same options from
source at build time. The original object stays reachable as `__wrapped__`, which is what a
worker's generated handler serves.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from .resources import ServerlessResource
from .schema import ConfigError, ParamProblem, SchemaModel, validate_params

__all__ = ["HTTP_METHODS", "RESERVED_PATHS", "RemoteCallError", "RemoteOptions", "remote", "route_key"]

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
RESERVED_PATHS = ("/ping", "/execute")

T = TypeVar("T")


class RemoteCallError(RuntimeError):
    """A call to a @remote function could not be completed: not deployed, or the job failed."""


@dataclasses.dataclass(frozen=True, init=False, kw_only=True, eq=False)
class RemoteOptions(SchemaModel):
    """Everything `@remote(...)` accepts."""

    display_name: ClassVar[str | None] = "@remote"

    resource_config: ServerlessResource
    dependencies: list[str] | None = None
    system_dependencies: list[str] | None = None
    accelerate_downloads: bool = True
    local: bool = False
    method: str | None = None
    path: str | None = None

    @classmethod
    def _extra_checks(cls, values: Mapping[str, Any], given: frozenset[str]) -> list[ParamProblem]:
        return route_problems(values["resource_config"], values["method"], values["path"])


def route_problems(config: ServerlessResource, method: str | None, path: str | None) -> list[ParamProblem]:
    """What is wrong with a function's route, given the kind of resource it runs on."""
    problems = []
    kind = type(config).__name__
    if not config.is_load_balanced:
        if method is not None or path is not None:
            problems.append(
                ParamProblem(
                    "method" if method is not None else "path",
                    f"HTTP routes (method=, path=) are only for load-balanced resources, "
                    f"but '{config.name}' is a {kind}",
                    "use LiveLoadBalancer or CpuLiveLoadBalancer for HTTP routes, or drop method= and path=",
                )
            )
        return problems
    if method is None or path is None:
        missing = " and ".join(k for k, v in (("method", method), ("path", path)) if v is None)
        problems.append(
            ParamProblem(
                None,
                f"functions on load-balanced resource '{config.name}' need {missing}",
                'add method="POST", path="/your/route"',
            )
        )
    if method is not None and method not in HTTP_METHODS:
        upper = method.upper()
        problems.append(
            ParamProblem(
                "method",
                f"method '{method}' is not one of {', '.join(HTTP_METHODS)}",
                f'write method="{upper}"' if upper in HTTP_METHODS else None,
            )
        )
    if path is not None:
        bad = next((c for c in path if c.isspace() or c in "?#"), None)
        if bad is not None or "//" in path:
            problems.append(
                ParamProblem(
                    "path",
                    f"path '{path}' contains {repr(bad) if bad else '//'}",
                    "a path is made of /segments of letters, digits, -, _, . and {parameters}",
                )
            )
        elif not path.startswith("/"):
            problems.append(ParamProblem("path", f"path '{path}' must start with '/'", f'write path="/{path}"'))
        elif route_key("GET", path)[1] in RESERVED_PATHS:
            problems.append(
                ParamProblem(
                    "path",
                    f"path '{path}' is reserved by the runtime",
                    f"reserved paths: {', '.join(RESERVED_PATHS)}; choose another path",
                )
            )
    return problems


def route_key(method: str, path: str) -> tuple[str, str]:
    """What makes two routes the same: `/items/` is `/items`, and `/a/{id}` is `/a/{name}`."""
    normalised = re.sub(r"\{[^}]*\}", "{}", path)
    if len(normalised) > 1:
        normalised = normalised.rstrip("/")
    return method, normalised


def remote(resource_config: ServerlessResource | None = None, **options: Any) -> Callable[[T], T]:
    """Mark a module-level function or class to run on `resource_config`'s endpoint."""
    kwargs = dict(options)
    if resource_config is not None:
        kwargs["resource_config"] = resource_config
    values, problems = validate_params(RemoteOptions, kwargs)
    if problems:
        raise ConfigError("@remote", problems)

    def decorate(obj: T) -> T:
        wrapper = _RemoteWrapper(obj, values)
        functools.update_wrapper(wrapper, obj)  # type: ignore[arg-type]
        return wrapper  # type: ignore[return-value]

    return decorate


class _RemoteWrapper:
    """Stands in for a @remote object in local code; the worker serves `__wrapped__` directly."""

    def __init__(self, obj: Any, options: Mapping[str, Any]) -> None:
        self.__wrapped__ = obj
        self.__remote_config__ = dict(options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A coroutine with the result, computed where the function is deployed (`await f(x)`); for a
        class, a handle whose methods are such calls on one instance there (`await Model(8).predict(x)`)."""
        if isinstance(self.__wrapped__, type):
            from .client import RemoteInstance

            return RemoteInstance(self.__wrapped__, self.__remote_config__, args, kwargs)
        from .client import call_remote

        return call_remote(self.__wrapped__, self.__remote_config__, args, kwargs)
