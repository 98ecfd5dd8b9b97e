"""Benchmark `flashc analyze` on a generated project and a real tree against a plain `ast.parse` of every file.

Two trees, each in a temporary folder (`--tree` picks one):

| tree      | what it is                                                                           |
|-----------|--------------------------------------------------------------------------------------|
| generated | 5,000 modules, 50 MB, from `gen_project`; ordinary modules never name the SDK        |
| real      | a copied site-packages of about 4,200 files, 62 MB (`real_tree`: pip, pandas,        |
|           | IPython, paramiko... where `remote`, `api` and `config` are common words), plus five |
|           | files using the SDK with `remote` and with `Endpoint`; `--real-tree PATH` copies     |
|           | that site-packages folder instead of installing real_tree's pinned packages with uv  |

Measures, on each tree:

| metric   | what runs                                                      | best of |
|----------|----------------------------------------------------------------|---------|
| baseline | read and `ast.parse` every `.py` file, in this process         | 3       |
| cold     | `flashc analyze <tree> --json` after deleting `<tree>/.flash`  | 3       |
| warm     | the same command with the cache in place and no file changed   | 5       |
| peak     | the largest resident set of any process in a cold run          | -       |

The targets are relative to the baseline: cold <= 0.5x, warm <= 0.05x, and peak below 500 MB.
A missed target is reported, not fatal. Every run's JSON must list as many "functions" as the
tree holds; otherwise, or if flashc is missing or fails, the benchmark exits 1.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
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
import real_tree

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
    parser.add_argument("--tree", choices=("generated", "real", "both"), default="both", help="default both")
    parser.add_argument("--files", type=int, default=5000, help="modules to generate (default 5000)")
    parser.add_argument("--mb", type=float, default=50.0, help="total size of the generated tree in MB (default 50)")
    parser.add_argument(
        "--real-tree",
        type=Path,
        metavar="PATH",
        help="a site-packages folder to copy as the real tree (default: real_tree's packages, installed with uv)",
    )
    parser.add_argument(
        "--flashc",
        type=Path,
        default=Path(sys.executable).parent / "flashc",
        help="the flashc executable to measure (default: next to this Python)",
    )
    args = parser.parse_args(argv)
    if not args.flashc.is_file():
        print(
            f"bench_analyze: error: flashc not found at {args.flashc}; install the project with `make install`",
            file=sys.stderr,
        )
        raise SystemExit(1)
    trees = {"generated": _generated_tree, "real": _real_tree}
    failed = False
    for name, make in trees.items():
        if args.tree not in (name, "both"):
            continue
        # Each tree is measured on its own: a failure on one does not hide the other's figures.
        try:
            with tempfile.TemporaryDirectory(prefix=f"flashc-bench-{name}-") as scratch:
                tree = Path(scratch) / "project"
                report = bench(tree, make(tree, args), args.flashc)
        except BenchError as error:
            print(f"bench_analyze: error: {name} tree: {error}", file=sys.stderr)
            failed = True
            continue
        print(f"{name} tree\n\n{report}\n", flush=True)
    if failed:
        raise SystemExit(1)


def _generated_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    _progress(f"generating {args.files} modules, about {args.mb:.0f} MB, in {tree}")
    gen_project.generate(tree, files=args.files, target_bytes=int(args.mb * 1_000_000))
    return gen_project.read_expected(tree)


def _real_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    site = args.real_tree or _installed_site()
    _progress(f"copying {site} to {tree}, with five files using the SDK")
    return real_tree.make_tree(site, tree)


def _installed_site() -> Path:
    from uv import find_uv_bin

    _progress(f"installing the real tree's {len(real_tree.PACKAGES)} packages, if not yet in {real_tree.CACHE_ROOT}")
    try:
        return real_tree.site_packages(str(find_uv_bin()))
    except real_tree.InstallError as error:
        raise BenchError(str(error)) from None


def bench(tree: Path, expected: dict[str, Any], flashc: Path) -> str:
    """Measure the tree, and return the report table."""
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
        ("remote and Endpoint functions and classes", str(expected["functions"]), "all found", "PASS"),
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
                # A real tree may hold a file of another Python's syntax: parsing it still counts.
                with open(path, "rb") as source, contextlib.suppress(SyntaxError):
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
            f"flashc analyze found {len(functions)} functions and classes, "
            f"the tree holds {expected['functions']}"
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
