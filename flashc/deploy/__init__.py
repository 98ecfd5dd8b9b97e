"""Deploy targets: where an archive runs. `local` runs every resource as an endpoint on this machine."""

from ._processes import alive
from .local import (
    DEPLOYMENT_FILE,
    DeployTarget,
    Endpoint,
    LocalSettings,
    LocalTarget,
    archive_sha256,
    read_deployment,
)

__all__ = [
    "DEPLOYMENT_FILE",
    "DeployTarget",
    "Endpoint",
    "LocalSettings",
    "LocalTarget",
    "alive",
    "archive_sha256",
    "read_deployment",
]
