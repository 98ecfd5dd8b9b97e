"""Every import an endpoint runs is checked at build time: a missing package must not crash a cold start."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import pytest

from flashc.diagnostics import Diagnostic, Note, Span, render_all
from flashc.imports import (
    ImportReport,
    ImportUse,
    ProjectImports,
    Worker,
    check_imports,
    scan_imports,
    stdlib_modules,
)

DISTRIBUTIONS = {"cv2": "opencv-python", "yaml": "PyYAML", "PIL": "pillow"}
IMAGE = "runpod/flash:py3.12"


def scan(source: str, module: str = "app", *, package: bool = False, version: str = "3.12") -> list[ImportUse]:
    major, minor = version.split(".")
    uses = scan_imports(source.encode(), "app.py", module, package, (int(major), int(minor)))
    assert uses is not None
    return list(uses)


def needs(source: str, module: str = "app", *, package: bool = False, version: str = "3.12") -> list[str]:
    """The modules of the imports that can fail: unguarded ones."""
    return [u.module for u in scan(source, module, package=package, version=version) if u.guard is None]


def check(
    files: Mapping[str, str],
    *entries: str,
    shipped: frozenset[str] = frozenset(),
    image: Mapping[str, str] | None = None,
    version: str = "3.12",
    resource: str = "vision",
) -> ImportReport:
    project = ProjectImports({p: t.encode() for p, t in files.items()}, version)
    worker = Worker(IMAGE, shipped, image or {})
    return check_imports(project, resource, entries, worker, lambda name: DISTRIBUTIONS.get(name, name))


def problems(report: ImportReport) -> list[tuple[str, int, int, str, str]]:
    """(path, line, col, severity, missing name) of each diagnostic."""
    out: list[tuple[str, int, int, str, str]] = []
    for d in report.diagnostics:
        assert d.span is not None and d.code == "import"
        out.append((d.path, d.span.line, d.span.col, d.severity, d.message.split("'")[1]))
    return out


# --- finding imports ----------------------------------------------------------------------


def test_each_import_form_names_the_module_it_needs() -> None:
    source = (
        "import a.b\n"
        "import c.d as e, f\n"
        "from g.h import i, j as k\n"
        "from m import *\n"
        "x = __import__('n.o')\n"
        "import importlib\n"
        "y = importlib.import_module('p')\n"
        "z = importlib.import_module(name)\n"  # computed: not checked
        "w = __import__(f'{q}')\n"
    )
    assert [(u.module, u.names) for u in scan(source)] == [
        ("a.b", ()),
        ("c.d", ()),
        ("f", ()),
        ("g.h", ("i", "j")),
        ("m", ()),
        ("n.o", ()),
        ("importlib", ()),
        ("p", ()),
    ]


def test_spans_cover_the_module_s_name() -> None:
    source = 'import cv2 as c, numpy\nfrom  PIL.Image import open\nt = "é"; import yaml\nv = __import__("torch")\n'
    assert [(u.module, u.span) for u in scan(source)] == [
        ("cv2", Span(1, 8, 1, 11)),
        ("numpy", Span(1, 18, 1, 23)),
        ("PIL.Image", Span(2, 7, 2, 16)),
        ("yaml", Span(3, 17, 3, 21)),  # columns count characters, not UTF-8 bytes
        ("torch", Span(4, 16, 4, 23)),
    ]


def test_columns_count_characters_in_any_source_encoding() -> None:
    def spans(source: bytes) -> list[Span]:
        return [u.span for u in scan_imports(source, "app.py", "app", False, (3, 12)) or ()]

    assert spans(b'# coding: latin-1\nx = "\xe9"; import y\n') == [Span(2, 17, 2, 18)]
    assert spans(b"\xef\xbb\xbfimport x; from  y import z\n") == [Span(1, 8, 1, 9), Span(1, 17, 1, 18)]
    assert spans('s = "éé"\r\nt = "é"; from  y import z\r\n'.encode()) == [Span(2, 16, 2, 17)]


def test_relative_imports_resolve_against_the_package() -> None:
    assert needs("from . import x\nfrom .y import z\n", "a.b", package=True) == ["a.b", "a.b.y"]
    module = "from . import x\nfrom .. import d\nfrom ..e.f import g\nfrom ... import h\n"
    assert [(u.module, u.names) for u in scan(module, "a.b.c")] == [("a.b", ("x",)), ("a", ("d",)), ("a.e.f", ("g",))]
    # Above the top-level package, or in a top-level module, the import fails by itself: not ours to check.
    assert needs("from . import x\n", "app") == []
    dynamic = "import importlib\nm = importlib.import_module('.sub', __package__)\nn = __import__('s', level=1)\n"
    assert needs(dynamic, "a.b") == ["importlib", "a.sub", "a.s"]
    assert needs("from importlib import import_module\nimport_module('..x', 'p.q')\n") == ["importlib", "p.x"]


def test_imports_at_module_level_run_at_load_time() -> None:
    source = (
        "import a\n"
        "if flag:\n    import b\nelse:\n    import c\n"
        "for _ in range(1):\n    import d\n"
        "with ctx():\n    import e\n"
        "class K:\n    import f\n"
        "match x:\n    case 1:\n        import g\n"
        "@__import__('h').wrap\n"
        "def fn(arg=__import__('i')):\n    pass\n"
    )
    assert [(u.module, u.when, u.function) for u in scan(source)] == [(name, "load", None) for name in "abcdefghi"]


def test_imports_in_a_function_run_at_call_time() -> None:
    source = (
        "def detect():\n    import cv2\n"
        "async def fetch():\n    import httpx\n"
        "class Model:\n    def load(self):\n        from PIL import Image\n"
        "def outer():\n    def inner():\n        import deep\n    class Local:\n        import local\n"
        "lazy = lambda: __import__('lam')\n"
    )
    assert [(u.module, u.when, u.function) for u in scan(source)] == [
        ("cv2", "call", "detect"),
        ("httpx", "call", "fetch"),
        ("PIL", "call", "Model.load"),
        ("deep", "call", "outer.<locals>.inner"),
        ("local", "call", "outer"),
        ("lam", "call", "<lambda>"),
    ]


def test_a_handler_for_import_error_guards_the_try_body() -> None:
    def guarded(handler: str) -> list[str]:
        return needs(f"try:\n    import fast\n{handler}:\n    fast = None\n")

    for handler in ("except ImportError", "except ModuleNotFoundError", "except (OSError, ImportError) as e"):
        assert guarded(handler) == []
    for handler in ("except", "except Exception", "except builtins.BaseException"):
        assert guarded(handler) == []
    assert guarded("except ValueError") == ["fast"]
    assert needs("with contextlib.suppress(ImportError):\n    import fast\n") == []
    # The handler, else and finally blocks are not guarded; a handler that raises again guards nothing.
    source = "try:\n    import a\nexcept ImportError:\n    import b\nelse:\n    import c\nfinally:\n    import d\n"
    assert needs(source) == ["b", "c", "d"]
    raising = "try:\n    import a\nexcept ImportError as e:\n    raise SystemExit('pip install a') from e\n"
    assert needs(raising) == ["a"]
    first_wins = "try:\n    import a\nexcept ImportError:\n    raise\nexcept Exception:\n    pass\n"
    assert needs(first_wins) == ["a"]
    assert [u.guard for u in scan("try:\n    import a\nexcept ImportError:\n    pass\n")] == ["except"]


def test_type_checking_imports_never_run() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "if TYPE_CHECKING:\n    import stubs\nelse:\n    import runs\n"
        "if typing.TYPE_CHECKING:\n    import more_stubs\n"
        "if not TYPE_CHECKING:\n    import also_runs\nelse:\n    import stub_only\n"
        "try:\n    if TYPE_CHECKING:\n        import both\nexcept ImportError:\n    pass\n"
    )
    assert [(u.module, u.guard) for u in scan(source)] == [
        ("typing", None),
        ("typing", None),
        ("stubs", "type_checking"),
        ("runs", None),
        ("more_stubs", "type_checking"),
        ("also_runs", None),
        ("stub_only", "type_checking"),
        ("both", "type_checking"),
    ]


@pytest.mark.parametrize(
    ("condition", "version", "body_runs", "else_runs"),
    [
        ("sys.version_info >= (3, 11)", "3.12", True, False),
        ("sys.version_info >= (3, 11)", "3.10", False, True),
        ("sys.version_info < (3, 12)", "3.12", False, True),
        ("sys.version_info > (3, 12)", "3.12", True, False),  # (3, 12, micro, ...) is longer
        ("sys.version_info >= (3, 12, 0)", "3.12", True, False),
        ("(3, 8) <= sys.version_info[:2] < (3, 11)", "3.10", True, False),
        ("sys.version_info.minor >= 13", "3.12", False, True),
        ("sys.platform == 'win32'", "3.12", False, True),
        ("sys.platform.startswith('linux')", "3.12", True, False),
        ("os.name == 'nt' or platform.system() == 'Darwin'", "3.12", False, True),
        ("__name__ == '__main__'", "3.12", False, True),
        # Unknown: both branches may run.
        ("sys.version_info >= (3, 12, 1)", "3.12", True, True),
        ("os.environ.get('GPU')", "3.12", True, True),
        ("sys.platform == 'linux' and flag", "3.12", True, True),
        ("sys.platform == 'win32' and flag", "3.12", False, True),
    ],
)
def test_version_and_platform_branches_that_cannot_run_are_skipped(
    condition: str, version: str, body_runs: bool, else_runs: bool
) -> None:
    source = f"if {condition}:\n    import body\nelse:\n    import orelse\n"
    assert needs(source, version=version) == [
        name for name, runs in [("body", body_runs), ("orelse", else_runs)] if runs
    ]


def test_a_file_that_does_not_parse_is_skipped() -> None:
    assert scan_imports(b"def broken(:\n    import cv2\n", "app.py", "app", False, (3, 12)) is None
    report = check({"app.py": "import lib\n", "lib.py": "import cv2\ndef broken(:\n"}, "app")
    assert report.diagnostics == ()
    assert report.loaded == {"app", "lib"}


# --- checking a resource ----------------------------------------------------------------


def test_a_missing_package_is_an_error_where_it_is_imported() -> None:
    files = {
        "workers/__init__.py": "",
        "workers/gpu.py": "import json\nfrom workers import common\n",
        "workers/common.py": "import os\n\nimport numpy as np, cv2\n",
    }
    report = check(files, "workers.gpu", shipped=frozenset({"numpy"}))
    assert report.diagnostics == (
        Diagnostic(
            "workers/common.py",
            Span(3, 21, 3, 24),
            "error",
            "import",
            "'cv2' is imported when the endpoint 'vision' starts, but neither the archive nor the worker image "
            "(runpod/flash:py3.12) provides it",
            "add opencv-python to the function's dependencies or to requirements.txt",
            (Note("workers/gpu.py", Span(2, 6, 2, 13), "workers/gpu.py imports workers/common.py"),),
        ),
    )
    lines = {path: text.splitlines() for path, text in files.items()}
    assert render_all(report.diagnostics, lambda path, line: lines[path][line - 1]) == (
        "workers/common.py:3:21: error: 'cv2' is imported when the endpoint 'vision' starts, but neither the archive "
        "nor the worker image (runpod/flash:py3.12) provides it\n"
        " 3 | import numpy as np, cv2\n"
        "   |                     ^~~\n"
        "workers/gpu.py:2:6: note: workers/gpu.py imports workers/common.py\n"
        " 2 | from workers import common\n"
        "   |      ^~~~~~~\n"
        "  = hint: add opencv-python to the function's dependencies or to requirements.txt"
    )
    assert report.loaded == {"workers", "workers.gpu", "workers.common"}


def test_a_call_time_import_is_a_warning_naming_the_function() -> None:
    files = {"app.py": "class Model:\n    def load(self):\n        import cv2\n"}
    (warning,) = check(files, "app").diagnostics
    assert (warning.severity, warning.span, warning.notes) == ("warning", Span(3, 16, 3, 19), ())
    assert warning.message == (
        "'cv2' is imported when 'vision' runs Model.load(), but neither the archive nor the worker image "
        "(runpod/flash:py3.12) provides it"
    )


def test_whatever_a_call_time_import_loads_is_a_warning() -> None:
    files = {
        "app.py": "import helpers\n",
        "helpers.py": "def resize():\n    from vision import ops\n",
        "vision/__init__.py": "import PIL\n",
        "vision/ops.py": "import cv2\n",
    }
    report = check(files, "app")
    assert problems(report) == [
        ("vision/__init__.py", 1, 8, "warning", "PIL"),
        ("vision/ops.py", 1, 8, "warning", "cv2"),
    ]
    ops = report.diagnostics[1]
    assert "when 'vision' runs resize()" in ops.message
    assert ops.hint == "add opencv-python to the function's dependencies or to requirements.txt"
    assert ops.notes == (
        Note("app.py", Span(1, 8, 1, 15), "app.py imports helpers.py"),
        Note("helpers.py", Span(2, 10, 2, 16), "helpers.py imports vision/ops.py"),
    )
    assert report.loaded == {"app", "helpers"}


def test_project_imports_are_followed_and_packages_run_first() -> None:
    files = {
        "pkg/__init__.py": "import yaml\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/mod.py": "from .. import shared\n",
        "pkg/shared.py": "from .deep import thing\n",
        "pkg/deep.py": "import cv2\nthing = 1\n",
        "pkg/unused.py": "import missing_everywhere\n",
    }
    report = check(files, "pkg.sub.mod")
    assert problems(report) == [("pkg/__init__.py", 1, 8, "error", "yaml"), ("pkg/deep.py", 1, 8, "error", "cv2")]
    init, deep = report.diagnostics
    assert init.notes == (Note("pkg/sub/mod.py", None, "pkg/__init__.py runs first, as the package of pkg/sub/mod.py"),)
    assert deep.notes == (
        Note("pkg/sub/mod.py", Span(1, 1, 1, 22), "pkg/sub/mod.py imports pkg/shared.py"),
        Note("pkg/shared.py", Span(1, 7, 1, 11), "pkg/shared.py imports pkg/deep.py"),
    )
    assert init.hint == "add PyYAML to the function's dependencies or to requirements.txt"
    assert report.loaded == {"pkg", "pkg.sub", "pkg.sub.mod", "pkg.shared", "pkg.deep"}


def test_from_package_import_name_follows_a_submodule_not_an_attribute() -> None:
    files = {
        "pkg/__init__.py": "VALUE = 1\n",
        "pkg/app.py": "from . import sub, VALUE\nfrom pkg import other\n",
        "pkg/sub.py": "import cv2\n",
        "pkg/other.py": "",
        "pkg/VALUEX.py": "import never\n",
    }
    report = check(files, "pkg.app")
    assert problems(report) == [("pkg/sub.py", 1, 8, "error", "cv2")]
    assert report.loaded == {"pkg", "pkg.app", "pkg.sub", "pkg.other"}


def test_standard_library_modules_of_the_target_python_pass() -> None:
    files = {"app.py": "import json, os.path, tomllib, __future__, __main__\nfrom collections import abc\n"}
    assert check(files, "app", version="3.12").diagnostics == ()
    assert problems(check(files, "app", version="3.10")) == [("app.py", 1, 23, "error", "tomllib")]
    assert problems(check({"app.py": "import distutils\n"}, "app", version="3.11")) == []
    assert problems(check({"app.py": "import distutils\n"}, "app", version="3.12")) == [
        ("app.py", 1, 8, "error", "distutils")
    ]
    assert problems(check({"app.py": "import winreg\n"}, "app")) == [("app.py", 1, 8, "error", "winreg")]


def test_stdlib_table_follows_the_target_version() -> None:
    assert {"tomllib", "cgi", "json"} <= stdlib_modules((3, 12))
    assert "tomllib" not in stdlib_modules((3, 10))
    assert "imp" in stdlib_modules((3, 11))
    assert not {"imp", "asyncore", "distutils"} & stdlib_modules((3, 12))
    assert not {"cgi", "crypt", "telnetlib"} & stdlib_modules((3, 13))
    assert not {"msvcrt", "winreg", "nt"} & stdlib_modules((3, 12))


def test_what_the_runtime_wheels_or_image_provide_passes() -> None:
    files = {
        "app.py": "import runpod_flash, tetra_rp, flashc_runtime\nimport numpy\nimport torch\ndef run():\n"
        "    import transformers\n    import torch.cuda\n"
    }
    image = {"torch": "torch", "transformers": "transformers"}
    report = check(files, "app", shipped=frozenset({"numpy"}), image=image)
    assert report.diagnostics == ()
    assert (report.image_at_load, report.image_at_call) == (frozenset({"torch"}), frozenset({"transformers"}))
    # A guarded import of an image's module is not something the endpoint needs.
    guarded = check({"app.py": "try:\n    import torch\nexcept ImportError:\n    torch = None\n"}, "app", image=image)
    assert (guarded.diagnostics, guarded.image_at_load) == ((), frozenset())


def test_a_project_module_shadows_a_package_of_the_same_name() -> None:
    files = {"app.py": "import yaml\nimport torch\n", "yaml.py": "import cv2\n"}
    report = check(files, "app", image={"torch": "torch", "yaml": "PyYAML"})
    assert problems(report) == [("yaml.py", 1, 8, "error", "cv2")]
    assert report.image_at_load == {"torch"}
    assert report.loaded == {"app", "yaml"}


def test_guarded_imports_are_never_a_problem_nor_what_they_load() -> None:
    files = {
        "app.py": (
            "from typing import TYPE_CHECKING\n"
            "try:\n    from . import fast\nexcept ImportError:\n    fast = None\n"
            "try:\n    import accel\nexcept ImportError:\n    accel = None\n"
            "if TYPE_CHECKING:\n    import typed\n    import pandas\n"
        ),
        "accel.py": "import cupy\n",
        "typed.py": "import cv2\n",
    }
    report = check(files, "app")
    assert report.diagnostics == ()
    assert report.loaded == {"app", "accel"}  # `accel` is imported at start; `typed` never is


def test_each_problem_is_reported_once_per_resource() -> None:
    files = {
        "a.py": "import shared\nimport cv2, cv2.data\n",
        "b.py": "import shared\ndef f():\n    import a\n",
        "shared.py": "import cv2\n",
    }
    report = check(files, "a", "b")
    assert problems(report) == [("a.py", 2, 8, "error", "cv2"), ("shared.py", 1, 8, "error", "cv2")]
    # Reached at load time first, so the error wins over a call-time warning for the same line.
    assert check(files, "b").diagnostics[0].severity == "warning"
    assert problems(check(files, "b")) == [("a.py", 2, 8, "warning", "cv2"), ("shared.py", 1, 8, "error", "cv2")]


def test_entry_modules_that_are_not_in_the_project_are_ignored() -> None:
    assert check({"app.py": "import cv2\n"}, "gone").diagnostics == ()


class CountingSources(dict[str, bytes]):
    """Sources that count how often each file is read."""

    reads: dict[str, int]

    def __getitem__(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().__getitem__(key)


def test_each_file_is_parsed_once_for_every_resource() -> None:
    sources = CountingSources({"a.py": b"import shared\n", "b.py": b"import shared\n", "shared.py": b"import os\n"})
    sources.reads = {}
    project = ProjectImports(sources, "3.12")
    worker = Worker(IMAGE, frozenset(), {})
    for resource, entry in [("r1", "a"), ("r2", "b"), ("r3", "a")]:
        check_imports(project, resource, [entry], worker, str)
    assert sources.reads == {"a.py": 1, "b.py": 1, "shared.py": 1}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="except* is Python 3.11 syntax")
def test_an_except_star_handler_guards_too() -> None:
    assert needs("try:\n    import fast\nexcept* ImportError:\n    pass\n") == []
