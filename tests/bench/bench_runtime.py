"""Runtime cold start: importing the runtime and loading a manifest, user imports aside.

Each measurement is a fresh interpreter (`python -X importtime` would perturb it), timed from
the parent: the baseline is `python -c pass` in the same run, so the ratio and the difference
both show what the runtime itself adds. Target: under 100 ms above an empty interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flashc.pipeline import generate, write_files

ROOT = Path(__file__).resolve().parents[2]
RUNS = 15
TARGET_MS = 100.0


def _best(args: list[str]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flashc-bench-runtime-") as tmp:
        out = Path(tmp)
        write_files(generate(ROOT / "fixtures" / "demo", use_cache=False).files, out)
        manifest = out / "flash_manifest.json"
        code = (
            "import sys; sys.path[:0] = [sys.argv[1]]\n"
            "import flashc_runtime\n"
            "from flashc_runtime.handler import create_handler\n"
            "from flashc_runtime.routes import create_route_handler\n"
            "from flashc_runtime.manifest import load_manifest\n"
            "load_manifest(sys.argv[2])\n"
        )
        baseline = _best([sys.executable, "-c", "pass"])
        cold = _best([sys.executable, "-c", code, str(ROOT / "runtime"), str(manifest)])
    added_ms = (cold - baseline) * 1000
    rows = [
        ("python -c pass", f"{baseline * 1000:.1f} ms", ""),
        ("import runtime + load manifest", f"{cold * 1000:.1f} ms", ""),
        (
            "added by the runtime",
            f"{added_ms:.1f} ms",
            f"< {TARGET_MS:g} ms: {'PASS' if added_ms < TARGET_MS else 'MISS'}",
        ),
        ("ratio to python -c pass", f"{cold / baseline:.2f}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"runtime cold start (best of {RUNS} fresh interpreters)")
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>10}  {target}")


if __name__ == "__main__":
    main()
