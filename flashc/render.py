"""Stage 3, render: the generated files of an artifact, from Jinja templates.

    BuildPlan + Manifest --render--> RenderedFile per handler module, the handlers' package, the manifest

Pure: templates are read from flashc's own template folder, nothing else. Handlers import the
user's objects by module path with `importlib.import_module`, so module paths that are not
identifiers (`examples.01_hello`) work, and hand a registry to the runtime's factory
(`create_handler` for queue-based resources, `create_route_handler` for load-balanced ones); the
handler of a resource that serves the project's app (a mothership's) exposes that app as `app`.
Each resource also gets an entry module at the archive root, `handler_<resource name>.py`, the
file Runpod's stock worker images load (`entry_path`; the runtime's `stock.py` has the contract).
Identical input gives identical bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
from pathlib import Path
from typing import Any

import jinja2

from .entry import entry_path
from .group import BuildPlan, Group
from .manifest import Manifest, manifest_json

__all__ = ["MANIFEST_PATH", "SDK_ALIASES", "RenderedFile", "entry_path", "render", "templates_dir"]

MANIFEST_PATH = "flash_manifest.json"
# Module names under which user code imports the SDK; each becomes a thin alias of flashc_runtime.
SDK_ALIASES = ("runpod_flash", "tetra_rp")
_RESERVED = frozenset({"importlib", "create_handler", "create_route_handler", "REGISTRY", "ROUTES", "handler"})


@dataclasses.dataclass(frozen=True, slots=True)
class RenderedFile:
    """A generated file: its POSIX path inside the artifact and its text."""

    path: str
    text: str


def templates_dir() -> Path:
    """The installed wheel ships templates as `flashc/templates`; a source checkout has them at the top."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(plan: BuildPlan, manifest: Manifest) -> tuple[RenderedFile, ...]:
    """Every generated file of the artifact, sorted by path."""
    env = _environment()
    files = [
        RenderedFile(
            MANIFEST_PATH, env.get_template("flash_manifest.json.j2").render(manifest_json=manifest_json(manifest))
        ),
    ]
    if plan.groups:
        package = plan.groups[0].handler_path.rsplit("/", 1)[0]
        files.append(RenderedFile(f"{package}/__init__.py", env.get_template("flashc_handlers_init.py.j2").render()))
        runtime_dir = package.rsplit("/", 1)[0]
        for name in SDK_ALIASES:
            text = env.get_template("sdk_alias.py.j2").render(name=name)
            files.append(RenderedFile(f"{runtime_dir}/{name}/__init__.py", text))
    for group in plan.groups:
        if group.app is not None:
            kind = "app"
            module, _, attr = group.app.partition(":")
            text = env.get_template("handler_app.py.j2").render(
                resource=group.name, app=group.app, module=module, attr=attr
            )
        else:
            kind = "routes" if group.kind == "load_balanced" else "queue"
            text = env.get_template(f"handler_{kind}.py.j2").render(resource=group.name, functions=_functions(group))
        files.append(RenderedFile(group.handler_path, text))
        entry = entry_path(group.name)
        if entry is not None:
            text = env.get_template(f"stock_{kind}.py.j2").render(resource=group.name, app=group.app)
            files.append(RenderedFile(entry, text))
    return tuple(sorted(files, key=lambda f: f.path))


def _functions(group: Group) -> list[dict[str, Any]]:
    """Template data per function, with a local name for each that is unique in the module."""
    taken: set[str] = set(_RESERVED)
    out = []
    for f in group.functions:
        alias = f.qualname
        n = 2
        while alias in taken or keyword.iskeyword(alias):
            alias = f"{f.qualname}_{n}"
            n += 1
        taken.add(alias)
        route = f.route
        out.append(
            {
                "id": f.id,
                "module": f.module,
                "qualname": f.qualname,
                "alias": alias,
                "method": route.method if route else None,
                "path": route.path if route else None,
            }
        )
    return out
