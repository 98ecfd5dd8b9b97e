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

DISTRIBUTIONS = {"cv2": "opencv-python", "yaml": "PyYAML", "PIL": "pillow", "google.protobuf": "protobuf"}
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
    native: frozenset[str] = frozenset(),
) -> ImportReport:
    project = ProjectImports({p: t.encode() for p, t in files.items()}, version, native=native)
    worker = Worker(IMAGE, shipped, image or {})
    return check_imports(project, resource, entries, worker, lambda name: DISTRIBUTIONS.get(name, name))


class Asked(list[str]):
    """A `distribution_for` that keeps the modules it is asked about."""

    def __call__(self, module: str) -> str:
        self.append(module)
        top = module.partition(".")[0]
        return DISTRIBUTIONS.get(module) or DISTRIBUTIONS.get(top, top)


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


# --- find_spec, opt-outs, hints ---------------------------------------------------------------


def test_a_find_spec_check_guards_the_branch_it_selects() -> None:
    source = (
        "import importlib.util\n"
        "from importlib import util\n"
        "from importlib.util import find_spec\n"
        "if importlib.util.find_spec('flash_attn') is not None:\n    import flash_attn\nelse:\n    import slow\n"
        "if find_spec('a'):\n    import a\n"
        "if util.find_spec('b') != None:\n    import b\n"
        "if importlib.util.find_spec('c') is None:\n    import fallback\nelse:\n    import c\n"
        "if not find_spec('d'):\n    pass\nelse:\n    import d\n"
        "if find_spec('e') and flag:\n    import e\n"
        "if find_spec('f') or flag:\n    import f\n"
        "if not (find_spec('g') and find_spec('h')):\n    import gh_missing\nelse:\n    import g, h\n"
        "if (spec := find_spec('i')) is not None:\n    import i\n"
        "HAS_J = find_spec('j') is not None\n"
        "if HAS_J:\n    import j\n"
        "if spec_of('k'):\n    import k\n"
        "def load():\n    if find_spec('m'):\n        import m\n"
    )
    assert needs(source) == [
        "importlib.util",
        "importlib",
        "importlib.util",
        "slow",
        "fallback",
        "f",
        "gh_missing",
        "k",
    ]
    assert [u.module for u in scan(source) if u.guard == "find_spec"] == ["flash_attn", *"abcdeghijm"]


def test_a_name_bound_twice_is_no_find_spec_guard() -> None:
    source = "from importlib.util import find_spec\nHAS = find_spec('x')\nHAS = True\nif HAS:\n    import x\n"
    assert needs(source) == ["importlib.util", "x"]
    param = "from importlib.util import find_spec\nHAS = find_spec('x')\ndef f(HAS):\n    if HAS:\n        import x\n"
    assert needs(param) == ["importlib.util", "x"]


def test_a_find_spec_guarded_import_is_neither_a_problem_nor_taken_from_the_image() -> None:
    files = {
        "app.py": (
            "import importlib.util\n"
            "if importlib.util.find_spec('flash_attn') is not None:\n    import flash_attn\n    import torch\n"
            "    import fast\n"
        ),
        "fast.py": "import cupy\n",
    }
    report = check(files, "app", image={"torch": "torch"})
    assert report.diagnostics == ()
    assert (report.image_at_load, report.image_at_call, report.image_uses) == (frozenset(), frozenset(), {})
    assert report.loaded == {"app", "fast"}  # it runs when the branch does, where nothing can fail


def test_an_import_marked_flashc_ignore_is_not_checked() -> None:
    source = (
        "import vendored_lib  # flashc: ignore\n"
        "from other import (  # noqa: F401 #flashc:ignore\n    thing,\n)\n"
        "from third import (\n    thing,  # flashc: ignore\n)\n"
        "x = __import__('dyn')  # flashc: ignore\n"
        "s = '# flashc: ignore'; import in_string\n"
        "import cv2\n"
        "import flashc_ignore  # flashc: ignored-not\n"
    )
    assert [(u.module, u.ignored) for u in scan(source)] == [
        ("vendored_lib", True),
        ("other", True),
        ("third", True),
        ("dyn", True),
        ("in_string", False),
        ("cv2", False),
        ("flashc_ignore", False),
    ]
    files = {
        "app.py": source,
        "helpers.py": "import yaml\n",
        "run.py": "import helpers  # flashc: ignore\nimport torch  # flashc: ignore\n",
    }
    report = check(files, "app", "run", image={"torch": "torch"})
    assert problems(report) == [
        ("app.py", 9, 32, "error", "in_string"),
        ("app.py", 10, 8, "error", "cv2"),
        ("app.py", 11, 8, "error", "flashc_ignore"),
        ("helpers.py", 1, 8, "error", "yaml"),  # an ignored import of a project module is still followed
    ]
    assert (report.image_at_load, report.image_uses) == (frozenset(), {})


def test_distribution_for_is_given_the_full_module() -> None:
    asked = Asked()
    files = {"app.py": "import google.protobuf\nfrom nvidia.dali import fn\nimport yaml.loader as l\nimport cv2\n"}
    project = ProjectImports({p: t.encode() for p, t in files.items()}, "3.12")
    report = check_imports(project, "vision", ["app"], Worker(IMAGE, frozenset(), {}), asked)
    assert asked == ["google.protobuf", "nvidia.dali", "yaml.loader", "cv2"]
    assert [d.hint for d in report.diagnostics] == [
        f"add {name} to the function's dependencies or to requirements.txt"
        for name in ("protobuf", "nvidia", "PyYAML", "opencv-python")
    ]


@pytest.mark.parametrize(
    ("module", "version", "hint"),
    [
        ("imp", "3.12", "imp was removed from the standard library in Python 3.12: use importlib"),
        (
            "distutils.core",
            "3.12",
            "distutils was removed from the standard library in Python 3.12 (PEP 632): add setuptools, which "
            "provides it, or use sysconfig/shutil",
        ),
        ("asyncore", "3.13", "asyncore was removed from the standard library in Python 3.12 (PEP 594): use asyncio"),
        ("asynchat", "3.12", "asynchat was removed from the standard library in Python 3.12 (PEP 594): use asyncio"),
        ("smtpd", "3.12", "smtpd was removed from the standard library in Python 3.12 (PEP 594): add aiosmtpd"),
        ("telnetlib", "3.13", "telnetlib was removed from the standard library in Python 3.13 (PEP 594)"),
        ("cgi", "3.14", "cgi was removed from the standard library in Python 3.13 (PEP 594)"),
        ("lib2to3", "3.13", "lib2to3 was removed from the standard library in Python 3.13"),
        ("binhex", "3.11", "binhex was removed from the standard library in Python 3.11"),
    ],
)
def test_a_module_removed_from_the_standard_library_says_so(module: str, version: str, hint: str) -> None:
    asked = Asked()
    project = ProjectImports({"app.py": f"import {module}\n".encode()}, version)
    (problem,) = check_imports(project, "vision", ["app"], Worker(IMAGE, frozenset(), {}), asked).diagnostics
    assert problem.hint == hint
    assert problem.message == (
        f"'{module.partition('.')[0]}' is imported when the endpoint 'vision' starts, but neither the archive "
        "nor the worker image (runpod/flash:py3.12) provides it"
    )
    assert asked == []


def test_a_removed_module_is_still_there_before_its_removal() -> None:
    assert check({"app.py": "import imp, telnetlib\n"}, "app", version="3.11").diagnostics == ()


def test_compiled_modules_of_the_project_are_available() -> None:
    files = {"app.py": "import fastmath\nfrom fastmath.ops import add\nimport kernels\n"}
    report = check(files, "app", native=frozenset({"fastmath"}), image={"fastmath": "fastmath"})
    assert problems(report) == [("app.py", 3, 8, "error", "kernels")]
    assert report.image_at_load == frozenset()  # the project's wins
    assert report.loaded == {"app"}  # and has no imports to follow
    assert "fastmath" in ProjectImports({}, "3.12", native=["fastmath"]).top_level


def test_image_uses_point_at_the_first_import_of_each_image_name() -> None:
    files = {
        "app.py": "import helpers\ndef run():\n    import torch\n    import transformers\n",
        "helpers.py": "import numpy\nimport torch.cuda\nimport torch\n",
        "later.py": "import transformers\n",
        "a_first.py": "def f():\n    import transformers.pipelines\n",
    }
    image = {"torch": "torch", "transformers": "transformers", "numpy": "numpy"}
    report = check(files, "app", "later", "a_first", image=image)
    assert report.image_uses.keys() == report.image_at_load | report.image_at_call == {"torch", "transformers", "numpy"}
    where = {top: (use.path, use.span.line, use.module, use.when) for top, use in report.image_uses.items()}
    assert where == {
        "numpy": ("helpers.py", 1, "numpy", "load"),
        # The import that runs at start wins over one in a call, even one in an earlier file or line.
        "torch": ("helpers.py", 2, "torch.cuda", "load"),
        "transformers": ("later.py", 1, "transformers", "load"),
    }
    only_calls = check(
        {"b.py": "def f():\n    import torch\n", "a.py": "def g():\n    import torch\n"}, "b", "a", image=image
    )
    assert {t: (u.path, u.when) for t, u in only_calls.image_uses.items()} == {"torch": ("a.py", "call")}


def test_the_files_reached_that_do_not_parse_are_listed() -> None:
    files = {
        "app.py": "import lib\ndef f():\n    import lazy\n",
        "lib.py": "def broken(:\n",
        "lazy.py": "match = (:\n",
        "unreached.py": "def broken(:\n",
    }
    assert check(files, "app").unparsed == {"lib.py", "lazy.py"}
    assert check({"app.py": "def broken(:\n"}, "app").unparsed == {"app.py"}
    assert check({"app.py": "import os\n"}, "app").unparsed == frozenset()


def test_an_image_may_provide_a_name_through_another_distribution() -> None:
    # setuptools' distutils-precedence hack makes `import distutils` work on 3.12 where the image has setuptools.
    files = {"app.py": "import distutils.util\nfrom distutils.core import setup\n"}
    report = check(files, "app", image={"distutils": "setuptools"})
    assert report.diagnostics == ()
    assert report.image_at_load == {"distutils"}
    assert report.image_uses["distutils"].module == "distutils.util"


def test_what_another_resource_s_remote_function_imports_runs_on_its_endpoint_not_here() -> None:
    files = {
        "app.py": (
            "def train(x):\n    import torch\n    return x\n\n"
            "class Model:\n    def predict(self):\n        import transformers\n\n"
            "def prep(x):\n    import pandas\n    return x\n"
        )
    }
    project = ProjectImports({p: t.encode() for p, t in files.items()}, "3.12")
    worker = Worker(IMAGE, frozenset(), {})
    # `train` and `Model` run on the GPU resource: calling them from here sends the call there.
    elsewhere = {("app", "train"), ("app", "Model")}
    report = check_imports(project, "cpu", ["app"], worker, lambda m: m, elsewhere)
    assert [d.message.split("'")[1] for d in report.diagnostics] == ["pandas"]
    # Without knowing that, each would be reported against this resource.
    everything = check_imports(project, "cpu", ["app"], worker, lambda m: m)
    assert sorted(d.message.split("'")[1] for d in everything.diagnostics) == ["pandas", "torch", "transformers"]
