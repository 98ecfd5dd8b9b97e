"""A real tree for benchmarking `flashc analyze`: a copied site-packages plus five files that use the SDK.

The generated project of `gen_project` keeps the SDK's names out of its ordinary modules; a real
tree does not: requests, urllib3, pip, paramiko, pandas, IPython... say `remote` in about a
hundred files (`remote_addr`, docstrings, a `def remote` of their own), and pandas or fastapi
say `api` and `config` in hundreds. The packages below (pinned, installed without their
dependencies since the list is their whole closure) hold about 4,200 Python files, 62 MB.

They are installed once with uv into `<tempdir>/flashc-bench-site/<digest of the pins>` and kept
between runs; `make_tree` copies that folder (without `__pycache__`) and adds `flash_app/`:

| file                        | style                                                                  |
|-----------------------------|------------------------------------------------------------------------|
| `flash_app/gpu_worker.py`   | `@remote(gpu, ...)` twice, tetra_rp                                    |
| `flash_app/cpu_worker.py`   | `@remote(CpuLiveServerless(...))` on a class, tetra_rp                 |
| `flash_app/config.py`       | `api = Endpoint(...)` and `gpu_task = remote(...)`, runpod_flash       |
| `flash_app/jobs.py`         | `@gpu_task` and `@api.post("/summaries")`, imported from `.config`:    |
|                             | names neither `remote` nor an SDK module                               |
| `flash_app/endpoints.py`    | `@Endpoint(name=..., gpu=...)`, runpod_flash                           |

`expected` says which functions an analysis must list: four made with `remote`, two with `Endpoint`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "SDK_FILES", "expected", "make_tree", "site_packages"]

PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
CACHE_ROOT = Path(tempfile.gettempdir()) / "flashc-bench-site"
INSTALL_TIMEOUT_SECONDS = 900

# The closure of requests, urllib3, pip, setuptools, ipython, paramiko, numpy, pandas, fastapi,
# pydantic, starlette, httpx and jinja2, as uv resolved it for CPython 3.11 on manylinux.
PACKAGES = (
    "annotated-doc==0.0.7",
    "annotated-types==0.8.0",
    "anyio==4.16.0",
    "asttokens==3.0.2",
    "bcrypt==5.0.0",
    "certifi==2026.10.19.post1",
    "cffi==2.1.1",
    "charset-normalizer==3.5.3",
    "cryptography==50.0.2",
    "executing==2.3.0",
    "fastapi==0.165.0",
    "h11==0.16.0",
    "httpcore==1.0.9",
    "httpx==0.29.0",
    "idna==3.20",
    "invoke==3.0.3",
    "ipython==9.18.1",
    "ipython-pygments-lexers==1.1.1",
    "jedi==0.20.1",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "matplotlib-inline==0.2.2",
    "numpy==2.4.6",
    "opentelemetry-api==1.45.2",
    "pandas==3.1.1",
    "paramiko==5.1.0",
    "parso==0.8.7",
    "pexpect==4.9.0",
    "pip==26.3",
    "prompt-toolkit==3.0.53",
    "psutil==7.2.2",
    "ptyprocess==0.7.0",
    "pure-eval==0.2.4",
    "pycparser==3.12",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "pygments==2.21.0",
    "pynacl==1.6.2",
    "python-dateutil==4.0.0",
    "requests==2.34.2",
    "setuptools==84.2.1",
    "stack-data==0.6.3",
    "starlette==1.10.0",
    "traitlets==5.16.1",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "tzdata==2026.6",
    "urllib3==2.8.0",
    "wcwidth==0.9.4",
)

SDK_FILES = {
    "flash_app/__init__.py": "",
    "flash_app/gpu_worker.py": """\
from tetra_rp import GpuGroup, LiveServerless, remote

gpu = LiveServerless(name="real-tree-gpu", gpus=[GpuGroup.AMPERE_80], workersMax=3)


@remote(gpu, dependencies=["numpy==1.26.4"])
def embed_batch(texts):
    return [len(t) for t in texts]


@remote(resource_config=gpu)
async def rerank(query, documents):
    return sorted(documents, key=len)
""",
    "flash_app/cpu_worker.py": """\
from tetra_rp import CpuInstanceType, CpuLiveServerless, remote


@remote(CpuLiveServerless(name="real-tree-cpu", instanceIds=[CpuInstanceType.CPU3C_2_4]))
class Tokenizer:
    def __init__(self):
        self.vocabulary = {}

    def encode(self, text):
        return [self.vocabulary.setdefault(word, len(self.vocabulary)) for word in text.split()]
""",
    "flash_app/config.py": """\
from runpod_flash import Endpoint, GpuGroup, LiveServerless, remote

api = Endpoint(name="real-tree-api", cpu="cpu3c-2-4")
gpu_task = remote(LiveServerless(name="real-tree-task", gpus=[GpuGroup.ADA_24]))
""",
    "flash_app/jobs.py": """\
from .config import api, gpu_task


@gpu_task
def train_adapter(dataset):
    return {"rows": len(dataset)}


@api.post("/summaries")
async def summarize(payload):
    return {"length": len(payload.get("text", ""))}
""",
    "flash_app/endpoints.py": """\
from runpod_flash import Endpoint, GpuGroup


@Endpoint(name="real-tree-endpoint", gpu=GpuGroup.AMPERE_48, workers=2)
def generate(prompt):
    return prompt[::-1]
""",
}
FUNCTIONS = (
    "flash_app.cpu_worker:Tokenizer",
    "flash_app.endpoints:generate",
    "flash_app.gpu_worker:embed_batch",
    "flash_app.gpu_worker:rerank",
    "flash_app.jobs:summarize",
    "flash_app.jobs:train_adapter",
)


class InstallError(Exception):
    """The packages could not be installed."""


def site_packages(uv: str, cache_root: Path = CACHE_ROOT) -> Path:
    """The installed packages' folder, installed with `uv` the first time."""
    digest = hashlib.sha256("\n".join((PYTHON_VERSION, PLATFORM, *PACKAGES)).encode()).hexdigest()[:12]
    site = cache_root / digest
    done = cache_root / f"{digest}.done"
    if done.exists() and site.is_dir():
        return site
    shutil.rmtree(site, ignore_errors=True)
    command = [
        uv,
        "pip",
        "install",
        "--no-config",
        "--no-deps",
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        PLATFORM,
        "--target",
        str(site),
        *PACKAGES,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise InstallError(
            f"installing the real tree's packages took longer than {INSTALL_TIMEOUT_SECONDS} s"
        ) from None
    if result.returncode != 0:
        raise InstallError(f"`{' '.join(command[:4])} ...` failed:\n{result.stderr.rstrip()}")
    done.touch()
    return site


def make_tree(site: Path, tree: Path) -> dict[str, Any]:
    """Copy `site` to `tree`, add the SDK files, and return what an analysis must find there."""
    shutil.copytree(site, tree, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    for rel, text in SDK_FILES.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return expected(tree)


def expected(tree: Path) -> dict[str, Any]:
    """The tree's size, and the functions `flashc analyze --json` must list."""
    files = size = 0
    for folder, dirs, names in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.endswith(".py"):
                files += 1
                size += os.path.getsize(os.path.join(folder, name))
    return {
        "files": files,
        "bytes": size,
        "functions": len(FUNCTIONS),
        "names": [f.replace(":", ".") for f in FUNCTIONS],
    }
