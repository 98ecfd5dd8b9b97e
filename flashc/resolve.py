"""Stage 4, resolve: the wheels a worker needs, chosen for the worker and not for this machine.

    RequirementSet + Target --resolve--> Resolution (one wheel per distribution, in the wheel cache)

pip fetches; flashc decides. pip evaluates environment markers against the machine it runs on,
even with `--platform` and `--python-version`, so flashc never lets it follow dependencies:
each round asks `pip download --no-deps` for the distributions still needed, with the worker's
whole manylinux tag ladder, Python version, ABI and `--only-binary=:all:`; then flashc reads
each wheel's `Requires-Dist`, evaluates the markers for the worker (`target.marker_applies`), merges
the version specifiers, and asks again for what is missing or no longer fits. Rounds repeat until
nothing changes. Every wheel's tags are checked against the target.

Wheels land in a content-addressed cache (`<cache>/wheels/<sha256>/<filename>`) shared by every
project; the result of a resolution is cached too, keyed by its inputs, so resolving the same
requirements again sends no request to the index (`offline=True` refuses to try).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Req
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ._atomic import write_atomic
from .errors import FlashcError
from .requirements import IndexOptions, Requirement
from .target import Target, explain_misfit, marker_applies, platform_tags, wheel_fits

__all__ = [
    "PipRunner",
    "Progress",
    "Resolution",
    "ResolveError",
    "ResolvedWheel",
    "WheelCache",
    "default_cache_dir",
    "resolve",
]

# Bump when the resolution algorithm changes, so cached resolutions are not reused across it.
_RESOLVER_VERSION = "1"
_MAX_ROUNDS = 40

PipRunner = Callable[[Sequence[str]], tuple[int, str]]
Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress reporter: says nothing."""


class ResolveError(FlashcError):
    """A requirement has no wheel for the target, or the requirements cannot all hold."""


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedWheel:
    """One distribution chosen for the worker: its wheel in the cache, and what it needs there."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    requires: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    roots: tuple[str, ...]
    wheels: tuple[ResolvedWheel, ...]
    from_cache: bool


def default_pip(args: Sequence[str]) -> tuple[int, str]:
    """Run this interpreter's pip; the user's pip configuration (index, certificates) applies."""
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def default_cache_dir() -> Path:
    """`$FLASHC_CACHE_DIR`, else `$XDG_CACHE_HOME/flashc`, else `~/.cache/flashc`."""
    explicit = os.environ.get("FLASHC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flashc"


class WheelCache:
    """Wheels by content (sha256) and resolutions by their inputs, in one folder shared by projects."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str, filename: str) -> Path:
        return self.root / "wheels" / sha256 / filename

    def add(self, wheel: Path) -> tuple[str, Path]:
        """Move a downloaded wheel into the cache; its digest and cached path."""
        digest = _sha256(wheel)
        target = self.path(digest, wheel.name)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(wheel, tmp)
            os.replace(tmp, target)
        return digest, target

    def has(self, wheel: ResolvedWheel) -> bool:
        path = self.path(wheel.sha256, wheel.filename)
        return path.is_file() and path.stat().st_size == wheel.size

    def load_resolution(self, key: str) -> list[ResolvedWheel] | None:
        try:
            data = json.loads((self.root / "resolutions" / f"{key}.json").read_text(encoding="utf-8"))
            return [ResolvedWheel(**{**w, "requires": tuple(w["requires"])}) for w in data]
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save_resolution(self, key: str, wheels: Sequence[ResolvedWheel]) -> None:
        target = self.root / "resolutions" / f"{key}.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, json.dumps([dataclasses.asdict(w) for w in wheels], sort_keys=True, indent=1).encode())
        except OSError:
            return  # a cache that cannot be written only costs time


def resolve(
    requirements: Sequence[Requirement],
    target: Target,
    options: IndexOptions,
    *,
    cache: WheelCache,
    pip: PipRunner = default_pip,
    offline: bool = False,
    no_deps: bool = False,
    skip: frozenset[str] = frozenset(),
    progress: Progress = _quiet,
) -> Resolution:
    """Choose one wheel per needed distribution for `target`; ResolveError explains failures.

    Names in `skip` are never downloaded: they are provided elsewhere (a GPU image's torch) or
    left out on purpose, so neither they nor what only they would pull in cost a download. They
    still appear in the `requires` of the wheels that need them.
    """
    direct = [r for r in requirements if marker_applies(r.marker, target, ()) and r.name not in skip]
    roots = tuple(sorted({r.name for r in direct}))
    key = _key(direct, target, options, no_deps, skip)
    cached = cache.load_resolution(key)
    if cached is not None and all(cache.has(w) for w in cached):
        return Resolution(roots, tuple(cached), from_cache=True)
    if offline:
        raise ResolveError(
            "the wheels for these requirements are not in the cache, and --offline forbids asking the index",
            "build once without --offline (or run `flashc lock`) while the index is reachable",
        )
    wheels = _Resolver(target, options, cache, pip, no_deps, skip, progress).run(direct)
    cache.save_resolution(key, wheels)
    return Resolution(roots, tuple(wheels), from_cache=False)


class _Resolver:
    def __init__(
        self,
        target: Target,
        options: IndexOptions,
        cache: WheelCache,
        pip: PipRunner,
        no_deps: bool,
        skip: frozenset[str],
        progress: Progress,
    ):
        self.target, self.options, self.cache, self.pip, self.no_deps = target, options, cache, pip, no_deps
        self.skip, self.progress = skip, progress
        self.specs: dict[str, set[str]] = {}
        self.extras: dict[str, set[str]] = {}
        self.wanted_by: dict[str, set[str]] = {}
        self.chosen: dict[str, tuple[ResolvedWheel, list[str]]] = {}  # name -> (wheel, raw Requires-Dist)

    def run(self, direct: Sequence[Requirement]) -> list[ResolvedWheel]:
        for r in direct:
            self._want(r.name, r.specifier, r.extras, "your requirements")
        roots = {r.name for r in direct}
        for _ in range(_MAX_ROUNDS):
            todo = sorted(name for name in self.specs if not self._satisfied(name))
            if not todo:
                break
            self._download(todo)
            if not self.no_deps:
                for name in list(self.chosen):
                    self._add_dependencies(name)
        else:
            raise ResolveError("the requirements did not settle on one version of each distribution")
        return self._reachable(roots)

    def _want(self, name: str, specifier: str, extras: Iterable[str], by: str) -> None:
        self.specs.setdefault(name, set())
        if specifier:
            self.specs[name].add(specifier)
        self.extras.setdefault(name, set()).update(extras)
        self.wanted_by.setdefault(name, set()).add(by)

    def _spec(self, name: str) -> SpecifierSet:
        return SpecifierSet(",".join(sorted(self.specs[name])))

    def _satisfied(self, name: str) -> bool:
        chosen = self.chosen.get(name)
        return chosen is not None and self._spec(name).contains(chosen[0].version, prereleases=True)

    def _download(self, names: Sequence[str]) -> None:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        self.progress(f"downloading wheels for CPython {self.target.python_version}: {shown}")
        with tempfile.TemporaryDirectory(prefix="flashc-pip-") as tmp:
            args = ["download", "--no-deps", "--only-binary=:all:", "--dest", tmp, "--progress-bar", "off"]
            args += ["--implementation", "cp", "--python-version", self.target.python_version]
            args += ["--abi", "cp" + self.target.python_version.replace(".", "")]
            for tag in platform_tags(self.target):
                args += ["--platform", tag]
            args += _index_args(self.options)
            args += [f"{name}{_extras(self.extras[name])}{self._spec(name)}" for name in names]
            code, output = self.pip(args)
            if code != 0:
                message, hint = _explain_failure(output, names, self.wanted_by, self.target)
                failing = _failing_name(output, names)
                if failing is not None:
                    from .index import available_files, describe_available

                    message += f"; on the index: {describe_available(available_files(failing, self.options))}"
                raise ResolveError(message, hint)
            for wheel in sorted(Path(tmp).glob("*.whl")):
                self._take(wheel)
        missing = [n for n in names if n not in self.chosen]
        if missing:
            raise ResolveError(f"pip did not download a wheel for: {', '.join(missing)}")

    def _take(self, wheel: Path) -> None:
        try:
            name, version, _, _ = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename as exc:
            raise ResolveError(f"pip returned a file that is not a wheel: {wheel.name}") from exc
        if not wheel_fits(wheel.name, self.target):
            raise ResolveError(
                explain_misfit(wheel.name, self.target), "pin a version that has a wheel for Linux x86_64"
            )
        digest, cached = self.cache.add(wheel)
        requires_dist = _requires_dist(cached)
        self.chosen[str(name)] = (
            ResolvedWheel(str(name), str(version), wheel.name, digest, cached.stat().st_size, ()),
            requires_dist,
        )

    def _dependencies(self, name: str) -> list[Req]:
        _, requires_dist = self.chosen[name]
        deps = []
        for text in requires_dist:
            try:
                dep = Req(text)
            except InvalidRequirement:
                continue  # a broken Requires-Dist line in someone's wheel: pip would skip it too
            marker = str(dep.marker) if dep.marker else None
            if marker_applies(marker, self.target, sorted(self.extras.get(name, ()))):
                deps.append(dep)
        return deps

    def _add_dependencies(self, name: str) -> None:
        for dep in self._dependencies(name):
            if canonicalize_name(dep.name) not in self.skip:
                self._want(canonicalize_name(dep.name), str(dep.specifier), dep.extras, name)

    def _reachable(self, roots: set[str]) -> list[ResolvedWheel]:
        """Only what the final choices still need: an early pick may have pulled in deps since dropped."""
        seen: set[str] = set()
        stack = sorted(roots)
        out = []
        while stack:
            name = stack.pop()
            if name in seen or name not in self.chosen:
                continue
            seen.add(name)
            requires = (
                () if self.no_deps else tuple(sorted({canonicalize_name(d.name) for d in self._dependencies(name)}))
            )
            out.append(dataclasses.replace(self.chosen[name][0], requires=requires))
            stack.extend(requires)
        return sorted(out, key=lambda w: w.name)


def _key(
    direct: Sequence[Requirement], target: Target, options: IndexOptions, no_deps: bool, skip: frozenset[str]
) -> str:
    data = {
        "skip": sorted(skip),
        "resolver": _RESOLVER_VERSION,
        "requirements": sorted(r.text for r in direct),
        "target": dataclasses.asdict(target),
        "options": dataclasses.asdict(options),
        "no_deps": no_deps,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _index_args(options: IndexOptions) -> list[str]:
    args = []
    if options.no_index:
        args.append("--no-index")
    if options.index_url:
        args += ["--index-url", options.index_url]
    for url in options.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in options.find_links:
        args += ["--find-links", link]
    for host in options.trusted_hosts:
        args += ["--trusted-host", host]
    if options.pre:
        args.append("--pre")
    return args


def _extras(extras: Iterable[str]) -> str:
    names = sorted(extras)
    return f"[{','.join(names)}]" if names else ""


def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        metadata = next((n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
        if metadata is None:
            raise ResolveError(f"wheel {wheel.name} has no METADATA")
        headers = HeaderParser().parsestr(zf.read(metadata).decode("utf-8", errors="replace"))
    return headers.get_all("Requires-Dist") or []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _failing_name(output: str, names: Sequence[str]) -> str | None:
    """The requirement pip could not satisfy, read from its 'for the requirement X' line."""
    for line in output.splitlines():
        if "requirement" in line:
            for name in names:
                if re.search(rf"(?i)requirement {re.escape(name)}\b", line.replace("_", "-")):
                    return name
    return None


def _explain_failure(
    output: str, names: Sequence[str], wanted_by: Mapping[str, set[str]], target: Target
) -> tuple[str, str]:
    """pip's refusal in a user's words: which requirement, who wanted it, what exists, what to do."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    versions = next((line for line in lines if "from versions:" in line), "")
    failing = _failing_name(output, names)
    who = ", ".join(sorted(wanted_by.get(failing or "", set()))) or "your requirements"
    message = (
        f"no wheel of {failing or ', '.join(names)} fits the target "
        f"(CPython {target.python_version}, Linux {target.machine}, glibc <= {target.glibc}); needed by {who}"
    )
    if versions:
        message += f"; pip saw: {versions}"
    else:
        message += "; pip said: " + (lines[-1] if lines else "nothing")
    hint = (
        "pin a version that publishes a manylinux wheel for this Python, or choose another --python-version; "
        "packages published only as source distributions cannot be used"
    )
    return message, hint
