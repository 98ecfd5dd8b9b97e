"""Benchmark `flashc build` with dependencies against the existing tool, `flash build` of tetra-rp 0.25.2.

Two generated projects, built in one run:

| project | what it is                                                                  | built by                 |
|---------|-----------------------------------------------------------------------------|--------------------------|
| seed    | `flash init` layout: `main.py` (FastAPI), `workers/gpu_worker.py` (GPU,     | flashc and `flash build` |
|         | `dependencies=["torch"]`), `workers/cpu_worker.py` (CPU), `requirements.txt`|                          |
|         | naming the SDK                                                              |                          |
| ml      | one CPU function with `dependencies=["numpy", "pandas", "scikit-learn"]`    | flashc                   |

For the seed project each tool builds cold (flashc with an empty `FLASHC_CACHE_DIR`, the existing
tool with an empty `PIP_CACHE_DIR`), then runs the same command again with nothing changed. The
report gives the three ratios flashc / existing tool with their targets: cold time <= 0.2,
no-change rebuild <= 0.01, archive size <= 0.05. For the ml project flashc builds cold, then again
after a source edit (the resolution and the installed bundle come from the cache, so it repacks),
then again with nothing changed (an up-to-date check). Each time is one run.

The existing tool is installed with `python3.11 -m venv` and pip into
`<tempdir>/flashc-bench-tetra/venv`, kept between runs. It wants `main.py` at the project root and
reads `@remote(dependencies=...)` only under `workers/`, hence the seed layout. It gets a dummy
`RUNPOD_API_KEY`; `flash build` only builds and never deploys. A missed target is reported, not
fatal; when the existing tool cannot be installed or fails, its output is shown and the comparison
rows say n/a. The benchmark exits 1 only when flashc fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXISTING_TOOL = "tetra-rp==0.25.2"
EXISTING_PYTHON = "python3.11"
PYTHON_VERSION = "3.11"
FLASHC_TIMEOUT_SECONDS = 1800
TOOL_TIMEOUT_SECONDS = 1200
TOOL_VENV = Path(tempfile.gettempdir()) / "flashc-bench-tetra" / "venv"
COLD_TARGET = 0.2
REBUILD_TARGET = 0.01
SIZE_TARGET = 0.05
COLD_UV_TARGET = 1.3
REBUILD_UV_TARGET = 0.1
REBUILD_SECONDS = 1.0
LOCK_TARGET = 1.5

SEED_FILES = {
    ".gitignore": "__pycache__/\n*.py[cod]\n.venv/\n.env\n",
    "requirements.txt": "tetra_rp\n",
    "main.py": """\
from fastapi import FastAPI

from workers.cpu_worker import cpu_hello
from workers.gpu_worker import gpu_hello

app = FastAPI(title="Flash Application")


@app.post("/gpu/hello")
def gpu(payload: dict) -> dict:
    return gpu_hello(payload)


@app.post("/cpu/hello")
def cpu(payload: dict) -> dict:
    return cpu_hello(payload)
""",
    "workers/__init__.py": "",
    "workers/gpu_worker.py": """\
from tetra_rp import LiveServerless, remote


@remote(resource_config=LiveServerless(name="gpu-worker"), dependencies=["torch"])
def gpu_hello(data: dict) -> dict:
    import torch

    return {"cuda": torch.cuda.is_available(), "message": data.get("message", "")}
""",
    "workers/cpu_worker.py": """\
from tetra_rp import CpuInstanceType, LiveServerless, remote


@remote(resource_config=LiveServerless(name="cpu-worker", instanceIds=[CpuInstanceType.CPU3G_2_8]))
def cpu_hello(data: dict) -> dict:
    import platform

    return {"python": platform.python_version(), "message": data.get("message", "")}
""",
}

ML_FILES = {
    ".gitignore": "__pycache__/\n.venv/\n",
    "train.py": """\
from tetra_rp import CpuInstanceType, LiveServerless, remote

SCALE = 1.0


@remote(
    resource_config=LiveServerless(name="trainer", instanceIds=[CpuInstanceType.CPU3G_2_8]),
    dependencies=["numpy", "pandas", "scikit-learn"],
)
def train(rows: list[dict]) -> float:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame(rows)
    model = LinearRegression().fit(frame[["x"]], frame["y"])
    return float(model.coef_[0]) * SCALE
""",
}
ROUNDS = 5

# Three functions of one public example project, each a resource of its own: the set the
# hand-written resolver of flashc 0.1 could not solve.
THREE_FUNCTIONS = {
    "analysis.py": ("CpuLiveServerless", "analysis", ["pandas==2.1.3", "numpy==1.26.2", "scipy>=1.11.0", "matplotlib"]),
    "vision.py": ("LiveServerless", "vision", ["torch==2.1.0", "torchvision", "Pillow>=10.0.0", "numpy<2.0.0"]),
    "fetch.py": ("CpuLiveServerless", "fetcher", ["opencv-python", "requests"]),
}


class BenchError(Exception):
    """flashc failed, so the benchmark has no result."""


class ToolError(Exception):
    """The existing tool could not be installed or failed; the comparison is n/a."""


@dataclass(frozen=True)
class Build:
    seconds: float
    size: int
    top_level: str


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--flashc",
        type=Path,
        default=Path(sys.executable).parent / "flashc",
        help="the flashc executable to measure (default: next to this Python)",
    )
    parser.add_argument(
        "--only", choices=["seed", "ml"], help="run one part: the seed project against `flash build`, or the ml one"
    )
    args = parser.parse_args(argv)
    _byte_compile()
    tables = []
    try:
        with tempfile.TemporaryDirectory(prefix="flashc-bench-deps-") as scratch:
            if args.only in (None, "seed"):
                tables.append(bench_seed(Path(scratch), args.flashc))
            if args.only in (None, "ml"):
                tables.append(bench_ml(Path(scratch), args.flashc))
    except BenchError as error:
        print(f"bench_deps: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print("\n\n".join(tables))


def _byte_compile() -> None:
    """Byte-compile flashc as pip does when it installs it: an editable checkout run with
    PYTHONDONTWRITEBYTECODE set (as on the machines this was measured on) would otherwise compile
    flashc's modules from source on every command, which no installed flashc does."""
    import compileall

    import flashc_runtime

    import flashc

    for package in (flashc, flashc_runtime):
        compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)


def bench_seed(scratch: Path, flashc: Path) -> str:
    """Build the seed project with both tools; the comparison table."""
    if not flashc.is_file():
        raise BenchError(f"flashc not found at {flashc}; install the project with `make install`")
    flashc_project = _write_project(scratch / "flashc" / "seed", SEED_FILES)
    tool_project = _write_project(scratch / "tool" / "seed", SEED_FILES)

    # flashc goes first so that a broken build fails the run before the slow tool runs.
    env = {**os.environ, "FLASHC_CACHE_DIR": str(scratch / "flashc-cache")}
    command = [str(flashc), "build", str(flashc_project), "--json", "--python-version", PYTHON_VERSION]
    cold = _flashc_build("seed, flashc cold", command, env)
    rebuild = _flashc_build("seed, flashc no-change rebuild", command, env)
    flashc_cold = Build(cold[0], cold[1]["size"], _describe(Path(cold[1]["archive"]), "_flashc/site/"))

    tool_note = ""
    try:
        flash = _install_tool()
        tool_env = {**os.environ, "PIP_CACHE_DIR": str(scratch / "pip-cache"), "RUNPOD_API_KEY": "dummy"}
        tool_cold = _tool_build("seed, flash build cold", flash, tool_project, tool_env)
        tool_rebuild = _tool_build("seed, flash build no-change rebuild", flash, tool_project, tool_env)
    except ToolError as error:
        tool_note = str(error)
        _progress(f"existing tool: {tool_note}")
        tool_cold = tool_rebuild = None

    rows = [
        ("cold build", f"{flashc_cold.seconds:.2f} s", _seconds(tool_cold), *_ratio(cold[0], tool_cold, COLD_TARGET)),
        (
            f"no-change rebuild ({_up_to_date(rebuild[1])})",
            f"{rebuild[0]:.3f} s",
            _seconds(tool_rebuild),
            *_ratio(rebuild[0], tool_rebuild, REBUILD_TARGET),
        ),
        (
            "archive size",
            f"{flashc_cold.size:,} B",
            "n/a" if tool_cold is None else f"{tool_cold.size:,} B",
            *_ratio(flashc_cold.size, None if tool_cold is None else tool_cold.size, SIZE_TARGET),
        ),
    ]
    header = ("seed project", "flashc", "flash build", "ratio", "target", "result")
    lines = [_table(header, rows)]
    lines.append(f"flashc archive: {flashc_cold.top_level}")
    lines.append(f"flashc left out: {', '.join(cold[1]['excluded']) or 'nothing'}")
    if tool_cold is not None:
        lines.append(f"flash build archive: {tool_cold.top_level}")
    else:
        lines.append(f"flash build: n/a, {tool_note}")
    lines.append(
        "(one run each; cold: empty FLASHC_CACHE_DIR / PIP_CACHE_DIR; rebuild: the same command again, nothing changed)"
    )
    return "\n".join(lines)


def bench_ml(scratch: Path, flashc: Path) -> str:
    """The numpy/pandas/scikit-learn project against uv doing the same work, all in this run.

    cold build     flashc build, empty FLASHC_CACHE_DIR (uv's cache is inside it)
                   vs uv pip install --target DIR (empty UV_CACHE_DIR) + tar czf DIR
    rebuild        flashc build after a one-line edit of train.py (warm caches)
    resolution     flashc lock, empty FLASHC_CACHE_DIR (analysis cached), vs uv pip compile, empty UV_CACHE_DIR
    """
    project = _write_project(scratch / "flashc" / "ml", ML_FILES)
    cache = scratch / "flashc-cache-ml"
    env = {**os.environ, "FLASHC_CACHE_DIR": str(cache)}
    command = [str(flashc), "build", str(project), "--json", "--python-version", PYTHON_VERSION]
    uv_env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    target = [
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        "x86_64-manylinux_2_35",
        "--only-binary",
        ":all:",
    ]
    requirements = ["numpy", "pandas", "scikit-learn"]

    # Resolution alone: flashc lock and uv pip compile, each from an empty cache, in turns. The
    # project is analyzed first (untimed), so the lock's time is its resolution, not a first parse.
    _timed("ml, flashc analyze (not compared)", [str(flashc), "analyze", str(project)], env)
    locks, compiles = [], []
    for turn in range(3):
        shutil.rmtree(cache, ignore_errors=True)
        lock_command = [str(flashc), "lock", str(project), "--python-version", PYTHON_VERSION]
        locks.append(_timed(f"ml, flashc lock (empty cache) #{turn + 1}", lock_command, env))
        (project / "pylock.toml").unlink()
        uv_cache = scratch / f"uv-cache-compile-{turn}"
        # A new output file each time: uv takes the pins of an existing one as preferences.
        out = scratch / f"compiled-{turn}.txt"
        compile_command = [_uv(), "pip", "compile", "--no-config", "-", *target, "-o", str(out)]
        compiles.append(
            _timed(
                f"ml, uv pip compile (empty cache) #{turn + 1}",
                compile_command,
                {**uv_env, "UV_CACHE_DIR": str(uv_cache)},
                stdin="\n".join(requirements),
            )
        )
    lock_seconds, compile_seconds = statistics.median(locks), statistics.median(compiles)
    real = _write_project(
        scratch / "flashc" / "three",
        {
            name: f"from tetra_rp import {kind}, remote\n\n\n"
            f"@remote({kind}(name={resource!r}), dependencies={deps!r})\ndef f(x):\n    return x\n"
            for name, (kind, resource, deps) in THREE_FUNCTIONS.items()
        },
    )
    _timed("three functions, flashc analyze (not compared)", [str(flashc), "analyze", str(real)], env)
    real_locks, real_compiles = [], []
    every = sorted({d for _, _, deps in THREE_FUNCTIONS.values() for d in deps})
    for turn in range(3):
        shutil.rmtree(cache, ignore_errors=True)
        lock_command = [str(flashc), "lock", str(real), "--python-version", PYTHON_VERSION]
        real_locks.append(_timed(f"three functions, flashc lock (empty cache) #{turn + 1}", lock_command, env))
        (real / "pylock.toml").unlink()
        out = scratch / f"three-{turn}.txt"
        compile_command = [_uv(), "pip", "compile", "--no-config", "-", *target, "-o", str(out)]
        real_compiles.append(
            _timed(
                f"three functions, uv pip compile (empty cache) #{turn + 1}",
                compile_command,
                {**uv_env, "UV_CACHE_DIR": str(scratch / f"uv-cache-three-{turn}")},
                stdin="\n".join(every),
            )
        )

    # Cold build: flashc against uv install + tar czf, each from an empty cache.
    shutil.rmtree(cache, ignore_errors=True)
    cold_seconds, cold = _flashc_build("ml, flashc build cold", command, env)
    site = scratch / "uv-target"
    install_seconds = _timed(
        "ml, uv pip install --target (empty cache)",
        [_uv(), "pip", "install", "--no-config", "--target", str(site), *target, *requirements],
        {**uv_env, "UV_CACHE_DIR": str(scratch / "uv-cache-install")},
    )
    tar_seconds = _timed(
        "ml, tar czf of the installed folder", ["tar", "czf", str(scratch / "uv.tgz"), "-C", str(site), "."], uv_env
    )
    baseline = install_seconds + tar_seconds

    # Rebuild after a one-line edit of the function's module, several times: the median.
    rebuilds = []
    previous = cold["sha256"]
    for turn in range(ROUNDS):
        source = project / "train.py"
        source.write_text(re.sub(r"SCALE = .*", f"SCALE = {turn + 2}.0", source.read_text()))
        seconds, rebuilt = _flashc_build(f"ml, flashc build after a one-line edit #{turn + 1}", command, env)
        if rebuilt["up_to_date"] or rebuilt["sha256"] == previous:
            raise BenchError("flashc did not rebuild the ml project after a source edit")
        previous = rebuilt["sha256"]
        rebuilds.append(seconds)
    warm_seconds = statistics.median(rebuilds)
    again_seconds, again = _flashc_build("ml, flashc build --force with warm caches", [*command, "--force"], env)
    if again["sha256"] != previous:
        raise BenchError("a forced rebuild with warm caches gave another archive than the one before it")

    def row(what: str, value: float, base: float | None, target: float | None) -> tuple[str, ...]:
        if base is None:
            return (what, f"{value:.2f} s", "", "", "", "")
        ratio = value / base
        result = "" if target is None else ("PASS" if ratio <= target else "MISS")
        return (what, f"{value:.2f} s", f"{base:.2f} s", f"{ratio:.3f}", f"<= {target:g}" if target else "", result)

    rows = [
        row("cold build vs uv install --target + tar czf", cold_seconds, baseline, COLD_UV_TARGET),
        row(
            f"rebuild after a one-line edit (median of {ROUNDS}) vs cold", warm_seconds, cold_seconds, REBUILD_UV_TARGET
        ),
        row("flashc lock vs uv pip compile (medians of 3)", lock_seconds, compile_seconds, LOCK_TARGET),
        row(
            "the same for the three-function set (with torch)",
            statistics.median(real_locks),
            statistics.median(real_compiles),
            LOCK_TARGET,
        ),
        row("forced rebuild, warm caches (same sha256)", again_seconds, None, None),
    ]
    lines = [
        _table(("ml project (numpy, pandas, scikit-learn)", "flashc", "baseline", "ratio", "target", "result"), rows)
    ]
    lines.append(
        f"rebuild after an edit: {warm_seconds:.3f} s, target < {REBUILD_SECONDS:g} s: "
        f"{'PASS' if warm_seconds < REBUILD_SECONDS else 'MISS'}"
    )
    lines.append(
        f"baseline: uv install {install_seconds:.2f} s + tar czf {tar_seconds:.2f} s; "
        f"archive {cold['size']:,} B (tar czf: {(scratch / 'uv.tgz').stat().st_size:,} B), "
        f"{len(cold['dependencies'])} distributions"
    )
    lines.append(
        f"rebuilds: {', '.join(f'{t:.2f}' for t in rebuilds)} s; locks: {', '.join(f'{t:.2f}' for t in locks)} s; "
        f"compiles: {', '.join(f'{t:.2f}' for t in compiles)} s"
    )
    lines.append("(in this order: lock and compile in turns, cold build, install + tar, rebuilds, forced rebuild)")
    return "\n".join(lines)


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _timed(label: str, command: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, input=stdin, timeout=FLASHC_TIMEOUT_SECONDS
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` exited with status {result.returncode}:\n{result.stderr[-2000:]}")
    _progress(f"{label}: {seconds:.3f} s")
    return seconds


def _write_project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _flashc_build(label: str, command: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run `flashc build --json`; its wall time and parsed summary."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=FLASHC_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(command)}` ran longer than {FLASHC_TIMEOUT_SECONDS} s") from None
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        stderr = result.stderr.rstrip() or "(empty)"
        raise BenchError(f"`{' '.join(command)}` exited with status {result.returncode}; its stderr:\n{stderr}")
    try:
        summary: dict[str, Any] = json.loads(result.stdout)
    except ValueError as error:
        raise BenchError(f"flashc build --json printed invalid JSON ({error}): {result.stdout[:200]!r}") from None
    _progress(f"{label}: {seconds:.3f} s")
    return seconds, summary


def _install_tool() -> Path:
    """The existing tool's `flash` executable, installed into `TOOL_VENV` unless it is there."""
    flash = TOOL_VENV / "bin" / "flash"
    if flash.is_file():
        return flash
    python = shutil.which(EXISTING_PYTHON)
    if python is None:
        raise ToolError(f"{EXISTING_PYTHON} not found on PATH; it runs the existing tool")
    shutil.rmtree(TOOL_VENV, ignore_errors=True)
    _progress(f"installing {EXISTING_TOOL} into {TOOL_VENV}")
    _run_tool([python, "-m", "venv", str(TOOL_VENV)], None, os.environ.copy())
    _run_tool([str(TOOL_VENV / "bin" / "python"), "-m", "pip", "install", EXISTING_TOOL], None, os.environ.copy())
    if not flash.is_file():
        raise ToolError(f"{EXISTING_TOOL} installed no `flash` executable in {TOOL_VENV / 'bin'}")
    return flash


def _tool_build(label: str, flash: Path, project: Path, env: dict[str, str]) -> Build:
    """Run `flash build` in `project`; its time, archive size and what the archive holds."""
    seconds = _run_tool([str(flash), "build"], project, env)
    _progress(f"{label}: {seconds:.3f} s")
    # 0.25.2 writes .flash/artifact.tar.gz; look for any archive in case that changes.
    archives = sorted((project / ".flash").glob("*.tar.gz"))
    if not archives:
        raise ToolError(f"`flash build` succeeded but left no .tar.gz in {project / '.flash'}")
    return Build(seconds, archives[0].stat().st_size, _describe(archives[0], ""))


def _run_tool(command: list[str], cwd: Path | None, env: dict[str, str]) -> float:
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=TOOL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise ToolError(f"`{' '.join(command)}` timed out after {TOOL_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()[:30]
        raise ToolError(
            f"`{' '.join(command)}` exited with status {result.returncode}; first 30 lines of its output:\n"
            + "\n".join(output)
        )
    return time.perf_counter() - start


def _describe(archive: Path, site: str) -> str:
    """One line: the archive's top-level entries, and whether torch or CUDA libraries are inside."""
    with tarfile.open(archive) as tar:
        names = [name.removeprefix("./") for name in tar.getnames()]
    top = sorted({name.split("/")[0] for name in names if name and name != "."})
    packages = sorted({name[len(site) :].split("/")[0] for name in names if name.startswith(site) and name != site})
    packages = [name for name in packages if name]
    has = {
        "torch/": "torch" in packages,
        "nvidia/": "nvidia" in packages,
        "triton/": "triton" in packages,
    }
    flags = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in has.items())
    shown = ", ".join(top) if len(top) <= 12 else ", ".join(top[:12]) + f", ... ({len(top)} entries)"
    line = f"top level: {shown}; {flags}"
    if site:
        line += f"; {len(packages)} entries in {site}"
    return line


def _up_to_date(summary: dict[str, Any]) -> str:
    # flashc's build state covers flashc itself, so an edit to flashc between two builds rebuilds.
    return "up to date" if summary["up_to_date"] else "NOT up to date: flashc built again"


def _seconds(build: Build | None) -> str:
    return "n/a" if build is None else f"{build.seconds:.2f} s"


def _ratio(flashc: float, existing: Build | float | None, target: float) -> tuple[str, str, str]:
    if existing is None:
        return "n/a", f"<= {target:g}", "n/a"
    denominator = existing.seconds if isinstance(existing, Build) else existing
    ratio = flashc / denominator
    return f"{ratio:.4f}", f"<= {target:g}", "PASS" if ratio <= target else "MISS"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
