"""Whether `flashc build` has anything to do: the inputs of the last build, and its result.

A build is a pure function of its inputs: the project's files after ignore rules (paths and
contents, as the build's `Snapshot` reads them), flashc's own code, templates and runtime, the
build's `Config` (its fingerprint: target, exclusions, SOURCE_DATE_EPOCH, index...) and what else
the caller names (the output path). The archive it writes is byte-reproducible, so when none of
these changed and the archive on disk is the one recorded, building again would write the same
bytes: the build is skipped. The record is `.flash/build.json`, written atomically after each build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ._atomic import write_atomic
from .sources import Snapshot

__all__ = ["STATE_FILE", "inputs_key", "record", "up_to_date"]

STATE_FILE = Path(".flash") / "build.json"


@cache
def _flashc_digest() -> str:
    """Identifies flashc's compiler, templates and runtime, by content."""
    import flashc_runtime

    here = Path(__file__).parent
    roots = [here, Path(flashc_runtime.__file__).parent]
    templates = here / "templates"
    roots.append(templates if templates.is_dir() else here.parent / "templates")
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_key(project: Snapshot, config: str | Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """A digest of everything a build reads: change any of it and the key changes.

    `config` is `Config.fingerprint()`; `extra` holds what else decides the result (the output
    path), as JSON-able values. The files' digests come from `project`, so the build that follows
    reads the same bytes (each file once). Raises `ProjectError` for a file that cannot be read.

    A mapping for `config` stands for the settings of callers that predate `Config`; it goes away
    once `flashc build` passes the fingerprint.
    """
    digest = hashlib.sha256(_flashc_digest().encode())
    settings = config if isinstance(config, str) else json.dumps(dict(config), sort_keys=True)
    for part in (settings.encode(), json.dumps(dict(extra or {}), sort_keys=True).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    for path in project.files:
        digest.update(len(path).to_bytes(8, "big") + path.encode() + bytes.fromhex(project.digest(path)))
    return digest.hexdigest()


def _archive_signature(archive: Path) -> list[int] | None:
    try:
        st = archive.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def up_to_date(root: Path, key: str) -> dict[str, Any] | None:
    """The last build's summary if its inputs had this key, the files it read from outside the
    project's snapshot are unchanged, and its archive is still untouched."""
    try:
        state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("key") != key or not isinstance(state.get("summary"), dict):
        return None
    outside = state.get("outside", {})
    if not isinstance(outside, dict) or any(_digest(root / path) != digest for path, digest in outside.items()):
        return None
    summary: dict[str, Any] = state["summary"]
    archive = Path(str(summary.get("archive", "")))
    if not archive.is_absolute() or _archive_signature(archive) != state.get("archive_signature"):
        return None
    return summary


def record(root: Path, key: str, summary: Mapping[str, Any], outside: Sequence[str] = ()) -> None:
    """Remember a finished build, with the digests of the files it read from outside the snapshot
    (a requirements file the ignore rules leave out, say). A record that cannot be written only
    costs the next build time."""
    target = root / STATE_FILE
    document = {
        "key": key,
        "summary": dict(summary),
        "outside": {path: _digest(root / path) for path in sorted(set(outside))},
        "archive_signature": _archive_signature(Path(str(summary["archive"]))),
    }
    try:
        write_atomic(target, json.dumps(document, sort_keys=True, indent=2).encode())
    except OSError:
        return


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
