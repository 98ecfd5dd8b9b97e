"""uv, the resolver: `uv pip compile` for the worker, and what it answers read back as pins.

    requirement lines + Target + IndexOptions --compile--> Pins, or Unsatisfiable (uv's own derivation)

uv is a backtracking resolver that judges markers and wheel tags for a target rather than for this
machine (`--python-version`, `--python-platform x86_64-manylinux_2_NN`, `--only-binary :all:`).
Two runs read the same input: the first prints a PEP 751 lock (each pin with the wheels that fit
the target: URL, size, sha256), the second, offline from what the first cached, the same pins as
requirements text whose `# via` annotations are the dependency graph, which a lock from
`uv pip compile` does not hold. Both must agree, or the resolution is refused.

flashc then checks every wheel's tags itself and takes the one the worker prefers.

uv runs with no configuration of its own (`--no-config`, no `UV_*` variable that changes a
resolution, a scratch working folder): every setting comes from flashc's config, so the same
inputs give the same pins wherever flashc runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from .._toml import TOMLDecodeError, loads
from ..errors import FlashcError
from ._network import failing_url, origin, shown, uv_unreachable
from .models import Pin, Wheel
from .requirements import IndexOptions
from .target import Target, supported_tags

__all__ = [
    "ResolveError",
    "Unsatisfiable",
    "UvRunner",
    "compile_pins",
    "default_uv",
    "index_arguments",
    "uv_arguments",
]

UvRunner = Callable[[Sequence[str], Path], tuple[int, str, str]]
"""Runs uv with these arguments in this working folder: (exit code, stdout, stderr)."""

# uv's variables that would change what it resolves or where it looks; flashc passes those settings
# itself. Transport settings (timeouts, TLS roots, proxies) are left to the environment.
_KEPT_UV_VARIABLES = frozenset(
    {"UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_CONCURRENT_DOWNLOADS", "UV_REQUEST_TIMEOUT"}
)
_UNSATISFIABLE_EXIT = 1
DEFAULT_INDEX = "https://pypi.org/simple"
_INPUT = "requirements.in"
_LOCK = "pylock.toml"  # uv takes the pins of an existing output file as preferences
_GRAPH = "graph.txt"
_PIN_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*(?P<version>\S+)|@\s*\S+)")
_VIA = re.compile(r"#\s*via\s+(?P<via>.*)$")


class ResolveError(FlashcError):
    """uv could not run or answer: the index is unreachable, or its answer cannot be read."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """No set of wheels satisfies the requirements: uv's derivation of why, and its hints."""

    reason: str
    hints: tuple[str, ...]


def default_uv(cache_dir: Path) -> UvRunner:
    """The uv installed with flashc, with its cache under `cache_dir` (flashc's own cache folder)."""
    binary = _uv_binary()  # once, here: sysconfig, which finds it, is not safe to start from two threads

    def run(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in _KEPT_UV_VARIABLES}
        env.update(UV_CACHE_DIR=str(cache_dir), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
        try:
            proc = subprocess.run([binary, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ResolveError(
                f"cannot run uv, flashc's resolver: {exc.strerror or exc}", "reinstall flashc (uv comes with it)"
            ) from exc
        return proc.returncode, proc.stdout, proc.stderr

    return run


def _uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("uv")
        if found is None:
            raise ResolveError(
                "uv, flashc's resolver, is not installed", "reinstall flashc: `pip install flashc` brings uv"
            ) from None
        return found


def uv_arguments(target: Target, options: IndexOptions, *, no_deps: bool, offline: bool) -> list[str]:
    """The options of every `uv pip compile` flashc runs for `target` (find-links must be absolute)."""
    args = [
        "pip",
        "compile",
        _INPUT,
        "--no-config",
        "--quiet",
        "--no-header",
        "--python",
        sys.executable,
        "--python-version",
        target.python_version,
        "--python-platform",
        f"{target.machine}-manylinux_{target.glibc.replace('.', '_')}",
        "--only-binary",
        ":all:",
    ]
    if no_deps:
        args.append("--no-deps")
    if offline:
        args.append("--offline")
    return args + index_arguments(options)


def index_arguments(options: IndexOptions) -> list[str]:
    """uv's options for where distributions come from (find-links must be absolute)."""
    args: list[str] = []
    if options.no_index:
        args.append("--no-index")
    if options.index_url:
        args += ["--index-url", options.index_url]
    for url in options.extra_index_urls:
        args += ["--extra-index-url", url]
    for link in options.find_links:
        args += ["--find-links", link]
    for host in options.trusted_hosts:
        args += ["--allow-insecure-host", host]
    if options.pre:
        args += ["--prerelease", "allow"]
    return args


def compile_pins(
    lines: Sequence[str],
    target: Target,
    options: IndexOptions,
    *,
    uv: UvRunner,
    no_deps: bool = False,
    offline: bool = False,
    preferences: Mapping[str, str] | None = None,
) -> tuple[Pin, ...] | Unsatisfiable:
    """Resolve requirement `lines` (PEP 508) for `target`: the pins sorted by name, or why none exist.

    `preferences` (name -> version) are taken where the requirements allow them, as uv takes the
    pins of an output file that already exists: the versions the worker image has, so that what it
    provides need not ship. Raises ResolveError when uv fails for another reason (an unreachable
    index, say) or answers something flashc cannot read.
    """
    base = uv_arguments(target, options, no_deps=no_deps, offline=offline)
    with tempfile.TemporaryDirectory(prefix="flashc-uv-") as tmp:
        folder = Path(tmp)
        (folder / _INPUT).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        (folder / _LOCK).write_text(_preferred_lock(preferences or {}), encoding="utf-8")
        lock_run = _run(uv, [*base, "--output-file", _LOCK], folder)
        failure = _failed(lock_run, options)
        if failure is not None:
            return failure
        locked = (folder / _LOCK).read_text(encoding="utf-8")
        wheels = _read_lock(locked, target)
        # The same resolution again, for its graph, preferring the pins just found: from what the
        # first run cached, so offline (two runs side by side on a cold cache contend for it: 4 s
        # instead of 1.4 for torch's set).
        (folder / _GRAPH).write_text("".join(f"{n}=={v}\n" for n, (v, _) in sorted(wheels.items())), encoding="utf-8")
        graph_args = [*base, "--annotation-style", "line", "--no-strip-extras", "--output-file", _GRAPH]
        graph_run = _run(uv, [*graph_args, "--offline"] if not offline else graph_args, folder)
        if graph_run[0] != 0 and not offline:
            graph_run = _run(uv, graph_args, folder)  # what uv could not cache (a direct URL, say): ask again
        failure = _failed(graph_run, options)
        if failure is not None:
            return failure
        graph = _read_graph((folder / _GRAPH).read_text(encoding="utf-8"))
    if set(graph) != set(wheels) or any(v is not None and v != wheels[n][0] for n, (v, _) in graph.items()):
        raise ResolveError(
            "uv gave two different answers for the same requirements (did the index change meanwhile?)",
            "run the command again",
        )
    requires: dict[str, set[str]] = {name: set() for name in wheels}
    for child, (_, parents) in graph.items():
        for parent in parents:
            if parent in requires:
                requires[parent].add(child)
    return tuple(
        Pin(name, version, wheel, tuple(sorted(requires[name]))) for name, (version, wheel) in sorted(wheels.items())
    )


def _run(uv: UvRunner, args: Sequence[str], folder: Path) -> tuple[int, str, str]:
    """Run uv; if it failed on a damaged entry of its own cache, remove the entry and run it again.

    uv trusts its cache: an unpacked wheel a crash or a disk error left incomplete, or a truncated
    entry, fails every later run (as "invalid package format" or a decoding error), and neither
    `--refresh` nor time mends it. `uv cache clean` does (it waits for other uv runs to finish): of the
    packages uv names, then, should that not be enough, of everything.
    """
    run = uv(args, folder)
    # The packages uv names first; should the damage be elsewhere, the whole cache.
    named = _damaged_packages(run[2])
    for packages in [named, []] if named else [[]]:
        if run[0] == 0 or not _damaged_cache(run[2]):
            break
        with _CLEANING:  # one clean at a time: resolutions run side by side, and may all see the damage
            uv(["cache", "clean", "--no-config", *packages], folder)
        run = uv(args, folder)
    return run


# uv's cache folders (`archive-v0/`, `wheels-v8/`...) in a message: a cached entry is involved.
_CACHE_PATH = re.compile(r"\b(?:archive|wheels|built-wheels|simple|sdists|git|flat-index)-v\d+[/\\]")
# What uv says of an unpacked wheel it cannot read (which may also be the index's own fault: then
# the run after cleaning fails alike), and what serde says of an entry it cannot decode.
_UNDECODABLE = (
    "has an invalid package format",
    "invalid type:",
    "expected struct",
    "failed to deserialize",
    "invalid length",
    "missing field",
)
_QUOTED_NAME = re.compile(r"`(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:\s*(?:==|@)[^`]*)?`")
_CLEANING = threading.Lock()


def _damaged_cache(stderr: str) -> bool:
    return _CACHE_PATH.search(stderr) is not None or any(word in stderr for word in _UNDECODABLE)


def _damaged_packages(stderr: str) -> list[str]:
    """The distributions uv's message quotes (`alpha==1.0`, `alpha`); none means the whole cache."""
    return sorted({str(canonicalize_name(m["name"])) for m in _QUOTED_NAME.finditer(stderr)})


def _preferred_lock(preferences: Mapping[str, str]) -> str:
    """A PEP 751 lock of names and versions only: uv reads it as the versions to prefer."""
    packages = "".join(
        f'\n[[packages]]\nname = "{name}"\nversion = "{version}"\n' for name, version in sorted(preferences.items())
    )
    head = 'lock-version = "1.0"\ncreated-by = "flashc"\n'
    return head + (packages or "packages = []\n")


def _failed(run: tuple[int, str, str], options: IndexOptions) -> Unsatisfiable | None:
    """Why a uv run failed, as the caller reports it (or raises, for the index or offline); None if it did not."""
    code, _, stderr = run
    if code == 0:
        return None
    failure = _failure(code, stderr, options)
    if isinstance(failure, ResolveError):
        raise failure
    return failure


def _unsatisfiable(stderr: str) -> Unsatisfiable:
    """uv's derivation: the `cause:` lines after 'No solution found', and its `hint:` paragraphs."""
    reasons: list[str] = []
    hints: list[str] = []
    current: list[str] | None = None
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line or line.startswith(("warning:", "Resolved ")) or "No solution found" in line:
            current = None
            continue
        if line.startswith("cause:"):
            reasons.append(line.removeprefix("cause:").strip())
            current = reasons
        elif line.startswith("hint:"):
            hints.append(line.removeprefix("hint:").strip())
            current = hints
        elif current:
            current[-1] += " " + line
        else:
            reasons.append(line.removeprefix("error:").strip())
            current = reasons
    return Unsatisfiable(" ".join(reasons) or "no set of versions satisfies the requirements", tuple(hints))


def _failure(code: int, stderr: str, options: IndexOptions) -> ResolveError | Unsatisfiable:
    """What a failed uv run means: working offline, an index out of reach or refusing access (errors
    for the whole run), no versions that fit (uv's derivation), or something one requirement asked
    for (a URL that does not answer, a source distribution, a repository), which the caller then
    finds by trying each requirement alone."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    causes = [line.removeprefix("cause:").strip() for line in lines if line.startswith("cause:")]
    hints = tuple(line.removeprefix("hint:").strip() for line in lines if line.startswith("hint:"))
    head = lines[0].removeprefix("error:").strip() if lines else "uv failed and said nothing"
    # The cause that names a URL says where, the last one says why.
    where = next((c for c in causes if "://" in c), None)
    detail = ": ".join(dict.fromkeys([head, *([where] if where else []), *causes[-1:]]))
    text = stderr.lower()
    # Offline, a distribution missing from the cache reads as unsatisfiable; it is not.
    if "network was disabled" in text or "network connectivity is disabled" in text:
        return ResolveError(
            f"cannot resolve offline: {detail}",
            "build once without --offline while the index is reachable, or run `flashc lock`",
        )
    denied = _DENIED.search(stderr)
    if denied is not None:
        return ResolveError(
            f"the package index at {denied['index']} refuses access ({denied['status']})",
            "check the index URL and its credentials (user:password@ in the URL, or ~/.netrc)",
        )
    if code == _UNSATISFIABLE_EXIT and "No solution found" in stderr:
        return _unsatisfiable(stderr)
    reason = uv_unreachable(stderr)
    if reason is not None:
        return _unreachable(stderr, reason, detail, options)
    url = failing_url(stderr)
    index = next((source for what, source in _sources(options) if url is not None and _under(url, source)), None)
    if index is not None:  # it answered, but nothing uv can read (an HTML error page, say)
        return ResolveError(f"cannot use the package index at {index}: {detail}", _INDEX_HINT)
    return Unsatisfiable(detail, hints)


_INDEX_HINT = (
    "check the network connection and the index URL (--index-url in requirements.txt, UV_INDEX_URL or PIP_INDEX_URL)"
)
# uv's hints when an index answers 401 or 403: the index refuses, not the requirement.
_DENIED = re.compile(
    r"An index(?: URL)? \((?P<index>[^)\s]+)\)[^\n]*?(?P<status>40[13] [A-Z][A-Za-z]+)",
)


def _unreachable(stderr: str, reason: str, detail: str, options: IndexOptions) -> ResolveError:
    """The error for an index (or file server) that uv could not reach, naming it as it was configured."""
    url = failing_url(stderr)
    sources = _sources(options)
    named = next((f"{what} at {source}" for what, source in sources if url is not None and _under(url, source)), None)
    if named is None and url is not None:
        named = f"{origin(url)} (fetching {url})"
    if named is None:
        named = f"{sources[0][0]} at {sources[0][1]}" if len(sources) == 1 else "the package index"
    hint = _INDEX_HINT
    if reason.startswith("it answered 5"):
        hint = "the server is failing, not the requirements: try again later, or " + hint
    return ResolveError(f"cannot reach {named}: {reason}\n  uv: {detail}", hint)


def _sources(options: IndexOptions) -> list[tuple[str, str]]:
    """Where uv fetches from, as the messages name them, without credentials (uv shows none)."""
    found: list[tuple[str, str]] = []
    if not options.no_index:
        found += [("the package index", url) for url in (options.index_url or DEFAULT_INDEX, *options.extra_index_urls)]
    pages = [url for url in options.find_links if "://" in url and not url.startswith("file:")]
    found += [("the --find-links page", url) for url in pages]
    return [(what, shown(url).rstrip("/")) for what, url in found]


def _under(url: str, source: str) -> bool:
    return url.rstrip("/") == source or url.startswith(source + "/")


def _read_lock(text: str, target: Target) -> dict[str, tuple[str, Wheel]]:
    """name -> (version, the wheel the worker prefers) from uv's PEP 751 output."""
    try:
        data = loads(text)
    except TOMLDecodeError as exc:
        raise ResolveError(f"uv answered a lock flashc cannot read: {exc}") from exc
    rank = {tag: i for i, tag in enumerate(supported_tags(target))}
    pins: dict[str, tuple[str, Wheel]] = {}
    for package in data.get("packages", []):
        name, version = canonicalize_name(str(package["name"])), str(package["version"])
        candidates = list(_wheels(package))
        if not candidates:
            raise ResolveError(f"uv resolved {name} {version} to something that is not a wheel")
        best = min(candidates, key=lambda w: _preference(w.filename, rank))
        if _preference(best.filename, rank) == len(rank):
            from .target import explain_misfit

            raise ResolveError(explain_misfit(best.filename, target), "pin a version with a wheel for the worker")
        pins[name] = (version, best)
    return pins


def _wheels(package: Mapping[str, Any]) -> Iterable[Wheel]:
    entries = list(package.get("wheels", []))
    archive = package.get("archive")
    if isinstance(archive, dict) and str(archive.get("url", archive.get("path", ""))).endswith(".whl"):
        entries.append(archive)
    for entry in entries:
        url = str(entry.get("url") or Path(str(entry["path"])).resolve().as_uri())
        filename = str(entry.get("name") or url.rsplit("/", 1)[-1])
        sha256 = entry.get("hashes", {}).get("sha256")
        if not isinstance(sha256, str):
            raise ResolveError(f"uv gave no sha256 for {filename}")
        size = entry.get("size")
        yield Wheel(filename, url, size if isinstance(size, int) else None, sha256)


def _preference(filename: str, rank: Mapping[Tag, int]) -> int:
    """The position of the wheel's best tag in the worker's list; len(rank) when none fits."""
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return len(rank)
    return min((rank[t] for t in tags if t in rank), default=len(rank))


def _read_graph(text: str) -> dict[str, tuple[str | None, set[str]]]:
    """name -> (version, or None for a URL requirement; the names of the pins that need it)."""
    graph: dict[str, tuple[str | None, set[str]]] = {}
    for line in text.splitlines():
        match = _PIN_LINE.match(line)
        if match is None:
            continue
        via = _VIA.search(line)
        parents = set()
        if via is not None:
            for item in via["via"].split(","):
                item = item.strip()
                if item and not item.startswith("-"):
                    parents.add(str(canonicalize_name(item.split("[", 1)[0])))
        graph[str(canonicalize_name(match["name"]))] = (match["version"], parents)
    return graph
