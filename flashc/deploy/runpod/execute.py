"""Read the server's state, then carry out a plan against Runpod's API.

    RunpodApi + app and environment names --read_state--> ServerState
    Plan + {name: Desired} + RunpodApi --execute--> Outcome per resource, and the record on the server

A mutation whose answer is lost may still have been applied, so none is blindly sent twice: after a
failed create the environment is read again and an endpoint of that name, if there is one now, is
taken over instead; a failed delete is checked with `endpoint_exists`. What the deploy did is
recorded at the end in the active build's manifest (`flashc_deployment`), which is where the next
deploy, from any machine, reads it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .api import RunpodApi, RunpodError
from .payload import Desired
from .plan import Plan, Recorded, RemoteEndpoint, ServerState, Step
from .upload import put_archive

__all__ = ["ENDPOINTS_ENV", "RECORD_KEY", "Outcome", "endpoint_url", "execute", "read_state"]

RECORD_KEY = "flashc_deployment"
ENDPOINTS_ENV = "FLASHC_ENDPOINTS"  # the contract of flashc_runtime.stock
QUEUE_BASE = "https://api.runpod.ai/v2"


@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    action: str  # created, updated, env updated, replaced, unchanged, deleted
    endpoint_id: str
    url: str
    kind: str


def endpoint_url(endpoint_id: str, kind: str, queue_base: str = QUEUE_BASE) -> str:
    """Where an endpoint answers: `/v2/<id>` for queue-based, its own host for load-balanced."""
    return f"https://{endpoint_id}.api.runpod.ai" if kind.endswith("-lb") else f"{queue_base}/{endpoint_id}"


def read_state(api: RunpodApi, app_name: str, env_name: str, *, volumes: bool) -> ServerState:
    """What the server has of this app and environment; `volumes` also lists the network volumes."""
    known_volumes: dict[tuple[str, str], str] = {}
    if volumes:
        for v in api.volumes():
            if v.get("name") and v.get("id"):
                known_volumes[(str(v["name"]), str(v.get("dataCenterId") or ""))] = str(v["id"])
    app = api.app_by_name(app_name)
    if app is None:
        return ServerState(None, None, None, (), {}, None, known_volumes)
    env = api.environment_by_name(app.id, env_name)
    if env is None:
        return ServerState(app.id, None, None, (), {}, None, known_volumes)
    recorded: dict[str, Recorded] = {}
    sha = None
    if env.active_build_id:
        build = api.build(env.active_build_id)
        record = (build.manifest or {}).get(RECORD_KEY) if build is not None else None
        if isinstance(record, Mapping):
            sha = record.get("archive_sha256") if isinstance(record.get("archive_sha256"), str) else None
            for name, data in (record.get("resources") or {}).items():
                parsed = Recorded.from_json(data)
                if parsed is not None:
                    recorded[str(name)] = parsed
    endpoints = tuple(RemoteEndpoint(e.id, e.name) for e in env.endpoints)
    return ServerState(app.id, env.id, env.active_build_id, endpoints, recorded, sha, known_volumes)


@dataclasses.dataclass
class _Run:
    api: RunpodApi
    app_name: str
    env_name: str
    env_id: str
    volumes: dict[tuple[str, str], str]
    say: Callable[[str], None]

    def _again(self) -> dict[str, list[str]]:
        """The environment's endpoints by name, read again (after a mutation whose answer was lost)."""
        env = self.api.environment(self.env_id)
        found: dict[str, list[str]] = {}
        for e in env.endpoints if env is not None else ():
            found.setdefault(e.name, []).append(e.id)
        return found

    def _template(self, want: Desired, env: Mapping[str, str]) -> dict[str, Any]:
        return {
            **want.template,
            "name": f"flashc-{self.app_name}-{self.env_name}-{want.name}",
            "env": [{"key": k, "value": v} for k, v in sorted(env.items())],
        }

    def _endpoint(self, want: Desired) -> dict[str, Any]:
        payload = {**want.endpoint, "flashEnvironmentId": self.env_id}
        ids = [self.volumes[(v.name, v.data_center)] for v in want.volumes if (v.name, v.data_center) in self.volumes]
        if len(ids) == 1:
            payload["networkVolumeId"] = ids[0]
        elif len(ids) > 1:
            payload["networkVolumeIds"] = [{"networkVolumeId": i} for i in ids]
        return payload

    def create(self, want: Desired, env: Mapping[str, str]) -> tuple[str, str | None]:
        payload = {**self._endpoint(want), "template": self._template(want, env)}
        try:
            answer = self.api.save_endpoint(payload)
        except RunpodError as exc:
            if not exc.retryable:
                raise
            # Applied or not? An endpoint of this name now in the environment means applied.
            made = self._again().get(want.name)
            if not made:
                answer = self.api.save_endpoint(payload)
            else:
                return self.update(want, env, made[0], None)
        return str(answer["id"]), _opt(answer.get("templateId"))

    def update(
        self, want: Desired, env: Mapping[str, str], endpoint_id: str, template_id: str | None
    ) -> tuple[str, str | None]:
        payload = {**self._endpoint(want), "id": endpoint_id}
        if template_id:
            payload["templateId"] = template_id
        answer = self.api.save_endpoint(payload)  # the same input twice is the same endpoint: safe to re-run
        template_id = _opt(answer.get("templateId")) or template_id
        if template_id:
            self._save_template(template_id, want, env)
        return endpoint_id, template_id

    def _save_template(self, template_id: str, want: Desired, env: Mapping[str, str]) -> None:
        """Replace a template's settings and env (SaveTemplateInput takes fewer fields than a new one)."""
        full = self._template(want, env)
        kept = {k: full[k] for k in ("name", "imageName", "containerDiskInGb", "dockerArgs", "env")}
        self.api.save_template({"id": template_id, **kept, "volumeInGb": 0})

    def update_env(
        self, want: Desired, env: Mapping[str, str], endpoint_id: str, template_id: str | None
    ) -> tuple[str, str | None]:
        if not template_id:
            return self.update(want, env, endpoint_id, None)
        self._save_template(template_id, want, env)
        return endpoint_id, template_id

    def delete(self, endpoint_id: str) -> None:
        try:
            self.api.delete_endpoint(endpoint_id)
        except RunpodError as exc:
            if not exc.retryable or self.api.endpoint_exists(endpoint_id):
                raise


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def execute(
    api: RunpodApi,
    plan: Plan,
    want: Mapping[str, Desired],
    envs: Mapping[str, Mapping[str, str]],
    state: ServerState,
    *,
    app_name: str,
    env_name: str,
    archive: Path,
    archive_sha256: str,
    manifest: Mapping[str, Any],
    say: Callable[[str], None] = lambda line: None,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Outcome, ...]:
    """Carry out `plan`; `envs` holds each resource's endpoint env, filled in."""
    app_id = state.app_id or api.create_app(app_name).id
    env_id = state.environment_id or api.create_environment(app_id, env_name).id
    build_id = state.active_build_id
    if plan.upload:
        say(f"uploading the archive ({archive.stat().st_size / 1e6:.1f} MB)")
        size = archive.stat().st_size
        key = put_archive(
            api,
            lambda: api.prepare_upload(app_id, size),
            archive,
            sha256=archive_sha256,
            progress=progress,
            sleep=sleep,
        )
        build = api.finalize_upload(app_id, key, dict(manifest))
        api.deploy_build(env_id, build.id)
        build_id = build.id
    volumes = dict(state.volumes)
    for v in plan.volumes:
        made = api.create_volume(v.name, v.size, v.data_center)
        volumes[(v.name, v.data_center)] = str(made["id"])
    run = _Run(api, app_name, env_name, env_id, volumes, say)
    outcomes: list[Outcome] = []
    records: dict[str, Recorded] = {}
    # Where each resource is served, for the resources that call others (FLASHC_ENDPOINTS): known
    # for those kept or updated, learnt for those created. Callers go last, so they see the rest.
    ids = {s.name: s.endpoint_id for s in plan.steps if s.action in ("keep", "update", "update-env") and s.endpoint_id}
    sent: dict[str, str] = {}

    def others(name: str) -> str:
        return json.dumps({n: i for n, i in sorted(ids.items()) if n != name}, separators=(",", ":"))

    def env_of(name: str) -> dict[str, str]:
        env = dict(envs[name])
        if want[name].calls_others:
            env[ENDPOINTS_ENV] = sent[name] = others(name)
        return env

    order = sorted(plan.steps, key=lambda s: s.action != "delete" and s.name in want and want[s.name].calls_others)
    for step in order:
        if step.action == "delete":
            assert step.endpoint_id is not None
            run.delete(step.endpoint_id)
            if step.name not in want:
                outcomes.append(Outcome(step.name, "deleted", step.endpoint_id, "", ""))
            continue
        wanted = want[step.name]
        endpoint_id, template_id, action = _apply(run, step, wanted, env_of(step.name))
        ids[step.name] = endpoint_id
        records[step.name] = Recorded(
            endpoint_id, template_id, wanted.kind, wanted.config_hash, wanted.env_hash, wanted.endpoint, wanted.template
        )
        outcomes.append(Outcome(step.name, action, endpoint_id, endpoint_url(endpoint_id, wanted.kind), wanted.kind))
    # A caller kept as it was, or sent before a resource it calls got its id, learns the ids now.
    renewed = any(s.action in ("create", "replace") for s in plan.steps)
    for name, done in records.items():
        final = others(name)
        stale = sent.get(name, final if not renewed else "") != final
        if want[name].calls_others and stale and done.template_id:
            run._save_template(done.template_id, want[name], env_of(name))
    if not plan.changes_nothing and build_id is not None:
        record = {
            "archive_sha256": archive_sha256,
            "resources": {name: r.to_json() for name, r in sorted(records.items())},
        }
        api.update_build_manifest(build_id, {**manifest, RECORD_KEY: record})
    return tuple(outcomes)


def _apply(run: _Run, step: Step, want: Desired, env: Mapping[str, str]) -> tuple[str, str | None, str]:
    if step.action == "create":
        return (*run.create(want, env), "created")
    assert step.endpoint_id is not None
    if step.action == "update":
        return (*run.update(want, env, step.endpoint_id, step.template_id), "updated")
    if step.action == "update-env":
        return (*run.update_env(want, env, step.endpoint_id, step.template_id), "env updated")
    if step.action == "replace":
        run.delete(step.endpoint_id)
        return (*run.create(want, env), "replaced")
    return step.endpoint_id, step.template_id, "unchanged"
