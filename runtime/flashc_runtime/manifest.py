"""Read `flash_manifest.json` on a worker, checked against the schema the compiler wrote it with.

flashc defines the manifest as a pydantic model and exports it as JSON Schema; that schema ships
here (`manifest.schema.json`, kept equal to the model by a test), and this module checks a
manifest against it with a small validator for the keywords the schema uses, so the runtime
needs no pydantic and starts fast.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "ManifestError", "load_manifest", "manifest_problems", "parse_manifest"]

SCHEMA_VERSION = 1
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class ManifestError(ValueError):
    """The manifest cannot be read, or does not match the schema this runtime understands."""


@cache
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parent / "manifest.schema.json").read_text(encoding="utf-8"))
    return data


def load_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest at `path` as data, after checking it; ManifestError says what is wrong."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest '{path}': {exc.strerror or exc}") from exc
    return parse_manifest(text, f"manifest '{path}'")


def parse_manifest(text: str | bytes, name: str = "the manifest") -> dict[str, Any]:
    """The manifest `text` as data, after checking it; ManifestError says what is wrong.

    `name` is how the messages call it: "manifest 'path'" when read from a file, or whatever tells
    the reader which manifest it is, like the archive it came in.
    """
    try:  # UTF-8 only, as the compiler writes it: bytes are not left to json's encoding guess
        data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except ValueError as exc:
        raise ManifestError(f"{name} is not JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"{name} has schema_version {data.get('schema_version')!r}, "
            f"but this runtime reads {SCHEMA_VERSION}: rebuild with a matching flashc"
        )
    problems = manifest_problems(data)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ManifestError(f"{name} is not valid: {shown}")
    result: dict[str, Any] = data
    return result


def manifest_problems(data: Any) -> list[str]:
    """Every place where `data` does not match the manifest schema, as `location: problem`."""
    problems: list[str] = []
    _check(data, _schema(), "manifest", problems)
    return problems


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    target: Any = _schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return _resolve(target)


def _check(value: Any, schema: Mapping[str, Any], where: str, problems: list[str]) -> None:
    schema = _resolve(schema)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            attempt: list[str] = []
            _check(value, option, where, attempt)
            if not attempt:
                return
        problems.append(f"{where}: does not match any allowed form")
        return
    expected = schema.get("type")
    if expected is not None:
        allowed = _TYPES[expected]
        if not isinstance(value, allowed) or (expected in ("integer", "number") and isinstance(value, bool)):
            problems.append(f"{where}: expected {expected}, got {type(value).__name__}")
            return
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: must be one of {', '.join(map(repr, schema['enum']))}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(f"{where}: missing key '{key}'")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], f"{where}.{key}", problems)
            elif extra is False:
                problems.append(f"{where}: unknown key '{key}'")
            elif isinstance(extra, Mapping):
                _check(item, extra, f"{where}.{key}", problems)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{i}]", problems)
