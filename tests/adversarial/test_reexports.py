"""Names re-exported through long chains of modules: resolved however long, cycles reported where Python fails.

Each shape below builds a project whose `main.py` decorates `f` with `@remote(resource_config=gpu)`
(or the equivalent), where `gpu`, or `remote` itself, reaches main.py through `length` modules.
Python imports any such chain; flashc must resolve it to the same resource as a chain of one.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flashc.analyze import analyze_project
from flashc.models import Analysis

HEADER = "from tetra_rp import LiveServerless, remote\n"
GPU = 'gpu = LiveServerless(name="gpu")\n'
DECORATED = "\n\n@remote(resource_config=gpu)\ndef f(x):\n    return x\n"

Project = dict[str, str]


def chain_of_from_imports(length: int) -> Project:
    """`m{i}.py: from m{i-1} import gpu`."""
    files = {"m0.py": HEADER + GPU}
    files |= {f"m{i}.py": f"from m{i - 1} import gpu\n" for i in range(1, length)}
    return files | {"main.py": f"from tetra_rp import remote\nfrom m{length - 1} import gpu\n" + DECORATED}


def chain_of_the_sdk_names(length: int) -> Project:
    """`remote` and `LiveServerless` themselves come through the chain, renamed once at its start."""
    files = {"m0.py": "from tetra_rp import LiveServerless, remote as task\n"}
    files |= {f"m{i}.py": f"from m{i - 1} import LiveServerless, task\n" for i in range(1, length)}
    main = f"from m{length - 1} import LiveServerless, task\n\n" + GPU + DECORATED.replace("@remote", "@task")
    return files | {"main.py": main}


def chain_of_star_imports(length: int) -> Project:
    files = {"m0.py": HEADER + GPU}
    files |= {f"m{i}.py": f"from m{i - 1} import *\n" for i in range(1, length)}
    return files | {"main.py": f"from m{length - 1} import *\n" + DECORATED}


def chain_of_module_attributes(length: int) -> Project:
    """`import pkg.m{i-1} as prev` then `gpu = prev.gpu`."""
    files = {"pkg/__init__.py": "", "pkg/m0.py": HEADER + GPU}
    files |= {f"pkg/m{i}.py": f"import pkg.m{i - 1} as prev\ngpu = prev.gpu\n" for i in range(1, length)}
    main = f"from tetra_rp import remote\nimport pkg.m{length - 1} as last\n"
    return files | {"main.py": main + DECORATED.replace("=gpu", "=last.gpu")}


def chain_of_packages(length: int) -> Project:
    """`p{i}/__init__.py: from p{i-1} import gpu`."""
    files = {"p0/__init__.py": HEADER + GPU}
    files |= {f"p{i}/__init__.py": f"from p{i - 1} import gpu\n" for i in range(1, length)}
    return files | {"main.py": f"from tetra_rp import remote\nfrom p{length - 1} import gpu\n" + DECORATED}


def chain_of_nested_packages(length: int) -> Project:
    """`q/__init__.py: from .q import gpu`, `q/q/__init__.py` the same, down to the one that defines it."""
    files = {"q/" * i + "__init__.py": "from .q import gpu\n" for i in range(1, length)}
    files["q/" * length + "__init__.py"] = HEADER + GPU
    return files | {"main.py": "from tetra_rp import remote\nfrom q import gpu\n" + DECORATED}


def chain_of_aliases(length: int) -> Project:
    aliases = "".join(f"a{i} = a{i - 1}\n" for i in range(1, length))
    defined = 'a0 = LiveServerless(name="gpu")\n'
    return {"main.py": HEADER + defined + aliases + f"gpu = a{length - 1}\n" + DECORATED}


SHAPES: dict[str, Callable[[int], Project]] = {
    "from-imports": chain_of_from_imports,
    "sdk-names": chain_of_the_sdk_names,
    "star-imports": chain_of_star_imports,
    "module-attributes": chain_of_module_attributes,
    "package-inits": chain_of_packages,
    "nested-packages": chain_of_nested_packages,
    "aliases": chain_of_aliases,
}


def write(root: Path, files: Project) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def errors(analysis: Analysis) -> list[str]:
    return [
        f"{d.path}:{d.span.line if d.span else 0}: {d.message}" for d in analysis.diagnostics if d.severity == "error"
    ]


def outcome(analysis: Analysis) -> tuple[Any, ...]:
    """What a user reads off `flashc analyze`, but where the config is written (its file varies with the shape)."""
    resources = [(r.name, r.type, dict(r.config), r.config_hash, r.functions) for r in analysis.resources]
    return [f.id for f in analysis.functions], resources, errors(analysis)


@contextmanager
def recursion_budget(frames: int) -> Iterator[None]:
    """Python's recursion limit set `frames` above the caller's depth: resolving must not recurse per module."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_chain_of_300_gives_what_a_chain_of_one_gives(tmp_path: Path, shape: str) -> None:
    one = analyze_project(write(tmp_path / "one", SHAPES[shape](1)), use_cache=False)
    assert [r.name for r in one.resources] == ["gpu"] and errors(one) == []
    project = write(tmp_path / "long", SHAPES[shape](300))
    # 150 frames: the old resolver took three per module, and stopped at 95 modules.
    with recursion_budget(150):
        long = analyze_project(project, use_cache=False, jobs=1)
    assert outcome(long) == outcome(one)
    again = analyze_project(project)  # writes the scan cache
    warm = analyze_project(project)
    assert outcome(again) == outcome(warm) == outcome(one)


def test_a_chain_of_3000_is_analyzed_in_time_linear_in_its_length(tmp_path: Path) -> None:
    """The names and the files to parse: only the chain says that main.py's `@task` is the SDK's remote."""
    import time

    expected = outcome(analyze_project(write(tmp_path / "1", chain_of_the_sdk_names(1)), use_cache=False))
    timings = {}
    for length in (300, 3000):
        project = write(tmp_path / str(length), chain_of_the_sdk_names(length))
        started = time.perf_counter()
        analysis = analyze_project(project, use_cache=False, jobs=1)
        timings[length] = time.perf_counter() - started
        assert outcome(analysis) == expected
        assert analysis.parsed_files == length + 1
    # Ten times the modules: about ten times the time (it was a hundred times and more).
    assert timings[3000] < 20 * timings[300] + 1, timings


# --- cycles: Python fails to import them, and flashc says where -----------------------------------


def python_fails(root: Path, module: str) -> tuple[str, int, str]:
    """The file and line where `import module` fails in Python, and the error's last line."""
    code = (
        "import sys, traceback\n"
        f"try:\n    import {module}\n"
        "except Exception as e:\n"
        "    frame = traceback.extract_tb(e.__traceback__)[-1]\n"
        "    print(frame.filename.rsplit('/', 1)[-1], frame.lineno, type(e).__name__ + ': ' + str(e), sep='|')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    file, line, error = done.stdout.strip().split("|")
    return file, int(line), error


def test_a_cycle_of_two_is_an_error_at_the_import_that_closes_it(tmp_path: Path) -> None:
    files = {
        "m0.py": "from m1 import gpu\n",
        "m1.py": "import os\nfrom m0 import gpu\n",
        "main.py": "from m0 import gpu\nfrom tetra_rp import remote\n" + DECORATED,
    }
    root = write(tmp_path, files)
    analysis = analyze_project(root, use_cache=False)
    (error,) = analysis.diagnostics
    assert (error.path, error.span and error.span.line, error.code) == ("m1.py", 2, "import-cycle")
    assert error.message == (
        "modules import 'gpu' from each other: m0 -> m1 -> m0, "
        "so Python fails here with ImportError (a partially initialized module)"
    )
    assert error.hint == "import 'gpu' from the module that defines it"
    assert [(n.path, n.span and n.span.line, n.message) for n in error.notes] == [
        ("m0.py", 1, "'gpu' is imported from 'm1' here")
    ]
    assert analysis.functions == () and analysis.resources == ()
    # Python itself stops at the same line.
    file, line, message = python_fails(root, "main")
    assert (file, line) == ("m1.py", 2)
    assert message.startswith("ImportError: cannot import name 'gpu' from partially initialized module 'm0'")


def test_a_module_importing_a_name_from_itself_is_a_cycle(tmp_path: Path) -> None:
    main = "from tetra_rp import remote\nfrom m0 import gpu\n" + DECORATED
    files = {"m0.py": "from m0 import gpu\n", "main.py": main}
    assert errors(analyze_project(write(tmp_path, files), use_cache=False)) == [
        "m0.py:1: module 'm0' imports 'gpu' from itself, "
        "so Python fails here with ImportError (a partially initialized module)"
    ]


def test_a_long_cycle_is_one_error_that_abbreviates_it(tmp_path: Path) -> None:
    files = {f"m{i}.py": f"from m{(i + 1) % 300} import gpu\n" for i in range(300)}
    files["main.py"] = "from tetra_rp import remote\nfrom m0 import gpu\n" + DECORATED
    analysis = analyze_project(write(tmp_path, files), use_cache=False)
    assert errors(analysis) == [
        "m299.py:1: modules import 'gpu' from each other: m0 -> m1 -> m2 -> m3 -> ... -> m297 -> m298 -> m299 -> m0 "
        "(300 modules), so Python fails here with ImportError (a partially initialized module)"
    ]
    assert len(analysis.diagnostics[0].notes) == 5


def test_a_cycle_through_a_module_attribute_fails_as_python_does(tmp_path: Path) -> None:
    files = {
        "a.py": "import b\ngpu = b.gpu\n",
        "b.py": "import a\ngpu = a.gpu\n",
        "main.py": "import a\nfrom tetra_rp import remote\n" + DECORATED.replace("=gpu", "=a.gpu"),
    }
    root = write(tmp_path, files)
    assert errors(analyze_project(root, use_cache=False)) == [
        "b.py:2: modules import 'gpu' from each other: a -> b -> a, "
        "so Python fails here with AttributeError (a partially initialized module)"
    ]
    file, line, message = python_fails(root, "main")
    assert (file, line) == ("b.py", 2)
    assert message.startswith("AttributeError: partially initialized module 'a'")


def test_remote_itself_in_a_cycle_is_the_cycle_error_alone(tmp_path: Path) -> None:
    files = {
        "a.py": "from b import remote\n",
        "b.py": "from a import remote\n",
        "main.py": 'from a import remote\nfrom tetra_rp import LiveServerless\n\n\n@remote(LiveServerless(name="x"))\n'
        "def f(x):\n    return x\n",
    }
    assert errors(analyze_project(write(tmp_path, files), use_cache=False)) == [
        "b.py:1: modules import 'remote' from each other: a -> b -> a, "
        "so Python fails here with ImportError (a partially initialized module)"
    ]


def test_star_imports_of_each_other_are_no_cycle(tmp_path: Path) -> None:
    # Python runs this: b's `import *` of the half-run a binds nothing, and a defines gpu itself.
    files = {
        "a.py": "from b import *\n" + HEADER + GPU,
        "b.py": "from a import *\n",
        "main.py": "from a import gpu, remote\n" + DECORATED,
    }
    analysis = analyze_project(write(tmp_path, files), use_cache=False)
    assert errors(analysis) == [] and [r.name for r in analysis.resources] == ["gpu"]


# --- a chain that ends without the name ----------------------------------------------------------


def test_a_long_chain_without_the_name_says_which_module_lacks_it(tmp_path: Path) -> None:
    files = chain_of_from_imports(300) | {"m0.py": HEADER + GPU.replace("gpu =", "gpu0 =")}
    analysis = analyze_project(write(tmp_path, files), use_cache=False)
    (error,) = analysis.diagnostics
    assert f"{error.path}:{error.span and error.span.line}: {error.message}" == (
        "main.py:2: 'gpu' cannot be imported from module 'm299': its imports lead to module 'm0', "
        "which has no name 'gpu', so the resource config of @remote cannot be known at build time"
    )
    assert [(n.path, n.span and n.span.line, n.message) for n in error.notes] == [
        ("m1.py", 1, "'gpu' is imported from 'm0' here")
    ]
    assert error.hint == "did you mean 'gpu0'?"
