"""Deploy targets. The embedded default runs every resource of an archive as an endpoint on this machine.

    archive --unpack--> .flash/deploy/<sha>/ --start one server per resource--> .flash/deployment.json

Each endpoint is `python -m flashc_runtime.server` from the archive's own runtime, on a free
loopback port, in its own process group. Its log is `.flash/logs/<resource>.log` (the resource's
name made an identifier; `.flash/logs/endpoints.json` says which file is whose): what its
functions print and log, each line with its time and job (`flashc_runtime/logs.py` has the
format), written by the endpoint process, which renames it `<resource>.log.1` past 5 MB. Logs
stay after `undeploy`, so the last deployment's can still be read; a redeploy appends. Its
Python is the environment of its worker image (`envs.py`: the image's CPython and distributions,
never flashc's own), its variables are the worker's (`process.py`), a network volume is at
/runpod-volume (`volumes.py`), and the apt packages it declares are looked for on this machine
(`system.py`). All of that is decided before any process is started or stopped. A key
made per deployment guards every request; it is kept, with the endpoints, ports, process ids,
the archive's sha256 and the config hashes, in `.flash/deployment.json` (mode 600), never in the
archive. Redeploying an unchanged archive restarts nothing; an endpoint restarts only when
something it can run changed: its config or functions, a project file in the import closure of
its functions' modules (the manifest's per-resource `source_fingerprint`, see `closure.py`), any
non-Python file, the runtime, or the installed wheels. A resource that is gone is stopped. An
endpoint left running keeps running from the unpacked archive it started from; that folder is
kept until no endpoint uses it.

An archive is checked before any process is started or stopped: it must unpack, hold a manifest
this runtime reads, the runtime and every resource's handler, and name worker images flashc
knows; this machine must have its Python. A refused archive is a FlashcError naming it, and
leaves the running deployment as it was: its processes, `.flash/deployment.json` and its
unpacked folders. A deploy that fails, for
this or because an endpoint cannot start, removes the folder it unpacked the archive into.

A deploy and an undeploy hold `.flash/deploy.lock` (an exclusive `flock`) from reading
`.flash/deployment.json` to writing or removing it: one of the same project that starts meanwhile
says it waits, then works from the state the first left, as if it had run after it. Each
endpoint's record knows its process by more than its pid (`_processes.py`): a process that is not
the one flashc started is reported stopped and never signalled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from flashc_runtime.auth import PROOF_HEADER, answer_problem, request_auth
from flashc_runtime.logs import parse_line
from flashc_runtime.manifest import ManifestError, parse_manifest
from flashc_runtime.unpack import UnpackError, unpack

from .._atomic import write_atomic
from ..deps.requirements import IndexOptions
from ..envvars import read_dotenv
from ..errors import ProjectError, UsageError
from ..profiles import CUSTOM, Profile, profile_named
from ._lock import locked
from ._processes import TOKEN_ENV, identified, identify, running, same_process, stop, stop_group
from .envs import TORCH_FAMILY, Env, EnvSpec, TorchUnavailable, ensure_env, env_spec
from .interpreters import Interpreter, find_interpreter
from .process import SYSTEM_PATH, endpoint_environment, resources_env
from .system import describe, endpoint_probe, install_hint, missing_packages
from .volumes import MOUNT_POINT, mount_problem, volume_folder, volume_of, wrap

__all__ = [
    "DEPLOYMENT_FILE",
    "LOGS",
    "DeployTarget",
    "Endpoint",
    "LocalSettings",
    "LocalTarget",
    "archive_sha256",
    "endpoint_health",
    "endpoint_report",
    "log_file",
    "read_deployment",
    "read_log",
]

Progress = Callable[[str], None]

DEPLOYMENT_FILE = Path(".flash") / "deployment.json"
_LOCK_FILE = Path(".flash") / "deploy.lock"  # held by a deploy or undeploy while it changes the deployment
_WAITING = "waiting for another deploy of this project to finish"
LOGS = Path(".flash") / "logs"  # kept after undeploy
_LOG_INDEX = "endpoints.json"  # in LOGS: each resource's log file, by name
_START_TIMEOUT = 20.0
_PER_DEPLOY = frozenset({"FLASHC_API_KEY", "FLASHC_PICKLE_SECRET", "PYTHONPATH"})
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
    # Which process `pid` is (see _processes.py): None where there is no /proc.
    started: int | None  # its start time, in clock ticks after boot
    boot_id: str | None
    token: str  # FLASHC_PROCESS_TOKEN in its environment


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


@dataclasses.dataclass(frozen=True)
class LocalSettings:
    """What a local deploy needs besides the archive: flashc's cache (the environments live there),
    where distributions come from, the deploying shell's variables (for `${NAME}` in env), and
    where to say what happens: `progress` for environments being made and warnings, `steps` for
    each step of a deploy (unpacking, environments, starting and waiting for each endpoint), one
    line each."""

    cache_dir: Path
    index: IndexOptions = dataclasses.field(default_factory=IndexOptions)
    variables: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(os.environ))
    progress: Progress | None = None
    steps: Progress | None = None
    uv: Any = None  # a deps.uv.UvRunner; default: the uv installed with flashc
    # Apps ("module:attr") the caller serves itself (`flashc run`'s app server): a resource serving
    # one of them (a mothership's) is not started, so the app does not run twice.
    apps_served: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class _Launch:
    """How one endpoint process starts: decided for every resource before any starts."""

    command: tuple[str, ...]  # before the runtime's own arguments
    env: Mapping[str, str]
    digest: str  # what of this changes the running endpoint: a change restarts it


class LocalTarget:
    """Endpoints as supervised processes on 127.0.0.1, each in its worker image's environment."""

    def __init__(self, settings: LocalSettings | None = None) -> None:
        from ..config import default_cache_dir

        self.settings = settings or LocalSettings(default_cache_dir())
        self.previous: dict[str, Any] = {}  # the deployment the last `deploy` found, read under the lock

    def deploy(self, root: Path, archive: Path, sha256: str) -> dict[str, Any]:
        """Run `archive` (its sha256 given): the new deployment state, also written to
        `.flash/deployment.json`. Waits for a deploy or undeploy of the project under way."""
        (root / ".flash").mkdir(parents=True, exist_ok=True)
        with self._locked(root):
            self.previous = read_deployment(root) or {}
            return self._deploy(root, archive, sha256, self.previous)

    def _locked(self, root: Path) -> contextlib.AbstractContextManager[None]:
        return locked(root / _LOCK_FILE, _WAITING, self.settings.steps or self.settings.progress)

    def _deploy(self, root: Path, archive: Path, sha256: str, previous: Mapping[str, Any]) -> dict[str, Any]:
        in_use = {Path(previous["unpacked"])} if "unpacked" in previous else set()
        in_use |= {Path(e["root"]) for e in previous.get("endpoints", {}).values() if "root" in e}
        unpacked = root / ".flash" / "deploy" / sha256[:16]
        try:
            if not unpacked.is_dir():
                self._step(f"unpacking the archive into {unpacked.relative_to(root)}")
                try:
                    unpack(archive, unpacked)
                except UnpackError as exc:
                    raise ProjectError(str(exc), _REBUILD) from exc
            manifest = _checked(archive, unpacked)
            if self.settings.apps_served:
                kept = {n: r for n, r in manifest["resources"].items() if r.get("app") not in self.settings.apps_served}
                manifest = {**manifest, "resources": kept}
            key = previous.get("key") or secrets.token_urlsafe(32)
            secret = previous.get("secret") or secrets.token_hex(32)  # signs pickled calls; never in the archive
            launches = self._prepare(root, unpacked, manifest, key, secret)
            return self._run(root, unpacked, manifest, previous, sha256, launches, key, secret)
        except BaseException:
            if unpacked.resolve() not in {p.resolve() for p in in_use}:  # new, or left by an earlier failure
                shutil.rmtree(unpacked, ignore_errors=True)
                with contextlib.suppress(OSError):
                    unpacked.parent.rmdir()  # only when nothing else is in it
            raise

    def _step(self, line: str) -> None:
        if self.settings.steps is not None:
            self.settings.steps(line)

    def _prepare(
        self, root: Path, unpacked: Path, manifest: Mapping[str, Any], key: str, secret: str
    ) -> dict[str, _Launch]:
        """How each endpoint will start: its environment made, its variables filled in, its volume and
        apt packages looked at. Raises before anything runs when an endpoint could not start right."""
        settings = self.settings
        say = settings.progress or (lambda line: None)
        resources: Mapping[str, Mapping[str, Any]] = manifest["resources"]
        images = _images(resources)
        python = manifest["target"]["python_version"]
        self._step(f"preparing the endpoints' environments (CPython {python})")
        uv = settings.uv or _default_uv(settings.cache_dir)
        interpreter = _interpreter(python)
        envs = self._environments(resources, images, python, interpreter, uv, manifest)
        wanted = {name: r["system_dependencies"] for name, r in resources.items()}
        missing = missing_packages(wanted, endpoint_probe(SYSTEM_PATH))  # what the endpoints' PATH finds
        if missing:
            say(f"warning: {describe(missing)}; functions that run them will fail here (not on Runpod): "
                f"{install_hint(missing)}")  # fmt: skip
        filled = resources_env(resources, deploy_variables(root, settings.variables))
        own = sorted(name for name, image in images.items() if image.name == CUSTOM)
        if own:
            say(f"warning: {', '.join(own)} run on images of their own, which flashc cannot reproduce: their endpoints "
                "run in a bare CPython with the archive's dependencies only")  # fmt: skip
        volumes = {name: volume for name, r in resources.items() if (volume := volume_of(r["config"]))}
        problem = mount_problem() if volumes else None
        if problem is not None:
            say(f"warning: {', '.join(sorted(volumes))} use a network volume, but {problem}: their endpoints start "
                f"without {MOUNT_POINT}, and code that reads it will fail here (not on Runpod)")  # fmt: skip
        launches = {}
        for name, resource in resources.items():
            env = envs[name]
            endpoint_id = _endpoint_id(resource)
            image_env = dict(images[name].env)
            if "HF_HOME" in image_env:  # the image's cache folder, here one shared by every project
                image_env["HF_HOME"] = str(settings.cache_dir / "hf-home")
            runpod = {
                "RUNPOD_ENDPOINT_ID": endpoint_id,
                "RUNPOD_POD_ID": f"{endpoint_id}-worker",
                "FLASH_RESOURCE_NAME": name,
                **({"FLASH_ENDPOINT_TYPE": "lb"} if resource["kind"] == "load_balanced" else {}),
            }
            flashc = {
                "FLASHC_API_KEY": key,
                "FLASHC_PICKLE_SECRET": secret,
                "PYTHONPATH": str(unpacked / "_flashc"),
                "PYTHONUNBUFFERED": "1",
            }
            process_env = endpoint_environment(
                env_bin=env.path / "bin",
                home=os.environ.get("HOME", "/root"),
                image=image_env,
                runpod=runpod,
                resource=filled[name],
                flashc=flashc,
            )
            command: list[str] = [str(env.python), "-m", "flashc_runtime.server"]
            if name in volumes and problem is None:
                command = wrap(command, volume_folder(root, volumes[name]))
            # What restarts the endpoint when it changes: its interpreter and variables (a changed secret
            # too, through its digest), but not where this archive is unpacked: the archive's own
            # fingerprint says whether what it runs changed.
            seen = {k: v for k, v in process_env.items() if k not in _PER_DEPLOY}
            digest = hashlib.sha256(json.dumps([command, seen], sort_keys=True).encode()).hexdigest()
            launches[name] = _Launch(tuple(command), process_env, digest)
        return launches

    def _environments(
        self,
        resources: Mapping[str, Mapping[str, Any]],
        images: Mapping[str, Profile],
        python: str,
        interpreter: Interpreter,
        uv: Any,
        manifest: Mapping[str, Any],
    ) -> dict[str, Env]:
        """Each resource's environment: one per set of distributions, torch in it when an endpoint needs it."""
        specs: dict[str, EnvSpec] = {}
        for name in resources:
            image = images[name]
            versions = {d.name: d.version for d in image.distributions.values()}
            same = [n for n in resources if images[n].distributions == image.distributions]
            torch = {t for n in same for t in resources[n]["provided"] if t in TORCH_FAMILY}
            described = [images[n].description for n in resources if images[n].distributions == image.distributions]
            specs[name] = env_spec(python, versions, described, torch)
        made: dict[EnvSpec, Env] = {}
        for spec in sorted(set(specs.values()), key=lambda s: s.images):
            try:
                made[spec] = ensure_env(
                    spec,
                    interpreter,
                    cache_dir=self.settings.cache_dir,
                    index=self.settings.index,
                    uv=uv,
                    progress=self.settings.progress,
                )
            except TorchUnavailable as exc:
                needing = sorted(
                    n for n, s in specs.items() if s == spec and set(resources[n]["provided"]) & set(TORCH_FAMILY)
                )
                functions = sorted(f for n in needing for f in resources[n]["functions"])
                raise ProjectError(
                    f"{exc.message}; so these functions would fail: {', '.join(functions)} "
                    f"(of {', '.join(needing)}, whose worker image has torch)",
                    exc.hint,
                ) from exc
        return {name: made[spec] for name, spec in specs.items()}

    def _run(
        self,
        root: Path,
        unpacked: Path,
        manifest: Mapping[str, Any],
        previous: Mapping[str, Any],
        sha256: str,
        launches: Mapping[str, _Launch],
        key: str,
        secret: str,
    ) -> dict[str, Any]:
        """Start, keep and stop endpoints so that they run `manifest`; the new deployment state."""
        state_dir = root / ".flash"
        old = {name: e for name, e in previous.get("endpoints", {}).items()}
        # Everything that reads the archive happens before the first process is stopped or started.
        fingerprints = {
            name: hashlib.sha256((_fingerprint(manifest, name, unpacked) + launches[name].digest).encode()).hexdigest()
            for name in manifest["resources"]
        }
        endpoints: dict[str, dict[str, Any]] = {}
        try:
            for name, resource in sorted(manifest["resources"].items()):
                kept = old.get(name)
                if kept and kept["fingerprint"] == fingerprints[name] and "root" in kept and running(kept):
                    endpoints[name] = identified(kept)
                    continue
                if kept:
                    self._step(f"stopping endpoint {name}: what it runs changed")
                    stop(kept)
                self._step(f"starting endpoint {name}")
                started = self._start(root, unpacked, name, resource, launches[name], fingerprints[name])
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
                if not same_process(old.get(name) or {}, started_now):
                    stop(started_now)
            raise
        for name, gone in old.items():
            if name not in endpoints:
                self._step(f"stopping endpoint {name}: its resource is gone")
                stop(gone)
        _prune_unpacked(state_dir / "deploy", keep={unpacked, *(Path(e["root"]) for e in endpoints.values())})
        return state

    def _start(
        self,
        root: Path,
        unpacked: Path,
        name: str,
        resource: Mapping[str, Any],
        launch: _Launch,
        fingerprint: str,
    ) -> Endpoint:
        port = _free_port()
        endpoint_id = _endpoint_id(resource)
        log = root / LOGS / f"{endpoint_id.removeprefix('local-')}.log"
        _index_log(root, name, log)
        command = [
            *launch.command, "--root", str(unpacked), "--resource", name, "--endpoint-id", endpoint_id,
            "--port", str(port), "--log", str(log),
        ]  # fmt: skip
        # The process writes its log itself; its own stdout and stderr go there too, for what
        # Python says before the runtime runs (a crash at start).
        token = secrets.token_hex(16)
        with open(log, "ab") as out:
            written = out.tell()
            process = subprocess.Popen(
                command,
                env={**launch.env, TOKEN_ENV: token},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=unpacked,
            )
        identity = identify(process.pid, token)
        url = f"http://127.0.0.1:{port}"
        self._step(f"waiting for endpoint {name} to answer")
        _wait_until_listening(port, process, log, written)
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
            identity["started"],
            identity["boot_id"],
            token,
        )

    def undeploy(self, root: Path) -> list[str]:
        """Stop every endpoint of the deployment (those whose process is still theirs: see
        `_processes.py`) and forget it; the names of its endpoints. Waits for a deploy under way."""
        if not (root / ".flash").is_dir():
            return []  # never deployed: no lock file to make
        with self._locked(root):
            state = read_deployment(root)
            if state is None:
                return []
            stopped = []
            for name, endpoint in sorted(state.get("endpoints", {}).items()):
                stop(endpoint)
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
    resources = manifest["resources"].values()
    # Names from the manifest become paths (the log file, the handler, the site folder): an archive
    # made by hand could make them climb out of .flash/ (`x./../../outside`). group.py makes them so.
    unsafe = sorted(
        f"{field} {r[field]!r}"
        for r in resources
        for field, ok in (
            ("handler_module", _HANDLER_MODULE.fullmatch(r["handler_module"])),
            ("handler_path", r["handler_path"] == _handler_path(r["handler_module"])),
            ("site", _SITE.fullmatch(r["site"])),
        )
        if not ok
    )
    if unsafe:
        shown = ", ".join(unsafe[:3]) + (f" and {len(unsafe) - 3} more" if len(unsafe) > 3 else "")
        raise ProjectError(
            f"the manifest of archive '{archive}' is not valid: names that flashc does not write: {shown}", _REBUILD
        )
    unknown_images = sorted({r["image"] for r in resources if not _known_image(r)})
    if unknown_images:
        raise ProjectError(
            f"archive '{archive}' names worker images this flashc does not know: {', '.join(unknown_images)}",
            _REBUILD,
        )
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


_HANDLER_MODULE = re.compile(r"flashc_handlers\.handler_[a-z0-9_]+")
_SITE = re.compile(r"_flashc/(site|sites/[a-z0-9_]+)")


def _handler_path(module: str) -> str:
    return "_flashc/" + module.replace(".", "/") + ".py"


def _endpoint_id(resource: Mapping[str, Any]) -> str:
    return f"local-{resource['handler_module'].rsplit('.', 1)[-1].removeprefix('handler_')}"


def _images(resources: Mapping[str, Mapping[str, Any]]) -> dict[str, Profile]:
    return {name: profile_named(r["image"], r["config"], r["kind"], r["compute"]) for name, r in resources.items()}


def _known_image(resource: Mapping[str, Any]) -> bool:
    try:
        profile_named(resource["image"], resource["config"], resource["kind"], resource["compute"])
    except KeyError:
        return False
    return True


_INTERPRETERS: dict[str, Interpreter] = {}


def _interpreter(python: str) -> Interpreter:
    """The CPython of the archive's version on this machine, found once per process."""
    if python not in _INTERPRETERS:
        from ..deps.uv import _uv_binary

        _INTERPRETERS[python] = find_interpreter(python, uv=_uv_binary())
    return _INTERPRETERS[python]


def _default_uv(cache_dir: Path) -> Any:
    from ..deps.uv import default_uv

    return default_uv(cache_dir / "uv")


def deploy_variables(root: Path, shell: Mapping[str, str]) -> dict[str, str]:
    """What `${NAME}` in env and flashc's own settings (FLASH_PORT...) read: the project's `.env`,
    then the shell, which wins, as with python-dotenv."""
    return {**_dotenv(root, shell), **shell}


def _dotenv(root: Path, shell: Mapping[str, str]) -> dict[str, str]:
    """The project's `.env` (never packed into the archive), or nothing."""
    try:
        return read_dotenv((root / ".env").read_text(encoding="utf-8"), shell)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {root / '.env'}: {exc}", "check the file") from exc


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


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path, written: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = _texts(log, written)[-15:]
            raise ProjectError(
                f"the endpoint process exited with status {process.returncode} while starting:\n" + "\n".join(tail),
                f"see {log}",
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    stop_group(process.pid, lambda: process.poll() is None)
    raise ProjectError(f"the endpoint did not start listening within {_START_TIMEOUT:g} s", f"see {log}")


def _prune_unpacked(folder: Path, keep: set[Path]) -> None:
    for old in folder.iterdir() if folder.is_dir() else ():
        if old not in keep:
            shutil.rmtree(old, ignore_errors=True)


def _texts(log: Path, start: int) -> list[str]:
    """The texts of the lines the log got from byte `start` on, without their time, job and source."""
    try:
        with open(log, "rb") as file:
            file.seek(start)
            lines = file.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return []
    return [parsed[3] if (parsed := parse_line(line)) else line for line in lines]


def _index_log(root: Path, name: str, log: Path) -> None:
    """Note which file is the log of resource `name`, where `log_file` finds it after undeploy."""
    log.parent.mkdir(parents=True, exist_ok=True)
    index = _read_index(root)
    if index.get(name) != log.name:
        index[name] = log.name
        write_atomic(log.parent / _LOG_INDEX, json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")


def _read_index(root: Path) -> dict[str, str]:
    try:
        index = json.loads((root / LOGS / _LOG_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in index.items() if isinstance(v, str)} if isinstance(index, dict) else {}


def log_file(root: Path, resource: str) -> Path:
    """The log file of `resource`'s endpoint (the one before, rotated away, is `<it>.1`): of the
    running deployment, else of the last one that had it. UsageError when no deployment had it."""
    endpoints = (read_deployment(root) or {}).get("endpoints", {})
    if resource in endpoints:
        return Path(endpoints[resource]["log"])
    index = _read_index(root)
    if resource in index:
        return root / LOGS / index[resource]
    known = ", ".join(sorted({*endpoints, *index})) or "none"
    raise UsageError(f"no deployed resource '{resource}'", f"resources deployed or with logs here: {known}")


def read_log(log: Path, follow: bool = False, poll: float = 0.2) -> Iterator[bytes]:
    """The bytes of the log at `log`, oldest first (its rotated file, then it); with `follow`, then
    what is written to it as it comes, across rotations, until the caller stops (Ctrl-C)."""
    older = log.with_name(log.name + ".1")
    if older.is_file():
        with open(older, "rb") as file:
            while chunk := file.read(1 << 16):
                yield chunk
    handle = None
    try:
        with contextlib.suppress(FileNotFoundError):
            handle = open(log, "rb")  # noqa: SIM115 - closed below, or replaced when the file is
        while True:
            chunk = handle.read(1 << 16) if handle is not None else b""
            if chunk:
                yield chunk
                continue
            if not follow:
                return
            try:
                inode = os.stat(log).st_ino
            except FileNotFoundError:
                inode = None
            if inode is not None and (handle is None or inode != os.fstat(handle.fileno()).st_ino):
                # Rotated (or made at last): the rest of the old file, then the new one from its start.
                if handle is not None:
                    yield handle.read()
                    handle.close()
                handle = open(log, "rb")  # noqa: SIM115
                continue
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def endpoint_health(endpoint: Mapping[str, Any], key: str, timeout: float = 2.0) -> str:
    """`healthy`, `unhealthy` (it answers, but not 200), `not answering` or `stopped` (no process,
    or not the one flashc started: its pid was reused)."""
    if not running(endpoint):
        return "stopped"
    import httpx

    probe = endpoint["url"] + ("/ping" if endpoint["kind"] == "load_balanced" else "/health")
    # The key itself is never sent: a proof of it, and the answer must prove it comes from the endpoint.
    authorization, nonce = request_auth(key, endpoint["endpoint_id"], "GET", httpx.URL(probe).path, {}, b"")
    try:
        answer = httpx.get(probe, headers={"Authorization": authorization}, timeout=timeout)
    except httpx.HTTPError:
        return "not answering"
    proof = answer.headers.get(PROOF_HEADER)
    if answer_problem(proof, key, endpoint["endpoint_id"], nonce, answer.status_code, answer.content) is not None:
        return "unhealthy"
    return "healthy" if answer.status_code == 200 else "unhealthy"


def endpoint_report(state: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each endpoint of a deployment, as `status --json` and `deploy --json` give it: name, kind,
    URL, process id, health, endpoint id and log file; given the deployment before a deploy,
    also what the deploy did (`started`, `restarted` or `unchanged`). Never the key."""
    before = (previous or {}).get("endpoints", {})
    report = []
    for name, endpoint in sorted(state["endpoints"].items()):
        item = {
            "name": name,
            "kind": endpoint["kind"],
            "url": endpoint["url"],
            "pid": endpoint["pid"],
            "health": endpoint_health(endpoint, state["key"]),
            "endpoint_id": endpoint["endpoint_id"],
            "log": endpoint["log"],
        }
        if previous is not None:
            old = before.get(name)
            item["action"] = "started" if old is None else "unchanged" if same_process(old, endpoint) else "restarted"
        report.append(item)
    return report
