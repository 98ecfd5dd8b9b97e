"""Whether every module an endpoint imports exists on its worker, checked from the sources at build time.

A worker whose module imports a package that is neither shipped nor preinstalled crashes at cold
start. `check_imports` finds that before deploying, for one resource at a time: from the modules of
its functions it follows the project modules they import, reads each file's import statements with
`ast` (no code runs) and checks that the top-level name of every imported module is available:

- the project's own top-level modules and packages, which win over any other module of the same
  name (the project root comes before the standard library on the worker's `sys.path`), and its
  compiled modules (`fastmath.cpython-312-x86_64-linux-gnu.so`), named by the caller;
- `__future__`, `__main__` and the runtime's `flashc_runtime`, `tetra_rp` and `runpod_flash`;
- the standard library of the target Python: `sys.stdlib_module_names` of the Python running
  flashc, corrected for the modules added or removed between 3.10 and 3.14 and without the
  Windows- and macOS-only ones. A module the worker's Python was built without (`tkinter` on a slim
  image) still counts as present. A module the target Python removed from the standard library
  (`imp`, `distutils`, PEP 594's) is missing like any other, with a hint that says so;
- what the shipped wheels install and what the worker image provides (both given by the caller).

When an import runs decides how bad a missing module is:

- at load time (module level, including `if`/`for`/`with`/`try` bodies and class bodies, decorators
  and default values): importing the module fails, so the endpoint never starts: an error;
- at call time (the body of a `def`, `async def` or `lambda`): only that call fails: a warning.

The project modules an import loads are followed, transitively; a package's `__init__.py` runs
before its modules. Whatever a call-time import loads is itself call-time, so every problem found
along such a path is a warning. Guarded imports are never a problem, nor is anything they load:

- in the body of a `try` with a handler for `ImportError` or `ModuleNotFoundError` (alone or in a
  tuple), for `Exception` or `BaseException`, or a bare `except:`, unless the first such handler
  raises again (a `raise` statement directly in its body: the endpoint still fails); in the body of
  a `with suppress(...)` of one of those;
- in the branch of an `if` that runs only when `find_spec` found a module: the body of `if
  find_spec("x"):` or `if find_spec("x") is not None:` (also `importlib.util.find_spec`,
  `util.find_spec`, `!= None`), the `else` of `if find_spec("x") is None:` or `if not
  find_spec("x"):`, combined with `not`, `and`, `or`; or of `if HAS_X:` where `HAS_X` is a name
  assigned such a test once in the file. Like a `try`, the check guards every import in the branch,
  not only the module it names;
- in `if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:` (the `else` branch runs, so is not guarded);
- in a branch that never runs on the worker, a CPython of the target version on Linux: of an `if`
  whose condition compares `sys.version_info` (or `[:n]`, `.major`, `.minor`) with a literal tuple or
  number, `sys.platform`, `os.name` or `platform.system()` with a string, `sys.platform.startswith`,
  or `__name__` with `"__main__"`, possibly combined with `not`, `and`, `or`. Any other condition is
  assumed to take both branches.

An import whose statement carries the comment `# flashc: ignore` on any of its lines (for
`__import__`/`import_module`, on a line of the call) is not checked: the user knows something else
provides it, such as a vendored folder put on `sys.path` or an optional import guarded by an
environment variable. It is never reported nor counted as taken from the worker image; a project
module it names is still followed.

`__import__("name")` and `importlib.import_module("name")` (also `import_module`, and relative with a
literal or `__package__` as the package) count as imports; a computed name is not checked. A file
that does not parse with the running Python is skipped (the report lists it in `unparsed`): flashc
reports syntax errors elsewhere, but code using syntax newer than the running Python goes unchecked.
Only top-level names are checked: a missing submodule of an available package, or a relative import
above the top-level package, is not reported here.

Use: build one `ProjectImports` per build, then call `check_imports` once per resource with that
resource's `Worker`. Each file is parsed once, when a resource first reaches it, and kept for the
others. Parsing dominates (about 0.7 ms per KB of source on CPython 3.11), so a resource whose
closure is a few dozen files is checked in about a tenth of a second however large the project is;
call-time imports are followed too, so functions that import half the project cost half its parse.
"""

from .check import ALWAYS_AVAILABLE, ImportReport, ProjectImports, Worker, check_imports
from .stdlib import stdlib_modules
from .uses import Guard, ImportUse, When, scan_imports

__all__ = [
    "ALWAYS_AVAILABLE",
    "Guard",
    "ImportReport",
    "ImportUse",
    "ProjectImports",
    "When",
    "Worker",
    "check_imports",
    "scan_imports",
    "stdlib_modules",
]
