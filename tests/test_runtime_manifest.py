"""The runtime reads flash_manifest.json against the schema the compiler exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flashc_runtime.manifest import ManifestError, load_manifest, manifest_problems

from flashc.analyze import analyze_project
from flashc.group import group
from flashc.manifest import build_manifest, manifest_json, manifest_json_schema

RUNTIME_SCHEMA = Path(__file__).resolve().parent.parent / "runtime" / "flashc_runtime" / "manifest.schema.json"
DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def demo_manifest() -> dict[str, object]:
    plan = group(analyze_project(DEMO, use_cache=False))
    data: dict[str, object] = json.loads(
        manifest_json(build_manifest(plan, python_version="3.11", source_fingerprint="a" * 64))
    )
    return data


def test_runtime_ships_the_compilers_schema() -> None:
    # One schema: the runtime's copy is the pydantic model's export (run `flashc schema manifest` to refresh it).
    assert json.loads(RUNTIME_SCHEMA.read_text()) == manifest_json_schema()


def test_a_compiler_written_manifest_loads(tmp_path: Path) -> None:
    path = tmp_path / "flash_manifest.json"
    path.write_text(json.dumps(demo_manifest()))
    assert load_manifest(path) == demo_manifest()


def test_problems_name_their_place() -> None:
    data = demo_manifest()
    resources = data["resources"]
    assert isinstance(resources, dict)
    resources["demo-api"]["kind"] = "queued"
    resources["demo-cpu"]["functions"] = "workers.cpu:summarize"
    data["surprise"] = True
    assert manifest_problems(data) == [
        "manifest.resources.demo-api.kind: must be one of 'queue', 'load_balanced'",
        "manifest.resources.demo-cpu.functions: expected array, got str",
        "manifest: unknown key 'surprise'",
    ]


def test_wrong_version_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "flash_manifest.json"
    path.write_text(json.dumps({**demo_manifest(), "schema_version": 2}))
    with pytest.raises(ManifestError, match="has schema_version 2, but this runtime reads 1: rebuild"):
        load_manifest(path)
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="is not JSON"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "missing.json")
