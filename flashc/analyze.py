"""Stage 1, analyze: find every @remote function, class and route, with its evaluated resource config.

    project folder --snapshot_project--> Snapshot --scan (libcst, cached)--> ModuleSummary per file
                   --link--> Analysis (functions, resources, diagnostics)

User code is never imported or run. Only files that mention `remote` or an SDK module are
parsed up front; other files are parsed when a name leads to them (a config imported from
`configs.py`, a re-export in a package `__init__`). `build_analysis` is pure given a summary
loader; `analyze_project` adds the file system and the cache.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flashc_runtime.decorator import RemoteOptions, route_key
from flashc_runtime.resources import ServerlessResource
from flashc_runtime.schema import suggest, validate_params

from . import _ir as ir
from ._evaluate import INVALID, Evaluator, Where
from ._link import SDK_EXPORTS, SDK_ROOTS, DefRef, Linker, ModuleRef, SdkRef, Undefined, ValueRef, module_key
from .diagnostics import Diagnostic, Note, Span, sort_key
from .models import (
    ANALYSIS_SCHEMA_VERSION,
    Analysis,
    Location,
    RemoteFunction,
    Resource,
    Route,
)
from .modules import ModuleFile, import_roots, module_files
from .scancache import SummaryStore
from .sources import Snapshot, snapshot_project

__all__ = ["CANDIDATE_MARKERS", "analyze_project", "build_analysis"]

# A file that can hold @remote mentions `remote` (the decorator, however imported) or an SDK module.
CANDIDATE_MARKERS = (b"remote", b"tetra_rp", b"runpod_flash", b"flashc_runtime")
_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*$")
_SINGLE_EQUALS = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*(?:\[[^\]]*\])?)\s*=\s*([^=<>!~\s][^\s;]*)\s*$")


def analyze_project(project: Path | Snapshot, *, use_cache: bool = True, jobs: int | None = None) -> Analysis:
    """Scan and link a project: a snapshot of its files, or its folder (walked here).

    Reads files through the snapshot; writes only the scan cache.
    """
    snapshot = project if isinstance(project, Snapshot) else snapshot_project(project)
    try:
        return _analyze_project(snapshot, use_cache, jobs, read_cache=True)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError):
        if not use_cache:
            raise
        # A cache that decodes into a summary of the wrong shape: it may only make a run slower,
        # never fail it, so run again from the sources alone (this also rewrites the cache).
        return _analyze_project(snapshot, use_cache, jobs, read_cache=False)


def _analyze_project(project: Snapshot, use_cache: bool, jobs: int | None, *, read_cache: bool) -> Analysis:
    files = module_files(project.files)
    store = SummaryStore(project, use_cache=use_cache, read_cache=read_cache)
    candidates = store.select(sorted(files), CANDIDATE_MARKERS)
    store.prefetch(candidates, jobs=jobs)
    aliases = _remote_aliases(files, store.load, candidates)
    if aliases:
        # `from common import endpoint` where common.py renamed the SDK's remote: such files may
        # mention neither `remote` nor the SDK, so look for the new names too.
        chosen = set(candidates)
        rest = [p for p in sorted(files) if p not in chosen]
        extra = store.select(rest, [a.encode() for a in sorted(aliases)], trust_index=False)
        store.prefetch(extra, jobs=jobs)
        candidates = sorted(chosen.union(extra))
    analysis = build_analysis(project.root.name, files, store.load, candidates)
    store.save()
    return dataclasses.replace(analysis, parsed_files=store.loaded_count)


def _remote_aliases(
    files: Mapping[str, ModuleFile], load: Callable[[str], ir.ModuleSummary], candidates: Sequence[str]
) -> set[str]:
    """Other names under which the candidate modules make the SDK's remote available.

    Only a module's own bindings are read (`from tetra_rp import remote as endpoint`, then
    `task = endpoint`): following imports into other modules here would parse files that
    nothing may need.
    """
    aliases: set[str] = set()
    for path in candidates:
        summary = load(path)
        local = {"remote"} if any(s.module.split(".")[0] in SDK_ROOTS for s in summary.star_imports) else set()
        for b in summary.bindings:
            if _names_remote(b, local):
                local.add(b.name)
        aliases |= local
    aliases.discard("remote")
    return aliases


def _names_remote(b: ir.Binding, aliases: set[str]) -> bool:
    """Whether a binding makes another name for the SDK's remote, judged within its own module."""
    if isinstance(b, ir.ImportBinding):
        return b.attr == "remote" and b.module.split(".")[0] in SDK_ROOTS
    if isinstance(b, ir.AssignBinding):
        value = b.value
        # `task = endpoint` (an alias above), or `task = tetra_rp.remote`
        return (isinstance(value, ir.Name) and value.id in aliases) or (
            isinstance(value, ir.Attr) and value.attr == "remote"
        )
    return False


@dataclasses.dataclass
class _Found:
    """A @remote definition, checked, before resources are grouped."""

    module: str
    path: str
    definition: ir.DecoratedDef
    config: ServerlessResource
    options: Mapping[str, Any]
    decorator_span: Span
    keyword_spans: Mapping[str, Span]
    config_site: tuple[str, Span]  # where the config was constructed


def build_analysis(
    project: str,
    files: Mapping[str, ModuleFile],
    load: Callable[[str], ir.ModuleSummary],
    candidates: Sequence[str],
) -> Analysis:
    """Link the candidate files' summaries into an Analysis. Pure: all I/O is behind `load`."""
    linker = Linker(files, load)
    evaluator = Evaluator(linker)
    found: list[_Found] = []
    for path in candidates:
        f = files[path]
        summary = linker.load(path)
        if summary.parse_failure is not None:
            continue
        module = module_key(f)
        for definition in summary.defs:
            item = _remote_definition(evaluator, module, path, definition)
            if item is not None and _rebound(linker, module, path, summary, definition):
                continue
            if item is not None:
                if f.module is None:
                    _no_module_path(linker, f, definition)
                    continue
                found.append(item)
        _misplaced(linker, module, path, summary)
    functions, resources = _group(linker, found)
    diagnostics = list(linker.diagnostics)
    if not functions and not any(d.severity == "error" for d in diagnostics):
        python_files = sum(1 for p in files if p.endswith(".py"))
        diagnostics.append(
            Diagnostic(
                ".",
                None,
                "error",
                "no-remote",
                f"no @remote functions found in project '{project}' "
                f"(looked at {python_files} Python file{'s' if python_files != 1 else ''} after ignore rules)",
                "decorate a module-level function or class with @remote(resource_config=...) imported from "
                "tetra_rp, runpod_flash or flashc_runtime; check that .gitignore and .flashignore do not "
                "exclude your sources",
            )
        )
    return Analysis(
        schema_version=ANALYSIS_SCHEMA_VERSION,
        project=project,
        import_roots=import_roots(files),
        python_files=sum(1 for p in files if p.endswith(".py")),
        parsed_files=len(candidates),
        resources=tuple(resources),
        functions=tuple(functions),
        diagnostics=tuple(sorted(diagnostics, key=sort_key)),
    )


def _rebound(linker: Linker, module: str, path: str, summary: ir.ModuleSummary, d: ir.DecoratedDef) -> bool:
    """Report a later binding of the same name: the module attribute would no longer be the @remote object."""
    redefined_remotes = {x.index for x in summary.defs if x.name == d.name}  # reported as duplicates instead
    for later in linker.later_bindings(module, d.name, d.index):
        if later.index in redefined_remotes:
            continue
        linker.report(
            path,
            later.span,
            "rebound",
            f"'{d.name}' is bound again here, so the module's '{d.name}' is no longer "
            f"the @remote {d.kind} defined at line {d.span.line}",
            "rename one of them",
        )
        return True
    return False


def _no_module_path(linker: Linker, f: ModuleFile, definition: ir.DecoratedDef) -> None:
    if f.shadowed_by is not None:
        message = (
            f"'{f.path}' cannot be imported: its module path is taken by '{f.shadowed_by}', "
            f"so '{definition.name}' cannot be deployed"
        )
        hint = "remove or rename one of the two files"
    else:
        message = f"'{f.path}' cannot be imported by a module path, so '{definition.name}' cannot be deployed"
        hint = "rename the file or folder so that its name holds no dot other than the .py suffix"
    linker.report(f.path, definition.span, "module-path", message, hint)


@dataclasses.dataclass(frozen=True)
class _RemoteUse:
    """A decorator that is the SDK's remote: the call configuring it (None for a bare `@remote`) and
    where that call's arguments are evaluated (a pre-built `gpu_task = remote(cfg)` lives elsewhere)."""

    call: ir.Call | None
    module: str
    position: int | None


def _remote_use(
    linker: Linker, module: str, deco: ir.Expr, position: int | None, scope: ir.Scope | None
) -> _RemoteUse | None:
    target = deco.func if isinstance(deco, ir.Call) else deco
    if not isinstance(target, (ir.Name, ir.Attr)):
        return None
    sym = linker.resolve_expr(module, target, position, scope)
    if sym == SdkRef("remote"):
        return _RemoteUse(deco if isinstance(deco, ir.Call) else None, module, position)
    if isinstance(deco, (ir.Name, ir.Attr)) and isinstance(sym, ValueRef) and not sym.binding.conditional:
        made = sym.binding.value
        if (
            isinstance(made, ir.Call)
            and isinstance(made.func, (ir.Name, ir.Attr))
            and linker.resolve_expr(sym.module, made.func, sym.binding.index, None) == SdkRef("remote")
        ):
            return _RemoteUse(made, sym.module, sym.binding.index)
    return None


def _is_remote(linker: Linker, module: str, expr: ir.Expr, position: int | None, scope: ir.Scope | None) -> bool:
    return _remote_use(linker, module, expr, position, scope) is not None


def _check_unresolved_decorators(linker: Linker, module: str, path: str, d: ir.DecoratedDef) -> None:
    """A decorator whose name is not defined fails the import of the whole module: say so."""
    summary = linker.summary(module)
    if summary is None or any(linker.module_ref(s.module).origin == "external" for s in summary.star_imports):
        return  # an outside `import *` may define anything
    for deco in d.decorators:
        target = deco.func if isinstance(deco, ir.Call) else deco
        root = target
        while isinstance(root, ir.Attr):
            root = root.base
        if not isinstance(root, ir.Name):
            continue
        sym = linker.resolve_expr(module, target, d.index, None)
        if isinstance(sym, ModuleRef) and sym.origin == "sdk" and isinstance(target, ir.Attr):
            guess = suggest(target.attr, sorted(SDK_EXPORTS))
            linker.report(
                path,
                target.span,
                "undefined-name",
                f"the SDK has no name '{target.attr}'",
                f"did you mean '{guess}'?" if guess else f"the SDK's names: {', '.join(sorted(SDK_EXPORTS))}",
            )
        elif isinstance(linker.resolve_expr(module, root, d.index, None), Undefined) and not hasattr(builtins, root.id):
            if root.id == "remote":
                aliases = linker.names_bound_to(module, SdkRef("remote"), d.index)
                message = f"'{d.name}' is decorated with remote, but 'remote' is not defined here"
                hint = (
                    f"did you mean '{aliases[0]}'? it is the SDK's remote, imported above"
                    if aliases
                    else "add `from tetra_rp import remote` (or runpod_flash, flashc_runtime) at the top of the file"
                )
            else:
                message = f"'{root.id}' is not defined here, so importing this module fails"
                hint = f"import or define '{root.id}' above this line"
            later = linker.later_bindings(module, root.id, d.index - 1)
            if later:
                hint = f"'{root.id}' is only defined further down, at line {later[0].span.line}: move it above this use"
            linker.report(
                path, root.span, "remote-not-imported" if root.id == "remote" else "undefined-name", message, hint
            )


def _remote_definition(evaluator: Evaluator, module: str, path: str, d: ir.DecoratedDef) -> _Found | None:
    linker = evaluator.linker
    _check_unresolved_decorators(linker, module, path, d)
    uses = [(deco, _remote_use(linker, module, deco, d.index, None)) for deco in d.decorators]
    remotes = [(deco, use) for deco, use in uses if use is not None]
    if not remotes:
        return None
    if len(remotes) > 1:
        linker.report(path, remotes[1][0].span, "remote-twice", f"'{d.name}' is decorated with @remote more than once")
        return None
    decorator, use = remotes[0]
    if use.call is None:
        linker.report(
            path,
            decorator.span,
            "remote-needs-config",
            f"@remote on '{d.name}' needs a resource config",
            'write @remote(resource_config=LiveServerless(name="...")) or pass a config defined above',
        )
        return None
    # The options are read where the remote(...) call is written: here, or at a pre-built decorator.
    deco, module_of_call, position = use.call, use.module, use.position
    call_path = linker.path_of(module_of_call)
    found = _remote_options(evaluator, module_of_call, call_path, position, deco)
    if found is None:
        return None
    values, spans = found
    if not _requirements_ok(linker, call_path, values, spans):
        return None
    if d.kind == "class" and not _class_ok(linker, path, d, values):
        return None
    config = values["resource_config"]
    origin = evaluator.origins.get(id(config))
    site = (origin.path, origin.span) if origin else (call_path, spans.get("resource_config", deco.span))
    return _Found(module, path, d, config, values, deco.span, spans, site)


def _remote_options(
    evaluator: Evaluator, module: str, path: str, position: int | None, deco: ir.Call
) -> tuple[dict[str, Any], dict[str, Span]] | None:
    """Evaluate and check the arguments of a `remote(...)` call; None after reporting what is wrong."""
    linker = evaluator.linker
    kwargs: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    ok = True
    for i, arg in enumerate(deco.args):
        if i > 0:
            linker.report(
                path,
                arg.span,
                "remote-option",
                "@remote takes one positional argument, the resource config",
                "pass the other options by name, such as dependencies=[...]",
            )
            ok = False
            continue
        value = evaluator.evaluate(module, arg, position, Where("the resource config of @remote"))
        spans["resource_config"] = arg.span
        if value is INVALID:
            ok = False
        else:
            kwargs["resource_config"] = value
    for kw in deco.keywords:
        if kw.name is None:
            linker.report(path, kw.span, "remote-option", "@remote options must be written by name, not with **")
            ok = False
            continue
        what = "the resource config of @remote" if kw.name == "resource_config" else f"option '{kw.name}' of @remote"
        if kw.name in spans and kw.name == "resource_config":
            linker.report(
                path,
                kw.span,
                "remote-option",
                "the resource config of @remote is given twice, by position and as resource_config=",
                "keep one of them",
            )
            ok = False
            continue
        value = evaluator.evaluate(module, kw.value, position, Where(what))
        spans[kw.name] = kw.span
        if isinstance(kw.value, ir.Seq):
            for i, item in enumerate(kw.value.items):
                spans[f"{kw.name}[{i}]"] = item.span
        if value is INVALID:
            ok = False
        else:
            kwargs[kw.name] = value
    if not ok:
        return None
    if "resource_config" in kwargs and not isinstance(kwargs["resource_config"], ServerlessResource):
        got = kwargs["resource_config"]
        linker.report(
            path,
            spans["resource_config"],
            "remote-needs-config",
            f"the resource config of @remote must be a config such as LiveServerless(...), got {type(got).__name__}",
            "pass a resource config: LiveServerless, CpuLiveServerless, ServerlessEndpoint, "
            "CpuServerlessEndpoint, LiveLoadBalancer or CpuLiveLoadBalancer",
        )
        return None
    values, problems = validate_params(RemoteOptions, kwargs)
    for problem in problems:
        span = spans.get(problem.param, deco.span) if problem.param else deco.span
        linker.report(path, span, "remote-option", problem.message, problem.hint)
    if problems:
        return None
    return values, spans


def _requirements_ok(linker: Linker, path: str, values: Mapping[str, Any], spans: Mapping[str, Span]) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    ok = True
    for i, req in enumerate(values["dependencies"] or ()):
        try:
            Requirement(req)
        except InvalidRequirement:
            single_equals = _SINGLE_EQUALS.match(req)
            linker.report(
                path,
                spans.get(f"dependencies[{i}]", spans["dependencies"]),
                "bad-requirement",
                f"invalid requirement '{req}'",
                f"did you mean '{single_equals[1]}=={single_equals[2]}'?"
                if single_equals
                else "write a PEP 508 requirement such as 'numpy==1.26.4' or 'torch>=2.1'",
            )
            ok = False
    for i, pkg in enumerate(values["system_dependencies"] or ()):
        if not _APT_NAME.match(pkg):
            linker.report(
                path,
                spans.get(f"system_dependencies[{i}]", spans["system_dependencies"]),
                "bad-requirement",
                f"invalid system package name '{pkg}'",
                "system_dependencies are apt package names such as 'ffmpeg' or 'libgl1'",
            )
            ok = False
    return ok


def _class_ok(linker: Linker, path: str, d: ir.DecoratedDef, values: Mapping[str, Any]) -> bool:
    ok = True
    if values["method"] is not None or values["path"] is not None:
        linker.report(
            path,
            d.span,
            "route",
            f"class '{d.name}' cannot be a load-balanced route",
            "routes are functions: decorate a function with method= and path=",
        )
        ok = False
    if not d.methods and not d.has_bases:  # inherited methods are not visible from here
        linker.report(
            path,
            d.span,
            "class-methods",
            f"class '{d.name}' has no public methods to serve",
            "add a method whose name does not start with '_'",
        )
        ok = False
    required = [
        p.name for p in d.init_params or () if not p.has_default and p.kind not in ("var_positional", "var_keyword")
    ]
    if required:
        linker.report(
            path,
            d.span,
            "class-init",
            f"'{d.name}.__init__' requires arguments ({', '.join(required)}), "
            "but an endpoint creates its instance without arguments",
            "give these parameters default values, or read them from the environment inside __init__",
        )
        ok = False
    return ok


def _misplaced(linker: Linker, module: str, path: str, summary: ir.ModuleSummary) -> None:
    for m in summary.misplaced:
        if not any(_is_remote(linker, module, deco, None, m.scope) for deco in m.decorators):
            continue
        if m.where == "nested":
            message = f"@remote on '{m.qualname}', a function defined inside another function, cannot be deployed"
            hint = f"move '{m.name}' to the top level of the module"
        elif m.where == "method":
            message = f"@remote on method '{m.qualname}' cannot be deployed"
            hint = "decorate the class instead: @remote(...) on a class serves all its public methods"
        else:
            message = (
                f"@remote on '{m.name}' under `if __name__ == \"__main__\":` cannot be deployed: "
                "that block never runs when the module is imported"
            )
            hint = 'move the definition above the `if __name__ == "__main__":` block'
        linker.report(path, m.span, "not-deployable", message, hint)
    for app in summary.applications:
        if not _is_remote(linker, module, app.func, None, app.scope):
            continue
        if app.arg_kind == "lambda":
            message, hint = (
                "@remote cannot wrap a lambda",
                "define a named function at the top level of the module and decorate it with @remote(...)",
            )
        else:
            message, hint = (
                "remote(...) applied by hand cannot be deployed",
                "use it as a decorator: @remote(...) on the line above a module-level def or class",
            )
        linker.report(path, app.span, "not-deployable", message, hint)


def _group(linker: Linker, found: Sequence[_Found]) -> tuple[list[RemoteFunction], list[Resource]]:
    """Check identities, resource names and routes; build the functions and resources."""
    seen_ids: dict[str, _Found] = {}
    unique: list[_Found] = []
    for item in found:
        fid = f"{item.module}:{item.definition.name}"
        if fid in seen_ids:
            first = seen_ids[fid]
            linker.report(
                item.path,
                item.definition.span,
                "duplicate-function",
                f"'{item.definition.name}' is defined twice in module '{item.module}' with @remote",
                "rename one of them",
                (Note(first.path, first.definition.span, "first defined here"),),
            )
            continue
        seen_ids[fid] = item
        unique.append(item)

    by_name: dict[str, tuple[_Found, str]] = {}
    members: dict[str, list[_Found]] = {}
    for item in unique:
        config = item.config
        name = config.name
        digest = config.config_hash()
        if name in by_name:
            first, first_digest = by_name[name]
            if first_digest != digest:
                linker.report(
                    *item.config_site,
                    "resource-conflict",
                    f"resource '{name}' is defined with a different config than before "
                    f"({_difference(first.config, config)})",
                    "give each config its own name, or define the config once and reuse it",
                    (Note(*first.config_site, "first defined here"),),
                )
                continue
            if first.config.to_dict()["env"] != config.to_dict()["env"]:
                linker.report(
                    *item.config_site,
                    "resource-env",
                    f"resource '{name}' is defined again with a different env; the env of the first definition is used",
                    "define the config once and reuse it, so that both functions see the same env",
                    (Note(*first.config_site, "first defined here"),),
                    severity="warning",
                )
        else:
            by_name[name] = (item, digest)
        members.setdefault(name, []).append(item)

    _check_routes(linker, members)
    ids = {(i.module, i.definition.name): f"{i.module}:{i.definition.name}" for i in unique}
    functions = [_function(linker, item, ids) for items in members.values() for item in items]
    resources = [_resource(by_name[name][0], items) for name, items in members.items()]
    return sorted(functions, key=lambda f: f.id), sorted(resources, key=lambda r: r.name)


def _difference(a: ServerlessResource, b: ServerlessResource) -> str:
    if type(a) is not type(b):
        return f"{type(a).__name__} vs {type(b).__name__}"
    left, right = a.to_dict(), b.to_dict()
    keys = [k for k in left if k != "env" and left[k] != right[k]]
    return ", ".join(f"{k}: {left[k]!r} vs {right[k]!r}" for k in keys)


def _check_routes(linker: Linker, members: Mapping[str, Sequence[_Found]]) -> None:
    for items in members.values():
        routes: dict[tuple[str, str], _Found] = {}
        for item in items:
            method, route_path = item.options["method"], item.options["path"]
            if method is None or route_path is None:
                continue
            key = route_key(method, route_path)
            if key in routes:
                first = routes[key]
                linker.report(
                    item.path,
                    item.keyword_spans.get("path", item.decorator_span),
                    "route",
                    f"route {method} {route_path} is already served by '{first.definition.name}' "
                    f"on resource '{item.config.name}'",
                    "give each function its own path",
                    (
                        Note(
                            first.path,
                            first.keyword_spans.get("path", first.decorator_span),
                            "first used here",
                        ),
                    ),
                )
            else:
                routes[key] = item


def _function(linker: Linker, item: _Found, ids: Mapping[tuple[str, str], str]) -> RemoteFunction:
    d = item.definition
    own = f"{item.module}:{d.name}"
    calls = set()
    for site in d.calls:
        sym = linker.resolve_expr(item.module, site.func, None, d.scope)
        if isinstance(sym, DefRef) and (sym.module, sym.name) in ids:
            target = ids[(sym.module, sym.name)]
            if target != own:
                calls.add(target)
    options = item.options
    route = Route(options["method"], options["path"]) if options["method"] and options["path"] else None
    return RemoteFunction(
        id=own,
        module=item.module,
        qualname=d.name,
        kind=d.kind,
        location=Location(item.path, d.span.line, d.span.col),
        resource=item.config.name,
        is_async=d.is_async,
        is_generator=d.is_generator,
        params=d.params,
        methods=d.methods,
        route=route,
        dependencies=tuple(options["dependencies"] or ()),
        system_dependencies=tuple(options["system_dependencies"] or ()),
        accelerate_downloads=options["accelerate_downloads"],
        local=options["local"],
        calls=tuple(sorted(calls)),
    )


def _resource(first: _Found, items: Sequence[_Found]) -> Resource:
    config = first.config
    path, span = first.config_site
    return Resource(
        name=config.name,
        type=type(config).__name__,
        kind="load_balanced" if config.is_load_balanced else "queue",
        compute="cpu" if config.is_cpu else "gpu",
        config=config.to_dict(),
        config_hash=config.config_hash(),
        location=Location(path, span.line, span.col),
        functions=tuple(sorted(f"{i.module}:{i.definition.name}" for i in items)),
    )
