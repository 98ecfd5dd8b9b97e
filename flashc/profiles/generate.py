"""Rebuild the worker-image profiles (`flashc/profiles/*.toml`) from their sources: a maintainer's tool, network needed.

    python -m flashc.profiles.generate [--closure FILE] [--out DIR]

    step       source                                                          fact or derived
    facts      `WORKER_CLOSURE` and `IMAGES` below, copied from the worker's   fact (shared/research/worker-image.md)
               Dockerfiles, pyproject.toml and uv.lock
    markers    `uv pip compile` of the worker's direct dependencies for        derived: which closure entries the
               CPython 3.12, the closure as constraints                        markers leave out on 3.12 (a comment)
    gpu        `uv pip compile` of torch 2.9.1 and its companions for cp312    derived: the PyTorch base image's own
               x86_64-manylinux_2_35, the closure as constraints, PyPI as it   list is not known
               stood on the date of the facts
    wheels     `uv pip compile --no-deps --format pylock.toml`: the wheels     fact (PyPI)
               of every pin that install on the worker; the preferred one
    modules    each wheel's RECORD, read through HTTP range requests (the      fact (the wheel)
               zip's central directory, then that one member)

flashc never runs this at build time: the committed TOML files are what `flashc.profiles` reads. To follow a new worker
release, update the facts here (or pass `--closure` with `uv export --no-dev --no-hashes` of its lock), run this, and
review the diff.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from packaging.utils import parse_wheel_filename
from uv import find_uv_bin

from .._atomic import write_atomic
from .._toml import loads
from ..deps.target import Target, supported_tags

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "IMAGES",
    "TORCH",
    "WORKER_CLOSURE",
    "Image",
    "Wheel",
    "locate_wheels",
    "main",
    "marker_dropped",
    "parse_pins",
    "render",
    "resolve_gpu_companions",
    "top_level_names",
    "wheel_modules",
]

DATE = "2026-02-04"
SOURCE = "runpod-workers/worker-flash 1.0.0 (commit 89f1560)"
PYTHON = "3.12"
GPU_BASE = "pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime"
CPU_BASE = "python:3.12-slim"
# torchvision and torchaudio releases are made for one torch release each (PyTorch's compatibility table); the
# newest torchaudio no longer pins torch, so an unpinned one would resolve to a later release than the image has.
TORCH = ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1")
# The worker's pyproject.toml; resolving them for 3.12 shows which closure entries the markers leave out there.
WORKER_REQUIREMENTS = (
    "aiohttp>=3.9.0",
    "cloudpickle>=3.1.1",
    "pydantic>=2.11.4",
    "requests>=2.25.0",
    "runpod",
    "hf_transfer>=0.1.0",
    "huggingface_hub>=0.32.0",
    "fastapi>=0.115.0",
    "uvicorn[standard]>=0.34.0",
    "runpod-flash",
)
# What the worker's Dockerfiles install: `uv export --no-dev` of its uv.lock (markers dropped in the research).
WORKER_CLOSURE = """
aiodns==4.0.0 aiohappyeyeballs==2.6.1 aiohttp-retry==2.9.1 aiohttp==3.13.3 aiosignal==1.4.0 annotated-doc==0.0.4
annotated-types==0.7.0 anyio==4.12.1 async-timeout==5.0.1 attrs==25.4.0 backoff==2.2.1 backports-zstd==1.3.0
bcrypt==5.0.0 boto3==1.42.41 botocore==1.42.41 brotli==1.2.0 brotlicffi==1.2.0.0 certifi==2026.1.4 cffi==2.0.0
charset-normalizer==3.4.4 click==8.3.1 cloudpickle==3.1.2 colorama==0.4.6 cryptography==45.0.7 dnspython==2.8.0
email-validator==2.3.0 exceptiongroup==1.3.1 fastapi-cli==0.0.20 fastapi-cloud-cli==0.11.0 fastapi==0.128.0
fastar==0.8.0 filelock==3.20.3 frozenlist==1.8.0 fsspec==2026.1.0 h11==0.16.0 hf-transfer==0.1.9 hf-xet==1.2.0
httpcore==1.0.9 httptools==0.7.1 httpx==0.28.1 huggingface-hub==1.3.7 idna==3.11 inquirerpy==0.3.4 invoke==2.2.1
itsdangerous==2.2.0 jinja2==3.1.6 jmespath==1.1.0 markdown-it-py==4.0.0 markupsafe==3.0.3 mdurl==0.1.2
multidict==6.7.1 orjson==3.11.7 packaging==26.0 paramiko==4.0.0 pathspec==1.0.4 pfzy==0.3.4 prettytable==3.17.0
prompt-toolkit==3.0.52 propcache==0.4.1 py-cpuinfo==9.0.0 pycares==5.0.1 pycparser==3.0 pydantic-core==2.41.5
pydantic-extra-types==2.11.0 pydantic-settings==2.12.0 pydantic==2.12.5 pygments==2.19.2 pynacl==1.6.2
python-dateutil==2.9.0.post0 python-dotenv==1.2.1 python-multipart==0.0.22 pyyaml==6.0.3 questionary==2.1.1
requests==2.32.5 rich-toolkit==0.18.1 rich==14.3.2 rignore==0.7.6 runpod-flash==1.0.0 runpod==1.8.1
s3transfer==0.16.0 sentry-sdk==2.51.0 shellingham==1.5.4 six==1.17.0 starlette==0.50.0 tomli==2.4.0
tomlkit==0.14.0 tqdm-loggable==0.2 tqdm==4.67.3 typer-slim==0.21.1 typer==0.21.1 typing-extensions==4.15.0
typing-inspection==0.4.2 ujson==5.11.0 urllib3==2.6.3 uvicorn==0.40.0 uvloop==0.22.1 watchdog==6.0.0
watchfiles==1.1.1 wcwidth==0.5.3 websockets==16.0 yarl==1.22.0
"""

_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#\\]+)")
_WHEEL_TARGET = Target(PYTHON, "2.35")
_UV_PLATFORM = "x86_64-manylinux_2_35"
_INSTALLED_DATA = ("purelib", "platlib")  # the `.data` folders a wheel installs into site-packages
_UV_TRANSPORT = frozenset({"UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_REQUEST_TIMEOUT"})


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """One worker image: the facts a profile states besides its distributions."""

    name: str
    image: str
    description: str
    dockerfile: str
    kind: str
    compute: str
    cmd: str

    @property
    def gpu(self) -> bool:
        return self.compute == "gpu"


@dataclasses.dataclass(frozen=True, slots=True)
class Wheel:
    """Where a pinned distribution's preferred wheel is, and how many bytes it has."""

    url: str
    size: int


# Runpod overrides it for a deployed load-balanced app, to run the generated handler.
_LB_CMD = "uvicorn lb_handler:app --host 0.0.0.0 --port 80 --timeout-keep-alive 600"
IMAGES = (
    Image("runpod-cpu", "runpod/flash-cpu", "Runpod's CPU image for queue-based resources", "Dockerfile-cpu", "queue",
          "cpu", "python handler.py"),
    Image("runpod-gpu", "runpod/flash", "Runpod's GPU image for queue-based resources", "Dockerfile", "queue", "gpu",
          "python handler.py"),
    Image("runpod-lb-cpu", "runpod/flash-lb-cpu", "Runpod's CPU image for load-balanced resources",
          "Dockerfile-lb-cpu", "load_balanced", "cpu", _LB_CMD),
    Image("runpod-lb-gpu", "runpod/flash-lb", "Runpod's GPU image for load-balanced resources", "Dockerfile-lb",
          "load_balanced", "gpu", _LB_CMD),
)  # fmt: skip


def parse_pins(text: str) -> dict[str, str]:
    """`name==version` pins found in `text` (requirements lines or a list), by PEP 503 name; markers are ignored."""
    return {_normalize(m["name"]): m["version"] for m in _PIN.finditer(text)}


def marker_dropped(closure: Mapping[str, str], workdir: Path) -> tuple[str, ...]:
    """Closure entries that the worker's own requirements do not reach on CPython 3.12, because of markers."""
    reached = _compile(WORKER_REQUIREMENTS, closure, workdir, "worker")
    return tuple(sorted(closure.keys() - reached.keys()))


def resolve_gpu_companions(closure: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """What torch 2.9.1 and its companions pull in for the GPU images, beyond the closure (which wins where they meet).

    The resolution takes the closure as constraints, since the worker installs its closure over the base image, and
    sees PyPI as it stood on the date of the facts.
    """
    pins = _compile(TORCH, closure, workdir, "torch", exclude_newer=f"{DATE}T00:00:00Z")
    return {name: version for name, version in pins.items() if name not in closure}


def locate_wheels(pins: Mapping[str, str], workdir: Path) -> dict[str, Wheel]:
    """The wheel the worker prefers for each pin (cp312, manylinux_2_35 x86_64), from a pylock.toml uv writes."""
    (workdir / "pins.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    _uv("pip", "compile", "pins.txt", "--no-deps", "--format", "pylock.toml", "-o", "pylock.wheels.toml", cwd=workdir)
    rank = {str(tag): i for i, tag in enumerate(supported_tags(_WHEEL_TARGET))}
    located: dict[str, Wheel] = {}
    for package in loads((workdir / "pylock.wheels.toml").read_text())["packages"]:
        ranked = [(r, w) for w in package.get("wheels", ()) if (r := _wheel_rank(w["url"], rank)) is not None]
        if not ranked:
            raise RuntimeError(f"{package['name']} {package['version']} has no wheel for the worker")
        best = min(ranked, key=lambda c: c[0])[1]
        located[_normalize(package["name"])] = Wheel(best["url"], best["size"])
    return located


def wheel_modules(client: httpx.Client, wheel: Wheel) -> tuple[str, ...]:
    """The top-level import names a wheel installs, from its RECORD, without downloading the whole wheel."""
    reader = io.BufferedReader(_RangeReader(client, wheel.url, wheel.size), buffer_size=1 << 16)
    with zipfile.ZipFile(reader) as archive:
        records = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise RuntimeError(f"{wheel.url}: expected one .dist-info/RECORD, found {len(records)}")
        rows = csv.reader(io.StringIO(archive.read(records[0]).decode()))
        return top_level_names(row[0] for row in rows if row)


def top_level_names(paths: Iterable[str]) -> tuple[str, ...]:
    """Importable top-level names among the installed `paths` of a wheel, sorted.

    A folder counts (a package, or a namespace such as `nvidia`), and so does a top-level `.py` or extension module.
    `.dist-info`, `.data` (except purelib and platlib, which install into site-packages), `__pycache__`, `.pth`
    files, stubs and names that are not identifiers (`numpy.libs`) are not imported by name.
    """
    names: set[str] = set()
    for path in paths:
        parts = path.split("/")
        if parts[0].endswith(".data") and len(parts) > 2 and parts[1] in _INSTALLED_DATA:
            parts = parts[2:]
        if parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) > 1:
            name = parts[0]
        elif parts[0].endswith(".py"):
            name = parts[0].removesuffix(".py")
        elif parts[0].endswith(".so"):
            name = parts[0].split(".", 1)[0]
        else:
            continue
        if name.isidentifier() and name != "__pycache__":
            names.add(name)
    return tuple(sorted(names))


def render(
    image: Image,
    distributions: Mapping[str, tuple[str, tuple[str, ...]]],
    *,
    companions: Iterable[str] = (),
    dropped: Iterable[str] = (),
) -> str:
    """The TOML text of one profile: `distributions` maps a PEP 503 name to (version, modules).

    `companions` are the names that come from the torch resolution, `dropped` those the markers leave out on 3.12;
    each gets a comment saying so.
    """
    companions, dropped = set(companions), set(dropped)
    base = GPU_BASE if image.gpu else CPU_BASE
    if image.gpu:
        glibc, glibc_note = "2.35", "the PyTorch base is Ubuntu 22.04"
    else:
        glibc, glibc_note = (
            "2.41",
            "python:3.12-slim is Debian 13 trixie since August 2025 (bookworm's was 2.36)",
        )
    override = "\n# Runpod overrides that CMD to run the generated handler." if image.kind == "load_balanced" else ""
    lines = [
        f"# Worker-image profile: {image.description}, {image.image}.",
        "# flashc leaves out of a build what it provides, checks imports against it, and runs local endpoints like it.",
        "# Written by `python -m flashc.profiles.generate`: change the generator and run it, not this file.",
        f"# Facts: {SOURCE}, its {image.dockerfile}, pyproject.toml and uv.lock",
        "# (shared/research/worker-image.md). What is derived rather than read says so.",
        f"# Base image {base}.",
        f"# CMD `{image.cmd}`.{override}",
        "",
        f"name = {_str(image.name)}",
        f"image = {_str(f'{image.image}:py{PYTHON}-latest')}  # the SDK's default, <image>:py<ver>-<tag>",
        f"description = {_str(image.description)}",
        f"date = {_str(DATE)}  # the date of the facts (the worker commit)",
        f"source = {_str(f'{SOURCE}: {image.dockerfile}, pyproject.toml, uv.lock')}",
        f"python = {_str(PYTHON)}  # the base image's CPython",
        f"glibc = {_str(glibc)}  # {glibc_note}",
        f'kind = {_str(image.kind)}  # "queue" or "load_balanced"',
        f'compute = {_str(image.compute)}  # "cpu" or "gpu"',
        'workdir = "/app"  # WORKDIR: the worker\'s modules, and where the build archive is unpacked',
        'volume = "/runpod-volume"  # where a network volume is mounted (the worker\'s cache sync reads it)',
        'apt = ["curl", "ca-certificates", "git"]  # installed by the Dockerfile; build-essential is not',
        "",
        "[env]  # set by the worker's Dockerfile; the base image's own variables are not listed",
        'DEBIAN_FRONTEND = "noninteractive"',
        'TZ = "Etc/UTC"',
    ]
    if image.gpu:
        lines += ['HF_HUB_ENABLE_HF_TRANSFER = "1"', 'HF_HOME = "/hf-cache"']
    lines += [
        "",
        "[distributions]",
        "# PEP 503 name = version, and the top-level import names the distribution installs, read from the RECORD of",
        "# its wheel for cp312 manylinux x86_64 on PyPI.",
        "# Versions are the worker's closure: `uv export --no-dev` of its uv.lock, installed with `uv pip install",
        "# --system`. The research lists it without markers; these are not reached on CPython 3.12 when the worker's",
        f"# requirements are resolved for it (derived), so the image lacks them: {_listed(dropped)}.",
    ]
    if image.gpu:
        lines += [
            "# The base image ships torch 2.9.1 (a fact, marked `base image`); the rest of its packages are not in the",
            "# research. Entries marked `torch resolution` come from",
            f"# `uv pip compile {' '.join(TORCH)}` for CPython {PYTHON} on {_UV_PLATFORM},",
            "# with the closure as constraints (the worker installs it over the base, so its versions win) and PyPI as",
            f"# of {DATE}: derived, not read from the image, whose own environment may hold more",
            "# (its package manager's, for one).",
        ]
    for name, (version, modules) in sorted(distributions.items()):
        if name in dropped:
            continue
        entry = f"{name} = {{ version = {_str(version)}, modules = [{', '.join(_str(m) for m in modules)}] }}"
        marks = (("base image", {"torch"}), ("torch resolution", companions - {"torch"}))
        notes = [note for note, marked in marks if name in marked]
        lines.append(f"{entry}  # {', '.join(notes)}" if notes else entry)
    return "\n".join(lines) + "\n"


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the four profiles into `--out` (this package's folder by default); progress goes to stderr."""
    parser = argparse.ArgumentParser(prog="python -m flashc.profiles.generate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--closure",
        type=Path,
        help="name==version lines to use instead of WORKER_CLOSURE (`uv export --no-dev --no-hashes` of a worker lock)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder to write the TOML files to")
    args = parser.parse_args(argv)
    closure = parse_pins(args.closure.read_text() if args.closure else WORKER_CLOSURE)
    with tempfile.TemporaryDirectory(prefix="flashc-profiles-") as scratch:
        workdir = Path(scratch)
        dropped = marker_dropped(closure, workdir)
        companions = resolve_gpu_companions(closure, workdir)
        pins = {**closure, **companions}
        wheels = locate_wheels(pins, workdir)
    modules: dict[str, tuple[str, ...]] = {}
    with httpx.Client(follow_redirects=True, timeout=120) as client:
        for name in sorted(pins):
            modules[name] = wheel_modules(client, wheels[name])
            print(f"{name} {pins[name]}: {', '.join(modules[name]) or '-'}", file=sys.stderr)
    for image in IMAGES:
        chosen = pins if image.gpu else closure
        text = render(image, {n: (v, modules[n]) for n, v in chosen.items()}, companions=companions, dropped=dropped)
        write_atomic(args.out / f"{image.name}.toml", text.encode())
    print(f"wrote {len(IMAGES)} profiles to {args.out}", file=sys.stderr)
    return 0


class _RangeReader(io.RawIOBase):
    """A remote file read with HTTP range requests: zipfile seeks to the central directory and reads only that."""

    def __init__(self, client: httpx.Client, url: str, size: int) -> None:
        self._client, self._url, self._size, self._pos = client, url, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        start = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, start + offset)
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._size - self._pos)
        if count <= 0:
            return 0
        response = self._client.get(self._url, headers={"Range": f"bytes={self._pos}-{self._pos + count - 1}"})
        response.raise_for_status()
        if response.status_code != httpx.codes.PARTIAL_CONTENT or len(response.content) != count:
            raise RuntimeError(f"{self._url}: the server did not answer the range request")
        view[:count] = response.content
        self._pos += count
        return count


def _compile(
    requirements: Iterable[str], constraints: Mapping[str, str], workdir: Path, stem: str, exclude_newer: str = ""
) -> dict[str, str]:
    (workdir / f"{stem}.in").write_text("".join(f"{r}\n" for r in requirements))
    (workdir / "closure.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())))
    extra = ("--exclude-newer", exclude_newer) if exclude_newer else ()
    out = _uv("pip", "compile", f"{stem}.in", "-c", "closure.txt", "--no-annotate", *extra, cwd=workdir)
    return parse_pins(out)


def _uv(*args: str, cwd: Path) -> str:
    # No configuration of the maintainer's may change the answer (only transport settings pass); the target is the
    # worker, not this machine.
    command = [
        find_uv_bin(), *args, "--no-config", "--no-python-downloads", "--no-header", "--only-binary", ":all:",
        "--python-version", PYTHON, "--python-platform", _UV_PLATFORM, "--index-url", "https://pypi.org/simple",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in _UV_TRANSPORT}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"uv {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def _wheel_rank(url: str, rank: Mapping[str, int]) -> int | None:
    _, _, _, tags = parse_wheel_filename(url.rsplit("/", 1)[-1])
    ranks = [rank[str(tag)] for tag in tags if str(tag) in rank]
    return min(ranks) if ranks else None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _str(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable text is a TOML basic string


if __name__ == "__main__":
    sys.exit(main())
