"""What an endpoint process gets: its environment variables, built like a Runpod worker's.

From the bottom up, later layers winning:

    base        PATH (the environment's bin, then the system's), HOME, LANG: what a process needs to run
    image       the worker image's own variables (TZ, DEBIAN_FRONTEND, HF_HOME, ...)
    Runpod      RUNPOD_ENDPOINT_ID, RUNPOD_POD_ID, FLASH_RESOURCE_NAME, ... as the real worker gets them
    resource    the config's template env, then its `env`, with `${NAME}` filled in at deploy time
    flashc      what the runtime itself needs (its key, its signing secret, where it is)

Nothing else comes from the deploying shell: a variable set there reaches a function only through
a `${NAME}` reference in its resource's env.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..envvars import substitute
from ..errors import UsageError

__all__ = ["SYSTEM_PATH", "Unset", "endpoint_environment", "resource_env"]

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # after the environment's bin


@dataclasses.dataclass(frozen=True, slots=True)
class Unset:
    """A `${NAME}` in a resource's env that neither the shell nor `.env` sets."""

    resource: str
    key: str
    variable: str


def resource_env(
    name: str, config: Mapping[str, Any], variables: Mapping[str, str]
) -> tuple[dict[str, str], list[Unset]]:
    """A resource's env as its endpoint gets it: the template's, then `env`, references filled in from
    `variables`; and every reference nothing sets."""
    pairs: list[tuple[str, str]] = []
    template = config.get("template")
    if isinstance(template, Mapping):
        pairs += [(str(e["key"]), str(e["value"])) for e in template.get("env") or () if isinstance(e, Mapping)]
    env = config.get("env")
    if isinstance(env, Mapping):
        pairs += [(str(k), str(v)) for k, v in env.items()]
    filled: dict[str, str] = {}
    unset: list[Unset] = []
    for key, value in dict(pairs).items():  # a key `env` sets again replaces the template's, unread
        filled[key], missing = substitute(value, variables)
        unset += [Unset(name, key, variable) for variable in missing]
    return filled, unset


def resources_env(
    resources: Mapping[str, Mapping[str, Any]], variables: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Each resource's env, references filled in from `variables`; UsageError naming every
    reference nothing sets (and where), before any endpoint is touched."""
    filled: dict[str, dict[str, str]] = {}
    unset: list[Unset] = []
    for name, resource in sorted(resources.items()):
        filled[name], missing = resource_env(name, resource["config"], variables)
        unset += missing
    if unset:
        users: dict[str, list[str]] = {}
        for u in unset:
            users.setdefault(u.variable, []).append(f"{u.key} of {u.resource}")
        raise UsageError(
            "env values refer to variables that neither the shell nor .env sets: "
            + ", ".join(f"{variable} (env {', '.join(where)})" for variable, where in users.items()),
            "set them in the project's .env file or in the shell that deploys (or give a default: ${NAME:-value})",
        )
    return filled


def endpoint_environment(
    *,
    env_bin: Path,
    home: str,
    image: Mapping[str, str],
    runpod: Mapping[str, str],
    resource: Mapping[str, str],
    flashc: Mapping[str, str],
) -> dict[str, str]:
    """The whole environment of an endpoint process, layered as the module says."""
    base = {"PATH": f"{env_bin}:{SYSTEM_PATH}", "HOME": home, "LANG": "C.UTF-8"}
    return {**base, **image, **runpod, **resource, **flashc}
