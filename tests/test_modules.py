from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from flashc.modules import ModuleFile, import_roots, module_files


def modules(*paths: str) -> dict[str, tuple[str | None, str | None]]:
    """`{path: (module, shadowed_by)}` for the `.py` files among `paths`."""
    return {path: (f.module, f.shadowed_by) for path, f in module_files(paths).items()}


# --- one file per name ------------------------------------------------------------------


def test_files_map_to_dotted_paths() -> None:
    assert module_files(["app.py", "pkg/__init__.py", "pkg/jobs.py", "ns/deep/job.py"]) == {
        "app.py": ModuleFile("app.py", "app", False),
        "ns/deep/job.py": ModuleFile("ns/deep/job.py", "ns.deep.job", False),
        "pkg/__init__.py": ModuleFile("pkg/__init__.py", "pkg", True),
        "pkg/jobs.py": ModuleFile("pkg/jobs.py", "pkg.jobs", False),
    }


def test_only_python_files_are_mapped() -> None:
    assert list(module_files(["README.md", "pkg/data.json", "pkg/x.pyc", "pkg/x.py"])) == ["pkg/x.py"]


def test_dots_in_a_name_leave_no_module_path() -> None:
    assert modules("jobs.v2.py", "v1.2/x.py", "v1.2/__init__.py", "a/b.c/d/e.py") == {
        "a/b.c/d/e.py": (None, None),
        "jobs.v2.py": (None, None),
        "v1.2/__init__.py": (None, None),
        "v1.2/x.py": (None, None),
    }


def test_names_that_are_not_identifiers_still_have_a_module_path() -> None:
    assert modules("examples/01_hello.py", "my-app/x.py", "my-app/__init__.py") == {
        "examples/01_hello.py": ("examples.01_hello", None),
        "my-app/__init__.py": ("my-app", None),
        "my-app/x.py": ("my-app.x", None),
    }


def test_root_init_has_no_module_path() -> None:
    assert module_files(["__init__.py", "app.py"])["__init__.py"] == ModuleFile("__init__.py", None, True)
    assert modules("__init__.py", "app.py")["app.py"] == ("app", None)


def test_result_does_not_depend_on_input_order() -> None:
    paths = ["pkg/sub.py", "pkg/sub/__init__.py", "pkg/ns.py", "pkg/ns/deep.py", "src/a/b.py", "a/b.py", "z.py"]
    expected = module_files(paths)
    shuffled = paths[:]
    random.Random(0).shuffle(shuffled)
    assert list(module_files(shuffled).items()) == list(expected.items())
    assert list(expected) == sorted(paths)


# --- rule 1: a regular package beats a module of the same name --------------------------


def test_package_beats_module_of_the_same_name() -> None:
    assert modules("pkg/__init__.py", "pkg/sub.py", "pkg/sub/__init__.py", "pkg/sub/leaf.py") == {
        "pkg/__init__.py": ("pkg", None),
        "pkg/sub.py": (None, "pkg/sub/__init__.py"),
        "pkg/sub/__init__.py": ("pkg.sub", None),
        "pkg/sub/leaf.py": ("pkg.sub.leaf", None),
    }
    assert module_files(["pkg/sub.py", "pkg/sub/__init__.py"])["pkg/sub.py"] == ModuleFile(
        "pkg/sub.py", None, False, "pkg/sub/__init__.py"
    )


def test_top_level_package_beats_module() -> None:
    assert modules("app.py", "app/__init__.py") == {
        "app.py": (None, "app/__init__.py"),
        "app/__init__.py": ("app", None),
    }


# --- rule 2: a module beats a namespace package -----------------------------------------


def test_module_beats_namespace_package_and_hides_everything_below_it() -> None:
    assert modules(
        "pkg/__init__.py", "pkg/ns.py", "pkg/ns/deep.py", "pkg/ns/deeper/more.py", "pkg/ns/inner/__init__.py"
    ) == {
        "pkg/__init__.py": ("pkg", None),
        "pkg/ns.py": ("pkg.ns", None),
        "pkg/ns/deep.py": (None, "pkg/ns.py"),
        "pkg/ns/deeper/more.py": (None, "pkg/ns.py"),
        "pkg/ns/inner/__init__.py": (None, "pkg/ns.py"),
    }


def test_a_shadowed_folder_hides_its_subpackages_too() -> None:
    # `a/b/` loses to `a/b.py`, so `a/b/c/` is never searched even though it is a regular package.
    assert modules("a.py", "a/b.py", "a/b/c/__init__.py", "a/b/c/d.py") == {
        "a.py": ("a", None),
        "a/b.py": (None, "a.py"),
        "a/b/c/__init__.py": (None, "a.py"),
        "a/b/c/d.py": (None, "a.py"),
    }


def test_package_shadowing_a_module_is_still_searched() -> None:
    assert modules("a.py", "a/__init__.py", "a/b.py") == {
        "a.py": (None, "a/__init__.py"),
        "a/__init__.py": ("a", None),
        "a/b.py": ("a.b", None),
    }


# --- src layout: the root comes first on sys.path ---------------------------------------


def test_src_layout_maps_relative_to_src() -> None:
    assert import_roots(["src/srcpkg/job.py", "app.py"]) == ("", "src")
    assert modules("src/srcpkg/job.py", "app.py") == {
        "app.py": ("app", None),
        "src/srcpkg/job.py": ("srcpkg.job", None),
    }


def test_src_with_init_is_a_package() -> None:
    assert import_roots(["src/__init__.py", "src/job.py"]) == ("",)
    assert modules("src/__init__.py", "src/job.py") == {
        "src/__init__.py": ("src", None),
        "src/job.py": ("src.job", None),
    }


def test_root_module_beats_the_same_module_under_src() -> None:
    assert modules("pkg/x.py", "src/pkg/x.py", "src/pkg/y.py") == {
        "pkg/x.py": ("pkg.x", None),
        "src/pkg/x.py": (None, "pkg/x.py"),
        "src/pkg/y.py": ("pkg.y", None),  # `pkg` is one namespace package over both folders
    }


def test_regular_package_at_the_root_hides_the_src_folder() -> None:
    assert modules("pkg/__init__.py", "src/pkg/extra.py") == {
        "pkg/__init__.py": ("pkg", None),
        "src/pkg/extra.py": (None, "pkg/__init__.py"),
    }


def test_module_at_the_root_hides_a_package_under_src() -> None:
    assert modules("mod.py", "src/mod/__init__.py", "src/mod/x.py") == {
        "mod.py": ("mod", None),
        "src/mod/__init__.py": (None, "mod.py"),
        "src/mod/x.py": (None, "mod.py"),
    }


def test_package_under_src_beats_namespace_at_the_root() -> None:
    assert modules("lib/a.py", "src/lib/__init__.py", "src/lib/b.py", "tool/a.py", "src/tool.py") == {
        "lib/a.py": (None, "src/lib/__init__.py"),
        "src/lib/__init__.py": ("lib", None),
        "src/lib/b.py": ("lib.b", None),
        "src/tool.py": ("tool", None),
        "tool/a.py": (None, "src/tool.py"),
    }


def test_first_folder_of_a_namespace_package_wins_even_over_a_package() -> None:
    assert modules("nsp/sub.py", "src/nsp/sub/__init__.py", "src/nsp/sub/x.py") == {
        "nsp/sub.py": ("nsp.sub", None),
        "src/nsp/sub/__init__.py": (None, "nsp/sub.py"),
        "src/nsp/sub/x.py": (None, "nsp/sub.py"),
    }


# --- against the real import system -----------------------------------------------------

FLAT_TREE = (
    "__init__.py",
    "app.py",
    "jobs.v2.py",
    "v1.2/x.py",
    "examples/01_hello.py",
    "my-app/x.py",
    "pkg/__init__.py",
    "pkg/sub.py",
    "pkg/sub/__init__.py",
    "pkg/sub/leaf.py",
    "pkg/ns.py",
    "pkg/ns/deep.py",
    "pkg/ns/deeper/more.py",
    "pkg/ns/inner/__init__.py",
    "top.py",
    "top/__init__.py",
    "mod.py",
    "mod/x.py",
)
SRC_TREE = (
    "app.py",
    "nsp/a.py",
    "nsp/sub.py",
    "src/nsp/a.py",
    "src/nsp/b.py",
    "src/nsp/sub/__init__.py",
    "pkg/__init__.py",
    "src/pkg/extra.py",
    "mod.py",
    "src/mod/__init__.py",
    "src/mod/x.py",
    "lib/a.py",
    "src/lib/__init__.py",
    "src/lib/b.py",
    "src/srcpkg/job.py",
    "src/jobs.v2.py",
)

# Imports each name in a fresh interpreter with the tree's import roots first on sys.path and
# reports which file (relative to the tree) it loaded, or the exception it raised.
_IMPORTER = """
import importlib, json, sys
root, roots, names = json.loads(sys.argv[1])
sys.path[0:0] = [f"{root}/{r}" if r else root for r in roots]
loaded = {}
for name in names:
    try:
        module = importlib.import_module(name)
    except Exception as e:
        loaded[name] = [None, type(e).__name__]
    else:
        path = getattr(module, "__file__", None) or ""
        loaded[name] = [path[len(root) + 1 :] if path.startswith(root + "/") else path, hasattr(module, "__path__")]
print(json.dumps(loaded))
"""


def _naive_name(path: str, roots: tuple[str, ...]) -> str:
    """The dotted path a file would have if nothing competed with it."""
    relative = path.removeprefix("src/") if "src" in roots else path
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_all(root: Path, roots: tuple[str, ...], names: list[str]) -> dict[str, list[object]]:
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _IMPORTER, json.dumps([str(root), roots, names])],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: dict[str, list[object]] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("tree", [FLAT_TREE, SRC_TREE], ids=["flat", "src-layout"])
def test_mapped_names_import_their_file_and_unmapped_files_cannot_be_imported(
    tmp_path: Path, tree: tuple[str, ...]
) -> None:
    for path in tree:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("X = 1\n")
    files = module_files(tree)
    roots = import_roots(tree)
    names = {path: f.module or _naive_name(path, roots) for path, f in files.items()}
    loaded = _import_all(tmp_path.resolve(), roots, sorted(set(names.values())))

    for path, f in files.items():
        got = loaded[names[path]]
        if f.module is not None:
            assert got == [path, f.is_package], path
        else:
            assert got[0] != path, path
            if f.shadowed_by is not None:
                assert files[f.shadowed_by].module is not None, path
    assert any(f.shadowed_by for f in files.values())
    assert any(f.module is None and f.shadowed_by is None for f in files.values())
