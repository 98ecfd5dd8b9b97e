"""Find the decorated definitions of the candidate files, with their evaluated configs, and check each.

    candidate summaries --linker + evaluator--> Found per decorated definition --resources_of--> Analysis

Pure: every file is read through the summary loader given to `build_analysis`.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flashc_runtime import UNSUPPORTED
from flashc_runtime.decorator import RemoteOptions
from flashc_runtime.resources import ServerlessResource
from flashc_runtime.schema import suggest, validate_params

from ..diagnostics import Diagnostic, Span, sort_key
from ..models import (
    ANALYSIS_SCHEMA_VERSION,
    Analysis,
)
from ..modules import ModuleFile, import_roots
from . import ir
from .endpoints import endpoint_definition, endpoint_use, named_as_the_sdk_names
from .evaluate import INVALID, Evaluator, Where, sdk_import_line, unimported_sdk_name
from .link import SDK_EXPORTS, SDK_ROOTS, Linker, ModuleRef, SdkRef, Undefined, ValueRef, module_key
from .mothership import mothership_resource
from .resources import Found, resources_of

__all__ = ["Found", "build_analysis"]

_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*$")
_SINGLE_EQUALS = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*(?:\[[^\]]*\])?)\s*=\s*([^=<>!~\s][^\s;]*)\s*$")


def build_analysis(
    project: str,
    files: Mapping[str, ModuleFile],
    load: Callable[[str], ir.ModuleSummary],
    candidates: Sequence[str],
    serve: str | None = None,
) -> Analysis:
    """Link the candidate files' summaries into an Analysis. Pure: all I/O is behind `load`.

    `serve` ("module:attribute", `[tool.flashc] serve`) names the app a mothership.py serves;
    None: main.py's `app`."""
    linker = Linker(files, load)
    evaluator = Evaluator(linker)
    found: list[Found] = []
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
        _check_sdk_imports(linker, path, summary)
    functions, resources = resources_of(linker, named_as_the_sdk_names(linker, found))
    instances = {item.instance for item in found if item.instance is not None}
    app = mothership_resource(evaluator, files, serve, instances, resources)
    if app is not None:
        resources = sorted([*resources, app], key=lambda r: r.name)
    diagnostics = list(linker.diagnostics)
    if not resources and not any(d.severity == "error" for d in diagnostics):
        python_files = sum(1 for p in files if p.endswith(".py"))
        diagnostics.append(
            Diagnostic(
                ".",
                None,
                "error",
                "no-remote",
                f"no @remote or Endpoint functions found in project '{project}' "
                f"(looked at {python_files} Python file{'s' if python_files != 1 else ''} after ignore rules)",
                "decorate a module-level function or class with @Endpoint(name=...) or "
                "@remote(resource_config=...), imported from runpod_flash, tetra_rp or flashc_runtime; "
                "check that .gitignore and .flashignore do not exclude your sources",
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
    """Whether a decorator is the SDK's remote or an Endpoint."""
    return (
        _remote_use(linker, module, expr, position, scope) is not None
        or endpoint_use(linker, module, expr, position, scope) is not None
    )


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
        elif (
            isinstance(undefined := linker.resolve_expr(module, root, d.index, None), Undefined)
            and not undefined.reported
            and not hasattr(builtins, root.id)
        ):
            if root.id == "remote":
                aliases = linker.names_bound_to(module, SdkRef("remote"), d.index)
                message = f"'{d.name}' is decorated with remote, but 'remote' is not defined here"
                hint = (
                    f"did you mean '{aliases[0]}'? it is the SDK's remote, imported above"
                    if aliases
                    else f"add `{sdk_import_line(linker, module, 'remote')}` to the file's imports"
                )
            elif (
                not linker.later_bindings(module, root.id, d.index - 1)
                and (unimported := unimported_sdk_name(linker, module, root.id)) is not None
            ):
                message, hint = unimported
            else:
                message = f"'{root.id}' is not defined here, so importing this module fails"
                hint = f"import or define '{root.id}' above this line"
            later = linker.later_bindings(module, root.id, d.index - 1)
            if later:
                hint = f"'{root.id}' is only defined further down, at line {later[0].span.line}: move it above this use"
            linker.report(
                path, root.span, "remote-not-imported" if root.id == "remote" else "undefined-name", message, hint
            )


def _remote_definition(evaluator: Evaluator, module: str, path: str, d: ir.DecoratedDef) -> Found | None:
    linker = evaluator.linker
    _check_unresolved_decorators(linker, module, path, d)
    uses = [(deco, _remote_use(linker, module, deco, d.index, None)) for deco in d.decorators]
    remotes = [(deco, use) for deco, use in uses if use is not None]
    endpoints = [(deco, endpoint_use(linker, module, deco, d.index, None)) for deco in d.decorators]
    found_endpoints = [(deco, use) for deco, use in endpoints if use is not None]
    if len(remotes) + len(found_endpoints) > 1:
        second = sorted(
            [deco for deco, _ in remotes] + [deco for deco, _ in found_endpoints],
            key=lambda x: (x.span.line, x.span.col),
        )[1]
        linker.report(
            path, second.span, "remote-twice", f"'{d.name}' is decorated with @remote or an Endpoint more than once"
        )
        return None
    if found_endpoints:
        deco_expr, endpoint = found_endpoints[0]
        item = endpoint_definition(evaluator, module, path, d, deco_expr, endpoint)
        if item is None or not _requirements_ok(linker, item.config_site[0], item.options, item.keyword_spans):
            return None
        if d.kind == "class" and not _class_ok(linker, path, d, item.options):
            return None
        return item
    if not remotes:
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
    return Found(module, path, d, config, values, deco.span, spans, site)


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


def _check_sdk_imports(linker: Linker, path: str, summary: ir.ModuleSummary) -> None:
    """A name imported from the SDK that flashc's SDK surface does not have fails the import of the
    module on the worker: say so at the import, never drop what uses it silently."""
    for b in summary.bindings:
        if not isinstance(b, ir.ImportBinding) or b.level or b.module.split(".")[0] not in SDK_ROOTS:
            continue
        if "." in b.module:
            linker.report(
                path,
                b.span,
                "sdk-name",
                f"flashc's SDK has no module '{b.module}'",
                f"import from the package itself: from {b.module.split('.')[0]} import {b.attr or '...'}",
            )
        elif b.attr is not None and b.attr not in SDK_EXPORTS and b.attr != "*":
            if b.attr in UNSUPPORTED:
                message, hint = f"flashc does not support the SDK's '{b.attr}'", UNSUPPORTED[b.attr]
            else:
                guess = suggest(b.attr, sorted(SDK_EXPORTS))
                message = f"the SDK has no name '{b.attr}'"
                hint = f"did you mean '{guess}'?" if guess else f"the SDK's names: {', '.join(sorted(SDK_EXPORTS))}"
            linker.report(path, b.span, "sdk-name", message, hint)


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
