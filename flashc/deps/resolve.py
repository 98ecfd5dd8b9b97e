"""Stage 4, resolve: one set of pins per site folder, or every reason why there can be none.

    RequirementSet + resources + Target --resolve--> Resolution (sites of pins)   or DiagnosticsError

The union of every requirement is tried first: one site, `_flashc/site`, shared by every resource.
When the union cannot hold (one resource pins `numpy<2`, another needs `numpy>=2`), each resource
is resolved alone and gets its own site, `_flashc/sites/<slug>`; the resolution says why.

When a resource's own requirements cannot hold, every requirement of it is tried alone, so that all
the requirements that fail by themselves are reported in one run, each at the function (file and
line) or requirements file that asked for it, with the resolver's own derivation; if none fails
alone, the combination is reported where its requirements were written.

A resolution is cached by its inputs (`<cache>/resolutions/<key>.json`), so resolving the same
requirements again runs no resolver and sends no request to the index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .._atomic import write_atomic
from ..diagnostics import Diagnostic, Note, sort_key
from ..errors import DiagnosticsError
from ..group import handler_slugs
from .models import SHARED_SITE, Pin, Resolution, Site
from .requirements import IndexOptions, Requirement, RequirementSet, origin_span
from .target import Target
from .uv import Unsatisfiable, UvRunner, compile_pins

__all__ = ["ResolutionCache", "mentioned", "resolution_key", "resolve_project"]

# Bump when what a cached resolution means changes.
_FORMAT = "3"
_PARALLEL = 4
_CODE = "resolution"

Solver = Callable[[Sequence[str]], "tuple[Pin, ...] | Unsatisfiable"]


class ResolutionCache:
    """Resolutions by the digest of their inputs; an unreadable entry is a miss, a failed write a no-op."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "resolutions"

    def load(self, key: str) -> Resolution | None:
        try:
            return Resolution.from_json(json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, resolution: Resolution) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.folder / f"{key}.json", json.dumps(resolution.to_json(), sort_keys=True).encode())
        except OSError:
            return


def resolution_key(
    reqs: RequirementSet,
    resources: Sequence[str],
    target: Target,
    options: IndexOptions,
    no_deps: bool,
    preferences: Mapping[str, str] | None = None,
) -> str:
    """Identifies a resolution's inputs: the requirements of each resource, the target, the index, and
    the versions preferred (the worker images')."""
    data = {
        "preferences": dict(sorted((preferences or {}).items())),
        "format": _FORMAT,
        "resources": {name: _lines(reqs.for_resource(name)) for name in sorted(resources)},
        "project": _lines(reqs.for_resource(None)),
        "target": dataclasses.asdict(target),
        "options": dataclasses.asdict(options),
        "no_deps": no_deps,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def resolve_project(
    reqs: RequirementSet,
    resources: Sequence[str],
    target: Target,
    *,
    uv: UvRunner,
    cache: ResolutionCache | None = None,
    refresh: bool = False,
    no_deps: bool = False,
    offline: bool = False,
    root: Path = Path("."),
    preferences: Mapping[str, str] | None = None,
) -> Resolution:
    """Pins for every resource's requirements (project-wide ones included), in as few sites as can hold.

    A resolution of the same inputs in `cache` is taken as it is, unless `refresh` asks for a new
    one (which is then cached). `preferences` (name -> version) are taken wherever the requirements
    allow. Raises DiagnosticsError (paths relative to `root`) naming every
    requirement that cannot be installed, and ResolveError when the resolver cannot run or reach
    the index.
    """
    key = resolution_key(reqs, resources, target, reqs.options, no_deps, preferences)
    if cache is not None and not refresh and (cached := cache.load(key)) is not None:
        return cached

    def solve(lines: Sequence[str]) -> tuple[Pin, ...] | Unsatisfiable:
        if not lines:
            return ()
        return compile_pins(
            lines, target, reqs.options, uv=uv, no_deps=no_deps, offline=offline, preferences=preferences
        )

    names = sorted(resources)
    everything = _lines(r for name in [None, *names] for r in reqs.for_resource(name))
    union = solve(everything)
    if not isinstance(union, Unsatisfiable):
        resolution = Resolution((Site(SHARED_SITE, tuple(names), union),))
    else:
        if len(names) < 2:  # one resource (or none): its requirements are the union
            raise DiagnosticsError(_explain([everything], reqs, names, target, solve), root)
        sets = {name: _lines(reqs.for_resource(name)) for name in names}
        distinct = sorted(set(sets.values()))
        with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
            answers = dict(zip(distinct, pool.map(solve, distinct), strict=True))
        failing = [lines for lines in distinct if isinstance(answers[lines], Unsatisfiable)]
        if failing:
            raise DiagnosticsError(_explain(failing, reqs, names, target, solve), root)
        resolution = Resolution(_group(names, sets, answers, solve), union.reason)
    if cache is not None:
        cache.save(key, resolution)
    return resolution


def _group(
    names: Sequence[str],
    sets: dict[str, tuple[str, ...]],
    answers: dict[tuple[str, ...], tuple[Pin, ...] | Unsatisfiable],
    solve: Solver,
) -> tuple[Site, ...]:
    """As few site folders as hold: each resource joins the first folder whose requirements it can be
    installed with, the largest sets first; a resource whose requirements a folder already holds
    (one with no requirements of its own, say) joins it without asking the resolver again."""
    groups: list[tuple[list[str], tuple[str, ...], tuple[Pin, ...]]] = []
    for name in sorted(names, key=lambda n: (-len(sets[n]), n)):
        for members, lines, _ in groups:
            if set(sets[name]) <= set(lines):
                members.append(name)
                break
        else:
            for index, (members, lines, _) in enumerate(groups):
                merged = tuple(sorted(set(lines) | set(sets[name])))
                answer = solve(merged)
                if not isinstance(answer, Unsatisfiable):
                    groups[index] = ([*members, name], merged, answer)
                    break
            else:
                groups.append(([name], sets[name], _pins(answers[sets[name]])))
    slugs = handler_slugs(names)
    sites = [(sorted(members), pins) for members, _, pins in groups]
    return tuple(
        Site(f"_flashc/sites/{slugs[members[0]]}", tuple(members), pins)
        for members, pins in sorted(sites, key=lambda site: site[0][0])
    )


def _pins(answer: tuple[Pin, ...] | Unsatisfiable) -> tuple[Pin, ...]:
    assert not isinstance(answer, Unsatisfiable)  # only called for sets that resolved
    return answer


def _lines(requirements: Iterable[Requirement]) -> tuple[str, ...]:
    return tuple(sorted({r.text for r in requirements}))


def _explain(
    failing: Sequence[tuple[str, ...]],
    reqs: RequirementSet,
    resources: Sequence[str],
    target: Target,
    solve: Solver,
) -> list[Diagnostic]:
    """A diagnostic for every requirement that cannot be installed even alone, and one for each
    failing set that still fails without those."""
    by_text: dict[str, list[Requirement]] = {}
    for name in [None, *resources]:
        for r in reqs.for_resource(name):
            by_text.setdefault(r.text, []).append(r)
    candidates = sorted({text for lines in failing for text in lines})
    with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
        alone = dict(zip(candidates, pool.map(lambda text: solve([text]), candidates), strict=True))
    worker = f"CPython {target.python_version}, Linux {target.machine}, glibc {target.glibc}"
    diagnostics: list[Diagnostic] = []
    broken = {text for text, answer in alone.items() if isinstance(answer, Unsatisfiable)}
    for text in sorted(broken):
        answer = alone[text]
        assert isinstance(answer, Unsatisfiable)
        for requirement in _unique_origins(by_text[text]):
            diagnostics.append(
                Diagnostic(
                    requirement.origin.path,
                    origin_span(requirement.origin),
                    "error",
                    _CODE,
                    f"'{text}'{_what(requirement)} cannot be installed on the worker ({worker}): {answer.reason}",
                    _hint(
                        answer,
                        "check the name and version on the index; only wheels for the worker's Python and "
                        "Linux can be used, not source distributions",
                    ),
                )
            )
    for lines in failing:
        rest = tuple(text for text in lines if text not in broken)
        answer = solve(rest) if rest else ()
        if not isinstance(answer, Unsatisfiable):
            continue
        involved = mentioned(answer.reason, [r for text in rest for r in by_text[text]])
        first, *others = involved or [by_text[rest[0]][0]]
        diagnostics.append(
            Diagnostic(
                first.origin.path,
                origin_span(first.origin),
                "error",
                _CODE,
                f"the requirements of {_owners(lines, reqs, resources)} cannot be installed together: {answer.reason}",
                _hint(answer, "loosen one of the pins so that the versions agree"),
                tuple(
                    Note(r.origin.path, origin_span(r.origin), f"'{r.text}' is required here{_what(r)}") for r in others
                ),
            )
        )
    return sorted(set(diagnostics), key=sort_key)


def mentioned(reason: str, requirements: Iterable[Requirement]) -> list[Requirement]:
    """The requirements whose distribution the resolver's derivation names, in file order."""
    text = reason.lower().replace("_", "-")
    found = {
        (r.origin.path, r.origin.line or 0, r.text): r
        for r in requirements
        if re.search(rf"(?<![\w.-]){re.escape(r.name)}(?![\w-])", text)
    }
    return [found[k] for k in sorted(found)]


def _unique_origins(requirements: Iterable[Requirement]) -> list[Requirement]:
    seen: dict[tuple[str, int | None], Requirement] = {}
    for r in requirements:
        seen.setdefault((r.origin.path, r.origin.line), r)
    return list(seen.values())


def _owners(lines: Sequence[str], reqs: RequirementSet, resources: Sequence[str]) -> str:
    owners = [name for name in resources if _lines(reqs.for_resource(name)) == tuple(lines)]
    if not owners:
        return "the project"
    listed = ", ".join(f"'{name}'" for name in owners)
    return f"resource {listed}" if len(owners) == 1 else f"resources {listed}"


def _what(requirement: Requirement) -> str:
    """' (dependencies of app:f)' for a function's requirement; nothing for a file's own."""
    origin = requirement.origin
    return "" if origin.what == origin.path else f" ({origin.what})"


def _hint(answer: Unsatisfiable, fallback: str) -> str:
    return " ".join(answer.hints) if answer.hints else fallback
