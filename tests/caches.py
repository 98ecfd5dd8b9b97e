"""A test's own flashc cache, sharing only the local endpoints' environments.

Wheels, layers and resolutions are per test (what one test downloads or breaks must not reach
another), but the environments local endpoints run in are the worker images' own, the same for
every test and made once: `make test` makes them first (`flashc envs`), and a test that finds none
makes them where every later one finds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flashc.config import default_cache_dir

SHARED_ENVS = default_cache_dir() / "envs"  # read before any test changes FLASHC_CACHE_DIR


def own_cache(folder: Path, env: pytest.MonkeyPatch) -> Path:
    """Point FLASHC_CACHE_DIR at `folder`, whose `envs` is the shared one."""
    folder.mkdir(parents=True, exist_ok=True)
    SHARED_ENVS.mkdir(parents=True, exist_ok=True)
    link = folder / "envs"
    if not link.exists():
        os.symlink(SHARED_ENVS, link)
    env.setenv("FLASHC_CACHE_DIR", str(folder))
    return folder
