"""Benchmark `flashc build` on a generated 200-file project against `tar czf` of the same files.

Measures, in one run, on the project `gen_small_project` writes into a temporary folder:

| metric   | what runs                                                             | best of |
|----------|-----------------------------------------------------------------------|---------|
| baseline | `tar czf <scratch>/baseline.tar.gz --exclude=.flash -C <project> .`   | 5       |
| cold     | `flashc build <project> --quiet` after deleting `<project>/.flash`    | 5       |
| warm     | the same command again, with the analysis cache and no file changed   | 5       |

The project ignores nothing but `.flash/`, so tar packs the files flashc packs. Both targets are
cold <= 3x and warm <= 3x the baseline; a missed target is reported, not fatal. The report also
shows the archive's size and the sha256 of two `flashc build --json` runs, each after deleting
`.flash`. The benchmark exits 1 when a result is wrong: the generated project has analysis errors,
flashc fails, the archive misses a project file or a function, or the two sha256 differ.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gen_small_project

RATIO_TARGET = 3.0
RUNS = 5
TIMEOUT_SECONDS = 600


class BenchError(Exception):
    """The benchmark cannot produce a trustworthy result."""


@dataclass(frozen=True)
class Report:
    table: str
    reproducible: bool


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--flashc",
        type=Path,
        default=Path(sys.executable).parent / "flashc",
        help="the flashc executable to measure (default: next to this Python)",
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="flashc-bench-build-") as scratch:
            report = bench(Path(scratch), args.flashc)
    except BenchError as error:
        print(f"bench_build: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(report.table)
    if not report.reproducible:
        print("bench_build: error: two builds of the same project gave different archives", file=sys.stderr)
        raise SystemExit(1)


def bench(scratch: Path, flashc: Path) -> Report:
    """Generate the project under `scratch`, measure it, and return the report."""
    if not flashc.is_file():
        raise BenchError(f"flashc not found at {flashc}; install the project with `make install`")
    tar = shutil.which("tar")
    if tar is None:
        raise BenchError("tar not found on PATH; the baseline needs it")
    project_dir = scratch / "project"
    _progress(f"generating {gen_small_project.FILES} files in {project_dir}")
    project = gen_small_project.generate(project_dir)
    state = project_dir / ".flash"

    # A generator slip must fail here, not show up as a fast build of a broken project.
    _run([str(flashc), "analyze", str(project_dir)])
    shutil.rmtree(state)

    # flashc goes first so that a broken build fails the run in seconds.
    builds = []
    for attempt in (1, 2):
        shutil.rmtree(state, ignore_errors=True)
        _, stdout = _run([str(flashc), "build", str(project_dir), "--json"])
        builds.append(_check_build(stdout, project))
        _progress(f"build --json {attempt}/2: sha256 {builds[-1]['sha256']}")

    baseline_archive = scratch / "baseline.tar.gz"
    baseline = _best("tar czf", [tar, "czf", str(baseline_archive), "--exclude=.flash", "-C", str(project_dir), "."])
    build = [str(flashc), "build", str(project_dir), "--quiet"]
    cold = _best("cold build", build, before=lambda: shutil.rmtree(state, ignore_errors=True))
    warm = _best("warm build", build)
    # The floor under any Python CLI: the interpreter, then flashc's own imports and nothing else.
    startup = _best("flashc --version", [str(flashc), "--version"])

    cold_ratio, warm_ratio = cold / baseline, warm / baseline
    first, second = builds
    reproducible = first["sha256"] == second["sha256"]
    rows = [
        ("files", str(len(project.files)), "", ""),
        ("project size", f"{project.bytes / 1e6:.2f} MB", "", ""),
        ("tar czf", f"{baseline:.3f} s", "", ""),
        ("cold build", f"{cold:.3f} s", "", ""),
        ("cold / tar czf", f"{cold_ratio:.1f}", f"<= {RATIO_TARGET:g}", _verdict(cold_ratio <= RATIO_TARGET)),
        ("warm build, nothing changed", f"{warm:.3f} s", "", ""),
        ("warm / tar czf", f"{warm_ratio:.1f}", f"<= {RATIO_TARGET:g}", _verdict(warm_ratio <= RATIO_TARGET)),
        ("flashc --version", f"{startup:.3f} s", "", ""),
        ("flashc --version / tar czf", f"{startup / baseline:.1f}", "", "(floor of any ratio)"),
        ("archive size", f"{first['size']:,} bytes", "", ""),
        ("archive members", str(first["files"]), "", ""),
        ("tar czf archive size", f"{baseline_archive.stat().st_size:,} bytes", "", ""),
        ("sha256, build 1", first["sha256"], "", ""),
        ("sha256, build 2", second["sha256"], "equal", "PASS" if reproducible else "FAIL"),
    ]
    return Report(_table(("flashc build", "value", "target", "result"), rows), reproducible)


def _run(command: list[str]) -> tuple[float, str]:
    """Run `command` to completion; its wall time in seconds and its stdout."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(command)}` ran longer than {TIMEOUT_SECONDS} s") from None
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        stderr = result.stderr.rstrip() or "(empty)"
        raise BenchError(f"`{' '.join(command)}` exited with status {result.returncode}; its stderr:\n{stderr}")
    return seconds, result.stdout


def _best(label: str, command: list[str], before: Callable[[], object] | None = None) -> float:
    """The shortest wall time of `RUNS` runs of `command`, calling `before()` ahead of each."""
    best = float("inf")
    for attempt in range(1, RUNS + 1):
        if before is not None:
            before()
        seconds, _ = _run(command)
        _progress(f"{label} {attempt}/{RUNS}: {seconds:.3f} s")
        best = min(best, seconds)
    return best


def _check_build(stdout: str, project: gen_small_project.Project) -> dict[str, Any]:
    """Parse `flashc build --json` output and check the archive holds what the generator wrote."""
    try:
        summary: dict[str, Any] = json.loads(stdout)
    except ValueError as error:
        raise BenchError(f"flashc build --json printed invalid JSON ({error}): {stdout[:200]!r}") from None
    missing_keys = {"archive", "sha256", "size", "files", "functions", "resources"} - set(summary)
    if missing_keys:
        raise BenchError(f"flashc build --json output lacks {', '.join(sorted(missing_keys))}: {stdout[:200]!r}")
    if len(summary["functions"]) != project.functions or len(summary["resources"]) != project.resources:
        raise BenchError(
            f"flashc build found {len(summary['functions'])} functions on {len(summary['resources'])} resources, "
            f"the generator wrote {project.functions} on {project.resources}"
        )
    with tarfile.open(summary["archive"]) as archive:
        members = set(archive.getnames())
    missing = [path for path in project.files if path not in members]
    if missing:
        raise BenchError(f"the archive lacks {len(missing)} project files, such as {', '.join(missing[:3])}")
    return summary


def _verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"(times: best wall time of {RUNS} runs, each a fresh process; sha256: two cold builds)")
    return "\n".join(lines)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
