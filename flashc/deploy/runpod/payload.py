"""What each resource of the manifest should be on Runpod: its endpoint's fields and its template.

    manifest resource + its filled-in env + the deployment's names --desired--> Desired

One table, `ENDPOINT_FIELDS`, maps the resource config (as `flash_manifest.json` holds it) to the
fields of Runpod's `EndpointInput`; every field the user can write reaches the endpoint
(`executionTimeoutMs`, `gpuCount`, `flashboot`, `locations`, the scaler, volumes...), including
those the Flash SDK's deploy drops. The template carries the image, the disk, the start settings
and the env. `config_hash` covers the endpoint's fields, `env_hash` the env (with the archive's
sha256, so new code rolls the workers): an env-only change updates the template only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ENDPOINT_FIELDS", "Desired", "VolumeSpec", "desired", "gpu_ids", "kind_of"]

# Which pool each named GPU model belongs to, as Runpod schedules them.
_POOLS: Mapping[str, Sequence[str]] = {
    "ADA_24": ("NVIDIA GeForce RTX 4090",),
    "ADA_32_PRO": ("NVIDIA GeForce RTX 5090",),
    "ADA_48_PRO": ("NVIDIA RTX 6000 Ada Generation",),
    "ADA_80_PRO": ("NVIDIA H100 80GB HBM3",),
    "AMPERE_16": (
        "NVIDIA RTX A4000",
        "NVIDIA RTX A4500",
        "NVIDIA RTX 4000 Ada Generation",
        "NVIDIA RTX 2000 Ada Generation",
    ),
    "AMPERE_24": ("NVIDIA RTX A5000", "NVIDIA L4", "NVIDIA GeForce RTX 3090"),
    "AMPERE_48": ("NVIDIA A40", "NVIDIA RTX A6000"),
    "AMPERE_80": ("NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB"),
    "HOPPER_141": ("NVIDIA H200",),
    "BLACKWELL_96": (
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
    ),
    "BLACKWELL_180": ("NVIDIA B200",),
}
_POOL_OF = {model: pool for pool, models in _POOLS.items() for model in models}
# The images Runpod's stock workers come in, by worker-image profile.
_GPU_DISK_GB = 64


def gpu_ids(gpus: Sequence[str]) -> str:
    """Runpod's `gpuIds`: pools, comma-separated; a named model selects its pool minus the pool's
    other models (`-NVIDIA L4`); `any` is every pool."""
    pools: set[str] = set()
    models: set[str] = set()
    for gpu in gpus:
        if gpu == "any":
            pools.update(_POOLS)
        elif gpu in _POOLS:
            pools.add(gpu)
        elif gpu in _POOL_OF:
            models.add(gpu)
    parts = set(pools)
    for model in models:
        pool = _POOL_OF[model]
        if pool not in pools:
            parts.add(pool)
            parts.update(f"-{other}" for other in _POOLS[pool] if other not in models)
    return ",".join(sorted(parts, key=lambda p: (p.startswith("-"), p.lower())))


def kind_of(resource: Mapping[str, Any]) -> str:
    """What cannot change in place: GPU or CPU, queue or load-balanced (`gpu-queue`, `cpu-lb`...)."""
    return f"{resource['compute']}-{'lb' if resource['kind'] == 'load_balanced' else 'queue'}"


@dataclasses.dataclass(frozen=True)
class Field:
    """One row of the table: an EndpointInput field, how it is computed from the config, and for
    which computes it is sent."""

    wire: str
    value: Callable[[Mapping[str, Any]], Any]
    computes: frozenset[str] = frozenset({"gpu", "cpu"})


def _volume_fields(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    many = config.get("networkVolumes") or []
    one = config.get("networkVolume")
    return list(many) if many else [one] if one else []


ENDPOINT_FIELDS: tuple[Field, ...] = (
    Field("name", lambda c: c["name"]),
    Field("workersMin", lambda c: c["workersMin"]),
    Field("workersMax", lambda c: c["workersMax"]),
    Field("idleTimeout", lambda c: c["idleTimeout"]),
    Field("executionTimeoutMs", lambda c: c["executionTimeoutMs"]),
    Field("scalerType", lambda c: c["scalerType"]),
    Field("scalerValue", lambda c: c["scalerValue"]),
    Field("locations", lambda c: c.get("locations")),
    Field("flashBootType", lambda c: "FLASHBOOT" if c.get("flashboot", True) else "OFF"),
    Field("gpuIds", lambda c: gpu_ids(c.get("gpus") or ["any"]), frozenset({"gpu"})),
    Field("gpuCount", lambda c: c.get("gpuCount", 1), frozenset({"gpu"})),
    Field("minCudaVersion", lambda c: c.get("minCudaVersion"), frozenset({"gpu"})),
    Field("allowedCudaVersions", lambda c: "", frozenset({"gpu"})),
    Field("instanceIds", lambda c: c.get("instanceIds"), frozenset({"cpu"})),
    Field("networkVolumeId", lambda c: c.get("networkVolumeId")),
)


@dataclasses.dataclass(frozen=True)
class VolumeSpec:
    name: str
    size: int
    data_center: str


@dataclasses.dataclass(frozen=True)
class Desired:
    """One resource as it should be on Runpod, before ids are known."""

    name: str
    kind: str  # kind_of(): what cannot change in place
    endpoint: Mapping[str, Any]  # EndpointInput fields, without id, templateId, template, flashEnvironmentId
    template: Mapping[str, Any]  # template fields, without env
    env: tuple[tuple[str, str], ...]
    volumes: tuple[VolumeSpec, ...]
    calls_others: bool

    @property
    def config_hash(self) -> str:
        return _digest({"kind": self.kind, "endpoint": self.endpoint, "template": self.template})

    @property
    def env_hash(self) -> str:
        return _digest(dict(self.env))


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _disk_gb(config: Mapping[str, Any], compute: str) -> int:
    template = config.get("template") or {}
    if template.get("containerDiskInGb"):
        return int(template["containerDiskInGb"])
    if compute == "gpu":
        return _GPU_DISK_GB
    sizes = []
    for instance in config.get("instanceIds") or ["cpu3g-2-8"]:
        family, vcpus = instance.split("-")[0], int(instance.split("-")[1])
        sizes.append(vcpus * (15 if family.startswith("cpu5") else 10))
    return min(sizes)


def desired(
    resource: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    image: str,
    calls_others: bool,
) -> Desired:
    """The endpoint and template `resource` (a manifest entry) should have; `env` is its env with
    references filled in and the deployment's own variables added."""
    config = resource["config"]
    compute = resource["compute"]
    endpoint = {f.wire: f.value(config) for f in ENDPOINT_FIELDS if compute in f.computes}
    endpoint["type"] = "LB" if resource["kind"] == "load_balanced" else "QB"
    endpoint = {k: v for k, v in endpoint.items() if v is not None}
    pod = config.get("template") or {}
    template = {
        "imageName": config.get("imageName") or image,
        "containerDiskInGb": _disk_gb(config, compute),
        "dockerArgs": pod.get("dockerArgs", ""),
        "startScript": pod.get("startScript", ""),
        "advancedStart": bool(pod.get("advancedStart", False)),
        "containerRegistryAuthId": pod.get("containerRegistryAuthId", ""),
        "ports": "",
    }
    volumes = tuple(
        VolumeSpec(
            str(v.get("name") or v.get("id")), int(v.get("size") or 100), str(v.get("dataCenterId") or "EU-RO-1")
        )
        for v in _volume_fields(config)
    )
    return Desired(
        name=resource["name"],
        kind=kind_of(resource),
        endpoint=endpoint,
        template=template,
        env=tuple(sorted(env.items())),
        volumes=volumes,
        calls_others=calls_others,
    )
