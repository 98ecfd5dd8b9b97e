"""Pack: write the build into one byte-reproducible, atomically written `.tar.gz`, reusing cached dependency layers.

    stage         input                              output                 side effects
    site_layers   site folders and their wheels      SiteLayers             reads wheels, writes the layer cache
    write_archive project Entry list + Layer list    archive + PackResult   writes the archive atomically

The archive is one gzip stream made of several gzip members; decompressed, it is one PAX tar:

    1. project layer   the entries: regular files only, sorted by arcname
    2. dependency      each layer's cached file copied verbatim: the wheel installed under its site
       layers          folder, sorted by arcname, hard links for content stored earlier (`layers`)
    3. trailer         one gzip member: two zero blocks, padded to a whole 10240-byte tar record

Every member has uid/gid 0, empty user and group names, mode 644 (755 if executable) and one
mtime (`DEFAULT_MTIME`, 1980-01-01, unless the caller gives another); plain ustar headers, plus a
PAX extended header only for a path or link longer than 100 characters or not ASCII. Each layer
is cut every `CHUNK` bytes of tar, each piece compressed as its own gzip member (level 6, header
mtime 0, no file name, OS 255), so the bytes are the same whatever the number of threads and
whether a layer came from the cache or was just built. They depend on zlib: another deflate
implementation may compress the same tar differently, so compare hashes made with the same zlib
(it is part of the layer cache's key).

Readers: Python's `tarfile.open(path, "r:*")` or "r:gz", GNU tar, gzip. Not tarfile's streaming
"r|gz" mode, which stops at the end of the first gzip member.
"""

from __future__ import annotations

from ._tar import DEFAULT_MTIME
from .archive import DamagedLayer, Entry, PackResult, TooLarge, project_entries, write_archive
from .layers import (
    LINK_MIN,
    Layer,
    LayerFile,
    Site,
    SiteLayers,
    SiteWheel,
    cached_site_layers,
    forget,
    site_layers,
    wheel_layer,
)

__all__ = [
    "DEFAULT_MTIME",
    "LINK_MIN",
    "DamagedLayer",
    "Entry",
    "Layer",
    "LayerFile",
    "PackResult",
    "Site",
    "SiteLayers",
    "SiteWheel",
    "TooLarge",
    "cached_site_layers",
    "forget",
    "project_entries",
    "site_layers",
    "wheel_layer",
    "write_archive",
]
