"""The environments local endpoints run in: a worker image's Python and distributions, made once.

    profile + Python version + torch wanted --env_spec--> EnvSpec --ensure_env--> Env (a venv in the cache)

On Runpod an endpoint runs in its worker image, whose Python has a hundred distributions installed
(fastapi, pydantic, requests, ...; torch on GPU images). A local endpoint runs in a virtual
environment holding exactly those distributions at the image's versions, made from a CPython of
the image's minor version: never flashc's own environment, never the host's site-packages. It is
kept under `<cache>/envs/`, named by what it holds, and reused by every later deploy (of any
project); images that install the same distributions share one.

torch and its CUDA companions are installed only when an endpoint needs them (a GPU resource left
torch out of its archive because its image has it, or imports it). This machine may have no GPU,
so a CPU build is taken where one can be had: from a configured find-links folder or extra index,
at the image's version if there is one, else at the newest there. Without one, the image's own
build comes from the index (CUDA libraries included: several GB, once). When neither can be had,
`TorchUnavailable` says why.

Creation is serialised by a lock file, so two deploys never build the same environment at once;
one interrupted leaves a folder without its record, which the next deploy removes and builds again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._atomic import write_atomic
from ..deps.requirements import IndexOptions
from ..deps.uv import UvRunner, index_arguments
from ..errors import FlashcError, ProjectError
from ._lock import locked
from .interpreters import Interpreter

__all__ = ["TORCH_FAMILY", "Env", "EnvSpec", "TorchUnavailable", "ensure_env", "env_spec", "is_cuda_only"]

TORCH_FAMILY = ("torch", "torchaudio", "torchvision")
_FORMAT = "1"  # bump when what an environment holds for the same spec changes
_RECORD = "flashc-env.json"
_CPU_LOCAL = re.compile(r"\+cpu\b")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")

Progress = Callable[[str], None]


class TorchUnavailable(FlashcError):
    """torch cannot be installed in an endpoint environment on this machine."""


def is_cuda_only(name: str) -> bool:
    """Distributions of a GPU image that come with its torch build (CUDA libraries, triton), not on their own."""
    return name in TORCH_FAMILY or name == "triton" or name.startswith("nvidia-")


@dataclasses.dataclass(frozen=True, slots=True)
class EnvSpec:
    """What an environment holds, decided before anything is installed."""

    python: str  # the minor version, "3.12"
    pins: tuple[str, ...]  # "name==version", installed as they are, without their dependencies
    torch: tuple[str, ...]  # "torch==2.9.1" and companions the endpoints need; () when none does
    images: tuple[str, ...]  # what it stands for, for messages: "Runpod's CPU image for queue-based resources"


@dataclasses.dataclass(frozen=True, slots=True)
class Env:
    path: Path
    python: Path  # its interpreter: what endpoints run
    torch: str | None  # the torch build it holds, said for the user ("torch 2.13.0+cpu, a CPU build ...")
    created: bool  # made by this call (else reused)
    seconds: float  # how long making or finding it took


def env_spec(
    python: str,
    distributions: Mapping[str, str],
    images: Sequence[str],
    torch: Collection[str] = (),
) -> EnvSpec:
    """An environment of `distributions` (name -> version) for CPython `python`; `torch` names the
    members of the torch family the endpoints need (those `distributions` has are installed)."""
    pins = tuple(sorted(f"{name}=={version}" for name, version in distributions.items() if not is_cuda_only(name)))
    wanted = tuple(sorted(f"{name}=={distributions[name]}" for name in set(torch) if name in distributions))
    return EnvSpec(python, pins, wanted, tuple(sorted(set(images))))


def ensure_env(
    spec: EnvSpec,
    interpreter: Interpreter,
    *,
    cache_dir: Path,
    index: IndexOptions,
    uv: UvRunner,
    progress: Progress | None = None,
) -> Env:
    """The environment of `spec`, made now if no earlier deploy made it. ProjectError when the image's
    distributions cannot be installed; TorchUnavailable when torch cannot."""
    started = time.monotonic()
    key = _key(spec, interpreter, index)
    folder = cache_dir / "envs" / f"py{spec.python}-{key[:16]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    waiting = "waiting for another flashc that is making the same environment"
    with locked(folder.parent / f"{folder.name}.lock", waiting, progress):
        record = _read_record(folder)
        if record is not None:
            return Env(folder, folder / "bin" / "python", record.get("torch"), False, time.monotonic() - started)
        if progress is not None:
            what = " and ".join(spec.images)
            progress(
                f"making the environment of {what} for local endpoints: CPython {interpreter.version} and "
                f"{len(spec.pins) + len(spec.torch)} distributions, once (kept in {folder})"
            )
        shutil.rmtree(folder, ignore_errors=True)  # left by an interrupted deploy
        try:
            torch = _create(folder, spec, interpreter, index, uv, progress)
            write_atomic(folder / _RECORD, json.dumps({"key": key, "torch": torch}, sort_keys=True).encode())
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    seconds = time.monotonic() - started
    if progress is not None:
        progress(f"environment ready in {seconds:.1f} s")
    return Env(folder, folder / "bin" / "python", torch, True, seconds)


def _key(spec: EnvSpec, interpreter: Interpreter, index: IndexOptions) -> str:
    data: dict[str, Any] = {
        "format": _FORMAT,
        "spec": dataclasses.asdict(spec) | {"images": None},  # what it stands for does not change what it is
        "interpreter": dataclasses.asdict(interpreter),
        # Where torch comes from decides which build it is; the other pins are the same from any index.
        "index": dataclasses.asdict(index) if spec.torch else None,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not (folder / "bin" / "python").exists():
        return None
    return record


def _create(
    folder: Path, spec: EnvSpec, interpreter: Interpreter, index: IndexOptions, uv: UvRunner, progress: Progress | None
) -> str | None:
    """Make the environment in `folder`; the torch build installed, said for the user, or None."""
    with tempfile.TemporaryDirectory(prefix="flashc-env-") as tmp:
        work = Path(tmp)
        _run(uv, ["venv", str(folder), "--python", interpreter.path, "--no-config", "--no-project"], work, "make")
        python = str(folder / "bin" / "python")
        (work / "pins.txt").write_text("".join(f"{pin}\n" for pin in spec.pins), encoding="utf-8")
        install = ["pip", "install", "--python", python, "--no-config", "--only-binary", ":all:"]
        if spec.pins:
            _run(uv, [*install, "--no-deps", "-r", "pins.txt", *index_arguments(index)], work, "install")
        if not spec.torch:
            return None
        chosen, said = _choose_torch(spec, python, index, uv, work)
        if progress is not None:
            progress(said)
        # Its dependencies the image has keep the image's versions; the others come from the index.
        code, _, stderr = uv([*install, *chosen, "-c", "pins.txt", *index_arguments(index)], work)
        if code != 0:
            raise TorchUnavailable(f"cannot install {', '.join(chosen)}: {_last_lines(stderr)}", _TORCH_HINT)
        return said


_TORCH_HINT = (
    "put a CPU build of torch in a find-links folder (PIP_FIND_LINKS or UV_FIND_LINKS) or an extra index, "
    "or let the index be reached once for the image's own build"
)


def _choose_torch(spec: EnvSpec, python: str, index: IndexOptions, uv: UvRunner, work: Path) -> tuple[list[str], str]:
    """Which torch build to install: the requirement lines and what to tell the user."""
    image = ", ".join(spec.torch)
    cpu_sources = _cpu_sources(index)
    if cpu_sources is not None:
        names = [line.split("==", 1)[0] for line in spec.torch]
        for lines in (list(spec.torch), names):
            pins = _compile(uv, lines, python, cpu_sources, work)
            if pins and set(names) <= pins.keys() and all(_CPU_LOCAL.search(pins[name]) for name in names):
                chosen = [f"{name}=={pins[name]}" for name in names]
                same = lines is not names
                where = ", ".join(
                    (*cpu_sources.find_links, *cpu_sources.extra_index_urls, *filter(None, [cpu_sources.index_url]))
                )
                return chosen, (
                    f"torch: the CPU build {', '.join(chosen)} from {where}"
                    + ("" if same else f" (the image has {image}; no CPU build of that version was found)")
                )
    pins = _compile(uv, list(spec.torch), python, index, work)
    if pins is None:
        raise TorchUnavailable(
            f"torch cannot be had for the local endpoints: no CPU build in a find-links folder or extra index, "
            f"and the image's own build ({image}) cannot be resolved from the index",
            _TORCH_HINT,
        )
    return list(spec.torch), f"torch: the image's own build {image} from the index (with its CUDA libraries; once)"


def _cpu_sources(index: IndexOptions) -> IndexOptions | None:
    """Where a CPU build of torch may be: the find-links folders and extra indexes, not the main index."""
    if not index.find_links and not index.extra_index_urls:
        return None
    first, *rest = index.extra_index_urls or (None,)
    return IndexOptions(
        index_url=first,
        extra_index_urls=tuple(rest),
        find_links=index.find_links,
        no_index=first is None,
        trusted_hosts=index.trusted_hosts,
    )


def _compile(uv: UvRunner, lines: list[str], python: str, index: IndexOptions, work: Path) -> dict[str, str] | None:
    """name -> version uv picks for `lines` on this machine's platform, without dependencies; None if none."""
    (work / "torch.in").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    args = ["pip", "compile", "torch.in", "--python", python, "--no-config", "--quiet", "--no-header"]
    code, out, _ = uv([*args, "--no-deps", "--only-binary", ":all:", *index_arguments(index)], work)
    if code != 0:
        return None
    return {m["name"].lower(): m["version"] for line in out.splitlines() if (m := _PIN.match(line.strip()))}


def _run(uv: UvRunner, args: list[str], cwd: Path, what: str) -> None:
    code, _, stderr = uv(args, cwd)
    if code != 0:
        raise ProjectError(
            f"cannot {what} the local endpoints' environment: {_last_lines(stderr)}",
            "check that the package index is reachable (the worker image's distributions come from it, once); "
            "for a Python other than the image's, some of its versions may have no wheel",
        )


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:]) or "uv said nothing"
