"""The records of the dependency stage, shared by its modules: what was resolved, and for which site.

    Wheel       one file of a pinned distribution: where it comes from and its sha256
    Pin         a distribution chosen for the worker, its wheel and what it needs there
    Site        one folder of installed distributions in the archive, and the resources using it
    Resolution  every site of a project; `split` says why there is more than one

All frozen and free of I/O, so a resolution can be cached as JSON and compared.
"""

from __future__ import annotations

import dataclasses
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
        """The inverse of `to_json`; KeyError, TypeError or ValueError for anything else."""
        sites = []
        for site in data["sites"]:
            pins = tuple(
                Pin(
                    name=str(p["name"]),
                    version=str(p["version"]),
                    wheel=Wheel(**p["wheel"]),
                    requires=tuple(str(r) for r in p["requires"]),
                )
                for p in site["pins"]
            )
            sites.append(Site(str(site["path"]), tuple(str(r) for r in site["resources"]), pins))
        split = data.get("split")
        return cls(tuple(sites), str(split) if split is not None else None)
