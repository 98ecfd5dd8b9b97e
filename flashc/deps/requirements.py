"""Requirements: what the bundle must install, collected from the functions and the project's files.

    RemoteFunction.dependencies --from_functions-------------.
    requirements.txt (+ -r)     --parse_requirements_file----+--collect--> RequirementSet
    pyproject.toml              --pyproject_dependencies-----'

Everything here is pure except `read_project_requirements`, the I/O edge that reads the two
files from the project root. `-r` includes reach the disk through the `read` callback, so the
parser is tested with in-memory files.

Names are normalised (PEP 503). The SDK distributions in `RUNTIME_DISTRIBUTIONS` come with the
bundled runtime: they are never installed into the bundle and are listed in
`RequirementSet.provided_by_runtime` so the output can say so.

Two requirements for the same name conflict (an error naming both places) when flashc can prove
that no version satisfies both; it never guesses, so some conflicts are left to pip:

* they are compared only when their markers are equal (both absent, or the same marker), neither
  is a URL requirement, and neither uses `===`;
* if either pins a version (`==X`, not `==X.*`), they conflict when none of the pinned versions
  of either side is in both specifier sets (`contains(X, prereleases=True)`; a pin on each side
  also covers local versions such as `==2.1.0` against `==2.1.0+cu118`);
* otherwise they conflict when the bounds `>=`, `>`, `<=`, `<` and the lower bound of `~=` from
  both sets leave no version between them (`>=2` against `<2`, `>3` against `<=3`). Testing only
  the boundary versions would call `>1` against `<2` a conflict although 1.5 satisfies both.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as _Parsed
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..diagnostics import Diagnostic, Note, Span, sort_key
from ..models import RemoteFunction
from .target import Target, marker_applies

__all__ = [
    "RUNTIME_DISTRIBUTIONS",
    "IndexOptions",
    "Origin",
    "Requirement",
    "RequirementSet",
    "collect",
    "from_functions",
    "origin_span",
    "parse_requirements_file",
    "pyproject_dependencies",
    "read_project_requirements",
]

# Normalised names of the distributions the bundled runtime provides (`tetra_rp`, `runpod_flash`...).
RUNTIME_DISTRIBUTIONS = frozenset({"tetra-rp", "runpod-flash", "flashc", "flashc-runtime"})

_CODE = "requirement"
_LOCAL_HINT = "build a wheel and point --find-links at its folder, or publish it to an index"
_PEP508_HINT = "write a PEP 508 requirement such as 'numpy==1.26.4' or 'torch>=2.1'"
# pip's rule: `#` starts a comment at the start of a line or after whitespace (so `pkg#egg` is not one).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_SINGLE_EQUALS = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*=\s*([^=<>!~\s].*?)\s*$")
_LOCAL_URL = re.compile(r"^([a-z0-9.-]+\+)?file:", re.IGNORECASE)
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar")
_TOML_PLACE = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Where a requirement was written: a path relative to the project root, its line, and what it is part of."""

    path: str
    line: int | None
    what: str


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement. `name` is PEP 503 normalised; `text` is as written; `marker` is kept, never evaluated.

    `resource` is the resource whose function asked for it; None for the project's own files
    (`requirements.txt`, `pyproject.toml`), which every resource installs.
    """

    name: str
    text: str
    specifier: str
    extras: tuple[str, ...]
    marker: str | None
    url: str | None
    origin: Origin
    resource: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IndexOptions:
    """Index options from requirements files, applied to the whole install as pip applies them.

    The last `--index-url` wins, as in pip. A local `--find-links` folder is relative to the
    project root (pip reads it relative to the file that names it).
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    pre: bool = False
    trusted_hosts: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RequirementSet:
    """Every requirement of the project, deduplicated and sorted by name then text.

    `provided_by_runtime` holds the SDK requirements that were dropped because the runtime
    provides them. `problems` holds every diagnostic; the set is unusable if one is an error.
    """

    requirements: tuple[Requirement, ...]
    options: IndexOptions
    provided_by_runtime: tuple[Requirement, ...]
    problems: tuple[Diagnostic, ...]

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.problems)

    def for_resource(self, resource: str | None) -> tuple[Requirement, ...]:
        """What one resource installs: the project's files' requirements and its functions'.

        `None` gives only the project's files' requirements.
        """
        return tuple(r for r in self.requirements if r.resource is None or r.resource == resource)


# --- requirements.txt --------------------------------------------------------------------------

_VALUE_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "-r": "--requirement",
    "--requirement": "--requirement",
    "-c": "--constraint",
    "--constraint": "--constraint",
    "-e": "--editable",
    "--editable": "--editable",
    "--only-binary": "--only-binary",
    "--no-binary": "--no-binary",
}
_FLAG_OPTIONS = {"--no-index", "--pre", "--prefer-binary"}


@dataclasses.dataclass(slots=True)
class _Options:
    index_url: str | None = None
    extra_index_urls: list[str] = dataclasses.field(default_factory=list)
    find_links: list[str] = dataclasses.field(default_factory=list)
    no_index: bool = False
    pre: bool = False
    trusted_hosts: list[str] = dataclasses.field(default_factory=list)

    def freeze(self) -> IndexOptions:
        return IndexOptions(
            index_url=self.index_url,
            extra_index_urls=tuple(dict.fromkeys(self.extra_index_urls)),
            find_links=tuple(dict.fromkeys(self.find_links)),
            no_index=self.no_index,
            pre=self.pre,
            trusted_hosts=tuple(dict.fromkeys(self.trusted_hosts)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class _Line:
    """A logical line: continuations joined, comment removed, stripped; `span` covers it in the file."""

    number: int
    text: str
    span: Span


def parse_requirements_file(
    text: str, path: str, read: Callable[[str], str]
) -> tuple[list[Requirement], IndexOptions, list[Diagnostic]]:
    """Parse a requirements file and, through `read`, the files it includes with `-r`.

    `path` is the file's path relative to the project root; `read` gets the path of an include,
    resolved against the including file's folder, in the same frame. An OSError or
    UnicodeDecodeError from `read` becomes a diagnostic on the `-r` line.
    """
    requirements: list[Requirement] = []
    options = _Options()
    problems: list[Diagnostic] = []
    _parse_file(text, posixpath.normpath(path), read, (), requirements, options, problems)
    return requirements, options.freeze(), problems


def _parse_file(
    text: str,
    path: str,
    read: Callable[[str], str],
    including: tuple[str, ...],
    requirements: list[Requirement],
    options: _Options,
    problems: list[Diagnostic],
) -> None:
    stack = (*including, path)

    def error(line: _Line, message: str, hint: str | None = None) -> None:
        problems.append(Diagnostic(path, line.span, "error", _CODE, message, hint))

    for line in _logical_lines(text):
        if not line.text.startswith("-"):
            requirement, problem = _parse_line(line, path)
            if requirement is not None:
                requirements.append(requirement)
            if problem is not None:
                problems.append(problem)
            continue
        try:
            tokens = shlex.split(line.text)
        except ValueError as exc:
            error(line, f"cannot split '{line.text}' into options: {exc}")
            continue
        parsed = _parse_options(tokens)
        if isinstance(parsed, str):
            error(line, parsed)
            continue
        for option, value in parsed:
            if option == "--index-url":
                options.index_url = value
            elif option == "--extra-index-url":
                options.extra_index_urls.append(value)
            elif option == "--find-links":
                options.find_links.append(_relative_to(path, value) if "://" not in value else value)
            elif option == "--trusted-host":
                options.trusted_hosts.append(value)
            elif option == "--no-index":
                options.no_index = True
            elif option == "--pre":
                options.pre = True
            elif option == "--editable" and "://" in value:
                error(
                    line,
                    f"'{line.text}': editable requirements cannot be installed into the bundle",
                    "drop -e and require it by URL, such as 'name @ git+https://...'",
                )
            elif option == "--editable":
                error(line, f"'{line.text}': local path requirements cannot be resolved for the target", _LOCAL_HINT)
            elif option in ("--only-binary", "--prefer-binary"):
                continue  # flashc installs nothing but wheels already
            elif option == "--no-binary":
                problems.append(
                    Diagnostic(
                        path,
                        line.span,
                        "warning",
                        _CODE,
                        f"'--no-binary {value}' is ignored: the worker gets wheels only, never a source build",
                        "remove the line, or pin a version that publishes a manylinux wheel",
                    )
                )
            elif option == "--constraint":
                problems.append(
                    Diagnostic(
                        path,
                        line.span,
                        "warning",
                        _CODE,
                        f"constraints files are not supported yet; '{value}' is ignored",
                        "pin the versions you need in requirements.txt",
                    )
                )
            else:  # --requirement
                _include(line, value, path, read, stack, requirements, options, problems)


def _include(
    line: _Line,
    value: str,
    path: str,
    read: Callable[[str], str],
    stack: tuple[str, ...],
    requirements: list[Requirement],
    options: _Options,
    problems: list[Diagnostic],
) -> None:
    if "://" in value:
        problems.append(
            Diagnostic(
                path,
                line.span,
                "error",
                _CODE,
                f"requirements file '{value}' is a URL; only files in the project can be included",
            )
        )
        return
    target = _relative_to(path, value)
    if target in stack:
        cycle = " -> ".join((*stack[stack.index(target) :], target))
        problems.append(
            Diagnostic(
                path,
                line.span,
                "error",
                _CODE,
                f"requirements files include each other: {cycle}",
                "remove one of the -r lines",
            )
        )
        return
    try:
        text = read(target)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(
            Diagnostic(path, line.span, "error", _CODE, f"cannot read requirements file '{target}': {reason}")
        )
        return
    _parse_file(text, target, read, stack, requirements, options, problems)


def _parse_options(tokens: Sequence[str]) -> list[tuple[str, str]] | str:
    """`(option, value)` pairs with options in their long spelling (flags get ''), or an error message."""
    parsed: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("-"):
            return f"unexpected '{token}' after an option; write one requirement or option line per line"
        name, eq, value = token.partition("=") if token.startswith("--") else (token[:2], "", token[2:])
        if name in _FLAG_OPTIONS:
            if eq:
                return f"option '{name}' takes no value"
            parsed.append((name, ""))
        elif name in _VALUE_OPTIONS:
            if not eq and not value:
                if i == len(tokens):
                    return f"option '{name}' needs a value"
                value = tokens[i]
                i += 1
            parsed.append((_VALUE_OPTIONS[name], value))
        else:
            return f"unknown option '{name}' in a requirements file"
    return parsed


def _parse_line(line: _Line, path: str) -> tuple[Requirement | None, Diagnostic | None]:
    """A requirement line: the requirement, or a diagnostic for a local path, an option or bad syntax."""
    text = line.text
    # pip splits per-requirement options off at the first token that starts with a dash.
    tokens = text.split(" ")
    option = next((t for t in tokens if t.startswith("-")), None)
    if option is not None:
        name = option.partition("=")[0]
        hint = "hash checking is not supported yet; leave the hashes out" if name == "--hash" else None
        message = f"option '{name}' after a requirement is not supported"
        return None, Diagnostic(path, line.span, "error", _CODE, message, hint)
    origin = Origin(path, line.number, path)
    if _looks_local(text):
        return None, _local_error(text, origin, line.span)
    try:
        requirement = _requirement(text, origin)
    except InvalidRequirement:
        single_equals = _SINGLE_EQUALS.match(text)
        if single_equals:
            hint = f"did you mean '{single_equals[1]}=={single_equals[2]}'?"
        elif "://" in text:
            hint = "name the package: 'name @ URL'"
        else:
            hint = _PEP508_HINT
        return None, Diagnostic(path, line.span, "error", _CODE, f"invalid requirement '{text}'", hint)
    if requirement.url is not None and _is_local_url(requirement.url):
        return None, _local_error(text, origin, line.span)
    return requirement, None


def _logical_lines(text: str) -> list[_Line]:
    """Lines as pip reads them: a trailing backslash joins the next line, a comment line never continues."""
    physical = text.splitlines()
    lines: list[_Line] = []
    parts: list[str] = []
    first = 0
    for index, raw in enumerate(physical):
        if raw.endswith("\\") and not _COMMENT.match(raw):
            if not parts:
                first = index
            parts.append(raw[:-1])
            if index < len(physical) - 1:
                continue
            raw = ""
        elif _COMMENT.match(raw):
            raw = " " + raw  # keeps a comment line a comment once it is joined to a continued line
        start = first if parts else index
        joined = _COMMENT.sub("", "".join((*parts, raw)))
        parts = []
        content = joined.strip()
        if not content:
            continue
        head = physical[start]
        col = len(head) - len(head.lstrip()) + 1
        if start == index:
            span = Span(index + 1, col, index + 1, col + len(content))
        else:
            span = Span(start + 1, col, index + 1, len(physical[index]) + 1)
        lines.append(_Line(start + 1, content, span))
    return lines


def _relative_to(including: str, value: str) -> str:
    return posixpath.normpath(posixpath.join(posixpath.dirname(including), value))


# --- pyproject.toml ----------------------------------------------------------------------------


def pyproject_dependencies(
    data: Mapping[str, Any], text: str, path: str = "pyproject.toml"
) -> tuple[list[Requirement], list[Diagnostic]]:
    """The requirements in `[project.dependencies]` of the parsed `data`; `text` locates each one.

    A pyproject without a `[project]` table has none.
    """
    project = data.get("project")
    if not isinstance(project, dict):
        return [], []
    problems: list[Diagnostic] = []
    if "dependencies" in (project.get("dynamic") or ()):
        problems.append(
            Diagnostic(
                path,
                None,
                "warning",
                _CODE,
                f"[project.dependencies] is dynamic in {path}, so flashc cannot read it",
                "list the dependencies in requirements.txt",
            )
        )
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        problems.append(
            Diagnostic(path, None, "error", _CODE, f"[project.dependencies] in {path} must be a list of strings")
        )
        return [], problems
    requirements: list[Requirement] = []
    lines = text.splitlines()
    for text_ in dependencies:
        origin = Origin(path, _line_of(lines, text_), "[project.dependencies]")
        try:
            requirement = _requirement(text_, origin)
        except InvalidRequirement:
            message = f"invalid requirement '{text_}' in [project.dependencies]"
            problems.append(Diagnostic(path, origin_span(origin), "error", _CODE, message, _PEP508_HINT))
            continue
        if requirement.url is not None and _is_local_url(requirement.url):
            problems.append(_local_error(text_, origin, origin_span(origin)))
            continue
        requirements.append(requirement)
    return requirements, problems


# --- functions ---------------------------------------------------------------------------------


def from_functions(functions: Iterable[RemoteFunction]) -> list[Requirement]:
    """The `dependencies` of each function, in function id order.

    A string that is not a valid requirement is skipped: the analysis has already reported it.
    """
    requirements: list[Requirement] = []
    for function in sorted(functions, key=lambda f: f.id):
        origin = Origin(function.location.path, function.location.line, f"dependencies of {function.id}")
        for text in function.dependencies:
            try:
                requirements.append(_requirement(text, origin, function.resource))
            except InvalidRequirement:
                continue
    return requirements


# --- collect -----------------------------------------------------------------------------------


def collect(
    function_reqs: Iterable[Requirement],
    file_reqs: Iterable[Requirement],
    pyproject_reqs: Iterable[Requirement],
    options: IndexOptions,
    target: Target | None = None,
) -> RequirementSet:
    """Merge the three sources: drop runtime-provided SDK distributions, dedupe, report conflicts.

    Exact duplicates (same name, specifier, extras, marker and URL) keep the first one in the
    order functions, requirements files, pyproject. Compatible requirements for one name are all
    kept: the resolver intersects them. With a `target`, a requirement whose marker does not hold
    on that worker conflicts with nothing: it is not installed there.
    """
    kept: dict[tuple[object, ...], Requirement] = {}  # by what it asks for, and for which resource
    provided: dict[tuple[object, ...], Requirement] = {}
    problems: list[Diagnostic] = []
    for requirement in (*function_reqs, *file_reqs, *pyproject_reqs):
        spec = (requirement.name, requirement.specifier, requirement.extras, requirement.marker, requirement.url)
        if requirement.name in RUNTIME_DISTRIBUTIONS:
            provided.setdefault(spec, requirement)
        elif requirement.url is not None and _is_local_url(requirement.url):
            problems.append(_local_error(requirement.text, requirement.origin, origin_span(requirement.origin)))
        elif (*spec, None) in kept:
            continue  # every resource installs it already
        elif requirement.resource is None and (earlier := [k for k in kept if k[:-1] == spec]):
            # A project file asks for what a function asked for: it is the project's now, and the
            # first place it was written stays its origin.
            first = kept[earlier[0]]
            for k in earlier:
                del kept[k]
            everywhere: tuple[object, ...] = (*spec, None)
            kept[everywhere] = dataclasses.replace(first, resource=None)
        else:
            own: tuple[object, ...] = (*spec, requirement.resource)
            kept.setdefault(own, requirement)
    by_name: dict[str, list[Requirement]] = {}
    for requirement in kept.values():
        by_name.setdefault(requirement.name, []).append(requirement)
    for name, same in by_name.items():
        for i, first in enumerate(same):
            for second in same[i + 1 :]:
                # Different resources may need different versions: each then gets its own site.
                together = first.resource is None or second.resource is None or first.resource == second.resource
                if together and _applies(first, target) and _applies(second, target) and _conflict(first, second):
                    problems.append(_conflict_error(name, first, second))
    return RequirementSet(
        requirements=tuple(sorted(kept.values(), key=_order)),
        options=options,
        provided_by_runtime=tuple(sorted(provided.values(), key=_order)),
        problems=tuple(sorted(problems, key=sort_key)),
    )


def read_project_requirements(
    functions: Iterable[RemoteFunction],
    read: Callable[[str], str | None],
    pyproject: tuple[Mapping[str, Any], str] | None = None,
    target: Target | None = None,
) -> RequirementSet:
    """Collect the project's requirements: the functions', `requirements.txt` (with `-r`) and `pyproject.toml`.

    `read(path)` gives a project file's text, None when it does not exist, and raises OSError or
    UnicodeDecodeError when it cannot be read (reported in `problems`). `pyproject` is the parsed
    `pyproject.toml` and its text, when the project has one.
    """
    problems: list[Diagnostic] = []
    file_reqs: list[Requirement] = []
    options = IndexOptions()
    pyproject_reqs: list[Requirement] = []

    def include(relative: str) -> str:
        text = read(relative)
        if text is None:
            raise FileNotFoundError(2, "No such file or directory", relative)
        return text

    try:
        text = read("requirements.txt")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(Diagnostic("requirements.txt", None, "error", _CODE, f"cannot read requirements.txt: {reason}"))
        text = None
    if text is not None:
        file_reqs, options, found = parse_requirements_file(text, "requirements.txt", include)
        problems.extend(found)
    if pyproject is not None:
        pyproject_reqs, found = pyproject_dependencies(*pyproject)
        problems.extend(found)
    result = collect(from_functions(functions), file_reqs, pyproject_reqs, options, target)
    return dataclasses.replace(result, problems=tuple(sorted((*problems, *result.problems), key=sort_key)))


def _applies(requirement: Requirement, target: Target | None) -> bool:
    """Whether the requirement is installed on the worker: no marker, no target, or a marker that holds there."""
    if requirement.marker is None or target is None:
        return True
    try:
        return marker_applies(requirement.marker, target)
    except ValueError:  # a marker packaging cannot evaluate: leave the judgement to the resolver
        return True


# --- helpers -----------------------------------------------------------------------------------


def _requirement(text: str, origin: Origin, resource: str | None = None) -> Requirement:
    text = text.strip()
    parsed = _Parsed(text)
    return Requirement(
        name=canonicalize_name(parsed.name),
        text=text,
        specifier=str(parsed.specifier),
        extras=tuple(sorted(canonicalize_name(e) for e in parsed.extras)),
        marker=str(parsed.marker) if parsed.marker is not None else None,
        url=parsed.url,
        origin=origin,
        resource=resource,
    )


def _line_of(lines: Sequence[str], value: str) -> int | None:
    """The 1-based line of a TOML file that holds the string `value` quoted; None if none does."""
    quoted = (f'"{value}"', f"'{value}'")
    return next((number for number, line in enumerate(lines, 1) if any(q in line for q in quoted)), None)


def _order(requirement: Requirement) -> tuple[str, str]:
    return (requirement.name, requirement.text)


def _looks_local(text: str) -> bool:
    """A line pip would read as a path or a file URL rather than as a requirement by name."""
    head = re.split(r"[\s;]", text, maxsplit=1)[0]
    if head.startswith((".", "/", "~", "\\")) or _WINDOWS_DRIVE.match(head) or _LOCAL_URL.match(head):
        return True
    return "://" not in head and "@" not in text and ("/" in head or head.lower().endswith(_ARCHIVES))


def _is_local_url(url: str) -> bool:
    return bool(_LOCAL_URL.match(url)) or "://" not in url


def _local_error(text: str, origin: Origin, span: Span | None) -> Diagnostic:
    return Diagnostic(
        origin.path,
        span,
        "error",
        _CODE,
        f"'{text}': local path requirements cannot be resolved for the target",
        _LOCAL_HINT,
    )


def origin_span(origin: Origin) -> Span | None:
    """The whole line a requirement was written on, when its line is known."""
    # Only the line is known (a decorator's, say), so the span is the whole line.
    return None if origin.line is None else Span(origin.line, 1, origin.line + 1, 1)


def _place(origin: Origin) -> str:
    where = origin.path if origin.line is None else f"{origin.path}:{origin.line}"
    return where if origin.what == origin.path else f"{origin.what}, {where}"


def _conflict_error(name: str, first: Requirement, second: Requirement) -> Diagnostic:
    return Diagnostic(
        first.origin.path,
        origin_span(first.origin),
        "error",
        _CODE,
        f"conflicting requirements for {name}: '{first.text}' ({_place(first.origin)}) and "
        f"'{second.text}' ({_place(second.origin)}) cannot both hold",
        "require versions that agree: a resource installs its functions' requirements and the project's files' "
        "together",
        (Note(second.origin.path, origin_span(second.origin), f"'{second.text}' is required here"),),
    )


def _conflict(a: Requirement, b: Requirement) -> bool:
    """True only when no version can satisfy both; the rule is in the module docstring."""
    if a.marker != b.marker or a.url is not None or b.url is not None:
        return False
    sets = (SpecifierSet(a.specifier), SpecifierSet(b.specifier))
    if any(spec.operator == "===" for s in sets for spec in s):
        return False
    pins = [spec.version for s in sets for spec in s if spec.operator == "==" and not spec.version.endswith(".*")]
    if pins:
        return not any(all(s.contains(pin, prereleases=True) for s in sets) for pin in pins)
    return _bounds_disjoint([spec for s in sets for spec in s])


def _bounds_disjoint(specs: Iterable[Specifier]) -> bool:
    # Each bound is (version, inclusive). The sets are widened to plain intervals, which can
    # only hide a conflict, never invent one.
    lower: tuple[Version, bool] | None = None
    upper: tuple[Version, bool] | None = None
    for spec in specs:
        try:
            version = Version(spec.version)
        except InvalidVersion:
            continue
        if spec.operator in (">=", ">", "~="):
            bound = (version, spec.operator != ">")
            if lower is None or bound[0] > lower[0] or (bound[0] == lower[0] and not bound[1]):
                lower = bound
        elif spec.operator in ("<=", "<"):
            bound = (version, spec.operator == "<=")
            if upper is None or bound[0] < upper[0] or (bound[0] == upper[0] and not bound[1]):
                upper = bound
    if lower is None or upper is None:
        return False
    return lower[0] > upper[0] or (lower[0] == upper[0] and not (lower[1] and upper[1]))
