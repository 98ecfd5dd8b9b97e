"""The records of the dependency stage, shared by its modules: what was resolved, and for which site.

    Wheel       one file of a pinned distribution: where it comes from and its sha256
    Pin         a distribution chosen for the worker, its wheel and what it needs there
    Site        one folder of installed distributions in the archive, and the resources using it
    Resolution  every site of a project; `split` says why there is more than one

All frozen and free of I/O, so a resolution can be cached as JSON and compared.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SHARED_SITE", "Pin", "Resolution", "Site", "Wheel"]

# The one site folder of a project whose resources can share their dependencies.
SHARED_SITE = "_flashc/site"


@dataclasses.dataclass(frozen=True, slots=True)
class Wheel:
    """A wheel file: `url` is where it is fetched from (https://, or file:// for a local folder)."""

    filename: str
    url: str
    size: int | None
    sha256: str


@dataclasses.dataclass(frozen=True, slots=True)
class Pin:
    """A distribution resolved for the worker. `name` is PEP 503 normal; `requires` are the names of
    the pins it depends on there (markers already judged for the worker)."""

    name: str
    version: str
    wheel: Wheel
    requires: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Site:
    """A folder of the archive (`path`, such as `_flashc/site`) holding `pins` for `resources`."""

    path: str
    resources: tuple[str, ...]
    pins: tuple[Pin, ...]

    def pin(self, name: str) -> Pin | None:
        return next((p for p in self.pins if p.name == name), None)


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    """The project's sites: one shared by every resource, or one per resource when their requirements
    cannot be installed together; `split` then holds the resolver's derivation of why."""

    sites: tuple[Site, ...]
    split: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resolution:
        """The inverse of `to_json`; KeyError, TypeError or ValueError for anything else.

        Every field is checked, as it comes from a cache a disk error or a hand may have changed:
        a wheel's sha256 and file name become a path in the wheel cache.
        """
        sites = []
        for site in _list(data["sites"]):
            pins = tuple(
                Pin(
                    name=_str(p["name"]),
                    version=_str(p["version"]),
                    wheel=_wheel(p["wheel"]),
                    requires=tuple(_str(r) for r in _list(p["requires"])),
                )
                for p in _list(site["pins"])
            )
            sites.append(Site(_str(site["path"]), tuple(_str(r) for r in _list(site["resources"])), pins))
        split = data["split"]
        return cls(tuple(sites), _str(split) if split is not None else None)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _wheel(data: Any) -> Wheel:
    wheel = Wheel(_str(data["filename"]), _str(data["url"]), data["size"], _str(data["sha256"]))
    if len(data) != 4:
        raise ValueError(f"a wheel has other fields than {sorted(dataclasses.asdict(wheel))}")
    if wheel.size is not None and (type(wheel.size) is not int or wheel.size < 0):
        raise TypeError(f"size of {wheel.filename!r}: {wheel.size!r}")
    if not _SHA256.fullmatch(wheel.sha256):
        raise ValueError(f"sha256 of {wheel.filename!r}: {wheel.sha256!r}")
    if not wheel.filename.endswith(".whl") or "/" in wheel.filename or "\\" in wheel.filename:
        raise ValueError(f"not a wheel's file name: {wheel.filename!r}")
    return wheel


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value
