"""Benchmark the development loop: from saving a one-line change in a worker function to the next
answer of that endpoint under `flashc run`, against a cold `flashc deploy` of the same project.

| metric   | what runs                                                                 | runs |
|----------|---------------------------------------------------------------------------|------|
| baseline | `flashc deploy` after `flashc undeploy` and with `.flash` removed (cold)  | 3    |
| edit     | under `flashc run`: write the change, then call the endpoint until it answers with it | 5 |

Target: edit at most 2 s (median), printed with its ratio to the baseline's best. A run that
never answers with the change, or a flashc that fails, exits 1.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_SECONDS = 2.0
FLASHC = Path(sys.executable).parent / "flashc"

WORKER = """from runpod_flash import Endpoint


@Endpoint(name="echo", cpu="cpu3c-1-2")
def echo(text: str) -> dict:
    return {"text": text, "version": VERSION}


VERSION = 0
"""
OTHER = """from runpod_flash import Endpoint


@Endpoint(name="other", cpu="cpu3c-1-2")
def other(x: int) -> int:
    return x
"""


def _call(root: Path) -> dict[str, object] | None:
    try:
        deployment = json.loads((root / ".flash" / "deployment.json").read_text())
        endpoint = deployment["endpoints"]["echo"]
        request = urllib.request.Request(
            f"{endpoint['url']}/runsync",
            data=json.dumps({"input": {"text": "hi"}}).encode(),
            headers={"Authorization": f"Bearer {deployment['key']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            job = json.loads(answer.read())
        return job.get("output") if job.get("status") == "COMPLETED" else None
    except (OSError, ValueError, KeyError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="flashc-bench-run-"))
    root = folder / "project"
    root.mkdir()
    (root / "worker.py").write_text(WORKER)
    (root / "other.py").write_text(OTHER)
    try:
        cold = []
        for _ in range(3):
            subprocess.run([str(FLASHC), "undeploy", str(root)], capture_output=True, check=False)
            shutil.rmtree(root / ".flash", ignore_errors=True)
            started = time.monotonic()
            done = subprocess.run([str(FLASHC), "deploy", str(root)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"flashc deploy failed:\n{done.stderr}")
            cold.append(time.monotonic() - started)
        subprocess.run([str(FLASHC), "undeploy", str(root)], capture_output=True, check=False)
        run = subprocess.Popen(
            [str(FLASHC), "run", str(root), "--port", str(_free_port())],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert run.stdout is not None
            for line in run.stdout:
                if "watching for changes" in line:
                    break
            else:
                sys.exit("flashc run stopped before it served")
            edits = []
            for version in range(1, 6):
                time.sleep(1.0)  # let the last restart settle: each edit is measured on its own
                started = time.monotonic()
                (root / "worker.py").write_text(WORKER.replace("VERSION = 0", f"VERSION = {version}"))
                while (_call(root) or {}).get("version") != version:
                    if time.monotonic() - started > 60:
                        sys.exit(f"the change to version {version} never answered")
                    time.sleep(0.02)
                edits.append(time.monotonic() - started)
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(timeout=60)
        best_cold, edit = min(cold), statistics.median(edits)
        verdict = "PASS" if edit <= TARGET_SECONDS else "MISS"
        print("flashc run: saved change -> next answer of that endpoint")
        print(f"  baseline: cold flashc deploy (best of 3)   {best_cold:6.2f} s")
        print(f"  edit -> answer (median of 5)                {edit:6.2f} s   <= {TARGET_SECONDS} s  {verdict}")
        print(f"  edit / cold deploy                          {edit / best_cold:6.2f}")
        print(f"  each edit: {', '.join(f'{e:.2f}' for e in edits)} s")
    finally:
        subprocess.run([str(FLASHC), "undeploy", str(root)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
