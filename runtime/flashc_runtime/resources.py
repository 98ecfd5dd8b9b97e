"""Resource configs: where and how a group of @remote functions runs.

Parameters and defaults follow the configuration tables of the Flash SDK that user code is
written against. Queue-based endpoints take jobs (`/run`, `/runsync`); load-balanced ones serve
HTTP routes. A GPU config that names CPU `instanceIds` becomes a CPU endpoint, as in the SDK.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from .enums import CpuInstanceType, CudaVersion, DataCenter, GpuGroup, GpuType, ServerlessScalerType
from .schema import ParamProblem, SchemaModel, config_hash

__all__ = [
    "RESOURCE_CLASSES",
    "CpuLiveLoadBalancer",
    "CpuLiveServerless",
    "CpuLoadBalancerSlsResource",
    "CpuServerlessEndpoint",
    "LiveLoadBalancer",
    "LiveServerless",
    "LoadBalancerSlsResource",
    "NetworkVolume",
    "PodTemplate",
    "ServerlessEndpoint",
    "ServerlessResource",
]

_model = dataclasses.dataclass(frozen=True, init=False, kw_only=True, eq=False)


@_model
class PodTemplate(SchemaModel):
    """Overrides for the worker's container; None keeps the endpoint's default."""

    containerDiskInGb: int | None = None
    dockerArgs: str = ""
    startScript: str = ""
    advancedStart: bool = False
    containerRegistryAuthId: str = ""
    env: list[dict[str, str]] | None = None

    @classmethod
    def _extra_checks(cls, values: Mapping[str, Any], given: frozenset[str]) -> list[ParamProblem]:
        problems = []
        disk = values["containerDiskInGb"]
        if disk is not None and disk <= 0:
            problems.append(ParamProblem("containerDiskInGb", "containerDiskInGb must be positive"))
        for entry in values["env"] or []:
            if set(entry) != {"key", "value"}:
                problems.append(
                    ParamProblem(
                        "env",
                        "each entry of PodTemplate env must have exactly the keys 'key' and 'value'",
                        'write env=[{"key": "NAME", "value": "..."}]',
                    )
                )
                break
        return problems


@_model
class NetworkVolume(SchemaModel):
    """Persistent storage attached to every worker of an endpoint, at /runpod-volume."""

    name: str | None = None
    id: str | None = None
    size: int = 100
    dataCenterId: DataCenter = DataCenter.EU_RO_1
    datacenter: DataCenter | None = None  # the SDK's other spelling of dataCenterId

    @classmethod
    def _normalise(cls, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        if out.get("datacenter") is not None and "dataCenterId" not in out:
            out["dataCenterId"] = out["datacenter"]
        out.pop("datacenter", None)
        return out

    @classmethod
    def _extra_checks(cls, values: Mapping[str, Any], given: frozenset[str]) -> list[ParamProblem]:
        problems = []
        if values["size"] <= 0:
            problems.append(ParamProblem("size", "size must be a positive number of GB"))
        if values["name"] is None and values["id"] is None:
            problems.append(ParamProblem(None, "a NetworkVolume needs a name or an id", 'add name="..."'))
        elif values["name"] is not None and not values["name"].strip():
            problems.append(ParamProblem("name", "name must not be empty"))
        return problems

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.pop("datacenter")
        return data


@_model
class ServerlessResource(SchemaModel):
    """Fields every serverless endpoint has. Not used directly: pick one of the classes below."""

    is_load_balanced: ClassVar[bool] = False
    always_cpu: ClassVar[bool] = False

    name: str
    workersMin: int = 0
    workersMax: int = 3
    idleTimeout: int = 5
    env: dict[str, str] | None = None
    networkVolumeId: str | None = None
    networkVolume: NetworkVolume | None = None
    networkVolumes: list[NetworkVolume] | None = None
    executionTimeoutMs: int = 0
    scalerType: ServerlessScalerType = ServerlessScalerType.QUEUE_DELAY
    scalerValue: int = 4
    locations: str | None = None
    template: PodTemplate | None = None
    flashboot: bool = True

    @property
    def is_cpu(self) -> bool:
        """CPU classes always; GPU classes when CPU `instanceIds` are given."""
        return self.always_cpu or bool(getattr(self, "instanceIds", None))

    def to_dict(self) -> dict[str, Any]:
        """The full config as JSON data; a GPU class turned CPU by `instanceIds` drops its GPU fields."""
        data = super().to_dict()
        if self.is_cpu:
            data.pop("gpus", None)
            data.pop("gpuCount", None)
            data.pop("minCudaVersion", None)
        return data

    def config_hash(self) -> str:
        """Identity of the deployed shape: `env` is left out, so env changes cause no drift."""
        return config_hash(type(self).__name__, self.to_dict())

    @classmethod
    def _extra_checks(cls, values: Mapping[str, Any], given: frozenset[str]) -> list[ParamProblem]:
        problems = []
        if not values["name"].strip():
            problems.append(ParamProblem("name", "name must not be empty"))
        for key in ("workersMin", "workersMax", "idleTimeout", "executionTimeoutMs", "scalerValue"):
            if values[key] < 0:
                problems.append(ParamProblem(key, f"{key} must not be negative"))
        if values["workersMax"] < values["workersMin"]:
            problems.append(
                ParamProblem(
                    "workersMax",
                    f"workersMax ({values['workersMax']}) is less than workersMin ({values['workersMin']})",
                )
            )
        if values.get("gpuCount", 1) < 1:
            problems.append(ParamProblem("gpuCount", "gpuCount must be at least 1"))
        if "gpus" in given and values.get("instanceIds"):
            problems.append(
                ParamProblem(
                    "instanceIds",
                    "both gpus and instanceIds are given",
                    "instanceIds makes this a CPU endpoint: drop gpus, or drop instanceIds",
                )
            )
        if "gpus" in values and not values["gpus"]:
            problems.append(ParamProblem("gpus", "gpus must not be empty", "use [GpuGroup.ANY]"))
        return problems


def _any_gpu() -> list[GpuGroup | GpuType]:
    return [GpuGroup.ANY]


def _default_cpu() -> list[CpuInstanceType]:
    return [CpuInstanceType.CPU3G_2_8]


@_model
class LiveServerless(ServerlessResource):
    """Queue-based endpoint on the managed Flash image; GPU unless `instanceIds` are given."""

    gpus: list[GpuGroup | GpuType] = dataclasses.field(default_factory=_any_gpu)
    gpuCount: int = 1
    minCudaVersion: CudaVersion | None = None
    instanceIds: list[CpuInstanceType] | None = None


@_model
class CpuLiveServerless(ServerlessResource):
    """Queue-based CPU endpoint on the managed Flash image."""

    always_cpu: ClassVar[bool] = True

    instanceIds: list[CpuInstanceType] = dataclasses.field(default_factory=_default_cpu)


@_model
class ServerlessEndpoint(ServerlessResource):
    """Queue-based GPU endpoint on a Docker image of your choice."""

    gpus: list[GpuGroup | GpuType] = dataclasses.field(default_factory=_any_gpu)
    gpuCount: int = 1
    minCudaVersion: CudaVersion | None = None
    imageName: str | None = None


@_model
class CpuServerlessEndpoint(ServerlessResource):
    """Queue-based CPU endpoint on a Docker image of your choice."""

    always_cpu: ClassVar[bool] = True

    instanceIds: list[CpuInstanceType] = dataclasses.field(default_factory=_default_cpu)
    imageName: str | None = None


@_model
class LiveLoadBalancer(ServerlessResource):
    """Load-balanced endpoint serving HTTP routes; GPU unless `instanceIds` are given."""

    is_load_balanced: ClassVar[bool] = True

    scalerType: ServerlessScalerType = ServerlessScalerType.REQUEST_COUNT
    gpus: list[GpuGroup | GpuType] = dataclasses.field(default_factory=_any_gpu)
    gpuCount: int = 1
    minCudaVersion: CudaVersion | None = None
    instanceIds: list[CpuInstanceType] | None = None


@_model
class CpuLiveLoadBalancer(ServerlessResource):
    """Load-balanced CPU endpoint serving HTTP routes."""

    is_load_balanced: ClassVar[bool] = True
    always_cpu: ClassVar[bool] = True

    scalerType: ServerlessScalerType = ServerlessScalerType.REQUEST_COUNT
    instanceIds: list[CpuInstanceType] = dataclasses.field(default_factory=_default_cpu)


@_model
class LoadBalancerSlsResource(ServerlessResource):
    """Load-balanced GPU endpoint serving HTTP routes, on a Docker image of your choice."""

    is_load_balanced: ClassVar[bool] = True

    scalerType: ServerlessScalerType = ServerlessScalerType.REQUEST_COUNT
    gpus: list[GpuGroup | GpuType] = dataclasses.field(default_factory=_any_gpu)
    gpuCount: int = 1
    minCudaVersion: CudaVersion | None = None
    imageName: str | None = None


@_model
class CpuLoadBalancerSlsResource(ServerlessResource):
    """Load-balanced CPU endpoint serving HTTP routes, on a Docker image of your choice."""

    is_load_balanced: ClassVar[bool] = True
    always_cpu: ClassVar[bool] = True

    scalerType: ServerlessScalerType = ServerlessScalerType.REQUEST_COUNT
    instanceIds: list[CpuInstanceType] = dataclasses.field(default_factory=_default_cpu)
    imageName: str | None = None


RESOURCE_CLASSES: dict[str, type[ServerlessResource]] = {
    cls.__name__: cls
    for cls in (
        LiveServerless,
        CpuLiveServerless,
        ServerlessEndpoint,
        CpuServerlessEndpoint,
        LiveLoadBalancer,
        CpuLiveLoadBalancer,
        LoadBalancerSlsResource,
        CpuLoadBalancerSlsResource,
    )
}
