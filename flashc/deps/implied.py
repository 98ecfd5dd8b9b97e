"""What a resource's code imports from its worker image without declaring it: requirements too.

    sources + each resource's functions + its image --implied--> Requirement per undeclared import

A worker that imports `fastapi` at module level needs no `fastapi` in its dependencies: Runpod's
image has it. But it does need fastapi, and the resolver must know: another requirement of the
same resource (`pydantic<2`) may rule out the image's version, and a resource sharing its site
folder may pin one that breaks it. So each distribution a resource's code imports (at load or call
time, unguarded) that its image provides and that nothing declares becomes a requirement of that
resource, without a version and located at the import. The resolver prefers the image's version,
so it is then left out as provided; when the other requirements rule that version out, a version
that fits ships instead and the build says so. No requirement is implied for an image flashc does
not know (`imageName=` of one's own).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..group import group
from ..imports import ProjectImports, Worker, check_imports
from ..models import Analysis
from ..profiles import Profile
from .requirements import Origin, Requirement, RequirementSet, _requirement

__all__ = ["image_modules", "implied_requirements", "remote_elsewhere"]


def image_modules(image: Profile) -> dict[str, str]:
    """Top-level import name -> the distribution of `image` that installs it (the preferred one where two do)."""
    found = {module: dist.name for dist in image.distributions.values() for module in dist.modules}
    for module in list(found):
        preferred = image.module(module)
        if preferred is not None:
            found[module] = preferred.name
    if "setuptools" in image.distributions and "distutils" not in found:
        found["distutils"] = "setuptools"  # its distutils-precedence.pth makes `import distutils` work
    return found


def remote_elsewhere(analysis: Analysis, resource: str) -> frozenset[tuple[str, str]]:
    """(module, qualname) of every remote function or class of another resource: its body runs there."""
    return frozenset((f.module, f.qualname) for f in analysis.functions if f.resource != resource)


def implied_requirements(
    project: ProjectImports, analysis: Analysis, images: Mapping[str, Profile], reqs: RequirementSet
) -> tuple[Requirement, ...]:
    """A requirement, per resource, for each distribution its code imports from its image undeclared."""
    implied: dict[tuple[str, str], Requirement] = {}
    for g in group(analysis).groups:
        image = images[g.name]
        modules = image_modules(image)
        if not modules:
            continue
        declared = {r.name for r in (*reqs.for_resource(None), *reqs.for_resource(g.name))}
        worker = Worker(image.description, frozenset(), modules)
        elsewhere = remote_elsewhere(analysis, g.name)
        report = check_imports(project, g.name, g.modules, worker, lambda m: m, elsewhere)
        for top, use in sorted(report.image_uses.items()):
            dist = modules[top]
            if dist in declared or (g.name, dist) in implied:
                continue
            origin = Origin(use.path, use.span.line, f"import of {use.module}, which {image.description} has")
            implied[(g.name, dist)] = _requirement(dist, origin, g.name)
    return tuple(implied[k] for k in sorted(implied))
