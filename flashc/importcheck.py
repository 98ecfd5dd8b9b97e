"""The import check of a build: `imports/`'s rules, applied to each resource with what its worker has.

    sources + site plans + layers + images --check_worker_imports--> diagnostics, what each resource
                                                                     takes from its image

A resource's worker has the standard library, the project, the wheels of its site folder (by the
names they install, read from the layers) and its image's distributions; `--exclude` promises the
image has what it names. An import nothing provides is an error when it runs at start and a warning
when it runs in a call; on an image flashc does not know (`imageName=`), only a warning. The same
import reached by several resources is reported once, as the worst of them. Also said here: a
project module that hides a distribution of the image (the project's `requests.py` comes first on
the worker's `sys.path`, also for the image's own packages), and files whose imports could not be
read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from .deps.implied import image_modules, remote_elsewhere
from .deps.plan import Dependencies, images_of
from .diagnostics import Diagnostic, sort_key
from .group import group
from .imports import ProjectImports, Worker, check_imports
from .models import Analysis
from .pack import Layer
from .profiles import CUSTOM, Profile, distribution_for, profiles

__all__ = ["check_worker_imports", "native_modules"]

# Namespace packages whose distribution is named by the first two parts of the module.
_NAMESPACES = {"google": "google-{}", "azure": "azure-{}", "jaraco": "jaraco-{}", "zope": "zope-{}"}
_BY_MODULE = {
    "google.protobuf": "protobuf",
    "google.genai": "google-genai",
    "google.generativeai": "google-generativeai",
}
# Top-level names an image installs that every project may well have too: no warning for those.
_COMMON = frozenset({"tests", "test", "docs", "examples", "scripts", "benchmarks", "src"})
_NATIVE_SUFFIXES = (".so", ".pyd")
# Libraries that run on torch without requiring it (it is an extra of theirs): with one of them in a
# site folder, a resource on an image with torch takes torch from the image.
_TORCH_USERS = frozenset({"transformers", "diffusers", "optimum"})


def check_worker_imports(
    project: ProjectImports,
    root: Path,
    analysis: Analysis,
    deps: Dependencies,
    layers: Sequence[Layer],
    exclude: Collection[str] = (),
) -> tuple[tuple[Diagnostic, ...], dict[str, list[str]]]:
    """The problems (sorted), and for each resource the distributions it takes from its image: those
    left out of its site folder, and those its code imports. `root` is the project folder, to tell a
    file the ignore rules leave out from a missing distribution."""
    tops: dict[str, set[str]] = {}
    shipped: dict[str, set[str]] = {}
    for layer in layers:
        tops.setdefault(layer.site, set()).update(_top_level(f.arcname, layer.site) for f in layer.files)
        shipped.setdefault(layer.site, set()).add(canonicalize_name(layer.distribution))
    images = images_of(analysis)
    found: dict[tuple[str, int, str], Diagnostic] = {}
    provided: dict[str, list[str]] = {}
    hidden: dict[str, Diagnostic] = {}
    for g in sorted(group(analysis).groups, key=lambda g: g.name):
        image = images[g.name]
        modules = image_modules(image)
        promised = {top: dist for top, dist in _excluded_modules(project, exclude).items() if top not in modules}
        site = deps.site_of(g.name)
        worker = Worker(image.description, frozenset(tops.get(site, set())), {**modules, **promised})
        elsewhere = remote_elsewhere(analysis, g.name)
        report = check_imports(project, g.name, g.modules, worker, _distribution, elsewhere)
        for problem in report.diagnostics:
            problem = _explained(problem, root, image.name == CUSTOM, image.description, g.compute)
            key = (problem.path, problem.span.line if problem.span else 0, problem.message.split("'")[1])
            if key not in found or (problem.severity == "error" and found[key].severity != "error"):
                found[key] = problem
        for path in sorted(report.unparsed):
            found.setdefault((path, 0, ""), _unparsed(path))
        for top in sorted((project.top_level & modules.keys()) - _COMMON):
            hidden.setdefault(top, _hides(project, top, modules[top], image))
        plan_of_site = next(p for p in deps.plans if p.site.path == site)
        from_site = {name for name, reason in plan_of_site.left_out if reason.startswith("provided by")}
        imported = {modules[top] for top in report.image_at_load | report.image_at_call if top in modules}
        if "torch" in image.distributions and shipped.get(site, set()) & _TORCH_USERS:
            imported.add("torch")
        provided[g.name] = sorted(from_site | imported)
    return tuple(sorted([*found.values(), *hidden.values()], key=sort_key)), provided


def native_modules(files: Iterable[str]) -> frozenset[str]:
    """Top-level names of the project's compiled modules (`fastmath.cpython-312-x86_64-linux-gnu.so`)."""
    return frozenset(
        path.split(".", 1)[0] for path in files if "/" not in path and path.endswith(_NATIVE_SUFFIXES) and "." in path
    )


def _distribution(module: str) -> str:
    """The distribution to suggest for an import nothing provides (`google.cloud.storage` ->
    `google-cloud-storage`, `cv2` -> `opencv-python`)."""
    parts = module.split(".")
    for length in (2, 1):
        if ".".join(parts[:length]) in _BY_MODULE:
            return _BY_MODULE[".".join(parts[:length])]
    if parts[0] in _NAMESPACES and len(parts) > 1:
        if parts[0] == "google" and parts[1] == "cloud" and len(parts) > 2:
            return f"google-cloud-{parts[2].replace('_', '-')}"
        return _NAMESPACES[parts[0]].format(parts[1].replace("_", "-"))
    return distribution_for(parts[0])


def _excluded_modules(project: ProjectImports, exclude: Collection[str]) -> dict[str, str]:
    """Import names whose distribution `--exclude` names: left out on the promise that the image has them."""
    if not exclude:
        return {}
    wanted = set(exclude)
    names: set[str] = set()
    for path in project.modules:
        for use in project.uses(path) or ():
            names.add(use.top)
    return {top: _distribution(top) for top in names if _distribution(top) in wanted}


def _explained(problem: Diagnostic, root: Path, custom: bool, image: str, compute: str) -> Diagnostic:
    """A problem, said for this project: an ignored file of its own, an image of its own, or what
    only the other kind of Runpod image has."""
    if problem.code != "import":
        return problem
    top = problem.message.split("'")[1]
    if (root / f"{top}.py").is_file() or (root / top / "__init__.py").is_file():
        return dataclasses.replace(
            problem,
            hint=f"{top} is a file of the project that .flashignore or .gitignore leave out of the archive: "
            "stop ignoring it",
        )
    if custom:
        return dataclasses.replace(
            problem,
            severity="warning",
            hint=f"{problem.hint}, unless {image} has it (flashc cannot know what is in an image of your own)",
        )
    others = sorted({p.description for p in profiles().values() if p.compute != compute and p.module(top) is not None})
    if others:
        which = "GPU" if compute == "cpu" else "CPU"
        return dataclasses.replace(problem, hint=f"{problem.hint}; Runpod's {which} images have it, this one does not")
    return problem


def _unparsed(path: str) -> Diagnostic:
    import sys

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Diagnostic(
        path,
        None,
        "warning",
        "import",
        f"the imports of this file were not checked: Python {running}, which runs flashc, cannot parse it",
        "run flashc with the worker's Python (or a newer one) to check them",
    )


def _hides(project: ProjectImports, top: str, dist: str, image: Profile) -> Diagnostic:
    module = project.by_module.get(top)
    path = module.path if module is not None else f"{top}/"
    description = image.description
    return Diagnostic(
        path,
        None,
        "warning",
        "import",
        f"the project's '{top}' comes before {dist} of {description} on the worker's sys.path: every "
        f"import of {top} gets the project's, also in the image's own packages that use {dist}",
        f"rename the project's {top} unless it is meant to replace {dist}",
    )


def _top_level(arcname: str, site: str) -> str:
    """The import name a file of a site folder installs: `_flashc/site/yaml/x.py` -> `yaml`."""
    first = arcname[len(site) + 1 :].split("/", 1)[0]
    return first.split(".", 1)[0]
