"""TOML reading: `tomllib` from Python 3.11 on, `tomli` (a dependency of flashc there) before."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from tomllib import TOMLDecodeError, loads
else:  # pragma: no cover - the suite runs on 3.11
    from tomli import TOMLDecodeError, loads  # type: ignore[import-not-found,unused-ignore]

__all__ = ["TOMLDecodeError", "loads"]
