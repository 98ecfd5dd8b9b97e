"""Network volumes for local endpoints: a folder of the project seen at `/runpod-volume`.

On Runpod, a resource with a network volume finds it mounted at `/runpod-volume` in every worker,
and every endpoint attached to the same volume sees the same files. Locally the volume is the
folder `.flash/volumes/<volume name>/`, and each endpoint attached to it runs in a user and mount
namespace of its own (`unshare --user --map-root-user --mount`) where that folder is bind-mounted
at `/runpod-volume`: nothing changes outside the namespace, and the worker's code runs as root
there, as it does on Runpod. The mount point must exist on this machine; flashc makes it when it
may (an empty folder), and otherwise says what to run once.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MOUNT_POINT", "mount_problem", "volume_folder", "volume_of", "wrap"]

MOUNT_POINT = "/runpod-volume"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Inside the namespace: bind the folder ($0) on the mount point, then become the endpoint's command.
_SCRIPT = 'mount --bind -- "$0" ' + MOUNT_POINT + ' && exec "$@"'


def volume_of(config: Mapping[str, Any]) -> str | None:
    """The name of the network volume a resource config attaches, or None."""
    volume = config.get("networkVolume")
    if isinstance(volume, Mapping):
        for key in ("name", "id"):
            if isinstance(volume.get(key), str) and volume[key]:
                return str(volume[key])
    found = config.get("networkVolumeId")
    return found if isinstance(found, str) and found else None


def volume_folder(root: Path, name: str) -> Path:
    """Where a volume's files live locally: `.flash/volumes/<name>/`, the name made safe for a folder."""
    safe = _UNSAFE.sub("_", name).strip("._") or "volume"
    return root / ".flash" / "volumes" / safe


def mount_problem() -> str | None:
    """Why a volume cannot be mounted at /runpod-volume for local endpoints, or None when it can."""
    mount_point = Path(MOUNT_POINT)
    if not mount_point.is_dir():
        try:
            mount_point.mkdir()
        except OSError:
            return (
                f"{MOUNT_POINT} does not exist on this machine and flashc may not make it "
                f"(run `sudo mkdir {MOUNT_POINT}` once)"
            )
    return _namespace_problem()


@functools.cache
def _namespace_problem() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return "`unshare` (util-linux) is not installed, so no mount namespace can be made"
    try:
        proc = subprocess.run(
            [unshare, "--user", "--map-root-user", "--mount", "--", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`unshare` cannot run: {exc}"
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()[-1:] or ["no reason given"]
        return f"this machine does not allow user namespaces ({said[0]})"
    return None


def wrap(command: Sequence[str], folder: Path) -> list[str]:
    """`command`, run in a user and mount namespace where `folder` is at /runpod-volume."""
    unshare = shutil.which("unshare") or "unshare"
    os.makedirs(folder, exist_ok=True)
    return [unshare, "--user", "--map-root-user", "--mount", "--", "/bin/sh", "-c", _SCRIPT, str(folder), *command]
