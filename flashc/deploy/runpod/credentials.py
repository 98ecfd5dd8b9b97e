"""The Runpod API key: where it is found, and a holder that never prints it.

Looked for as the Flash SDK looks for it, first found wins:

1. `RUNPOD_API_KEY` in the environment;
2. `RUNPOD_API_KEY` in the project's `.env`;
3. the Runpod CLI's `~/.runpod/config.toml` (`HOME` taken from the environment given): its
   `[default] api_key`, or runpodctl's top-level `apikey` when there is no `[default]` table.

A blank value counts as absent. An unreadable `.env` or config file is skipped, as the SDK skips it:
the caller then reports that no key was found, naming the places looked at.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from ..._toml import TOMLDecodeError, loads
from ...envvars import read_dotenv

__all__ = ["ENV_VAR", "ApiKey", "KeySource", "find_api_key"]

ENV_VAR = "RUNPOD_API_KEY"
KeySource = Literal["environment", ".env", "~/.runpod/config.toml"]


class ApiKey:
    """A Runpod API key. Its repr and str show where it came from and at most its last four
    characters; only `reveal()` gives the secret, for the Authorization header."""

    __slots__ = ("_secret", "source")

    _secret: str
    source: KeySource

    def __init__(self, secret: str, source: KeySource = "environment") -> None:
        if not secret.strip():
            raise ValueError("an API key cannot be blank")
        object.__setattr__(self, "_secret", secret.strip())
        object.__setattr__(self, "source", source)

    def reveal(self) -> str:
        """The secret itself. Only for the Authorization header: never format it into text."""
        return self._secret

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ApiKey is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ApiKey is immutable")

    def __repr__(self) -> str:
        return f"ApiKey({self.masked}, from {self.source})"

    def __str__(self) -> str:
        return self.masked

    @property
    def masked(self) -> str:
        """`rpa_…WXYZ` for a long key; a short one shows nothing of itself."""
        secret = self._secret
        if len(secret) < 16:
            return "…"
        prefix = secret[: secret.index("_") + 1] if "_" in secret[:5] else ""
        return f"{prefix}…{secret[-4:]}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)

    def __copy__(self) -> ApiKey:
        return self  # immutable: a copy is the same key

    def __deepcopy__(self, memo: dict[int, object]) -> ApiKey:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Refuse to be pickled: a pickle is a file the secret would land in unnoticed.
        raise TypeError("an ApiKey is not pickled")


def find_api_key(root: Path, environ: Mapping[str, str]) -> ApiKey | None:
    """The key from `environ`, else from `root/.env`, else from the Runpod CLI's config; None if
    none of them has one. `environ` also gives `HOME` (and the shell's variables `.env` refers to)."""
    from_environ = environ.get(ENV_VAR, "")
    if from_environ.strip():
        return ApiKey(from_environ, "environment")
    from_dotenv = _from_dotenv(root / ".env", environ)
    if from_dotenv:
        return ApiKey(from_dotenv, ".env")
    home = environ.get("HOME") or os.path.expanduser("~")
    from_config = _from_runpod_config(Path(home) / ".runpod" / "config.toml")
    if from_config:
        return ApiKey(from_config, "~/.runpod/config.toml")
    return None


def _from_dotenv(path: Path, environ: Mapping[str, str]) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    value = read_dotenv(text, environ).get(ENV_VAR, "")
    return value if value.strip() else None


def _from_runpod_config(path: Path) -> str | None:
    try:
        document = loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLDecodeError):
        return None
    default = document.get("default")
    if isinstance(default, dict):
        value = default.get("api_key")
        return value if isinstance(value, str) and value.strip() else None
    value = document.get("apikey")  # runpodctl's, read only where runpod-python's profile is absent
    return value if isinstance(value, str) and value.strip() else None
