"""Benchmark the archive's dependency layers on real wheels: numpy, pandas, scipy and scikit-learn.

Measures, in one run, with the cp311 manylinux wheels in `--wheels` (downloaded with pip when
the folder has none):

| metric   | what runs                                                                          | best of |
|----------|------------------------------------------------------------------------------------|---------|
| baseline | the wheels installed into a folder with pypa/installer, then `tar czf` of it        | 1       |
| cold     | `site_layers` with an empty layer cache: every layer built, on all CPUs             | 3       |
| lookup   | `site_layers` again: every layer found in the cache                                 | 5       |
| rebuild  | `write_archive` of a 50-file project plus the cached layers, over the last archive  | 7       |

Targets: cold at least 1.8x faster than the baseline (install + tar czf), rebuild under 0.3 s; a
missed target is reported, not fatal. The benchmark exits 1 when a result is wrong: the archive
built from a cold cache and the one built from a warm cache differ, or a wheel file is missing
from the archive.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from flashc.pack import Entry, Site, SiteWheel, site_layers, write_archive

PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn")
PLATFORM = "manylinux_2_28_x86_64"
DEFAULT_WHEELS = Path(tempfile.gettempdir()) / "flashc-bench-wheels"
SITE = "_flashc/site"
COLD_TARGET = 1.8
REBUILD_TARGET = 0.3

T = TypeVar("T")


class BenchError(Exception):
    """The benchmark cannot produce a trustworthy result."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS, help=f"wheel folder (default {DEFAULT_WHEELS})")
    args = parser.parse_args(argv)
    try:
        wheels = _wheels(args.wheels)
        with tempfile.TemporaryDirectory(prefix="flashc-bench-pack-") as scratch:
            print(bench(Path(scratch), wheels))
    except BenchError as error:
        print(f"bench_pack: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def bench(scratch: Path, wheels: list[SiteWheel]) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    install_time, tar_time, tar_size = _baseline(scratch, wheels)
    sites = [Site(SITE, tuple(wheels))]
    cache = scratch / "cache"

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        site_layers(sites, cache)

    cold_time, _ = _best(3, cold)
    cold_archive = write_archive([], scratch / "cold.tar.gz", layers=site_layers(sites, cache).layers)
    lookup_time, assembled = _best(5, lambda: site_layers(sites, cache))
    project = [Entry(f"app/module_{i}.py", data=f"VALUE = {i}\n".encode() * 40) for i in range(50)]
    output = scratch / "archive.tar.gz"
    times = []
    for _ in range(7):
        start = time.perf_counter()
        result = write_archive(project, output, layers=assembled.layers)
        times.append(time.perf_counter() - start)
    warm = write_archive([], scratch / "warm.tar.gz", layers=assembled.layers)
    if warm.sha256 != cold_archive.sha256:
        raise BenchError("the archive from a cold cache differs from the one from a warm cache")
    _check_contents(output, assembled.layers[0].files[0].arcname)

    baseline = install_time + tar_time
    ratio = baseline / cold_time
    rebuild = min(times)
    rows = [
        ("metric", "seconds", "note"),
        ("baseline: install", f"{install_time:.2f}", f"{len(wheels)} wheels, pypa/installer"),
        ("baseline: tar czf", f"{tar_time:.2f}", f"{tar_size / 1e6:.1f} MB, one thread"),
        (
            "cold layers",
            f"{cold_time:.2f}",
            f"{cpus} CPUs; {ratio:.1f}x faster than install + tar czf "
            f"({tar_time / cold_time:.1f}x than tar czf alone), target >= {COLD_TARGET}x",
        ),
        ("lookup", f"{lookup_time:.3f}", f"{len(assembled.layers)} layers found in the cache"),
        (
            "rebuild",
            f"{rebuild:.3f}",
            f"median {statistics.median(times):.3f}; {result.size / 1e6:.1f} MB, "
            f"{result.members} members, target < {REBUILD_TARGET} s",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if ratio < COLD_TARGET:
        lines.append(f"missed: cold layers are {ratio:.1f}x faster than the baseline, target {COLD_TARGET}x")
    if rebuild >= REBUILD_TARGET:
        lines.append(f"missed: a rebuild takes {rebuild:.3f} s, target under {REBUILD_TARGET} s")
    return "\n".join(lines)


def _wheels(folder: Path) -> list[SiteWheel]:
    found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if len(found) < len(PACKAGES):
        _progress(f"downloading {', '.join(PACKAGES)} into {folder}")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps"]
        command += ["--python-version", "3.11", "--platform", PLATFORM, "-d", str(folder), *PACKAGES]
        if subprocess.run(command, check=False).returncode != 0:
            raise BenchError("pip could not download the wheels; is the package index reachable?")
        found = sorted(folder.glob("*.whl"))
    wheels = []
    for path in found:
        name, version = path.name.split("-")[:2]
        wheels.append(SiteWheel(path, hashlib.sha256(path.read_bytes()).hexdigest(), name, version))
    return wheels


def _baseline(scratch: Path, wheels: list[SiteWheel]) -> tuple[float, float, int]:
    """Seconds to install the wheels into a folder, seconds to `tar czf` it, and the tarball's size."""
    tar = shutil.which("tar")
    if tar is None:
        raise BenchError("tar not found on PATH; the baseline needs it")
    root = scratch / "installed"
    site = str(root / SITE)
    start = time.perf_counter()
    for wheel in wheels:
        destination = SchemeDictionaryDestination(
            {scheme: site for scheme in ("purelib", "platlib", "data", "scripts", "headers")},
            interpreter="/usr/bin/python3",
            script_kind="posix",
        )
        with WheelFile.open(wheel.path) as source:
            install(source, destination, {"INSTALLER": b"flashc\n"})
    installed = time.perf_counter()
    tarball = scratch / "baseline.tar.gz"
    subprocess.run([tar, "czf", str(tarball), "-C", str(root), "."], check=True)
    return installed - start, time.perf_counter() - installed, tarball.stat().st_size


def _best(runs: int, action: Callable[[], T]) -> tuple[float, T]:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        value = action()
        best = min(best, time.perf_counter() - start)
    return best, value


def _check_contents(archive: Path, expected: str) -> None:
    with tarfile.open(archive, "r:*") as tar:
        names = set(tar.getnames())
    if expected not in names or "app/module_0.py" not in names:
        raise BenchError(f"the archive misses {expected} or the project's files")


def _progress(message: str) -> None:
    print(f"bench_pack: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
