"""The cost of `flashc run` watching a large project while nothing changes, and how soon it sees a save.

A generated project of 5,000 files (`gen_project`, 20 MB) is watched for `--seconds` (default 6)
twice in one run:

| side     | what looks at the files                                                            |
|----------|------------------------------------------------------------------------------------|
| flashc   | `flashc.devrun.Watcher`: every 0.1 s, or less often when a look is slow            |
| baseline | the same look (`devrun._signatures`) every 0.1 s, as the watcher did before        |

Printed: the share of a core each side's thread used (process CPU time over wall time), their
ratio, the time of one look, and how long after a saved change the watcher returned it. Targets:
flashc at most 0.12 of a core (it waits nine looks' time after each look: a tenth, plus what the
sleeping itself costs); a save seen within 2 s. A missed target is reported.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gen_project import generate

from flashc.devrun import Watcher, _signatures


def cpu_share(watch: Callable[[Callable[[], bool]], object], seconds: float) -> float:
    """The share of a core `watch` (run on a thread until told to stop) used over `seconds`."""
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(stop.is_set,), daemon=True)
    cpu, wall = time.process_time(), time.monotonic()
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(30)
    return (time.process_time() - cpu) / (time.monotonic() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        generate(root, files=5000, target_bytes=20_000_000)
        watcher = Watcher(root)

        def every_tenth(stop: Callable[[], bool]) -> None:
            while not stop():
                time.sleep(0.1)
                _signatures(root)

        flashc = cpu_share(watcher.wait, args.seconds)
        baseline = cpu_share(every_tenth, args.seconds)
        target = next(root.rglob("*.py"))
        saved: list[float] = []

        def save() -> None:
            time.sleep(1.0)
            target.write_text(target.read_text() + "\n")
            saved.append(time.monotonic())

        threading.Thread(target=save, daemon=True).start()
        changed = Watcher(root).wait()
        seen = time.monotonic() - saved[0]
        files = len(_signatures(root))
    print(f"watching {files} files for {args.seconds:g} s each, one look {watcher._look * 1000:.0f} ms")
    print(f"flashc   {flashc:.0%} of a core")
    print(f"baseline {baseline:.0%} of a core (a look every 0.1 s)")
    print(f"ratio flashc / baseline: {flashc / baseline:.2f}")
    print(f"a save seen {seen:.2f} s later ({', '.join(changed)})")
    missed = [name for name, ok in (("CPU <= 0.12 core", flashc <= 0.12), ("save seen <= 2 s", seen <= 2.0)) if not ok]
    print("targets: " + ("all met" if not missed else "missed " + ", ".join(missed)))


if __name__ == "__main__":
    main()
