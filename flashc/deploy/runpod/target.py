"""The Runpod deploy target: the manifest's resources as Runpod Serverless endpoints.

    archive + manifest + settings --prepare--> Prepared (the desired endpoints, their env, the state, the plan)
    Prepared --apply--> Outcome per resource

`prepare` reads only (the server's state) and decides; `--dry-run` stops there. Each endpoint's env
is its resource's env with `${NAME}` references filled in from the shell and `.env`, then the
variables the worker reads (`FLASH_RESOURCE_NAME`, `FLASH_APP`, `FLASH_ENV`, `FLASH_ENDPOINT_TYPE`)
and the archive's sha256 (new code rolls the workers). The deployer's key is never put there: a
resource whose functions call other resources gets `RUNPOD_API_KEY` as a reference to the Runpod
secret `flashc_api_key` (`{{ RUNPOD_SECRET_flashc_api_key }}`), which the platform fills in, and
no other resource gets it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...entry import entry_problem
from ...errors import UsageError
from ...profiles import profile_named
from ..process import resources_env
from .api import RunpodApi
from .execute import Outcome, execute, read_state
from .payload import Desired, desired
from .plan import Plan, ServerState, plan, plan_undeploy

__all__ = ["SECRET_REFERENCE", "Prepared", "RunpodSettings", "apply", "prepare", "undeploy"]

SECRET_REFERENCE = "{{ RUNPOD_SECRET_flashc_api_key }}"


@dataclasses.dataclass(frozen=True)
class RunpodSettings:
    app: str
    environment: str
    variables: Mapping[str, str]  # for `${NAME}` in env: the shell, then .env


@dataclasses.dataclass(frozen=True)
class Prepared:
    want: Mapping[str, Desired]
    envs: Mapping[str, Mapping[str, str]]
    state: ServerState
    plan: Plan
    manifest: Mapping[str, Any]
    archive: Path
    sha256: str


def _manifest(archive: Path) -> dict[str, Any]:
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("flash_manifest.json")
            if member is None:
                raise KeyError("flash_manifest.json")
            data: dict[str, Any] = json.loads(member.read())
            return data
    except (OSError, KeyError, ValueError, tarfile.TarError) as exc:
        raise UsageError(
            f"'{archive}' holds no readable flash_manifest.json ({exc})", "build it with `flashc build`"
        ) from None


def _calls_others(manifest: Mapping[str, Any], resource: str) -> bool:
    if manifest["resources"][resource].get("app"):
        # The project's API app (a mothership's): which functions its routes call is not analyzed,
        # so it is told where every other resource is.
        return len(manifest["resources"]) > 1
    functions = dict(manifest.get("functions") or [])
    owner = {fid: f.get("resource") for fid, f in functions.items()}
    return any(
        owner.get(target) not in (None, resource)
        for fid, f in functions.items()
        if f.get("resource") == resource
        for target in f.get("calls") or ()
    )


def _envs(manifest: Mapping[str, Any], settings: RunpodSettings, sha256: str) -> dict[str, dict[str, str]]:
    envs = resources_env(manifest["resources"], settings.variables)
    for name, resource in manifest["resources"].items():
        env = envs[name]
        env.update(
            FLASH_RESOURCE_NAME=name,
            FLASH_APP=settings.app,
            FLASH_ENV=settings.environment,
            FLASHC_ARCHIVE_SHA256=sha256,
        )
        if resource["kind"] == "load_balanced":
            env["FLASH_ENDPOINT_TYPE"] = "lb"
        if _calls_others(manifest, name):
            env["RUNPOD_API_KEY"] = SECRET_REFERENCE
    return envs


def prepare(api: RunpodApi, archive: Path, sha256: str, settings: RunpodSettings) -> Prepared:
    """Read the server's state and decide what the deploy does; nothing is changed."""
    manifest = _manifest(archive)
    unloadable = {name: entry_problem(name) for name in manifest["resources"] if entry_problem(name)}
    if unloadable:
        bad = sorted(unloadable.items())
        raise UsageError(
            "Runpod's worker images cannot load "
            + "; ".join(f"resource {name!r}: its name cannot be part of a file name ({why})" for name, why in bad),
            "rename it with letters, digits, '-' and '_' (flashc's local endpoints serve it as it is)",
        )
    envs = _envs(manifest, settings, sha256)
    want = {
        name: desired(
            resource,
            envs[name],
            image=profile_named(
                resource.get("image", ""), resource["config"], _kind(resource), resource["compute"]
            ).image,
            calls_others=_calls_others(manifest, name),
        )
        for name, resource in manifest["resources"].items()
    }
    needs_volumes = any(d.volumes for d in want.values())
    state = read_state(api, settings.app, settings.environment, volumes=needs_volumes)
    return Prepared(want, envs, state, plan(want, state, sha256), manifest, archive, sha256)


def _kind(resource: Mapping[str, Any]) -> Any:
    return resource["kind"]


def apply(
    api: RunpodApi,
    prepared: Prepared,
    settings: RunpodSettings,
    *,
    say: Callable[[str], None] = lambda line: None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Outcome, ...]:
    return execute(
        api,
        prepared.plan,
        prepared.want,
        prepared.envs,
        prepared.state,
        app_name=settings.app,
        env_name=settings.environment,
        archive=prepared.archive,
        archive_sha256=prepared.sha256,
        manifest=prepared.manifest,
        say=say,
        progress=progress,
    )


def undeploy(api: RunpodApi, settings: RunpodSettings, names: set[str] | None = None) -> tuple[Outcome, ...]:
    """Delete this app environment's endpoints (all, or those named), found on the server."""
    state = read_state(api, settings.app, settings.environment, volumes=False)
    if names is not None:
        unknown = names - {e.name for e in state.endpoints}
        if unknown:
            raise UsageError(
                f"no endpoint named {', '.join(sorted(unknown))} in {settings.app}/{settings.environment}",
                "see `flashc status --target runpod`",
            )
    steps = plan_undeploy(state, names)
    done = []
    for step in steps.steps:
        assert step.endpoint_id is not None
        api.delete_endpoint(step.endpoint_id)
        done.append(Outcome(step.name, "deleted", step.endpoint_id, "", ""))
    return tuple(done)


# --- the command line's edge: the key, the API, and what to print ------------------------------------

TRANSPORT: Any = None  # tests put the fake's transport here


def open_api(root: Path, environ: Mapping[str, str]) -> RunpodApi:
    """The API client, with the key from the environment, `.env` or the Runpod CLI's config."""
    from .credentials import find_api_key

    key = find_api_key(root, environ)
    if key is None:
        raise UsageError(
            "no Runpod API key: RUNPOD_API_KEY is not set, and neither .env nor ~/.runpod/config.toml has one",
            "export RUNPOD_API_KEY=... (make one in Runpod's console, Settings > API Keys)",
        )
    base = environ.get("RUNPOD_API_BASE_URL", "https://api.runpod.io").rstrip("/")
    rest = environ.get("RUNPOD_REST_API_URL", "https://rest.runpod.io/v1")
    return RunpodApi(key, graphql_url=f"{base}/graphql", rest_url=rest, transport=TRANSPORT)


def example_request(manifest: Mapping[str, Any], name: str, url: str) -> str:
    """A curl command that calls the resource with an input that fits its function's parameters."""
    resource = manifest["resources"][name]
    functions = dict(manifest.get("functions") or [])
    mine = [functions[f] for f in resource["functions"] if f in functions]
    auth = '-H "Authorization: Bearer $RUNPOD_API_KEY" -H "Content-Type: application/json"'

    def args(function: Mapping[str, Any]) -> dict[str, str]:
        return {
            p["name"]: "..."
            for p in function.get("params") or []
            if p["kind"] not in ("var_positional", "var_keyword") and p["name"] not in ("self", "cls")
        }

    if resource["kind"] == "load_balanced":
        route = next((f for f in mine if f.get("route")), None)
        if route is None:
            return ""
        method, path = route["route"]["method"], route["route"]["path"]
        body = "" if method in ("GET", "DELETE") else f" -d '{json.dumps(args(route))}'"
        return f"curl -X {method} {url}{path} {auth}{body}"
    if len(mine) == 1 and mine[0].get("kind") == "function":
        job: dict[str, Any] = args(mine[0])
    elif mine:
        job = {"function": mine[0]["name"], "kwargs": args(mine[0])}
    else:
        job = {}
    return f"curl -X POST {url}/runsync {auth} -d '{json.dumps({'input': job})}'"


def write_deployment(root: Path, settings: RunpodSettings, outcomes: tuple[Outcome, ...]) -> None:
    """`.flash/deployment.json` for local code that calls the endpoints: their URLs, never the key
    (local code takes it from RUNPOD_API_KEY). The server stays the state; this is a convenience."""
    from ..._atomic import write_atomic

    endpoints = {
        o.name: {
            "url": o.url,
            "endpoint_id": o.endpoint_id,
            "kind": "load_balanced" if o.kind.endswith("-lb") else "queue",
        }
        for o in outcomes
        if o.action != "deleted"
    }
    data = {"target": "runpod", "app": settings.app, "environment": settings.environment, "endpoints": endpoints}
    (root / ".flash").mkdir(exist_ok=True)
    write_atomic(root / ".flash" / "deployment.json", (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
