"""Compare the endpoint runtime of two git revisions under the same `/runsync` load, alternately.

    .venv/bin/python tests/bench/ab_runtime.py REV_A REV_B [--rounds 8] [--requests 4000]

A developer's tool, not one of `make bench`'s benchmarks (their names start with `bench_`).
This machine's speed drifts by a quarter or more from minute to minute, so two versions
measured one after the other cannot be compared. Here both run at once and take turns: the same one-function
project (`bench_latency`'s echo) is built once, and its build tree is copied twice, with
`runtime/flashc_runtime/` taken from each revision. Each copy runs an endpoint server (with its
worker process) on 127.0.0.1, and the loads alternate A, B, A, B... from `bench_latency`'s
client. Each revision's medians over its rounds are printed: requests/s, p50, p99, and the CPU
its HTTP process and its worker process used per request, read from `/proc/<pid>/stat` (Linux);
then the second revision's figures as ratios to the first's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_latency

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RUNTIME = "runtime/flashc_runtime"
KEY = "ab-key"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs=2, metavar="REV", help="git revisions, e.g. HEAD~1 HEAD")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args(argv)
    bench_latency.REQUESTS = args.requests
    flashc = Path(sys.executable).parent / "flashc"
    with tempfile.TemporaryDirectory(prefix="flashc-ab-") as scratch:
        project = Path(scratch) / "project"
        project.mkdir()
        (project / "app.py").write_text(bench_latency.FLASHC_APP, encoding="utf-8")
        env = {**os.environ, "FLASHC_CACHE_DIR": str(Path(scratch) / "cache")}
        subprocess.run([str(flashc), "build", str(project), "--keep-build", "-q"], check=True, env=env)
        servers = []
        try:
            for n, revision in enumerate(args.revisions):
                root = Path(scratch) / f"side{n}"
                shutil.copytree(project / ".flash" / ".build", root)
                _checkout_runtime(revision, root / "_flashc" / "flashc_runtime")
                servers.append(_Server(root))
            results: list[list[tuple[float, ...]]] = [[] for _ in servers]
            for _ in range(args.rounds):
                for server, rows in zip(servers, results, strict=True):
                    rows.append(server.load())
            medians = [[statistics.median(column) for column in zip(*rows, strict=True)] for rows in results]
            for revision, (rps, p50, p99, http_us, worker_us, errors) in zip(args.revisions, medians, strict=True):
                print(
                    f"{revision}: {rps:,.0f} requests/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                    f"CPU per request: HTTP {http_us:.0f} us, worker {worker_us:.0f} us, errors {errors:g} "
                    f"(medians of {args.rounds} rounds)"
                )
            a, b = medians
            print(
                f"{args.revisions[1]} / {args.revisions[0]}: requests/s {b[0] / a[0]:.2f}, p50 {b[1] / a[1]:.2f}, "
                f"HTTP CPU {b[3] / a[3]:.2f}, worker CPU {b[4] / a[4]:.2f}"
            )
        finally:
            for server in servers:
                server.stop()


def _checkout_runtime(revision: str, target: Path) -> None:
    """Replace the runtime's modules in `target` with those of `revision`."""
    listing = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", f"{revision}:{RUNTIME}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in (n for n in listing if n.endswith(".py") or n.endswith(".json")):
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{revision}:{RUNTIME}/{name}"], capture_output=True, check=True
        ).stdout
        (target / name).write_bytes(source)


class _Server:
    """One endpoint server and its worker, from an unpacked build tree."""

    def __init__(self, root: Path) -> None:
        self.port = bench_latency._free_port()
        env = {**os.environ, "FLASHC_API_KEY": KEY, "PYTHONPATH": str(root / "_flashc")}
        command = [
            sys.executable, "-m", "flashc_runtime.server", "--root", str(root), "--resource", "bench",
            "--endpoint-id", "ab", "--port", str(self.port),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=env, cwd=root, start_new_session=True)
        self.worker = self._wait_for_worker()

    def _wait_for_worker(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
            if children.stdout.split() and self._answers():
                return int(children.stdout.split()[0])
            time.sleep(0.1)
        raise SystemExit("ab_runtime: an endpoint did not start within 30 s")

    def _answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def load(self) -> tuple[float, float, float, float, float, float]:
        before = _cpu(self.process.pid), _cpu(self.worker)
        url = f"http://127.0.0.1:{self.port}/v2/ab/runsync"
        headers = {"Authorization": f"Bearer {KEY}"}
        load = bench_latency._measure("ab", url, headers, {"input": {"args": [1]}}, bench_latency._flashc_check)
        after = _cpu(self.process.pid), _cpu(self.worker)
        count = bench_latency.REQUESTS + bench_latency.WARMUP
        http_us, worker_us = ((a - b) / count * 1e6 for a, b in zip(after, before, strict=True))
        return load.rps, load.percentile_ms(0.5), load.percentile_ms(0.99), http_us, worker_us, float(load.errors)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, 15)
        except ProcessLookupError:
            return
        self.process.wait(timeout=10)


def _cpu(pid: int) -> float:
    """Seconds of CPU `pid` has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
