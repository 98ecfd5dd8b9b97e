"""One wheel layer: its bytes, written from a `Wheel`, and its entry in the layer cache.

A layer is the wheel installed into tar members under a site folder: one or more complete gzip
members (see `_gzip`) whose content is a run of complete tar members sorted by arcname, with no
end-of-archive marker, so layers can be concatenated after any other. The cache holds two files
per layer, named by its key, a digest of everything that changes its bytes:

    <cache_root>/layers/<key>.gz     the layer
    <cache_root>/layers/<key>.json   its metadata: files (arcname, size, sha256, link), sizes, name, version

Both are published with `os.replace` from a temp file that `mkstemp` makes beside them, the
metadata last: builds running at once never see half a file and never write to the same temp
file, and as they write the same bytes, whichever rename comes last changes nothing. An entry is
used only if its metadata parses, names its key, lists exactly the files expected, and the layer
file has the size it gives; anything else is built again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from .._atomic import discard, write_atomic
from ..errors import ProjectError
from ._gzip import CHUNK, LEVEL, ZLIB_VERSION, ChunkedGzip
from ._tar import file_header, link_header, padding
from ._wheel import Installed, Wheel, verified_blocks, wheel_error

__all__ = ["FORMAT", "Cancelled", "Layer", "LayerFile", "Spec", "build", "load"]

FORMAT = 1
"""Version of the layer format and of what its key covers; changing either means a new number."""
_COPY = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class LayerFile:
    """One member of a layer."""

    arcname: str
    size: int
    """Bytes of content (a link's is its target's, though the link member stores none)."""
    sha256: str
    """Hex digest of the content."""
    link: str | None = None
    """For a hard link, the arcname of the earlier member that holds the content."""


@dataclasses.dataclass(frozen=True, slots=True)
class Layer:
    """A wheel installed under a site folder, as a cached, compressed run of tar members."""

    path: Path
    """The layer file, copied verbatim into archives."""
    distribution: str
    """As the wheel's file name spells it (e.g. "scikit_learn")."""
    version: str
    site: str
    """The site folder's arcname, e.g. "_flashc/site"."""
    files: tuple[LayerFile, ...]
    """Sorted by arcname, as in the layer."""
    tar_size: int
    """Bytes of tar members (a multiple of 512)."""
    compressed_size: int
    """Bytes of the layer file."""
    installed_size: int
    """Bytes of every file the wheel installs, whether this layer stores it, links it or leaves it out."""
    sha256: str
    """Hex digest of the layer file."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a layer is made of: a wheel, its site folder, and the choices that change the layer's bytes."""

    wheel: Wheel
    wheel_sha256: str
    """From the lock; a build checks the wheel file against it."""
    site: str
    mtime: int
    omit: frozenset[str] = frozenset()
    """Site-relative paths of files not written (another wheel's copy stands for them)."""
    links: dict[str, str] = dataclasses.field(default_factory=dict)
    """Site-relative path -> arcname of an earlier member with the same content and mode."""

    @functools.cached_property
    def key(self) -> str:
        inputs = {
            "format": FORMAT,
            "zlib": ZLIB_VERSION,
            "level": LEVEL,
            "chunk": CHUNK,
            "wheel": self.wheel_sha256,
            "site": self.site,
            "mtime": self.mtime,
            "omit": sorted(self.omit),
            "links": sorted(self.links.items()),
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def files(self) -> tuple[LayerFile, ...]:
        """The layer's members, as its metadata must list them."""
        return tuple(
            LayerFile(self.arcname(f), f.content.size, f.content.sha256, self.links.get(f.path))
            for f in self.wheel.files
            if f.path not in self.omit
        )

    def arcname(self, installed: Installed) -> str:
        return f"{self.site}/{installed.path}"


def load(folder: Path, spec: Spec) -> Layer | None:
    """The cached layer for `spec`, or None if it is missing or cannot be trusted."""
    key = spec.key
    try:
        meta = json.loads((folder / f"{key}.json").read_bytes())
        layer = _from_json(meta, folder / f"{key}.gz", key)
        size = layer.path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if size != layer.compressed_size or layer.files != spec.files() or layer.site != spec.site:
        return None
    return layer


def load_key(folder: Path, key: str) -> Layer | None:
    """The cached layer of `key`, as a site plan recorded it; None if it is missing or damaged."""
    try:
        layer = _from_json(json.loads((folder / f"{key}.json").read_bytes()), folder / f"{key}.gz", key)
        size = layer.path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return layer if size == layer.compressed_size else None


def build(
    folder: Path, spec: Spec, pool: Executor, *, ahead: int, cancelled: Callable[[], bool] = lambda: False
) -> Layer:
    """Write the layer for `spec` into the cache, compressing on `pool`; the layer.

    A ProjectError if the wheel is not what its sha256 and RECORD say, or the cache cannot be
    written; nothing is left in the cache then. `cancelled` is polled between blocks, so an
    interrupt in another thread does not wait for the whole wheel.
    """
    key = spec.key
    _check_sha256(spec)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
    except OSError as exc:
        raise _cache_error(folder, exc) from exc
    try:
        with open(fd, "wb") as raw:
            digest = hashlib.sha256()

            def sink(data: bytes) -> None:
                raw.write(data)
                digest.update(data)

            gz = ChunkedGzip(sink, pool, ahead=ahead)
            try:
                _write_members(gz, spec, cancelled)
                gz.close()
            except BaseException:
                gz.abort()
                raise
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temp, 0o644)
        layer = Layer(
            folder / f"{key}.gz",
            spec.wheel.distribution,
            spec.wheel.version,
            spec.site,
            spec.files(),
            gz.size,
            gz.compressed,
            sum(f.content.size for f in spec.wheel.files),
            digest.hexdigest(),
        )
        os.replace(temp, layer.path)
        write_atomic(folder / f"{key}.json", _to_json(layer, key), durable=True)
    except OSError as exc:
        discard(temp)
        raise _cache_error(folder, exc) from exc
    except BaseException:
        discard(temp)
        raise
    return layer


class Cancelled(Exception):
    """The build was interrupted from another thread: it stops, and leaves nothing behind."""


def _write_members(gz: ChunkedGzip, spec: Spec, cancelled: Callable[[], bool]) -> None:
    wheel = spec.wheel
    try:
        zf = zipfile.ZipFile(wheel.path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise wheel_error(wheel.path, [str(exc)]) from exc
    with zf:
        for f in wheel.files:
            if cancelled():
                raise Cancelled
            if f.path in spec.omit:
                continue
            arcname = spec.arcname(f)
            link = spec.links.get(f.path)
            if link is not None:
                gz.write(link_header(arcname, link, executable=f.executable, mtime=spec.mtime))
                continue
            gz.write(file_header(arcname, f.content.size, executable=f.executable, mtime=spec.mtime))
            if f.data is not None:
                gz.write(f.data)
            else:
                assert f.source is not None
                for block in verified_blocks(zf, wheel.path, f.source, f.content):
                    if cancelled():
                        raise Cancelled
                    gz.write(block)
            gz.write(padding(f.content.size))
        # Entries not streamed above (dropped, left out, linked) are checked all the same.
        streamed = {f.source for f in wheel.files if f.path not in spec.omit and f.path not in spec.links}
        for name, content in wheel.entries.items():
            if name not in streamed:
                for _ in verified_blocks(zf, wheel.path, name, content):
                    if cancelled():
                        raise Cancelled


def _check_sha256(spec: Spec) -> None:
    digest = hashlib.sha256()
    try:
        with open(spec.wheel.path, "rb") as f:
            while block := f.read(_COPY):
                digest.update(block)
    except OSError as exc:
        raise wheel_error(spec.wheel.path, [exc.strerror or str(exc)]) from exc
    if digest.hexdigest() != spec.wheel_sha256:
        raise wheel_error(spec.wheel.path, [f"its sha256 is {digest.hexdigest()}, not {spec.wheel_sha256}"])


def _to_json(layer: Layer, key: str) -> bytes:
    meta = {
        "format": FORMAT,
        "key": key,
        "distribution": layer.distribution,
        "version": layer.version,
        "site": layer.site,
        "files": [dataclasses.asdict(f) for f in layer.files],
        "tar_size": layer.tar_size,
        "compressed_size": layer.compressed_size,
        "installed_size": layer.installed_size,
        "sha256": layer.sha256,
    }
    return (json.dumps(meta, sort_keys=True, indent=1) + "\n").encode()


def _from_json(meta: Any, path: Path, key: str) -> Layer:
    """The layer `meta` describes; ValueError, KeyError or TypeError if it is not one this version wrote."""
    if meta["format"] != FORMAT or meta["key"] != key:
        raise ValueError("another format or key")
    files = tuple(LayerFile(f["arcname"], f["size"], f["sha256"], f["link"]) for f in meta["files"])
    # One pass of plain checks: a layer of numpy has thousands of files, read on every rebuild.
    if not all(
        type(f.arcname) is str
        and type(f.size) is int
        and type(f.sha256) is str
        and (f.link is None or type(f.link) is str)
        for f in files
    ):
        raise TypeError("a file entry of the wrong type")
    layer = Layer(
        path,
        _typed(meta["distribution"], str),
        _typed(meta["version"], str),
        _typed(meta["site"], str),
        files,
        _typed(meta["tar_size"], int),
        _typed(meta["compressed_size"], int),
        _typed(meta["installed_size"], int),
        _typed(meta["sha256"], str),
    )
    if layer.tar_size % 512:
        raise ValueError("tar size is not a whole number of blocks")
    return layer


def _typed(value: Any, kind: type[Any]) -> Any:
    if type(value) is not kind:  # bool is an int, but never a size
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _cache_error(folder: Path, exc: OSError) -> ProjectError:
    return ProjectError(
        f"cannot write to the layer cache '{folder}': {exc.strerror or exc}",
        "check free disk space and the folder's permissions",
    )
