"""flashc's runtime and SDK surface: `@remote`, the resource configs, and the worker-side runtime.

User code imports these names from `flashc_runtime`, or from `tetra_rp` / `runpod_flash`, which
flashc treats as the same SDK. This package never imports flashc: it ships inside every archive.
"""

from .decorator import RemoteCallError, remote
from .enums import CpuInstanceType, GpuGroup, ServerlessScalerType
from .resources import (
    CpuLiveLoadBalancer,
    CpuLiveServerless,
    CpuServerlessEndpoint,
    LiveLoadBalancer,
    LiveServerless,
    NetworkVolume,
    PodTemplate,
    ServerlessEndpoint,
)
from .schema import ConfigError

__all__ = [
    "ConfigError",
    "CpuInstanceType",
    "CpuLiveLoadBalancer",
    "CpuLiveServerless",
    "CpuServerlessEndpoint",
    "GpuGroup",
    "LiveLoadBalancer",
    "LiveServerless",
    "NetworkVolume",
    "PodTemplate",
    "RemoteCallError",
    "ServerlessEndpoint",
    "ServerlessScalerType",
    "remote",
]

# Module names under which user code imports this SDK.
SDK_MODULES = ("flashc_runtime", "tetra_rp", "runpod_flash")
