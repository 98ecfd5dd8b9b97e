"""The walk of one resource's imports: from its functions' modules through the project modules they
load, each import checked against what the worker has."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import NamedTuple

from ..diagnostics import Diagnostic, Note, sort_key
from ..modules import ModuleFile, module_files
from .stdlib import REMOVAL_NOTES, STDLIB_CHANGES, parse_version, stdlib_modules
from .uses import Guard, ImportUse, scan_imports

__all__ = ["ALWAYS_AVAILABLE", "ImportReport", "ProjectImports", "Worker", "check_imports"]


# The guards of imports that run, but only where they cannot fail.
_RUNS_GUARDED: tuple[Guard, ...] = ("except", "find_spec")


ALWAYS_AVAILABLE = frozenset({"__future__", "__main__", "flashc_runtime", "tetra_rp", "runpod_flash"})


@dataclasses.dataclass(frozen=True, slots=True)
class Worker:
    """What a resource's worker can import besides the project, the standard library and the runtime.

    `shipped`: top-level names the archive's wheels for this resource install. `image_provides`: the
    top-level names the worker image preinstalls, each with the distribution that installs it.
    """

    image: str
    shipped: frozenset[str]
    image_provides: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    """What checking one resource found.

    `diagnostics`: the problems, sorted (errors when the endpoint cannot start, warnings when a call
    can fail). `loaded`: the project modules imported when the endpoint starts, guarded imports
    included. `image_at_load` / `image_at_call`: the top-level names that only the worker image
    provides, imported when the endpoint starts / only while a function runs (unguarded imports).
    `image_uses`: for each of those names, its first import: one that runs at start if any, then the
    first by path and position. `unparsed`: the paths of the files reached that do not parse, whose
    imports went unchecked.
    """

    resource: str
    diagnostics: tuple[Diagnostic, ...]
    loaded: frozenset[str]
    image_at_load: frozenset[str]
    image_at_call: frozenset[str]
    image_uses: Mapping[str, ImportUse]
    unparsed: frozenset[str]


class ProjectImports:
    """The project's Python files, their module paths and the target Python, read once per build.

    Pass the same instance to `check_imports` for every resource: each file is parsed the first
    time a resource reaches it and its imports are kept (a cache of `scan_imports`, which is pure).
    """

    def __init__(
        self,
        sources: Mapping[str, bytes],
        python_version: str,
        modules: Mapping[str, ModuleFile] | None = None,
        *,
        native: Iterable[str] = (),
    ) -> None:
        """`sources`: every Python file (POSIX path relative to the root) and its content; `modules`:
        `flashc.modules.module_files` of those paths, computed when not given; `python_version`: "3.12";
        `native`: the top-level names of the project's compiled modules (`fastmath` for
        `fastmath.cpython-312-x86_64-linux-gnu.so`), which are available but have no imports to follow."""
        self.sources = sources
        self.target = parse_version(python_version)
        self.modules = modules if modules is not None else module_files(sources)
        self.by_module: dict[str, ModuleFile] = {f.module: f for f in self.modules.values() if f.module}
        self.native = frozenset(native)
        self.top_level = frozenset(m.partition(".")[0] for m in self.by_module) | self.native
        self._uses: dict[str, tuple[ImportUse, ...] | None] = {}

    def uses(self, path: str) -> tuple[ImportUse, ...] | None:
        """The imports of the file at `path`; None when it does not parse."""
        if path not in self._uses:
            file = self.modules[path]
            self._uses[path] = scan_imports(self.sources[path], path, file.module or "", file.is_package, self.target)
        return self._uses[path]


def check_imports(
    project: ProjectImports,
    resource: str,
    entry_modules: Iterable[str],
    worker: Worker,
    distribution_for: Callable[[str], str],
    elsewhere: Collection[tuple[str, str]] = (),
) -> ImportReport:
    """Check every import the endpoint of `resource` runs, from the modules of its functions.

    `elsewhere` holds (module, qualname) of the remote functions of other resources: calling one
    sends the call to its endpoint, so what its body imports never runs in this one.

    `distribution_for` names the distribution to add for a missing module, given the full dotted
    name the code imports (`cv2` -> `opencv-python`, `google.protobuf` -> `protobuf`, `yaml.loader` ->
    `PyYAML`); it is called only for problems, and not for a module the target Python removed from
    the standard library (the hint says so instead). Each (file, line, top-level name) is reported once.
    """
    stdlib = stdlib_modules(project.target)
    walk = _Walk(project)
    entries = [m for m in entry_modules if m in project.by_module]
    for module in entries:
        walk.enter(module, _LOAD, None)
    for module in entries:
        parts = module.split(".")
        for i in range(1, len(parts)):  # a.b.c runs a/__init__.py and a/b/__init__.py first
            walk.enter(".".join(parts[:i]), _LOAD, (module, _LOAD, None))

    problems: dict[tuple[str, int, str], Diagnostic] = {}
    image_load: set[str] = set()
    image_call: set[str] = set()
    # The first import of each name only the image provides: those that run at start first.
    image_uses: dict[str, tuple[tuple[bool, str, int, int], ImportUse]] = {}
    unparsed: set[str] = set()
    for module, mode in walk:
        path = project.by_module[module].path
        uses = project.uses(path)
        if uses is None:
            unparsed.add(path)
        for use in uses or ():
            if use.guard in ("type_checking", "static"):
                continue
            if use.function is not None and _runs_elsewhere(module, use.function, elsewhere):
                continue
            reached = _Mode(mode.call or use.when == "call", mode.guarded or use.guard in _RUNS_GUARDED)
            top = use.top
            if top in project.top_level:
                candidates = [use.module, *(f"{use.module}.{name}" for name in use.names)]
                for candidate in candidates:
                    parts = candidate.split(".")
                    for i in range(1, len(parts) + 1):
                        walk.enter(".".join(parts[:i]), reached, (module, mode, use))
                continue
            if use.ignored or reached.guarded or top in ALWAYS_AVAILABLE or top in stdlib or top in worker.shipped:
                continue
            if top in worker.image_provides:
                (image_call if reached.call else image_load).add(top)
                order = (reached.call, use.path, use.span.line, use.span.col)
                if top not in image_uses or order < image_uses[top][0]:
                    image_uses[top] = (order, use)
                continue
            key = (use.path, use.span.line, top)
            if key not in problems:
                chain = walk.chain(module, mode)
                problems[key] = _problem(use, resource, worker, chain, _hint(use, project.target, distribution_for))
    return ImportReport(
        resource,
        tuple(sorted(problems.values(), key=sort_key)),
        frozenset(walk.loaded),
        frozenset(image_load),
        frozenset(image_call - image_load),
        {top: use for top, (_, use) in sorted(image_uses.items())},
        frozenset(unparsed),
    )


def _hint(use: ImportUse, target: tuple[int, int], distribution_for: Callable[[str], str]) -> str:
    removed = STDLIB_CHANGES.get(use.top, (None, None))[1]
    if removed is not None and target >= removed:
        return (
            f"{use.top} was removed from the standard library in Python {removed[0]}.{removed[1]}"
            f"{REMOVAL_NOTES.get(use.top, '')}"
        )
    return f"add {distribution_for(use.module)} to the function's dependencies or to requirements.txt"


def _runs_elsewhere(module: str, function: str, elsewhere: Collection[tuple[str, str]]) -> bool:
    """Whether `function` (a qualname) is, or is inside, a remote function or class of another resource."""
    return any(m == module and (function == q or function.startswith(f"{q}.")) for m, q in elsewhere)


def _problem(use: ImportUse, resource: str, worker: Worker, chain: list[_Link], hint: str) -> Diagnostic:
    function = next((u.function for _, u in chain if u is not None and u.when == "call"), use.function)
    when = f"when the endpoint '{resource}' starts" if function is None else f"when '{resource}' runs {function}()"
    notes = []
    for i, (source, via) in enumerate(chain):
        target = chain[i + 1][0] if i + 1 < len(chain) else use.path
        if via is None:
            notes.append(Note(source, None, f"{target} runs first, as the package of {source}"))
        else:
            notes.append(Note(source, via.span, f"{source} imports {target}"))
    return Diagnostic(
        use.path,
        use.span,
        "warning" if function is not None else "error",
        "import",
        f"'{use.top}' is imported {when}, but neither the archive nor the worker image ({worker.image}) provides it",
        hint,
        tuple(notes),
    )


class _Mode(NamedTuple):
    """How a module is reached: only by a call (or at load time), only through a guarded import."""

    call: bool
    guarded: bool


_LOAD = _Mode(False, False)


# The order modes are processed in: a mode is never reached from a later one, so the first time a
# module is processed in a mode that dominates another, the other need not be processed at all.
_ORDER = (_LOAD, _Mode(True, False), _Mode(False, True), _Mode(True, True))


# Why a module runs: the module and mode it was reached from and the import (None: it is the
# package of that module). None for an entry module.
_Reason = tuple[str, _Mode, ImportUse | None] | None


# One link of the chain that makes a module run: the file, and the import in it (None: its package).
_Link = tuple[str, ImportUse | None]


class _Walk:
    """The project modules a resource runs, each in the strongest modes it is reached in."""

    def __init__(self, project: ProjectImports) -> None:
        self.project = project
        self.queues: dict[_Mode, deque[str]] = {mode: deque() for mode in _ORDER}
        self.modes: dict[str, list[_Mode]] = {}
        self.reasons: dict[tuple[str, _Mode], _Reason] = {}
        self.loaded: set[str] = set()

    def enter(self, module: str, mode: _Mode, reason: _Reason) -> None:
        if module not in self.project.by_module:
            return
        modes = self.modes.setdefault(module, [])
        if any(m.call <= mode.call and m.guarded <= mode.guarded for m in modes):
            return
        modes.append(mode)
        self.reasons[(module, mode)] = reason
        self.queues[mode].append(module)

    def __iter__(self) -> Iterator[tuple[str, _Mode]]:
        for mode in _ORDER:
            queue = self.queues[mode]
            while queue:
                module = queue.popleft()
                if not mode.call:
                    self.loaded.add(module)
                yield module, mode

    def chain(self, module: str, mode: _Mode) -> list[_Link]:
        """The links from an entry module to `module`, first link first."""
        links: list[_Link] = []
        reason = self.reasons[(module, mode)]
        while reason is not None:
            source, source_mode, use = reason
            links.append((self.project.by_module[source].path, use))
            reason = self.reasons[(source, source_mode)]
        links.reverse()
        return links
