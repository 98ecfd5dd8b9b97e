"""What an index has for a distribution, to explain why nothing fits the worker.

Asked only after pip found no wheel for the target: the files of a distribution are listed from
local `--find-links` folders and from the index's simple API (PEP 691 JSON), then summarised for
the user: which versions exist and for which platforms.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .requirements import IndexOptions

__all__ = ["DEFAULT_INDEX", "available_files", "describe_available", "wheel_size"]

DEFAULT_INDEX = "https://pypi.org/simple"


def available_files(name: str, options: IndexOptions, *, client: httpx.Client | None = None) -> list[str]:
    """File names of `name` in the local find-links folders and on the index; [] when unknown."""
    return sorted(_listing(name, options, client))


def wheel_size(
    name: str, fits: Callable[[str], bool], options: IndexOptions, *, client: httpx.Client | None = None
) -> int | None:
    """The size in bytes of the newest wheel of `name` that `fits`, when the index says; else None.

    For reporting what leaving a distribution out saved, without downloading it.
    """
    candidates = [
        (version, size)
        for filename, size in _listing(name, options, client).items()
        if size is not None and filename.endswith(".whl") and fits(filename)
        for version in [_version(filename)]
        if version is not None
    ]
    return max(candidates)[1] if candidates else None


def _with_pip_environment(options: IndexOptions) -> IndexOptions:
    """Options as pip sees them: `PIP_NO_INDEX`, `PIP_INDEX_URL` and `PIP_FIND_LINKS` apply too."""
    env = os.environ
    no_index = options.no_index or env.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on")
    links = tuple(env.get("PIP_FIND_LINKS", "").split())
    return dataclasses.replace(
        options,
        no_index=no_index,
        index_url=options.index_url or env.get("PIP_INDEX_URL") or None,
        find_links=(*options.find_links, *links),
    )


def _listing(name: str, options: IndexOptions, client: httpx.Client | None) -> dict[str, int | None]:
    """File name -> size (None when unknown), from find-links folders and the simple API."""
    options = _with_pip_environment(options)
    wanted = canonicalize_name(name)
    files: dict[str, int | None] = {}
    for link in options.find_links:
        folder = Path(link.removeprefix("file://"))
        for f in _local_files(link):
            if _project(f) == wanted:
                files[f] = (folder / f).stat().st_size
    if options.no_index:
        return files
    url = f"{(options.index_url or DEFAULT_INDEX).rstrip('/')}/{wanted}/"
    try:
        with client or httpx.Client(timeout=10, follow_redirects=True) as http:
            response = http.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        if response.status_code == 200:
            for f in response.json().get("files", []):
                if isinstance(f, dict) and isinstance(f.get("filename"), str):
                    size = f.get("size")
                    files.setdefault(f["filename"], size if isinstance(size, int) else None)
    except (httpx.HTTPError, ValueError, OSError):
        pass  # an explanation without the index's list is still an explanation
    return files


def describe_available(files: Iterable[str]) -> str:
    """A short summary: 'versions 1.0 to 2.1; 2.1 has an sdist and wheels for macOS arm64 (cp312)'."""
    by_version: dict[Version, list[str]] = {}
    for f in files:
        version = _version(f)
        if version is not None:
            by_version.setdefault(version, []).append(f)
    if not by_version:
        return "the index lists no files for it"
    versions = sorted(by_version)
    newest = versions[-1]
    span = f"version {newest} exists" if len(versions) == 1 else f"versions {versions[0]} to {newest} exist"
    wheels = [parse_wheel_filename(f)[3] for f in by_version[newest] if f.endswith(".whl")]
    parts = []
    if wheels:
        platforms = sorted({_platform(t.platform) for tags in wheels for t in tags})
        pythons = sorted({t.interpreter for tags in wheels for t in tags}, key=_python_order)
        parts.append(f"wheels for {', '.join(platforms)} ({', '.join(pythons)})")
    if len(wheels) < len(by_version[newest]):
        parts.append("a source distribution, which flashc does not build")
    return f"{span}; {newest} has {' and '.join(parts)}"


def _local_files(link: str) -> list[str]:
    folder = Path(link.removeprefix("file://"))
    try:
        return [p.name for p in folder.iterdir() if p.is_file()]
    except OSError:
        return []


def _project(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _python_order(interpreter: str) -> tuple[str, int]:
    digits = "".join(c for c in interpreter if c.isdigit())
    return interpreter.rstrip("0123456789"), int(digits[1:] or 0) if len(digits) > 1 else int(digits or 0)


def _platform(platform: str) -> str:
    if platform == "any":
        return "any platform"
    if platform.startswith(("manylinux", "musllinux", "linux")):
        family = "musl Linux" if platform.startswith("musllinux") else "Linux"
        return f"{family} {platform.rsplit('_', 1)[-1] if not platform.endswith('x86_64') else 'x86_64'}"
    if platform.startswith("macosx"):
        return f"macOS {platform.rsplit('_', 1)[-1]}"
    if platform.startswith("win"):
        return f"Windows {platform.removeprefix('win').strip('_') or 'x86'}"
    return platform
