"""flashc's runtime and SDK surface: `Endpoint`, `@remote`, the resource configs, and the worker-side runtime.

User code imports these names from `flashc_runtime`, or from `tetra_rp` / `runpod_flash`, which
flashc treats as the same SDK. This package never imports flashc: it ships inside every archive.
"""

from .decorator import RemoteCallError, remote
from .endpoint import Endpoint, EndpointJob
from .enums import (
    CPU_DATACENTERS,
    CpuInstanceType,
    CudaVersion,
    DataCenter,
    GpuGroup,
    GpuType,
    ServerlessScalerType,
    ServerlessType,
)
from .resources import (
    CpuLiveLoadBalancer,
    CpuLiveServerless,
    CpuLoadBalancerSlsResource,
    CpuServerlessEndpoint,
    LiveLoadBalancer,
    LiveServerless,
    LoadBalancerSlsResource,
    NetworkVolume,
    PodTemplate,
    ServerlessEndpoint,
)
from .schema import ConfigError

DEFAULT_WORKERS_MIN = 0
DEFAULT_WORKERS_MAX = 1

__all__ = [
    "CPU_DATACENTERS",
    "DEFAULT_WORKERS_MAX",
    "DEFAULT_WORKERS_MIN",
    "ConfigError",
    "CpuInstanceType",
    "CpuLiveLoadBalancer",
    "CpuLiveServerless",
    "CpuLoadBalancerSlsResource",
    "CpuServerlessEndpoint",
    "CudaVersion",
    "DataCenter",
    "Endpoint",
    "EndpointJob",
    "GpuGroup",
    "GpuType",
    "LiveLoadBalancer",
    "LiveServerless",
    "LoadBalancerSlsResource",
    "NetworkVolume",
    "PodTemplate",
    "RemoteCallError",
    "ServerlessEndpoint",
    "ServerlessScalerType",
    "ServerlessType",
    "remote",
]

# Module names under which user code imports this SDK.
SDK_MODULES = ("flashc_runtime", "tetra_rp", "runpod_flash")

# Names the Flash SDK exports that flashc does not provide, and what to do instead.
UNSUPPORTED = {
    "ResourceManager": "flashc deploys and tracks endpoints itself: run `flashc deploy`, and drop ResourceManager",
    "FlashApp": "flashc deploys the project as one app: run `flashc deploy`, and drop FlashApp",
}
