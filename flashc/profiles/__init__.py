"""Worker-image profiles: what each of Runpod's four Flash worker images provides, read from the TOML files here.

    profile         image                              kind            compute   glibc
    runpod-cpu      runpod/flash-cpu:py3.12-latest     queue           cpu       2.36
    runpod-gpu      runpod/flash:py3.12-latest         queue           gpu       2.35
    runpod-lb-cpu   runpod/flash-lb-cpu:py3.12-latest  load_balanced   cpu       2.36
    runpod-lb-gpu   runpod/flash-lb:py3.12-latest      load_balanced   gpu       2.35

A profile lets a build leave out what the image already has, check that every import an endpoint makes is satisfied,
and run endpoints locally in an environment equal to the image. The files are data kept in the repository, each
saying where its facts come from; `python -m flashc.profiles.generate` rebuilds them (network needed), and nothing
at build time does. They are read once, on first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from .._toml import loads

__all__ = [
    "CUSTOM",
    "KNOWN_DISTRIBUTIONS",
    "Compute",
    "Kind",
    "Profile",
    "Provided",
    "distribution_for",
    "image_of",
    "module_names",
    "parse_profile",
    "profile_for",
    "profile_named",
    "profiles",
]

Kind = Literal["queue", "load_balanced"]
Compute = Literal["gpu", "cpu"]

# Import names whose distribution is named otherwise and that no profile provides, for a hint such as "add
# scikit-learn": each was checked against the top-level names in the distribution's latest wheel on PyPI (its sdist for
# openai-whisper and llama-cpp-python, which publish only that there). Where two distributions install the same name,
# the usual one is given (opencv-python rather than opencv-python-headless, which suits a server better).
KNOWN_DISTRIBUTIONS: Mapping[str, str] = MappingProxyType(
    {
        "Bio": "biopython",
        "Crypto": "pycryptodome",
        "OpenSSL": "pyopenssl",
        "bs4": "beautifulsoup4",
        "bson": "pymongo",
        "cv2": "opencv-python",
        "docx": "python-docx",
        "fitz": "pymupdf",
        "git": "gitpython",
        "grpc": "grpcio",
        "jose": "python-jose",
        "jwt": "pyjwt",
        "llama_cpp": "llama-cpp-python",
        "magic": "python-magic",
        "pptx": "python-pptx",
        "serial": "pyserial",
        "skimage": "scikit-image",
        "sklearn": "scikit-learn",
        "slugify": "python-slugify",
        "socks": "pysocks",
        "speech_recognition": "speechrecognition",
        "umap": "umap-learn",
        "websocket": "websocket-client",
        "whisper": "openai-whisper",
        "zmq": "pyzmq",
    }
)

_SCALARS = ("name", "image", "description", "date", "source", "python", "glibc", "kind", "compute", "workdir", "volume")


@dataclass(frozen=True, slots=True)
class Provided:
    """A distribution an image has installed: PEP 503 `name`, `version`, and the top-level import names it installs."""

    name: str
    version: str
    modules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    """One worker image: where it comes from, what it sets, and which distributions it provides (by PEP 503 name)."""

    name: str
    image: str
    description: str
    date: str
    source: str
    python: str
    glibc: str
    kind: Kind
    compute: Compute
    workdir: str
    volume: str
    apt: tuple[str, ...]
    env: Mapping[str, str] = field(hash=False)
    distributions: Mapping[str, Provided] = field(hash=False)
    _by_module: Mapping[str, Provided] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_module", _index(self.distributions.values()))

    def provides(self, name: str) -> Provided | None:
        """The installed distribution called `name` (any spelling: `PyYAML`, `typing_extensions`), or None."""
        return self.distributions.get(_normalize(name))

    def module(self, top_level_name: str) -> Provided | None:
        """The distribution that installs the import name `top_level_name` (`yaml`, not `yaml.loader`), or None.

        When two install the same name (typer and typer-slim both install `typer`), the one named like the module
        wins, else the first by name.
        """
        return self._by_module.get(top_level_name)


@functools.cache
def profiles() -> Mapping[str, Profile]:
    """Every profile, by name. Raises ValueError if a packaged file is malformed (a bug in flashc, not the user's)."""
    folder = resources.files(__name__)
    found: dict[str, Profile] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            stem = entry.name.removesuffix(".toml")
            found[stem] = parse_profile(stem, loads(entry.read_text(encoding="utf-8")))
    return MappingProxyType(found)


def profile_for(kind: Kind, compute: Compute) -> Profile:
    """The profile of the image Runpod runs for a resource of this `kind` and `compute`."""
    for candidate in profiles().values():
        if candidate.kind == kind and candidate.compute == compute:
            return candidate
    raise ValueError(f"no worker-image profile for kind={kind!r}, compute={compute!r}")


CUSTOM = "custom"
"""The profile name of a resource on an image of its own (`imageName=`): flashc cannot know what it has."""

# Runpod's own images, whatever their tag: a resource naming one of them runs on that image's profile.
_RUNPOD_IMAGES = ("runpod/flash", "runpod/tetra-rp", "runpod/tetra_rp")


def image_of(kind: Kind, compute: Compute, config: Mapping[str, Any]) -> Profile:
    """The image a resource runs on: Runpod's for its kind and compute, or, when its config names an
    image of its own (`imageName="my-registry/app:1"`), a profile of that image that provides
    nothing (flashc cannot know what is in it, so every dependency ships)."""
    image = config.get("imageName")
    if not isinstance(image, str) or not image or image.startswith(_RUNPOD_IMAGES):
        return profile_for(kind, compute)
    runpod = profile_for(kind, compute)
    return Profile(
        name=CUSTOM,
        image=image,
        description=f"the image {image}",
        date="",
        source="the resource's imageName",
        python=runpod.python,
        glibc=runpod.glibc,
        kind=kind,
        compute=compute,
        workdir=runpod.workdir,
        volume=runpod.volume,
        apt=(),
        env=MappingProxyType({}),
        distributions=MappingProxyType({}),
    )


def profile_named(name: str, config: Mapping[str, Any], kind: Kind, compute: Compute) -> Profile:
    """The profile a manifest names for a resource (KeyError for a name this flashc does not know)."""
    if name == CUSTOM:
        return image_of(kind, compute, config)
    return profiles()[name]


@functools.cache
def module_names() -> Mapping[str, str]:
    """For every top-level import name some profile knows, the PEP 503 name of the distribution that installs it."""
    every = {p.name: p for profile in profiles().values() for p in profile.distributions.values()}
    return MappingProxyType({module: p.name for module, p in sorted(_index(every.values()).items())})


def distribution_for(import_name: str) -> str:
    """The distribution to add for `import_name` (only the part before the first dot counts), for hints.

    Answers from the profiles, then `KNOWN_DISTRIBUTIONS`, else the top-level name itself, which pip accepts as a
    distribution name in most cases.
    """
    top = import_name.split(".", 1)[0]
    return module_names().get(top) or KNOWN_DISTRIBUTIONS.get(top) or top


def parse_profile(stem: str, data: Mapping[str, Any]) -> Profile:
    """The profile in `data`, the parsed TOML of the file `<stem>.toml`; raises ValueError naming what is wrong."""

    def fail(message: str) -> ValueError:
        return ValueError(f"worker-image profile {stem}.toml: {message}")

    unknown = data.keys() - {*_SCALARS, "apt", "env", "distributions"}
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}")
    scalars: dict[str, str] = {}
    for key in _SCALARS:
        value = data.get(key)
        if not isinstance(value, str):
            raise fail(f"`{key}` must be a string")
        scalars[key] = value
    if scalars["name"] != stem:
        raise fail(f"`name` is {scalars['name']!r}, not the file's name")
    if scalars["kind"] not in get_args(Kind) or scalars["compute"] not in get_args(Compute):
        raise fail(f"unknown kind {scalars['kind']!r} or compute {scalars['compute']!r}")
    apt, env, table = data.get("apt"), data.get("env"), data.get("distributions")
    if not _strings(apt):
        raise fail("`apt` must be a list of strings")
    if not isinstance(env, dict) or not _strings(list(env.values())):
        raise fail("`env` must be a table of strings")
    if not isinstance(table, dict):
        raise fail("`distributions` must be a table")
    distributions: dict[str, Provided] = {}
    for name, entry in table.items():
        if name != _normalize(name):
            raise fail(f"distribution {name!r} is not in PEP 503 normal form")
        if not isinstance(entry, dict) or entry.keys() != {"version", "modules"}:
            raise fail(f"distribution {name!r} must have exactly `version` and `modules`")
        version, modules = entry["version"], entry["modules"]
        if not isinstance(version, str) or not _strings(modules):
            raise fail(f"distribution {name!r}: `version` must be a string and `modules` a list of strings")
        distributions[name] = Provided(name, version, tuple(modules))
    return Profile(
        name=scalars["name"],
        image=scalars["image"],
        description=scalars["description"],
        date=scalars["date"],
        source=scalars["source"],
        python=scalars["python"],
        glibc=scalars["glibc"],
        kind=cast("Kind", scalars["kind"]),
        compute=cast("Compute", scalars["compute"]),
        workdir=scalars["workdir"],
        volume=scalars["volume"],
        apt=tuple(cast("list[str]", apt)),
        env=MappingProxyType(dict(env)),
        distributions=MappingProxyType(distributions),
    )


def _index(distributions: Iterable[Provided]) -> dict[str, Provided]:
    index: dict[str, Provided] = {}
    for dist in sorted(distributions, key=lambda d: d.name):
        for module in dist.modules:
            held = index.get(module)
            if held is None or (_normalize(module) == dist.name != held.name):
                index[module] = dist
    return index


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
