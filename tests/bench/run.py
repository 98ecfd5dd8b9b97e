"""Run every benchmark here: each `bench_*.py` module's `main()`, in file name order.

A benchmark reports missed targets in its output and exits non-zero only when its results are
wrong; this runner keeps going after a failure and exits 1 if any benchmark failed.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    # Benchmarks import their helpers (gen_project) as top-level modules.
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        print(f"== {path.stem}", flush=True)
        if not _run(path):
            failed.append(path.stem)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _run(path: Path) -> bool:
    """Load one benchmark module and call its `main()`; False if it failed."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module is still executing.
    sys.modules[spec.name] = module
    # Each benchmark parses its own command line; give it none, so it runs at its defaults.
    saved_argv = sys.argv
    sys.argv = [str(path)]
    try:
        spec.loader.exec_module(module)
        module.main()
    except SystemExit as exit:
        return exit.code in (None, 0)
    except Exception:
        traceback.print_exc()
        return False
    finally:
        sys.argv = saved_argv
    return True


if __name__ == "__main__":
    sys.exit(main())
