"""The seed era's mothership: a project-root `mothership.py` whose load-balanced config serves the
project's API app, so the API server itself is deployed.

    mothership.py   mothership = CpuLiveLoadBalancer(name="mothership", workersMin=1, workersMax=3)
    main.py         app = FastAPI(...)
                    --> Resource "mothership", load-balanced, app "main:app", no functions

tetra-rp's `flash init` wrote that file and its docs promised the deploy; its later builds added
the app as resource `mothership`. Here the config is any module-level binding of mothership.py to
a load-balanced config (`CpuLiveLoadBalancer(...)`, `LiveLoadBalancer(...)`, the
`LoadBalancerSlsResource` classes, or an `Endpoint(name=...)` that no route or decorator uses),
evaluated like every other config, so its mistakes are located the same way. The app is
`main.py`'s `app`, or what `[tool.flashc] serve = "module:attribute"` names.

A mothership.py that binds no such config serves nothing, with a warning: the seed documents
commenting the variable out as the way to turn the mothership off. Two such configs, an app that
is not there, or a name another resource has already are errors at the config. (tetra renamed
its implicit mothership to `mothership-entrypoint` on a clash; a name written in `name=` is the
user's, so flashc says so instead of renaming it.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from flashc_runtime.endpoint import EndpointParams, endpoint_resource
from flashc_runtime.resources import RESOURCE_CLASSES, ServerlessResource

from ..diagnostics import Note, Span
from ..models import Location, Resource
from ..modules import ModuleFile
from . import ir
from .evaluate import INVALID, Evaluator, Where
from .link import Linker, SdkRef, module_key

__all__ = ["MOTHERSHIP_FILE", "mothership_resource"]

MOTHERSHIP_FILE = "mothership.py"
DEFAULT_APP = "main:app"


def mothership_resource(
    evaluator: Evaluator,
    files: Mapping[str, ModuleFile],
    serve: str | None,
    instances: Collection[tuple[str, int]],
    resources: Collection[Resource],
) -> Resource | None:
    """The resource mothership.py declares, serving the project's app; None without one (or after
    reporting what is wrong). `instances` are the Endpoint bindings that routes or decorators use
    (those are resources of their own); `resources` are the others, for name clashes."""
    f = files.get(MOTHERSHIP_FILE)
    if f is None or f.module is None:
        return None
    linker = evaluator.linker
    module = module_key(f)
    summary = linker.load(MOTHERSHIP_FILE)
    if summary.parse_failure is not None:
        return None
    found: list[tuple[ir.AssignBinding, ServerlessResource]] = []
    for b in summary.bindings:
        if not isinstance(b, ir.AssignBinding) or linker.later_bindings(module, b.name, b.index):
            continue
        call = b.value
        if not isinstance(call, ir.Call) or not isinstance(call.func, (ir.Name, ir.Attr)):
            continue
        sym = linker.resolve_expr(module, call.func, b.index, None)
        if not isinstance(sym, SdkRef) or sym.name not in (*RESOURCE_CLASSES, "Endpoint"):
            continue
        if sym.name == "Endpoint" and (module, b.index) in instances:
            continue
        value = evaluator.evaluate(module, call, b.index, Where(f"the mothership's config '{b.name}'"))
        if value is INVALID:
            return None
        if isinstance(value, EndpointParams):
            if value.id is not None or value.image is not None:
                continue  # a client of an existing endpoint
            if value.name is None:
                linker.report(
                    MOTHERSHIP_FILE,
                    call.span,
                    "mothership",
                    f"the Endpoint '{b.name}' that serves the app needs a name",
                    'add name="mothership": a load-balanced endpoint is named by it',
                )
                return None
            value = endpoint_resource(value, value.name, load_balanced=True)
        if not isinstance(value, ServerlessResource):
            continue
        if not value.is_load_balanced:
            if b.name == "mothership":
                linker.report(
                    MOTHERSHIP_FILE,
                    call.span,
                    "mothership",
                    f"'mothership' is a queue-based config ({type(value).__name__}), but the app it serves "
                    "answers HTTP routes",
                    "use CpuLiveLoadBalancer(...) or LiveLoadBalancer(...)",
                )
                return None
            continue
        found.append((b, value))
    if not found:
        linker.report(
            MOTHERSHIP_FILE,
            None,
            "mothership",
            "mothership.py binds no load-balanced config, so the project's app is not deployed",
            'to deploy it, write mothership = CpuLiveLoadBalancer(name="mothership"); '
            "to silence this, delete mothership.py",
            severity="warning",
        )
        return None
    (binding, config), *others = found
    if others:
        second = others[0][0]
        linker.report(
            MOTHERSHIP_FILE,
            second.span,
            "mothership",
            f"mothership.py binds a second load-balanced config, '{second.name}': only one serves the app",
            "keep one of them",
            (Note(MOTHERSHIP_FILE, binding.span, f"'{binding.name}' is bound here"),),
        )
        return None
    app = _app(linker, files, serve, binding)
    clash = next((r for r in resources if r.name == config.name), None)
    if clash is not None:
        where = clash.location
        linker.report(
            MOTHERSHIP_FILE,
            binding.value.span,
            "mothership",
            f"resource '{config.name}' serves the project's app, but another resource has that name",
            f'give the mothership its own name, such as name="{config.name}-entrypoint"',
            (Note(where.path, _span_at(where), f"resource '{clash.name}' is declared here"),),
        )
        return None
    if app is None:
        return None
    span = binding.value.span
    return Resource(
        name=config.name,
        type=type(config).__name__,
        kind="load_balanced",
        compute="cpu" if config.is_cpu else "gpu",
        config=config.to_dict(),
        config_hash=config.config_hash(),
        location=Location(MOTHERSHIP_FILE, span.line, span.col),
        functions=(),
        app=app,
    )


def _app(linker: Linker, files: Mapping[str, ModuleFile], serve: str | None, binding: ir.AssignBinding) -> str | None:
    """`serve`, or main.py's `app`, when its module binds it; None after reporting why not."""
    target = serve or DEFAULT_APP
    module_name, _, attr = target.partition(":")
    what = f"{target} ([tool.flashc] serve)" if serve else "main.py's `app`"
    if not module_name or not attr:
        linker.report(
            MOTHERSHIP_FILE,
            binding.value.span,
            "mothership",
            f"'{binding.name}' serves the project's app, but [tool.flashc] serve = {serve!r} is not 'module:attribute'",
            'write serve = "main:app"',
        )
        return None
    source = next((f for f in files.values() if f.module == module_name), None)
    if source is None:
        linker.report(
            MOTHERSHIP_FILE,
            binding.value.span,
            "mothership",
            f"'{binding.name}' serves the project's app, {what}, but the project has no module '{module_name}'",
            'write the FastAPI app as `app` in main.py, or name it with [tool.flashc] serve = "module:attribute"',
        )
        return None
    summary = linker.load(source.path)
    if summary.parse_failure is not None:
        return None
    if not any(b.name == attr and not (isinstance(b, ir.DefBinding) and b.kind == "deleted") for b in summary.bindings):
        linker.report(
            MOTHERSHIP_FILE,
            binding.value.span,
            "mothership",
            f"'{binding.name}' serves the project's app, {what}, but {source.path} binds no '{attr}' at module level",
            f'define it there (`{attr} = FastAPI()`), or name the app with [tool.flashc] serve = "module:attribute"',
        )
        return None
    return f"{module_name}:{attr}"


def _span_at(location: Location) -> Span:
    return Span(location.line, location.col, location.line, location.col + 1)
