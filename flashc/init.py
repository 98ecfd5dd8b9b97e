"""`flashc init`: a new project in the Flash SDK's layout, ready for `flashc run`.

    folder name --plan_project--> ProjectFile per file --write_project--> the files, on disk

`plan_project` is pure: the templates under `templates/init/` rendered for the project's name (a
FastAPI app in `main.py`, a GPU and a CPU worker under `workers/`, each with its routes, and the
project's settings and ignore files). `write_project` is the I/O edge: it refuses to replace any
file that exists, naming them all at once, unless told to; then it writes each file atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path

import jinja2

from ._atomic import write_atomic
from .errors import ProjectError, UsageError
from .render import templates_dir

__all__ = ["ProjectFile", "plan_project", "project_slug", "write_project"]

# Each file of a new project, and the template under templates/init/ it comes from (dotfiles have
# templates without the dot: a `.gitignore` in flashc's own tree would apply to flashc).
_FILES = (
    ("main.py", "main.py.j2"),
    ("workers/__init__.py", "workers/__init__.py.j2"),
    ("workers/gpu/__init__.py", "workers/gpu/__init__.py.j2"),
    ("workers/gpu/endpoint.py", "workers/gpu/endpoint.py.j2"),
    ("workers/cpu/__init__.py", "workers/cpu/__init__.py.j2"),
    ("workers/cpu/endpoint.py", "workers/cpu/endpoint.py.j2"),
    ("requirements.txt", "requirements.txt.j2"),
    ("pyproject.toml", "pyproject.toml.j2"),
    (".env.example", "env.example.j2"),
    (".gitignore", "gitignore.j2"),
    (".flashignore", "flashignore.j2"),
    ("README.md", "README.md.j2"),
)
_SLUG_MAX = 40  # resource names start with it; Runpod shows them in narrow columns
_DEFAULT_SLUG = "flash-app"


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectFile:
    """A file of the new project: its POSIX path in the project folder and its text."""

    path: str
    text: str


def project_slug(name: str) -> str:
    """The project's name as a distribution and resource name: lowercase letters, digits and
    single dashes (`My Project_2` -> `my-project-2`); `flash-app` when nothing of it is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower())[:_SLUG_MAX].strip("-")
    return slug or _DEFAULT_SLUG


def plan_project(name: str) -> tuple[ProjectFile, ...]:
    """Every file of a new project called `name` (its folder's name), in the order they are listed."""
    env = _environment()
    # A folder name that is not UTF-8 has lone surrogates in it: no file could hold them.
    shown = name.encode("utf-8", "replace").decode("utf-8") or _DEFAULT_SLUG
    data = {"name": shown, "slug": project_slug(name), "title": json.dumps(shown, ensure_ascii=False)}
    return tuple(ProjectFile(path, env.get_template(template).render(**data)) for path, template in _FILES)


def write_project(root: Path, files: Sequence[ProjectFile], *, force: bool = False) -> tuple[str, ...]:
    """Write `files` under `root` (made if missing), each atomically; the paths of those that
    existed and were replaced.

    Nothing is written when a file exists and `force` is not given, nor when a folder stands where
    a file goes or a file where a folder goes: UsageError names every one. OS failures become
    ProjectError.
    """
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder", "give `flashc init` a folder, new or existing")
    where = "here" if root == Path() else f"in {root}"
    blocked = sorted({p for f in files for p in _in_the_way(root, f.path)})
    if blocked:
        raise UsageError(
            f"the project cannot be written {where}: {', '.join(blocked)} would have to be removed",
            "remove them, or choose a new or empty folder",
        )
    taken = tuple(f.path for f in files if (root / f.path).exists() or (root / f.path).is_symlink())
    if taken and not force:
        raise UsageError(
            f"{len(taken)} of the project's files exist already {where}: {', '.join(taken)}",
            "choose a new or empty folder, or pass --force to overwrite them",
        )
    for f in files:
        target = root / f.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, f.text.encode("utf-8"))
        except OSError as exc:
            raise ProjectError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return taken


def _in_the_way(root: Path, path: str) -> list[str]:
    """What stands where `path` or one of its folders goes: a folder at the file's place (`main.py/`),
    a file at a folder's place (`workers`)."""
    parts = path.split("/")
    found = [f"{path}/"] if (root / path).is_dir() else []
    for i in range(1, len(parts)):
        folder = "/".join(parts[:i])
        if (root / folder).exists() and not (root / folder).is_dir():
            found.append(folder)
    return found


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "init")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
