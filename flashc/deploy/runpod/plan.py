"""Decide, before acting, what a deploy to Runpod does: a pure function of what the code wants and
what the server has.

    {name: Desired} + ServerState + archive sha256 --plan--> Plan (upload?, volumes, one Step per endpoint)

The server is the only state: the app's environment lists its endpoints by name, and the active
build's manifest holds what the last finished deploy recorded for each (endpoint and template ids,
kind, config and env hashes, the fields it sent). So a deploy from CI, a colleague's machine or a
fresh clone decides the same, and a deploy interrupted anywhere converges when run again: an
endpoint the server has but no finished deploy recorded is updated in place (never created twice),
a second endpoint of one name is deleted, and one whose name left the code is deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from .payload import Desired, VolumeSpec

__all__ = ["Plan", "Recorded", "RemoteEndpoint", "ServerState", "Step", "plan", "plan_undeploy"]

Action = Literal["create", "update", "update-env", "replace", "keep", "delete"]


@dataclasses.dataclass(frozen=True)
class RemoteEndpoint:
    id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What the last finished deploy did for one resource."""

    endpoint_id: str
    template_id: str | None
    kind: str
    config_hash: str
    env_hash: str
    endpoint: Mapping[str, Any]  # the EndpointInput fields it sent
    template: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Recorded | None:
        """A record read back from the server; None for anything else (another tool's manifest)."""
        try:
            return cls(
                endpoint_id=str(data["endpoint_id"]),
                template_id=None if data.get("template_id") is None else str(data["template_id"]),
                kind=str(data["kind"]),
                config_hash=str(data["config_hash"]),
                env_hash=str(data["env_hash"]),
                endpoint=dict(data.get("endpoint") or {}),
                template=dict(data.get("template") or {}),
            )
        except (KeyError, TypeError, AttributeError):
            return None


@dataclasses.dataclass(frozen=True)
class ServerState:
    app_id: str | None
    environment_id: str | None
    active_build_id: str | None
    endpoints: tuple[RemoteEndpoint, ...]
    recorded: Mapping[str, Recorded]
    archive_sha256: str | None  # of the active build, as the last finished deploy recorded it
    volumes: Mapping[tuple[str, str], str]  # (name, data center) -> id


@dataclasses.dataclass(frozen=True)
class Step:
    action: Action
    name: str
    endpoint_id: str | None = None  # the endpoint acted on (update, delete) or replaced
    template_id: str | None = None
    changed: tuple[str, ...] = ()  # the fields an update changes
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Plan:
    create_app: bool
    create_environment: bool
    upload: bool
    volumes: tuple[VolumeSpec, ...]  # to create
    steps: tuple[Step, ...]

    @property
    def changes_nothing(self) -> bool:
        """No upload, no mutation of any kind."""
        return not (self.create_app or self.create_environment or self.upload or self.volumes) and all(
            s.action == "keep" for s in self.steps
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "create_app": self.create_app,
            "create_environment": self.create_environment,
            "upload": self.upload,
            "volumes": [dataclasses.asdict(v) for v in self.volumes],
            "steps": [dataclasses.asdict(s) for s in self.steps],
        }


def _changed(before: Recorded, want: Desired) -> tuple[str, ...]:
    fields = [
        k for k in sorted(set(before.endpoint) | set(want.endpoint)) if before.endpoint.get(k) != want.endpoint.get(k)
    ]
    fields += [
        f"template.{k}"
        for k in sorted(set(before.template) | set(want.template))
        if before.template.get(k) != want.template.get(k)
    ]
    if before.env_hash != want.env_hash:
        fields.append("env")
    return tuple(fields)


def plan(want: Mapping[str, Desired], state: ServerState, archive_sha256: str) -> Plan:
    """What to do so that the server runs `want`, from `state`."""
    steps: list[Step] = []
    by_name: dict[str, list[RemoteEndpoint]] = {}
    for remote in sorted(state.endpoints, key=lambda e: e.id):
        by_name.setdefault(remote.name, []).append(remote)
    for name in sorted(want):
        wanted = want[name]
        remotes = by_name.get(name, [])
        record = state.recorded.get(name)
        if not remotes:
            steps.append(Step("create", name, reason="new"))
            continue
        primary = next((r for r in remotes if record and r.id == record.endpoint_id), remotes[0])
        steps += [Step("delete", name, r.id, reason="a second endpoint of this name") for r in remotes if r != primary]
        if record is None or record.endpoint_id != primary.id:
            steps.append(
                Step(
                    "update",
                    name,
                    primary.id,
                    record.template_id if record and record.endpoint_id == primary.id else None,
                    (*sorted(wanted.endpoint), "env"),
                    "on the server, but no finished deploy recorded it",
                )
            )
        elif record.kind != wanted.kind:
            steps.append(
                Step("replace", name, primary.id, reason=f"{record.kind} -> {wanted.kind} cannot change in place")
            )
        elif record.config_hash != wanted.config_hash:
            steps.append(Step("update", name, primary.id, record.template_id, _changed(record, wanted), "config"))
        elif record.env_hash != wanted.env_hash:
            steps.append(Step("update-env", name, primary.id, record.template_id, ("env",), "env or code"))
        else:
            steps.append(Step("keep", name, primary.id, record.template_id))
    for name in sorted(set(by_name) - set(want)):
        steps += [Step("delete", name, r.id, reason="no longer in the code") for r in by_name[name]]
    needed = {v for d in want.values() for v in d.volumes}
    volumes = tuple(sorted((v for v in needed if (v.name, v.data_center) not in state.volumes), key=_volume_key))
    return Plan(
        create_app=state.app_id is None,
        create_environment=state.environment_id is None,
        upload=state.archive_sha256 != archive_sha256,
        volumes=volumes,
        steps=tuple(steps),
    )


def plan_undeploy(state: ServerState, names: set[str] | None = None) -> Plan:
    """Delete the environment's endpoints (those named in `names`, or all); volumes stay."""
    steps = tuple(
        Step("delete", e.name, e.id, reason="undeploy")
        for e in sorted(state.endpoints, key=lambda e: (e.name, e.id))
        if names is None or e.name in names
    )
    return Plan(False, False, False, (), steps)


def _volume_key(v: VolumeSpec) -> tuple[str, str]:
    return (v.name, v.data_center)
