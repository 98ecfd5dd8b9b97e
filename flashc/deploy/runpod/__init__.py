"""Runpod as a deploy target: its API (`api.py`, documents in `operations.py`), the archive's
upload (`upload.py`) and the API key (`credentials.py`)."""

from .api import (
    App,
    AuthError,
    Build,
    BuildRef,
    EndpointRef,
    Environment,
    EnvironmentRef,
    RunpodApi,
    RunpodError,
    Unreachable,
    UploadError,
    UploadSlot,
    VolumeRef,
)
from .credentials import ApiKey, find_api_key
from .upload import put_archive

__all__ = [
    "ApiKey",
    "App",
    "AuthError",
    "Build",
    "BuildRef",
    "EndpointRef",
    "Environment",
    "EnvironmentRef",
    "RunpodApi",
    "RunpodError",
    "Unreachable",
    "UploadError",
    "UploadSlot",
    "VolumeRef",
    "find_api_key",
    "put_archive",
]
