"""`pylock.toml`: the wheels a build installs for the worker, as a PEP 751 lock file.

`flashc lock` resolves once and writes the lock; later builds install exactly what it lists and
check every wheel against its sha256, so a build does not change because an index did. Each
package has the one wheel the worker takes (URL, size, sha256) and its dependencies. What the
worker image already provides (torch on GPU images) or `--exclude` leaves out stays in the lock,
with its size, marked under `[packages.tool.flashc]`, so other tools see the worker's whole
environment and flashc can say what leaving it out saved without asking the index.

When a project's resources need versions that cannot be installed together, each resource has a
site folder of its own: the lock then names one dependency group per resource (PEP 751
`dependency-groups`), and each package says in its `marker` which groups install it
(`uv pip install -r pylock.toml --group <name>` installs one resource's set).

flashc's own data is under `[tool.flashc]`: the digest of the inputs the lock was resolved from
(`inputs`; a lock for other inputs is stale and `flashc build` asks for `flashc lock`), the target,
and the site of each group. The text is written in one fixed order, so the same lock is the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .._atomic import write_atomic
from .._toml import TOMLDecodeError, loads
from ..errors import ProjectError
from .choose import Shadowed, SitePlan
from .models import SHARED_SITE, Pin, Site, Wheel
from .target import Target

__all__ = ["LOCK_FILE", "ForeignLock", "Lock", "lock_text", "parse_lock", "read_lock", "write_lock"]

LOCK_FILE = "pylock.toml"
_HINT = "run `flashc lock` to write it again"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True, slots=True)
class Lock:
    """What `flashc lock` decided for `target`: the plan of every site, and why there are several."""

    target: Target
    inputs: str
    plans: tuple[SitePlan, ...]
    split: str | None = None


class ForeignLock(ProjectError):
    """The project's pylock.toml was not written by `flashc lock` (another tool, another platform)."""


def lock_text(lock: Lock, root: Path | None = None) -> str:
    """The lock as TOML. `file://` wheels inside `root` are written as paths relative to it."""
    target = lock.target
    split = len(lock.plans) > 1 or any(plan.site.path != SHARED_SITE for plan in lock.plans)
    groups = {plan.site.path: _group(plan.site) for plan in lock.plans}
    out = [
        "# Written by `flashc lock`: the wheels `flashc build` installs for the worker (PEP 751).",
        'lock-version = "1.0"',
        f"environments = [{_str(_environment(target))}]",
        f"requires-python = {_str(f'=={target.python_version}.*')}",
    ]
    if split:
        out.append(f"dependency-groups = [{', '.join(_str(g) for g in sorted(groups.values()))}]")
        out.append("default-groups = []")
    out.append('created-by = "flashc"')
    # One entry per (name, version, left-out reason); its marker lists the groups that install it.
    entries: dict[tuple[str, str, str | None], tuple[Pin, list[str], set[Shadowed]]] = {}
    for plan in lock.plans:
        reasons = dict(plan.left_out)
        for pin in plan.site.pins:
            entry = entries.setdefault((pin.name, pin.version, reasons.get(pin.name)), (pin, [], set()))
            entry[1].append(groups[plan.site.path])
            entry[2].update(s for s in plan.shadowed if s.name == pin.name and s.version == pin.version)
    ordered = sorted(entries.items(), key=lambda e: (*e[0][:2], e[0][2] or ""))
    for (name, version, reason), (pin, in_groups, shadows) in ordered:
        out += ["", "[[packages]]", f"name = {_str(name)}", f"version = {_str(version)}"]
        if split:
            marker = " or ".join(f"'{g}' in dependency_groups" for g in sorted(set(in_groups)))
            out.append(f"marker = {_str(marker)}")
        if pin.requires:
            deps = ", ".join(f"{{ name = {_str(r)} }}" for r in pin.requires)
            out.append(f"dependencies = [{deps}]")
        out.append(f"wheels = [{_wheel(pin.wheel, root)}]")
        if reason is not None or shadows:
            out += ["", "[packages.tool.flashc]"]
        if reason is not None:
            out.append(f"left-out = {_str(reason)}")
        if shadows:  # the worker image has another version: this one ships, and comes first
            out.append(f"shadows = [{', '.join(_shadow(s) for s in sorted(shadows, key=lambda s: s.image))}]")
    out += [
        "",
        "[tool.flashc]",
        f"inputs = {_str(lock.inputs)}",
        f"python-version = {_str(target.python_version)}",
        f"glibc = {_str(target.glibc)}",
        f"machine = {_str(target.machine)}",
    ]
    if lock.split is not None:
        out.append(f"split = {_str(lock.split)}")
    for plan in lock.plans:
        out += [
            "",
            "[[tool.flashc.sites]]",
            f"path = {_str(plan.site.path)}",
            f"group = {_str(groups[plan.site.path])}",
            f"resources = [{', '.join(_str(r) for r in plan.site.resources)}]",
        ]
    return "\n".join(out) + "\n"


def write_lock(root: Path, lock: Lock) -> Path:
    """Write `lock` to `root/pylock.toml` atomically; ProjectError if the folder cannot be written."""
    path = root / LOCK_FILE
    try:
        write_atomic(path, lock_text(lock, root).encode("utf-8"))
    except OSError as exc:
        raise ProjectError(
            f"cannot write '{path}': {exc.strerror or exc}", "check the folder's permissions and free disk space"
        ) from exc
    return path


def read_lock(root: Path, text: str | None) -> Lock | None:
    """The lock in `text` (the content of `root/pylock.toml`, None when there is none).

    Raises ForeignLock when another tool wrote it, ProjectError when it is not a valid lock.
    """
    if text is None:
        return None
    return parse_lock(text, root)


def parse_lock(text: str, root: Path, path: str = LOCK_FILE) -> Lock:
    """Read a lock written by `lock_text`; every problem is a ProjectError naming `path` and where."""
    try:
        data = loads(text)
    except TOMLDecodeError as exc:
        raise _error(path, f"not valid TOML: {exc}") from None
    tool = data.get("tool", {}).get("flashc") if isinstance(data.get("tool"), dict) else None
    if not isinstance(tool, dict):
        creator = data.get("created-by", "another tool")
        raise ForeignLock(
            f"{path} was written by {creator}, not by `flashc lock`, so it says nothing of the worker's platform",
            "move it aside, or run `flashc lock --force` to replace it with the worker's lock",
        )
    if data.get("lock-version") != "1.0":
        raise _error(path, f"lock-version {data.get('lock-version')!r} is not supported (flashc reads 1.0)")
    try:
        target = Target(
            python_version=_text(tool, "python-version", path, "tool.flashc"),
            glibc=_text(tool, "glibc", path, "tool.flashc"),
            machine=_text(tool, "machine", path, "tool.flashc"),
        )
    except ValueError as exc:
        raise _error(path, f"tool.flashc: {exc}") from None
    inputs = _text(tool, "inputs", path, "tool.flashc")
    split = tool.get("split")
    if split is not None and not isinstance(split, str):
        raise _error(path, "tool.flashc.split: expected a string")
    sites = tool.get("sites")
    if not isinstance(sites, list) or not sites:
        raise _error(path, "tool.flashc.sites: expected an array of tables")
    by_group: dict[str, tuple[str, tuple[str, ...]]] = {}
    for i, site in enumerate(sites):
        where = f"tool.flashc.sites[{i}]"
        if not isinstance(site, dict):
            raise _error(path, f"{where}: expected a table")
        resources = site.get("resources")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise _error(path, f"{where}.resources: expected an array of strings")
        by_group[_text(site, "group", path, where)] = (_text(site, "path", path, where), tuple(resources))
    pins: dict[str, list[Pin]] = {group: [] for group in by_group}
    left_out: dict[str, list[tuple[str, str]]] = {group: [] for group in by_group}
    shadowed: dict[str, list[Shadowed]] = {group: [] for group in by_group}
    packages = data.get("packages", [])
    if not isinstance(packages, list):
        raise _error(path, "packages: expected an array of tables")
    for i, package in enumerate(packages):
        where = f"packages[{i}]"
        pin, reason, marker, shadows = _package(package, path, where, root)
        groups = _groups(marker, by_group, path, where) if marker is not None else list(by_group)
        for group in groups:
            pins[group].append(pin)
            if reason is not None:
                left_out[group].append((pin.name, reason))
            members = set(by_group[group][1])
            shadowed[group].extend(s for s in shadows if members & set(s.resources))
    plans = []
    for group, (site_path, resources) in by_group.items():
        named = [p.name for p in pins[group]]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise _error(path, f"group '{group}' holds {', '.join(twice)} twice")
        site = Site(site_path, resources, tuple(sorted(pins[group], key=lambda p: p.name)))
        found = tuple(sorted(set(shadowed[group]), key=lambda s: (s.name, s.image)))
        plans.append(SitePlan(site, tuple(sorted(left_out[group])), found))
    return Lock(target, inputs, tuple(sorted(plans, key=lambda p: p.site.path)), split)


def _package(package: Any, path: str, where: str, root: Path) -> tuple[Pin, str | None, str | None, list[Shadowed]]:
    if not isinstance(package, dict):
        raise _error(path, f"{where}: expected a table")
    name = _text(package, "name", path, where)
    if canonicalize_name(name) != name:
        raise _error(path, f"{where}.name: '{name}' is not in normal form (PEP 503)")
    version = _text(package, "version", path, where)
    try:
        Version(version)
    except InvalidVersion:
        raise _error(path, f"{where}.version: '{version}' is not a valid version") from None
    wheels = package.get("wheels")
    if not isinstance(wheels, list) or len(wheels) != 1 or not isinstance(wheels[0], dict):
        raise _error(path, f"{where}.wheels: expected exactly one wheel")
    wheel = _wheel_entry(wheels[0], path, f"{where}.wheels[0]", root)
    try:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(wheel.filename)
    except InvalidWheelFilename:
        raise _error(path, f"{where}.wheels[0].name: '{wheel.filename}' is not a wheel file name") from None
    if wheel_name != name or wheel_version != Version(version):
        raise _error(path, f"{where}: the wheel {wheel.filename} is not {name} {version}")
    requires = []
    for j, dep in enumerate(package.get("dependencies", [])):
        if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
            raise _error(path, f"{where}.dependencies[{j}]: expected a table with a name")
        requires.append(canonicalize_name(dep["name"]))
    tool = package.get("tool", {}).get("flashc", {}) if isinstance(package.get("tool"), dict) else {}
    reason = tool.get("left-out") if isinstance(tool, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise _error(path, f"{where}.tool.flashc.left-out: expected a string")
    marker = package.get("marker")
    if marker is not None and not isinstance(marker, str):
        raise _error(path, f"{where}.marker: expected a string")
    shadows = []
    listed = tool.get("shadows", []) if isinstance(tool, dict) else []
    for j, item in enumerate(listed if isinstance(listed, list) else [None]):
        at = f"{where}.tool.flashc.shadows[{j}]"
        resources = item.get("resources") if isinstance(item, dict) else None
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise _error(path, f"{at}: expected a table with image, version and resources")
        image, image_version = _text(item, "image", path, at), _text(item, "version", path, at)
        shadows.append(Shadowed(name, version, image_version, image, tuple(resources)))
    return Pin(name, version, wheel, tuple(sorted(set(requires)))), reason, marker, shadows


def _wheel_entry(entry: Mapping[str, Any], path: str, where: str, root: Path) -> Wheel:
    sha256 = entry.get("hashes", {}).get("sha256") if isinstance(entry.get("hashes"), dict) else None
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise _error(path, f"{where}.hashes.sha256: expected 64 lowercase hex digits")
    size = entry.get("size")
    if size is not None and (type(size) is not int or size < 0):
        raise _error(path, f"{where}.size: expected a byte count")
    if isinstance(entry.get("url"), str):
        url = entry["url"]
    elif isinstance(entry.get("path"), str):
        url = (root / entry["path"]).resolve().as_uri()
    else:
        raise _error(path, f"{where}: expected a url or a path")
    name = entry.get("name")
    filename = name if isinstance(name, str) else url.rsplit("/", 1)[-1]
    return Wheel(filename, url, size, sha256)


def _groups(marker: str, by_group: Mapping[str, object], path: str, where: str) -> list[str]:
    groups = re.findall(r"'([^']*)' in dependency_groups", marker)
    if not groups or any(g not in by_group for g in groups):
        raise _error(path, f"{where}.marker: {marker!r} names no group of tool.flashc.sites")
    return groups


def _group(site: Site) -> str:
    """The dependency group of a site: the slug of its folder (`_flashc/sites/<slug>`), or 'all'."""
    return "all" if site.path == SHARED_SITE else site.path.rsplit("/", 1)[-1]


def _environment(target: Target) -> str:
    return (
        f"python_version == '{target.python_version}' and sys_platform == 'linux' "
        f"and platform_machine == '{target.machine}'"
    )


def _wheel(wheel: Wheel, root: Path | None) -> str:
    where = f"url = {_str(wheel.url)}"
    if root is not None and wheel.url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        local = Path(unquote(urlparse(wheel.url).path))
        if local.is_relative_to(root.resolve()):
            where = f"path = {_str(local.relative_to(root.resolve()).as_posix())}"
    size = f", size = {wheel.size}" if wheel.size is not None else ""
    return f"{{ name = {_str(wheel.filename)}, {where}{size}, hashes = {{ sha256 = {_str(wheel.sha256)} }} }}"


def _shadow(shadowed: Shadowed) -> str:
    resources = ", ".join(_str(r) for r in shadowed.resources)
    return f"{{ image = {_str(shadowed.image)}, version = {_str(shadowed.image_version)}, resources = [{resources}] }}"


def _str(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML does not allow raw."""
    return json.dumps(value).replace("\x7f", "\\u007f")


def _text(table: Mapping[str, Any], key: str, path: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str):
        raise _error(path, f"{where}.{key}: expected a string")
    return value


def _error(path: str, reason: str) -> ProjectError:
    return ProjectError(f"{path}: {reason}", _HINT)
