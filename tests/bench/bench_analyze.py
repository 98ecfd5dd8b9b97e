"""Benchmark `flashc analyze` on a generated project against a plain `ast.parse` of every file.

Measures, on one tree generated into a temporary folder:

| metric   | what runs                                                      | best of |
|----------|----------------------------------------------------------------|---------|
| baseline | read and `ast.parse` every `.py` file, in this process         | 3       |
| cold     | `flashc analyze <tree> --json` after deleting `<tree>/.flash`  | 3       |
| warm     | the same command with the cache in place and no file changed   | 5       |
| peak     | the largest resident set of any process in a cold run          | -       |

The targets are relative to the baseline: cold <= 0.5x, warm <= 0.05x, and peak below 500 MB.
A missed target is reported, not fatal. Every run's JSON must list as many "functions" as the
generator wrote; otherwise, or if flashc is missing or fails, the benchmark exits 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gen_project

COLD_RATIO_TARGET = 0.5
WARM_RATIO_TARGET = 0.05
PEAK_MB_TARGET = 500.0
TIMEOUT_SECONDS = 1800
GNU_TIME = Path("/usr/bin/time")

# Stands in for /usr/bin/time: runs the command, then writes the largest resident set (KiB on
# Linux) among its waited-for processes to the file named by the first argument.
_LAUNCHER = """\
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


class BenchError(Exception):
    """The benchmark cannot produce a trustworthy result."""


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_kib: int


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="modules to generate (default 5000)")
    parser.add_argument("--mb", type=float, default=50.0, help="total size in MB (default 50)")
    parser.add_argument(
        "--flashc",
        type=Path,
        default=Path(sys.executable).parent / "flashc",
        help="the flashc executable to measure (default: next to this Python)",
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="flashc-bench-") as scratch:
            report = bench(Path(scratch) / "project", args.files, int(args.mb * 1_000_000), args.flashc)
    except BenchError as error:
        print(f"bench_analyze: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(report)


def bench(tree: Path, files: int, target_bytes: int, flashc: Path) -> str:
    """Generate the tree, measure it, and return the report table."""
    if not flashc.is_file():
        raise BenchError(f"flashc not found at {flashc}; install the project with `make install`")
    _progress(f"generating {files} modules, about {target_bytes / 1e6:.0f} MB, in {tree}")
    gen_project.generate(tree, files=files, target_bytes=target_bytes)
    expected = gen_project.read_expected(tree)
    command = [str(flashc), "analyze", str(tree), "--json"]

    # flashc goes first so that a broken analyzer fails the run in seconds.
    cold_runs = []
    for attempt in range(1, 4):
        shutil.rmtree(tree / ".flash", ignore_errors=True)
        cold_runs.append(_analyze(command, expected))
        _progress(f"cold {attempt}/3: {cold_runs[-1].seconds:.2f} s")
    if not (tree / ".flash").exists():
        _progress(f"note: flashc wrote no cache at {tree / '.flash'}; warm runs repeat the cold work")
    warm_runs = []
    for attempt in range(1, 6):
        warm_runs.append(_analyze(command, expected))
        _progress(f"warm {attempt}/5: {warm_runs[-1].seconds:.2f} s")
    baseline = _best("baseline", 3, lambda: _parse_all(tree))

    cold = min(run.seconds for run in cold_runs)
    warm = min(run.seconds for run in warm_runs)
    peak_mb = max(run.peak_kib for run in cold_runs) * 1024 / 1e6
    cold_ratio, warm_ratio = cold / baseline, warm / baseline
    cold_met = cold_ratio <= COLD_RATIO_TARGET
    warm_met = warm_ratio <= WARM_RATIO_TARGET
    peak_met = peak_mb < PEAK_MB_TARGET
    rows = [
        ("files", str(expected["files"]), "", ""),
        ("size", f"{expected['bytes'] / 1e6:.1f} MB", "", ""),
        ("remote functions and classes", str(expected["functions"]), "all found", "PASS"),
        ("baseline: read + ast.parse", f"{baseline:.2f} s", "", ""),
        ("cold", f"{cold:.2f} s", "", ""),
        ("cold / baseline", f"{cold_ratio:.3f}", f"<= {COLD_RATIO_TARGET}", _verdict(cold_met)),
        ("warm", f"{warm:.2f} s", "", ""),
        ("warm / baseline", f"{warm_ratio:.3f}", f"<= {WARM_RATIO_TARGET}", _verdict(warm_met)),
        ("cold peak memory", f"{peak_mb:.0f} MB", f"< {PEAK_MB_TARGET:.0f} MB", _verdict(peak_met)),
    ]
    return _table(("flashc analyze", "value", "target", "result"), rows)


def _parse_all(tree: Path) -> None:
    """What any analyzer must at least match: find, read and parse every module once."""
    for folder, dirs, names in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as source:
                    ast.parse(source.read(), filename=path)


def _best(label: str, times: int, work: Callable[[], None]) -> float:
    best = float("inf")
    for attempt in range(1, times + 1):
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        _progress(f"{label} {attempt}/{times}: {seconds:.2f} s")
        best = min(best, seconds)
    return best


def _analyze(command: list[str], expected: dict[str, Any]) -> Run:
    """Run flashc once under a peak-memory meter, and check what it found."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        if GNU_TIME.exists():
            metered = [str(GNU_TIME), "-q", "-f", "%M", "-o", rss.name, *command]
        else:
            metered = [sys.executable, "-c", _LAUNCHER, rss.name, *command]
        start = time.perf_counter()
        try:
            result = subprocess.run(metered, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise BenchError(f"`{' '.join(command)}` ran longer than {TIMEOUT_SECONDS} s") from None
        seconds = time.perf_counter() - start
        peak_kib = int(rss.read().split()[-1]) if result.returncode == 0 else 0
    if result.returncode != 0:
        stderr = result.stderr.rstrip() or "(empty)"
        raise BenchError(f"`{' '.join(command)}` exited with status {result.returncode}; its stderr:\n{stderr}")
    _check_output(result.stdout, expected)
    return Run(seconds, peak_kib)


def _check_output(stdout: str, expected: dict[str, Any]) -> None:
    try:
        data = json.loads(stdout)
    except ValueError as error:
        raise BenchError(f"flashc analyze --json printed invalid JSON ({error}): {stdout[:200]!r}") from None
    functions = data.get("functions") if isinstance(data, dict) else None
    if not isinstance(functions, list):
        raise BenchError(f'flashc analyze --json output has no "functions" list: {stdout[:200]!r}')
    if len(functions) != expected["functions"]:
        # Names are unique across the tree, so a word match in the output is enough to tell.
        missing = [name for name in expected["names"] if not re.search(rf"\b{name.rpartition('.')[2]}\b", stdout)]
        raise BenchError(
            f"flashc analyze found {len(functions)} remote functions and classes, "
            f"the generator wrote {expected['functions']}"
            + (f"; not in the output: {', '.join(missing)}" if missing else "")
        )


def _verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("(cold and warm: best wall time of 3 and 5 runs; peak: largest single process)")
    return "\n".join(lines)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
