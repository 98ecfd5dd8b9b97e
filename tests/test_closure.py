"""Which project files an endpoint can run: a change elsewhere must not restart it."""

from __future__ import annotations

from flashc.closure import import_closure, resource_files


def closure(files: dict[str, str], *entry: str) -> frozenset[str] | None:
    return import_closure({p: t.encode() for p, t in files.items()}, entry)


def test_imports_are_followed_wherever_they_stand() -> None:
    files = {
        "app.py": "import os\nfrom lib import tools\n\ndef f():\n    import lazy.deep\n",
        "lib/__init__.py": "",
        "lib/tools.py": "from . import helpers as h\nfrom .sub.thing import (\n    a,\n    b,\n)\n",
        "lib/helpers.py": "",
        "lib/sub/thing.py": "",
        "lazy/__init__.py": "from .deep import x\n",
        "lazy/deep.py": "x = 1\n",
        "other.py": "import app\n",
        "unused/__init__.py": "",
    }
    assert closure(files, "app") == {
        "app.py",
        "lib/__init__.py",
        "lib/tools.py",
        "lib/helpers.py",
        "lib/sub/thing.py",
        "lazy/__init__.py",
        "lazy/deep.py",
    }


def test_a_module_runs_its_packages_first() -> None:
    files = {"pkg/__init__.py": "import pkg.setup_\n", "pkg/setup_.py": "", "pkg/mod.py": "", "pkg/other.py": ""}
    assert closure(files, "pkg.mod") == {"pkg/__init__.py", "pkg/setup_.py", "pkg/mod.py"}


def test_relative_imports_climb_from_the_module_s_package() -> None:
    files = {"a/__init__.py": "", "a/b/__init__.py": "", "a/b/c.py": "from ..d import e\n", "a/d.py": "", "a/x.py": ""}
    assert closure(files, "a.b.c") == {"a/__init__.py", "a/b/__init__.py", "a/b/c.py", "a/d.py"}


def test_an_import_by_computed_name_means_anything_may_run() -> None:
    files = {"app.py": "import importlib\nmod = importlib.import_module(NAME)\n", "b.py": ""}
    assert closure(files, "app") is None
    # ...but only when the file doing it is reachable.
    assert closure({**files, "c.py": "x = 1\n"}, "c") == {"c.py"}
    # Words that merely contain those names are not imports.
    assert closure({"c.py": "executor = pool.execute_all(reimport)\n", "b.py": ""}, "c") == {"c.py"}


def test_resource_files_keep_every_non_python_file() -> None:
    contents = {"app.py": b"", "other.py": b"", "data/model.json": b"{}", "requirements.txt": b"numpy\n"}
    kept = dict(resource_files(contents, {"r": ["app"]})["r"])
    assert set(kept) == {"app.py", "data/model.json", "requirements.txt"}
    both = resource_files(contents, {"r": ["app"], "s": ["other"]})
    assert [p for p, _ in both["s"]] == ["other.py", "data/model.json", "requirements.txt"]
    dynamic = {**contents, "app.py": b"exec(open('other.py').read())\n"}
    assert set(dict(resource_files(dynamic, {"r": ["app"]})["r"])) == set(dynamic)
