"""`flashc run`: the development loop. Deploy the resources locally, serve the project's API app,
and on every saved change rebuild, redeploy what changed and reload the app.

    project --build--> archive --LocalTarget.deploy--> endpoints (unchanged ones keep running)
            --app server (uvicorn, the CPU image's environment)--> http://localhost:8888, /docs
    a change --> the same again; a build with errors is shown and the last good deployment serves on

The API app (`main.py`'s `app`, or `[tool.flashc] serve = "module:attr"`) runs where a worker of
Runpod's load-balanced CPU image would: that image's environment (FastAPI, uvicorn) with flashc's
runtime as the SDK, so its routes' `await gpu_hello(...)` go to the local endpoints. Changes are
found by polling the project's files (stat signatures), which needs no extra dependency and
works on every file system.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import flashc_runtime

from .errors import FlashcError, UsageError
from .sources import snapshot_project

__all__ = ["AppServer", "Watcher", "app_target", "changed_files", "loop", "poll_interval", "python_of_lb_image"]

_POLL = 0.1  # seconds between two looks at the project's files


def app_target(root: Path, serve: str | None) -> tuple[str, str] | None:
    """(module, attribute) of the API app to serve: `serve` ("main:app"), else `main.py`'s `app`;
    None when the project has none (then only the endpoints run)."""
    if serve:
        module, _, attr = serve.partition(":")
        if not module or not attr:
            raise UsageError(f"serve = {serve!r} is not 'module:attribute'", 'write serve = "main:app"')
        return module, attr
    return ("main", "app") if (root / "main.py").is_file() else None


Signature = tuple[int, int, int]


def _signatures(root: Path) -> dict[str, Signature]:
    """Each project file (after the ignore rules) and its stat signature."""
    snapshot = snapshot_project(root)
    found: dict[str, Signature] = {}
    for path in snapshot.files:
        try:
            st = os.stat(root / path)
        except OSError:
            continue
        found[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return found


def changed_files(before: Mapping[str, Signature], after: Mapping[str, Signature]) -> list[str]:
    """The files added, removed or changed between two looks."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def poll_interval(poll: float, look: float) -> float:
    """Seconds between two looks at the project: `poll`, or longer when one look (`look` seconds of
    work) is slow, so that watching takes at most a tenth of a core (a 5,000-file project takes
    about 70 ms a look: every 0.63 s, not every 0.1 s)."""
    return max(poll, 9 * look)


@dataclasses.dataclass
class Watcher:
    """Polls the project; `wait` returns the files that changed, once they have settled."""

    root: Path
    poll: float = _POLL
    _last: dict[str, Signature] = dataclasses.field(default_factory=dict)
    _look: float = 0.0  # seconds the last look took

    def __post_init__(self) -> None:
        self._last = self._signatures()

    def _signatures(self) -> dict[str, Signature]:
        started = time.monotonic()
        found = _signatures(self.root)
        self._look = time.monotonic() - started
        return found

    def wait(self, stop: Callable[[], bool] = lambda: False) -> list[str]:
        while not stop():
            time.sleep(poll_interval(self.poll, self._look))
            now = self._signatures()
            changed = changed_files(self._last, now)
            if changed:
                # An editor may write in several steps: take what is there one poll later.
                time.sleep(self.poll / 2)
                settled = self._signatures()
                self._last = settled
                return sorted(set(changed) | set(changed_files(now, settled)))
        return []


class AppServer:
    """The project's API app under uvicorn, in its own process group (so a stop leaves nothing)."""

    def __init__(self, python: Path, root: Path, target: tuple[str, str], host: str, port: int) -> None:
        self.python, self.root, self.target, self.host, self.port = python, root, target, host, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        runtime = Path(flashc_runtime.__file__).resolve().parent.parent
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
            "PYTHONPATH": os.pathsep.join([str(self.root), str(runtime)]),
            "PYTHONUNBUFFERED": "1",
            "FLASHC_TRACE_CALLS": "1",  # each remote call the app makes, with its status and time
        }
        module, attr = self.target
        self.process = subprocess.Popen(
            [str(self.python), "-m", "uvicorn", f"{module}:{attr}", "--host", self.host, "--port", str(self.port)],
            cwd=self.root,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only sets a signal: no lock is taken in the child
        )

    def wait_ready(self, timeout: float = 30) -> bool:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex((self.host if self.host != "0.0.0.0" else "127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except (ProcessLookupError, PermissionError):
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _die_with_parent() -> None:
    """In the child: on Linux, be sent SIGTERM when `flashc run` dies, even by SIGKILL, so that no
    app server outlives it (elsewhere, `stop` is what ends it)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def loop(
    build_and_deploy: Callable[[], Any],
    watcher: Watcher,
    on_change: Callable[[list[str]], None],
    stop: Callable[[], bool],
) -> Iterator[Any]:
    """Yield the result of each rebuild-and-redeploy after a change, until `stop` says so; a
    FlashcError (a build with errors) is yielded, not raised, so the last good deployment serves on."""
    while not stop():
        changed = watcher.wait(stop)
        if not changed:
            continue
        on_change(changed)
        try:
            yield build_and_deploy()
        except FlashcError as exc:
            yield exc


def python_of_lb_image(settings: Any) -> Path:
    """The Python of the environment Runpod's load-balanced CPU image has (FastAPI, uvicorn), made
    once like the endpoints'."""
    from .config import image_python
    from .deploy.envs import ensure_env, env_spec
    from .deploy.local import _default_uv, _interpreter
    from .profiles import profiles

    image = profiles()["runpod-lb-cpu"]
    python = image_python()
    spec = env_spec(python, {d.name: d.version for d in image.distributions.values()}, [image.description])
    env = ensure_env(
        spec,
        _interpreter(python),
        cache_dir=settings.cache_dir,
        index=settings.index,
        uv=_default_uv(settings.cache_dir),
        progress=settings.progress,
    )
    return Path(env.python)
