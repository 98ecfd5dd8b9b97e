"""Fetch: the pinned wheels into a cache shared by every project, each checked against its sha256.

    Wheels (URL, sha256) --fetch--> {sha256: path in the cache}

The cache is content-addressed: `<cache>/wheels/<sha256>/<filename>`. A file is published there
only once its digest matched, through a temporary file of its own in the same folder and a rename,
so concurrent builds never see half a wheel and never collide. A cached file is checked again on
every use: a damaged one (a truncated download, a disk error, a hand edit, a folder where the
file should be) is fetched again, never installed. Downloads run in parallel with retries on
connection errors, timeouts and server errors, which are then reported as the network's failure,
not the wheel's; `offline` forbids them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlparse

from ..errors import FlashcError, ProjectError
from ._network import shown, why_unreachable
from .models import Wheel

if TYPE_CHECKING:  # httpx is imported only when a wheel must be downloaded: a rebuild needs none
    import httpx

__all__ = ["Credentials", "FetchError", "WheelCache", "WheelChanged", "fetch_wheels"]

Credentials = Mapping[str, tuple[str, str]]
"""user and password by host name."""

_PARALLEL = 8
_ATTEMPTS = 3
_BLOCK = 1 << 20

Progress = Callable[[str], None]


class FetchError(FlashcError):
    """A wheel could not be fetched: the network failed, or the index served other bytes."""


class WheelChanged(FetchError):
    """The index serves other bytes for a wheel than the sha256 it was pinned with."""

    def __init__(self, wheel: Wheel, digest: str) -> None:
        super().__init__(
            f"{wheel.filename} from {shown(wheel.url)} has sha256 {digest}, not the locked {wheel.sha256}",
            "the file changed since it was locked: run `flashc lock` if that is expected, else check the index",
        )
        self.wheel = wheel


class WheelCache:
    """Wheels by content, in one folder shared by every project."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "wheels"

    def path(self, wheel: Wheel) -> Path:
        return self.folder / wheel.sha256 / wheel.filename


def fetch_wheels(
    wheels: Sequence[Wheel],
    cache: WheelCache,
    *,
    offline: bool = False,
    credentials: Credentials | None = None,
    client: httpx.Client | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Make every wheel present and verified in the cache; its path by sha256.

    Raises FetchError for a download that fails or a file that does not match its sha256, and
    ProjectError when `offline` forbids fetching a wheel the cache does not have.
    """
    unique = list({w.sha256: w for w in wheels}.values())
    with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
        present = dict(
            zip((w.sha256 for w in unique), pool.map(lambda w: _verified(cache.path(w), w), unique), strict=True)
        )
    missing = [w for w in unique if not present[w.sha256]]
    if missing and offline:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        names = ", ".join(w.filename for w in missing[:3]) + more
        raise ProjectError(
            f"--offline, but the wheel cache lacks {names}",
            "build once without --offline while the index is reachable",
        )
    if missing:
        if progress is not None:
            total = sum(w.size or 0 for w in missing)
            size = f" ({total / 1e6:.1f} MB)" if total else ""
            progress(f"downloading {len(missing)} wheel{'s' if len(missing) != 1 else ''}{size}")
        import httpx

        own = client is None
        http = client or httpx.Client(timeout=httpx.Timeout(60, connect=15), follow_redirects=True)
        try:
            with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
                list(pool.map(lambda w: _download(w, cache.path(w), http, credentials or {}), missing))
        finally:
            if own:
                http.close()
    return {w.sha256: cache.path(w) for w in unique}


def _verified(path: Path, wheel: Wheel) -> bool:
    """True if the cached file is there and whole; a damaged one is removed so it is fetched again."""
    try:
        digest = _digest(path)
    except FileNotFoundError:
        return False
    except OSError:
        digest = ""
    if digest == wheel.sha256:
        return True
    _clear(path)
    return False


def _clear(path: Path) -> None:
    """Make way for a file at `path`: whatever is there (a damaged file, a folder) and a file where its folder goes."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
    if path.parent.exists() and not path.parent.is_dir():
        with contextlib.suppress(OSError):
            path.parent.unlink()


def _download(wheel: Wheel, target: Path, client: httpx.Client, credentials: Credentials) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
    except OSError as exc:
        raise _cache_error(target, exc) from exc
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _copy(wheel, out, client, credentials)
            if digest != wheel.sha256:
                raise WheelChanged(wheel, digest)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as exc:
            raise _cache_error(target, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_STALE = 3600.0  # seconds without a write after which a partial download is a killed build's


def _sweep_stale(folder: Path) -> None:
    """Remove partial downloads a killed build left (none is ever taken for a wheel, but each holds
    disk): those not written to for an hour; a download in progress writes all the time."""
    cutoff = time.time() - _STALE
    for part in folder.glob(".*.part"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


def _cache_error(target: Path, exc: OSError) -> FetchError:
    return FetchError(
        f"cannot write to the wheel cache '{target.parent.parent}': {exc.strerror or exc}",
        "check free disk space and the folder's permissions (FLASHC_CACHE_DIR chooses another)",
    )


def _copy(wheel: Wheel, out: BinaryIO, client: httpx.Client, credentials: Credentials) -> str:
    import httpx

    parsed = urlparse(wheel.url)
    if parsed.scheme == "file":
        digest = hashlib.sha256()
        try:
            with open(unquote(parsed.path), "rb") as src:
                while block := src.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
        except OSError as exc:
            raise FetchError(
                f"cannot read {unquote(parsed.path)}: {exc.strerror or exc}", "check the --find-links folder"
            ) from exc
        return digest.hexdigest()
    user = credentials.get(parsed.hostname or "")
    auth = httpx.BasicAuth(*user) if user else None
    for attempt in range(1, _ATTEMPTS + 1):
        digest = hashlib.sha256()
        out.seek(0)
        out.truncate()
        try:
            with client.stream("GET", wheel.url, auth=auth) as response:
                if response.status_code >= 500 and attempt < _ATTEMPTS:
                    time.sleep(0.5 * 2**attempt)
                    continue
                if response.status_code >= 500:
                    raise FetchError(
                        f"cannot download {wheel.filename}: {shown(wheel.url)} answered {_status(response)} "
                        f"{_ATTEMPTS} times",
                        "the server is failing, not the wheel: try again later, or check the index URL",
                    )
                if response.status_code != 200:
                    raise FetchError(
                        f"cannot download {wheel.filename}: {shown(wheel.url)} answered {_status(response)}",
                        "check the index URL and its credentials",
                    )
                for block in response.iter_bytes(_BLOCK):  # decoded, should a server compress the wheel
                    digest.update(block)
                    out.write(block)
            return digest.hexdigest()
        except httpx.TransportError as exc:
            if attempt == _ATTEMPTS:
                raise FetchError(
                    f"cannot reach {shown(wheel.url)}: {why_unreachable(exc)}",
                    "check the network connection and the index URL; a build whose wheels are all cached "
                    "needs no network (--offline)",
                ) from exc
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _status(response: httpx.Response) -> str:
    """As in "503 Service Unavailable"."""
    return f"{response.status_code} {response.reason_phrase}".strip()


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
