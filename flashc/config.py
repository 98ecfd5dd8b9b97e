"""The build's configuration, read once: command-line options, `[tool.flashc]` and the environment.

    CliOptions ------------------.
    pyproject.toml [tool.flashc] +--parse_config--> Config --> every stage of the build
    environment -----------------'

`read_config` is the I/O edge: it reads `pyproject.toml` (once) and `os.environ`. `parse_config`
is pure: it gets the file's content, the options and the environment as values. Each setting has
one place it comes from, most specific first:

    setting            command line            [tool.flashc]       environment              default
    python_version     --python-version        python_version      -                        the worker images' (3.12)
    glibc              --glibc                 glibc               -                        2.35
    exclude            --exclude a,b (both lists are merged)       -                        none
    keep_gpu_packages  --keep-gpu-packages or keep_gpu_packages    -                        false
    no_deps, offline   --no-deps, --offline    -                   -                        false
    max_size           --max-size MB           max_size (MB)       -                        500 MB (10^6 bytes)
    mtime              -                       -                   SOURCE_DATE_EPOCH        1980-01-01
    index              -                       -                   UV_*, else PIP_*         pypi.org
    cache_dir          -                       -                   FLASHC_CACHE_DIR,        ~/.cache/flashc
                                                                   XDG_CACHE_HOME/flashc
    deploy_target      deploy --target         target              -                        local
    app                deploy --app            app                 -                        the project folder's name
    environment        deploy --env            environment         -                        production
    serve              -                       serve               -                        main.py's `app`

`[tool.flashc]` keys may also be spelt with dashes (`python-version`). Every problem is collected
before anything is raised. Problems in `pyproject.toml` (invalid TOML, an unknown key, a wrong
type or value) are located diagnostics, raised together as one `DiagnosticsError`; bad option or
environment values are a `UsageError` (if the file has problems too, they join the diagnostics,
under the path `<command line>` or `<environment>`).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from ._toml import TOMLDecodeError, loads
from .deps.target import Target, parse_glibc, parse_python_version
from .diagnostics import Diagnostic, Span
from .errors import DiagnosticsError, ProjectError, UsageError

__all__ = [
    "DEFAULT_GLIBC",
    "DEFAULT_MAX_SIZE_MB",
    "DEFAULT_MTIME",
    "PYPROJECT",
    "CliOptions",
    "Config",
    "IndexSettings",
    "PyProject",
    "default_cache_dir",
    "image_python",
    "parse_config",
    "read_config",
]

PYPROJECT = "pyproject.toml"
DEFAULT_GLIBC = "2.35"  # Ubuntu 22.04, the usual CUDA base image
DEFAULT_MAX_SIZE_MB = 500  # the platform's limit for a compressed archive
# 1980-01-01 00:00:00 UTC: the earliest time a zip can hold, so members keep a valid time if the
# archive is ever repacked as a zip or wheel, and no tool mistakes it for "no time at all" (0).
DEFAULT_MTIME = 315532800

_CODE = "config"
_TABLE = "[tool.flashc]"
_EPOCH_DIGITS = re.compile(r"[0-9]+")
_TOML_PLACE = re.compile(r"\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)")
# PEP 508's distribution name, checked before normalising so `torch>=2` is not silently kept as a name.
_DIST_NAME = re.compile(r"[A-Z0-9]([A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE)
# As pip (strtobool) and uv (clap's boolish values) read a flag from the environment.
_TRUE = frozenset({"1", "y", "yes", "t", "true", "on"})
_FALSE = frozenset({"0", "n", "no", "f", "false", "off"})


@dataclasses.dataclass(frozen=True, slots=True)
class CliOptions:
    """What the command line said; None or empty means "not given"."""

    python_version: str | None = None
    glibc: str | None = None
    exclude: tuple[str, ...] = ()
    """As given: each value may hold several comma-separated names."""
    keep_gpu_packages: bool = False
    no_deps: bool = False
    offline: bool = False
    max_size_mb: int | None = None
    target: str | None = None
    app: str | None = None
    environment: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IndexSettings:
    """Where wheels come from, as the environment says; the resolver is run with exactly these.

    uv's variables first; each setting uv's variables leave unset comes from pip's:

        index_url         UV_DEFAULT_INDEX, else UV_INDEX_URL     else PIP_INDEX_URL
        extra_index_urls  UV_INDEX and UV_EXTRA_INDEX_URL (space)  else PIP_EXTRA_INDEX_URL (space)
        find_links        UV_FIND_LINKS (comma)                    else PIP_FIND_LINKS (space)
        no_index          UV_NO_INDEX                              else PIP_NO_INDEX

    A named index (`UV_INDEX="internal=https://..."`) keeps only its URL: the name changes nothing
    about what resolves. Options in `requirements.txt` come on top of these.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PyProject:
    """The project's `pyproject.toml`, read and parsed once, for every stage that needs it."""

    path: str
    """Relative to the project root: "pyproject.toml"."""
    text: str
    data: Mapping[str, Any] = dataclasses.field(compare=False)
    """The parsed TOML; derived from `text`, so equality and the fingerprint look at `text`. Do not mutate."""


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything a build is configured by, resolved and validated. Build it with `read_config`."""

    python_version: str
    """The worker's CPython, "3.11"."""
    glibc: str
    """The worker image's glibc, "2.35"."""
    exclude: tuple[str, ...]
    """Distributions to leave out, PEP 503 normalised, sorted."""
    keep_gpu_packages: bool
    """Ship torch and friends even when only GPU resources need them."""
    no_deps: bool
    offline: bool
    max_size: int
    """Bytes of compressed archive."""
    mtime: int
    """Time of every archive member, seconds since 1970-01-01."""
    index: IndexSettings
    cache_dir: Path
    """The wheel cache shared by all projects."""
    pyproject: PyProject | None
    """None when the project has no pyproject.toml."""
    deploy_target: str = "local"
    """Where `flashc deploy` goes: "local" (this machine) or "runpod"."""
    app: str | None = None
    """The Runpod app the project deploys to; None: the project folder's name."""
    environment: str = "production"
    """The app's environment the project deploys to."""
    serve: str | None = None
    """The API app `flashc run` serves and a mothership.py deploys, "module:attribute"; None: main.py's
    `app`, if there is one."""

    @property
    def target(self) -> Target:
        return Target(self.python_version, self.glibc)

    def fingerprint(self) -> str:
        """A sha256 hex digest of every field that can change the archive's bytes or the resolution.

        Every field but `cache_dir` and `offline` (which change where wheels come from, not which).
        """
        data = {
            field.name: _jsonable(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name not in _NOT_FINGERPRINTED
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


_NOT_FINGERPRINTED = frozenset({"cache_dir", "offline", "deploy_target", "app", "environment"})


def _jsonable(value: object) -> object:
    if isinstance(value, PyProject):
        return {"path": value.path, "text": value.text}
    if isinstance(value, IndexSettings):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# --- the I/O edge -------------------------------------------------------------------------------


def read_config(
    root: Path, cli: CliOptions, environ: Mapping[str, str] | None = None, host_python: str | None = None
) -> Config:
    """Read `root/pyproject.toml` (if any) and the environment, and parse them with `cli`.

    `environ` defaults to `os.environ`, `host_python` (the Python built for when nothing says) to
    the Python of Runpod's worker images: what the archive runs on, whatever runs flashc. Raises
    `ProjectError` if pyproject.toml exists but cannot be read, and what `parse_config` raises.
    """
    root = root.resolve()
    path = root / PYPROJECT
    data: bytes | None = None
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ProjectError(
                f"cannot read {PYPROJECT}: {exc.strerror or exc}", "check the file's permissions"
            ) from exc
    host = host_python or image_python()
    return parse_config(data, cli, os.environ if environ is None else environ, host, root=root)


# --- parsing ------------------------------------------------------------------------------------

_Origin = Literal["<command line>", "<environment>"]


@dataclasses.dataclass
class _Problems:
    """Everything wrong so far: located diagnostics in pyproject.toml, and bad option or environment values."""

    diagnostics: list[Diagnostic] = dataclasses.field(default_factory=list)
    usage: list[tuple[_Origin, str, str | None]] = dataclasses.field(default_factory=list)

    def located(self, span: Span | None, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(PYPROJECT, span, "error", _CODE, message, hint))

    def raise_if_any(self, root: Path) -> None:
        if self.diagnostics:
            unlocated = [Diagnostic(origin, None, "error", _CODE, m, h) for origin, m, h in self.usage]
            raise DiagnosticsError([*self.diagnostics, *unlocated], root)
        if len(self.usage) == 1:
            _, message, hint = self.usage[0]
            raise UsageError(message, hint)
        if self.usage:
            listed = "".join(f"\n  {m}" + (f"\n    = hint: {h}" if h else "") for _, m, h in self.usage)
            raise UsageError(f"{len(self.usage)} problems with the command line and the environment:{listed}")


def parse_config(
    pyproject: bytes | str | None,
    cli: CliOptions,
    environ: Mapping[str, str],
    host_python: str,
    *,
    root: Path = Path("."),
) -> Config:
    """Resolve every setting from pyproject.toml's content (None if there is none), `cli` and `environ`.

    Pure. `host_python` ("3.11" or "3.11.7") is the fallback worker Python; `root` only tells the
    raised `DiagnosticsError` where pyproject.toml is, so the CLI can show the offending line.
    """
    host_python = parse_python_version(host_python)
    problems = _Problems()
    text = _decode(pyproject, problems) if isinstance(pyproject, bytes) else pyproject
    project = _parse_pyproject(text, problems) if text is not None else None
    tool = _tool_settings(project, problems) if project is not None else {}

    def checked(parse: Callable[[str], str], cli_value: str | None, key: str, default: Any) -> Any:
        if cli_value is not None:
            try:
                return parse(cli_value)
            except UsageError as exc:
                problems.usage.append(("<command line>", exc.message, exc.hint))
                return default
        if key in tool:
            setting = tool[key]
            try:
                return parse(setting.value)
            except UsageError as exc:
                problems.located(setting.value_span, exc.message, exc.hint)
        return default

    python_version = checked(parse_python_version, cli.python_version, "python_version", host_python)
    deploy_target = checked(_parse_target, cli.target, "target", "local")
    app = checked(_parse_name, cli.app, "app", None)
    environment = checked(_parse_name, cli.environment, "environment", "production")
    glibc = checked(parse_glibc, cli.glibc, "glibc", DEFAULT_GLIBC)
    exclude = _cli_exclude(cli.exclude, problems)
    if "exclude" in tool:
        exclude |= _tool_exclude(tool["exclude"], problems)
    keep_gpu = cli.keep_gpu_packages or bool("keep_gpu_packages" in tool and tool["keep_gpu_packages"].value)
    max_size_mb = DEFAULT_MAX_SIZE_MB
    if cli.max_size_mb is not None:
        if type(cli.max_size_mb) is int and cli.max_size_mb >= 1:
            max_size_mb = cli.max_size_mb
        else:
            problems.usage.append(
                (
                    "<command line>",
                    f"--max-size must be a positive whole number of megabytes, not {cli.max_size_mb!r}",
                    "give the limit in megabytes, such as --max-size 500",
                )
            )
    elif "max_size" in tool:
        max_size_mb = tool["max_size"].value
    mtime = _mtime(environ, problems)
    index = _index_settings(environ, problems)
    problems.raise_if_any(root)
    return Config(
        python_version=python_version,
        glibc=glibc,
        exclude=tuple(sorted(exclude)),
        keep_gpu_packages=keep_gpu,
        no_deps=cli.no_deps,
        offline=cli.offline,
        max_size=max_size_mb * 1_000_000,
        mtime=mtime,
        index=index,
        cache_dir=_cache_dir(environ),
        pyproject=project,
        deploy_target=deploy_target,
        app=app,
        environment=environment,
        serve=str(tool["serve"].value) if "serve" in tool else None,
    )


def _parse_target(value: object) -> str:
    if value not in ("local", "runpod"):
        raise UsageError(f"target must be local or runpod, not {value!r}", 'write target = "runpod"')
    return str(value)


def _parse_name(value: object) -> str:
    text = str(value)
    if not text or len(text) > 64 or not all(c.isalnum() or c in "-_." for c in text):
        raise UsageError(
            f"{value!r} is not a name Runpod takes", "use letters, digits, '-', '_' and '.', at most 64 characters"
        )
    return text


# --- pyproject.toml -----------------------------------------------------------------------------


def _decode(data: bytes, problems: _Problems) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.located(Span(line, 1, line + 1, 1), f"{PYPROJECT} is not valid UTF-8", "save it as UTF-8")
        return None


def _parse_pyproject(text: str, problems: _Problems) -> PyProject | None:
    try:
        data = loads(text)
    except TOMLDecodeError as exc:
        message = str(exc)
        place = _TOML_PLACE.search(message)
        if place and place["line"]:
            line, col = int(place["line"]), int(place["col"])
        else:  # "(at end of document)"
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        message = _TOML_PLACE.sub("", message)
        problems.located(Span(line, col, line, col + 1), f"invalid TOML in {PYPROJECT}: {message}")
        return None
    return PyProject(PYPROJECT, text, data)


@dataclasses.dataclass(frozen=True, slots=True)
class _Setting:
    """A checked `[tool.flashc]` value, and where it is written (None when it cannot be found)."""

    value: Any
    value_span: Span | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    expected: str
    hint: str  # `{key}` is replaced by the key as the user spelt it
    accepts: Callable[[object], bool]


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_positive_int(value: object) -> bool:
    return type(value) is int and value >= 1  # bool is an int subclass: `true` is not a size


_KEYS = {
    "python_version": _Key(
        'a string such as "3.11"', 'write {key} = "3.11", in quotes (unquoted, 3.10 is the number 3.1)', _is_str
    ),
    "glibc": _Key('a string such as "2.35"', 'write {key} = "2.35", in quotes', _is_str),
    "exclude": _Key("a list of distribution names", 'write {key} = ["torch", "triton"]', _is_str_list),
    "keep_gpu_packages": _Key("true or false", "write {key} = true", _is_bool),
    "max_size": _Key(
        "a positive whole number of megabytes", "write {key} = 500, the limit in megabytes", _is_positive_int
    ),
    "target": _Key('"local" or "runpod"', 'write {key} = "runpod"', _is_str),
    "app": _Key("a string, the Runpod app's name", 'write {key} = "my-app"', _is_str),
    "environment": _Key("a string, the app environment's name", 'write {key} = "production"', _is_str),
    "serve": _Key('"module:attribute", the API app `flashc run` serves', 'write {key} = "main:app"', _is_str),
}


def _spellings(key: str) -> tuple[str, ...]:
    kebab = key.replace("_", "-")
    return (key,) if kebab == key else (key, kebab)


_SPELLINGS = {spelling: key for key in _KEYS for spelling in _spellings(key)}


def _tool_settings(project: PyProject, problems: _Problems) -> dict[str, _Setting]:
    """The checked values of `[tool.flashc]`, by canonical key; each problem goes to `problems`."""
    tool = project.data.get("tool")
    if not isinstance(tool, dict) or "flashc" not in tool:
        return {}
    lines = project.text.splitlines()
    table = tool["flashc"]
    if not isinstance(table, dict):
        place = _find_key(lines, "tool", "flashc")
        problems.located(
            place[0] if place else None,
            f"{_TABLE} must be a table, not {_toml_type(table)}",
            f"write the settings under a {_TABLE} header",
        )
        return {}
    settings: dict[str, _Setting] = {}
    spelt: dict[str, str] = {}
    for written, value in table.items():
        key = _SPELLINGS.get(written)
        place = _find_key(lines, "tool.flashc", written) or _find_header(lines, f"tool.flashc.{written}")
        key_span, value_span = place if place else (None, None)
        if key is None:
            problems.located(key_span, f"unknown key '{written}' in {_TABLE}", _unknown_hint(written))
            continue
        if key in spelt:
            places = [_find_key(lines, "tool.flashc", w) for w in (spelt[key], written)]
            spans = [place[0] for place in places if place is not None]
            problems.located(
                max(spans, key=lambda s: (s.line, s.col)) if spans else None,
                f"{_TABLE} sets {key} twice: as {spelt[key]} and as {written}",
                "keep one of them",
            )
            continue
        spelt[key] = written
        spec = _KEYS[key]
        if not spec.accepts(value):
            got = repr(value) if type(value) is int else _toml_type(value)
            problems.located(
                value_span,
                f"{_TABLE} {written} must be {spec.expected}, not {got}",
                spec.hint.format(key=written),
            )
            continue
        settings[key] = _Setting(value, value_span)
    return settings


def _unknown_hint(written: str) -> str:
    # Suggest in the user's own style: `max-sise` gets `max-size`, `max_sise` gets `max_size`.
    style = [key.replace("_", "-") for key in _KEYS] if "-" in written else list(_KEYS)
    close = difflib.get_close_matches(written, style, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"{_TABLE} takes: {', '.join(sorted(_KEYS))}"


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        inner = {_toml_type(item) for item in value} - {"a string"}
        return f"an array holding {min(inner)}" if inner else "an array"
    return "a date or time"


def _cli_exclude(values: Sequence[str], problems: _Problems) -> set[str]:
    names: set[str] = set()
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if _DIST_NAME.fullmatch(name):
                names.add(canonicalize_name(name))
            else:
                problems.usage.append(
                    (
                        "<command line>",
                        f"--exclude: '{name}' is not a distribution name",
                        "give names only, such as --exclude torch,triton",
                    )
                )
    return names


def _tool_exclude(setting: _Setting, problems: _Problems) -> set[str]:
    names: set[str] = set()
    for name in setting.value:
        if _DIST_NAME.fullmatch(name.strip()):
            names.add(canonicalize_name(name.strip()))
        else:
            problems.located(
                setting.value_span,
                f"{_TABLE} exclude: '{name}' is not a distribution name",
                'give names only, such as exclude = ["torch", "triton"]',
            )
    return names


# --- finding a key in the text --------------------------------------------------------------------

_KEY_LINE = re.compile(r"\s*(?P<key>[A-Za-z0-9_-]+|\"[^\"\\]*\"|'[^']*')\s*=\s*")


def _header(line: str) -> str | None:
    """The dotted name of a table header line (`[ tool . "flashc" ]` is "tool.flashc"); None for other lines.

    An array-of-tables header gives "[]" plus its name, so it never equals a table's name.
    """
    stripped = line.strip()
    if not stripped.startswith("["):
        return None
    array = stripped.startswith("[[")
    inner = stripped.lstrip("[").split("]", 1)[0]
    name = ".".join(part.strip().strip("\"'") for part in inner.split("."))
    return "[]" + name if array else name


def _find_key(lines: Sequence[str], table: str, key: str) -> tuple[Span, Span] | None:
    """Where `key = value` is written in the table `table`: the key's span and the value's (its first line)."""
    inside = False
    for number, line in enumerate(lines, 1):
        name = _header(line)
        if name is not None:
            inside = name == table
            continue
        match = _KEY_LINE.match(line) if inside else None
        if match is None or match["key"].strip("\"'") != key:
            continue
        start = match.end()
        key_span = Span(number, match.start("key") + 1, number, match.end("key") + 1)
        return key_span, Span(number, start + 1, number, _value_end(line, start) + 1)
    return _find_dotted(lines, table, key)


def _find_dotted(lines: Sequence[str], table: str, key: str) -> tuple[Span, Span] | None:
    """Where `key` is written as a dotted key (`tool.flashc.key = ...`, `flashc.key = ...` under `[tool]`)
    or inside an inline table (`flashc = { key = ... }`): on a line that names the table's last part."""
    last = table.rsplit(".", 1)[-1]
    written = re.compile(rf"""(?<![\w-])(["']?){re.escape(key)}\1\s*=\s*""")
    for number, line in enumerate(lines, 1):
        if last not in line or line.lstrip().startswith("#"):
            continue
        match = written.search(line, line.index(last) + len(last))
        if match is not None:
            start = match.end()
            key_span = Span(number, match.start() + 1, number, match.start() + 1 + len(match[1]) * 2 + len(key))
            end = _value_end(line, start)
            if line[start : start + 1] not in ("'", '"', "[", "{"):  # a bare value ends at the inline table's comma
                end = min([end, *(i for i in (line.find(",", start), line.find("}", start)) if i > start)])
            return key_span, Span(number, start + 1, number, end + 1)
    return None


def _find_header(lines: Sequence[str], table: str) -> tuple[Span, Span] | None:
    """Where the header `[table]` is written: the same span twice (the table is its own value)."""
    for number, line in enumerate(lines, 1):
        if _header(line) == table:
            col = len(line) - len(line.lstrip()) + 1
            span = Span(number, col, number, len(line.rstrip()) + 1)
            return span, span
    return None


def _value_end(line: str, start: int) -> int:
    """The 0-based end of the value starting at `start`: its closing quote, else before a comment."""
    quote = line[start : start + 1]
    if quote in ("'", '"') and line[start : start + 3] != quote * 3:
        i = start + 1
        while i < len(line):
            if quote == '"' and line[i] == "\\":
                i += 2
                continue
            if line[i] == quote:
                return i + 1
            i += 1
        return len(line.rstrip())
    end = len(line.split("#", 1)[0].rstrip()) if quote not in ("'", '"') else len(line.rstrip())
    return max(end, start + 1)


# --- the environment ------------------------------------------------------------------------------


def _mtime(environ: Mapping[str, str], problems: _Problems) -> int:
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return DEFAULT_MTIME
    if not _EPOCH_DIGITS.fullmatch(value):
        problems.usage.append(
            (
                "<environment>",
                f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970-01-01, not {value!r}",
                "set it to an integer such as the last commit's time: $(git log -1 --format=%ct), or unset it",
            )
        )
        return DEFAULT_MTIME
    return int(value)


def _index_settings(environ: Mapping[str, str], problems: _Problems) -> IndexSettings:
    def get(name: str) -> str | None:
        return environ.get(name) or None  # an empty variable is as good as unset, as for pip and uv

    def flag(name: str) -> bool | None:
        value = get(name)
        if value is None:
            return None
        if value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        problems.usage.append(
            (
                "<environment>",
                f"{name} must be true or false (1 or 0, yes or no, on or off), not {value!r}",
                f"set {name}=1 to use no index at all, or unset it",
            )
        )
        return None

    uv_url = get("UV_DEFAULT_INDEX") or get("UV_INDEX_URL")
    uv_extra = [_index_url(url) for name in ("UV_INDEX", "UV_EXTRA_INDEX_URL") for url in (get(name) or "").split()]
    uv_links = [link.strip() for link in (get("UV_FIND_LINKS") or "").split(",") if link.strip()]
    uv_no_index, pip_no_index = flag("UV_NO_INDEX"), flag("PIP_NO_INDEX")
    return IndexSettings(
        index_url=_index_url(uv_url) if uv_url else get("PIP_INDEX_URL"),
        extra_index_urls=tuple(dict.fromkeys(uv_extra or (get("PIP_EXTRA_INDEX_URL") or "").split())),
        find_links=tuple(dict.fromkeys(uv_links or (get("PIP_FIND_LINKS") or "").split())),
        no_index=bool(pip_no_index if uv_no_index is None else uv_no_index),
    )


_INDEX_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _index_url(value: str) -> str:
    """The URL of a uv index given as `name=url` (or just `url`)."""
    name, sep, url = value.partition("=")
    return url if sep and _INDEX_NAME.fullmatch(name) and url else value


def image_python() -> str:
    """The CPython of the worker images ("3.12"); the oldest if they ever differ."""
    from .profiles import profiles

    return min((p.python for p in profiles().values()), key=lambda v: tuple(int(n) for n in v.split(".")))


def default_cache_dir() -> Path:
    """flashc's cache folder as the environment says (FLASHC_CACHE_DIR, XDG_CACHE_HOME, ~/.cache/flashc)."""
    return _cache_dir(os.environ)


def _cache_dir(environ: Mapping[str, str]) -> Path:
    explicit = environ.get("FLASHC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "flashc"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".cache" / "flashc"
