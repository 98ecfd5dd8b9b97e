"""Deploy targets. The embedded default runs every resource of an archive as an endpoint on this machine.

    archive --unpack--> .flash/deploy/<sha>/ --start one server per resource--> .flash/deployment.json

Each endpoint is `python -m flashc_runtime.server` from the archive's own runtime, on a free
loopback port, in its own process group, with its output in `.flash/logs/<resource>.log`. A key
made per deployment guards every request; it is kept, with the endpoints, ports, process ids,
the archive's sha256 and the config hashes, in `.flash/deployment.json` (mode 600), never in the
archive. Redeploying an unchanged archive restarts nothing; an endpoint restarts only when
something it can run changed: its config or functions, a project file in the import closure of
its functions' modules (the manifest's per-resource `source_fingerprint`, see `closure.py`), any
non-Python file, the runtime, or the installed wheels. A resource that is gone is stopped. An
endpoint left running keeps running from the unpacked archive it started from; that folder is
kept until no endpoint uses it.

An archive is checked before any process is started or stopped: it must unpack, hold a manifest
this runtime reads, the runtime and every resource's handler, and be built for this machine's
Python. A refused archive is a FlashcError naming it, and leaves the running deployment as it
was: its processes, `.flash/deployment.json` and its unpacked folders. A deploy that fails, for
this or because an endpoint cannot start, removes the folder it unpacked the archive into.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from flashc_runtime.manifest import ManifestError, parse_manifest
from flashc_runtime.unpack import UnpackError, unpack

from .._atomic import write_atomic
from ..errors import ProjectError, UsageError

__all__ = ["DEPLOYMENT_FILE", "DeployTarget", "Endpoint", "LocalTarget", "archive_sha256", "read_deployment"]

DEPLOYMENT_FILE = Path(".flash") / "deployment.json"
_START_TIMEOUT = 20.0
_REBUILD = "rebuild the archive with `flashc build`"
_SERVER = "_flashc/flashc_runtime/server.py"  # what every endpoint runs: no archive deploys without it


@dataclasses.dataclass(frozen=True)
class Endpoint:
    resource: str
    kind: str
    endpoint_id: str
    url: str
    pid: int
    config_hash: str
    fingerprint: str  # what the endpoint runs: a change restarts it
    log: str
    root: str  # the unpacked archive it runs from, kept while it runs


class DeployTarget(Protocol):
    """Where archives go: this machine by default; Runpod's cloud is another implementation."""

    def deploy(self, root: Path, archive: Path, sha256: str) -> dict[str, Any]: ...

    def undeploy(self, root: Path) -> list[str]: ...


def archive_sha256(archive: Path) -> str:
    """The sha256 of the archive file at `archive`, read in chunks; UsageError if it is no readable file."""
    if archive.is_dir():
        raise UsageError(f"archive '{archive}' is a folder, not a file", "pass the .tar.gz file `flashc build` wrote")
    if not archive.exists():
        raise UsageError(f"archive '{archive}' does not exist", "build one with `flashc build`")
    if not archive.is_file():
        raise UsageError(f"archive '{archive}' is not a regular file", "pass the .tar.gz file `flashc build` wrote")
    digest = hashlib.sha256()
    try:
        with archive.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise UsageError(f"cannot read archive '{archive}': {exc.strerror or exc}", "check its permissions") from exc
    return digest.hexdigest()


def read_deployment(root: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((root / DEPLOYMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a finished child of ours stays a zombie until reaped: that is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


class LocalTarget:
    """Endpoints as supervised processes on 127.0.0.1, with this machine's Python."""

    def deploy(self, root: Path, archive: Path, sha256: str) -> dict[str, Any]:
        previous = read_deployment(root) or {}
        in_use = {Path(previous["unpacked"])} if "unpacked" in previous else set()
        in_use |= {Path(e["root"]) for e in previous.get("endpoints", {}).values() if "root" in e}
        unpacked = root / ".flash" / "deploy" / sha256[:16]
        try:
            if not unpacked.is_dir():
                try:
                    unpack(archive, unpacked)
                except UnpackError as exc:
                    raise ProjectError(str(exc), _REBUILD) from exc
            manifest = _checked(archive, unpacked)
            return self._run(root, unpacked, manifest, previous, sha256)
        except BaseException:
            if unpacked.resolve() not in {p.resolve() for p in in_use}:  # new, or left by an earlier failure
                shutil.rmtree(unpacked, ignore_errors=True)
                with contextlib.suppress(OSError):
                    unpacked.parent.rmdir()  # only when nothing else is in it
            raise

    def _run(
        self, root: Path, unpacked: Path, manifest: Mapping[str, Any], previous: Mapping[str, Any], sha256: str
    ) -> dict[str, Any]:
        """Start, keep and stop endpoints so that they run `manifest`; the new deployment state."""
        state_dir = root / ".flash"
        key = previous.get("key") or secrets.token_urlsafe(32)
        secret = previous.get("secret") or secrets.token_hex(32)  # signs pickled calls; never in the archive
        old = {name: e for name, e in previous.get("endpoints", {}).items()}
        # Everything that reads the archive happens before the first process is stopped or started.
        fingerprints = {name: _fingerprint(manifest, name, unpacked) for name in manifest["resources"]}
        endpoints: dict[str, dict[str, Any]] = {}
        try:
            for name, resource in sorted(manifest["resources"].items()):
                kept = old.get(name)
                if kept and kept["fingerprint"] == fingerprints[name] and "root" in kept and alive(kept["pid"]):
                    endpoints[name] = kept
                    continue
                if kept:
                    _stop(kept["pid"])
                started = self._start(root, unpacked, name, resource, key, secret, fingerprints[name])
                endpoints[name] = dataclasses.asdict(started)
            state = {
                "key": key,
                "secret": secret,
                "archive_sha256": sha256,
                "unpacked": str(unpacked),
                "endpoints": endpoints,
            }
            state_dir.mkdir(exist_ok=True)
            write_atomic(root / DEPLOYMENT_FILE, json.dumps(state, indent=2, sort_keys=True).encode(), mode=0o600)
        except BaseException:
            # Leave nothing running that deployment.json would not know about.
            for name, started_now in endpoints.items():
                if started_now is not old.get(name):
                    _stop(started_now["pid"])
            raise
        for name, gone in old.items():
            if name not in endpoints:
                _stop(gone["pid"])
        _prune_unpacked(state_dir / "deploy", keep={unpacked, *(Path(e["root"]) for e in endpoints.values())})
        return state

    def _start(
        self,
        root: Path,
        unpacked: Path,
        name: str,
        resource: Mapping[str, Any],
        key: str,
        secret: str,
        fingerprint: str,
    ) -> Endpoint:
        port = _free_port()
        endpoint_id = f"local-{resource['handler_module'].rsplit('.', 1)[-1].removeprefix('handler_')}"
        logs = root / ".flash" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{endpoint_id.removeprefix('local-')}.log"
        env = {
            **os.environ,
            "FLASHC_API_KEY": key,
            "FLASHC_PICKLE_SECRET": secret,
            "PYTHONPATH": str(unpacked / "_flashc"),
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable, "-m", "flashc_runtime.server", "--root", str(unpacked), "--resource", name,
            "--endpoint-id", endpoint_id, "--port", str(port),
        ]  # fmt: skip
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=unpacked
            )
        url = f"http://127.0.0.1:{port}"
        _wait_until_listening(port, process, log)
        base = url if resource["kind"] == "load_balanced" else f"{url}/v2/{endpoint_id}"
        return Endpoint(
            name,
            resource["kind"],
            endpoint_id,
            base,
            process.pid,
            resource["config_hash"],
            fingerprint,
            str(log),
            str(unpacked),
        )

    def undeploy(self, root: Path) -> list[str]:
        state = read_deployment(root)
        if state is None:
            return []
        stopped = []
        for name, endpoint in sorted(state.get("endpoints", {}).items()):
            _stop(endpoint["pid"])
            stopped.append(name)
        (root / DEPLOYMENT_FILE).unlink(missing_ok=True)
        shutil.rmtree(root / ".flash" / "deploy", ignore_errors=True)
        return stopped


def _checked(archive: Path, unpacked: Path) -> dict[str, Any]:
    """The manifest of the archive unpacked at `unpacked`, once the archive is known to be deployable here."""
    path = unpacked / "flash_manifest.json"
    if not path.is_file():
        raise ProjectError(f"archive '{archive}' has no flash_manifest.json: flashc did not build it", _REBUILD)
    try:
        manifest = parse_manifest(path.read_bytes(), f"the manifest of archive '{archive}'")
    except ManifestError as exc:
        raise ProjectError(str(exc), _REBUILD) from exc
    except OSError as exc:
        raise ProjectError(f"cannot read the manifest of archive '{archive}': {exc.strerror or exc}", _REBUILD) from exc
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    built_for = manifest["target"]["python_version"]
    if built_for != here:
        raise UsageError(
            f"archive '{archive}' was built for CPython {built_for}, but this machine runs {here}",
            f"rebuild it for this machine: flashc build --python-version {here}",
        )
    resources = manifest["resources"].values()
    unknown = sorted({f for r in resources for f in r["functions"] if f not in manifest["functions"]})
    if unknown:
        raise ProjectError(
            f"the manifest of archive '{archive}' is not valid: resources name unknown functions: {', '.join(unknown)}",
            _REBUILD,
        )
    missing = [p for p in (_SERVER, *sorted(r["handler_path"] for r in resources)) if not (unpacked / p).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ProjectError(f"archive '{archive}' is incomplete: it has no {shown}", _REBUILD)
    return manifest


def _fingerprint(manifest: Mapping[str, Any], name: str, unpacked: Path) -> str:
    """What a resource's endpoint runs: its config and functions, the project files it can run
    (the manifest's per-resource fingerprint), the runtime and handlers, and the installed wheels."""
    resource = manifest["resources"][name]
    functions = {f: manifest["functions"][f] for f in resource["functions"]}
    digest = hashlib.sha256(json.dumps([resource, functions], sort_keys=True).encode())
    shipped = unpacked / "_flashc"
    sites = {shipped / "site", shipped / "sites"}  # every resource's site folder, shared or its own
    site = unpacked / resource["site"]
    handlers = shipped / "flashc_handlers"
    own_handler = unpacked / resource["handler_path"]
    generated = sorted(
        p
        for top in shipped.iterdir()
        if top not in sites  # the wheels count through their RECORDs, without walking every file
        for p in (top.rglob("*") if top.is_dir() else [top])
        if p.is_file() and "__pycache__" not in p.parts and (handlers not in p.parents or p == own_handler)
    )
    records = sorted(site.glob("*.dist-info/RECORD")) if site.is_dir() else []
    for path in [*generated, *records]:
        digest.update(str(path.relative_to(unpacked)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            raise ProjectError(
                f"the endpoint process exited with status {process.returncode} while starting:\n" + "\n".join(tail),
                f"see {log}",
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    _stop(process.pid)
    raise ProjectError(f"the endpoint did not start listening within {_START_TIMEOUT:g} s", f"see {log}")


def _stop(pid: int) -> None:
    """Stop an endpoint's process group: TERM, then KILL if it lingers; reap it if it is our child."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if not alive(pid):
            break
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _prune_unpacked(folder: Path, keep: set[Path]) -> None:
    for old in folder.iterdir() if folder.is_dir() else ():
        if old not in keep:
            shutil.rmtree(old, ignore_errors=True)
