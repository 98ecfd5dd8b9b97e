from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flashc.analyze import analyze_project
from flashc.errors import ProjectError
from flashc.group import group
from flashc.manifest import (
    MANIFEST_SCHEMA_VERSION,
    Manifest,
    build_manifest,
    manifest_json,
    manifest_json_schema,
    parse_manifest,
    source_fingerprint,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FINGERPRINT = source_fingerprint([("app.py", b"print('hi')\n")])
# Every scenario project that builds: the err_ ones have errors by design.
ALL_FIXTURES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("err_"))


@pytest.fixture(autouse=True, scope="module")
def _fixtures_stay_clean() -> Iterator[None]:
    """Analysis runs without the scan cache, so it must not leave a .flash folder in the repo's fixtures."""
    before = set(FIXTURES.glob("**/.flash"))
    yield
    assert set(FIXTURES.glob("**/.flash")) == before


def manifest_of(name: str) -> Manifest:
    analysis = analyze_project(FIXTURES / name, use_cache=False)
    assert not analysis.has_errors, f"fixture {name} should build"
    return build_manifest(group(analysis), python_version="3.11", source_fingerprint=FINGERPRINT)


def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manifest_json(manifest_of("demo")))
    return data


def walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_clean_fixture_gives_a_valid_manifest(name: str) -> None:
    manifest = manifest_of(name)
    text = manifest_json(manifest)
    assert parse_manifest(text) == manifest

    # Canonical form: same bytes again, sorted keys, two-space indent, one trailing newline.
    assert manifest_json(manifest_of(name)) == text
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.splitlines()[1].startswith('  "') and not text.splitlines()[1].startswith("   ")
    for _, value in walk(data):
        if isinstance(value, dict):
            assert list(value) == sorted(value)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_manifest_has_no_timestamps(name: str) -> None:
    data = json.loads(manifest_json(manifest_of(name)))
    iso_date = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2})?")
    for key, value in walk(data):
        assert not re.search(r"(^|_)(time|timestamp|date|created|built|mtime)(_|$)", key.lower()), key
        if isinstance(value, str):
            assert not iso_date.search(value), value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert not 1_000_000_000 <= value <= 10_000_000_000, (key, value)


def test_demo_manifest_contents() -> None:
    data = demo_data()
    assert data["schema_version"] == MANIFEST_SCHEMA_VERSION == 1
    assert data["project"] == "demo"
    assert data["target"] == {"python_version": "3.11", "platform": "linux_x86_64"}
    assert data["source_fingerprint"] == FINGERPRINT
    assert sorted(data["resources"]) == ["demo-api", "demo-cpu", "demo-gpu"]
    api = data["resources"]["demo-api"]
    assert {k: v for k, v in api.items() if k not in ("config", "config_hash")} == {
        "name": "demo-api",
        "type": "CpuLiveLoadBalancer",
        "kind": "load_balanced",
        "compute": "cpu",
        "handler_module": "flashc_handlers.handler_demo_api",
        "handler_path": "_flashc/flashc_handlers/handler_demo_api.py",
        "functions": ["api:greet", "api:health"],
        "dependencies": [],
        "system_dependencies": [],
        "site": "_flashc/site",  # no sites given: every resource shares one
        "source_fingerprint": FINGERPRINT,  # no per-resource fingerprints given: everything shipped
        "image": "runpod-lb-cpu",  # Runpod's CPU image for load-balanced resources
        "provided": [],  # only a build knows what it takes from its image
        "app": None,  # it serves functions, not the project's app (a mothership.py's)
    }
    assert [data["resources"][n]["image"] for n in ("demo-cpu", "demo-gpu")] == ["runpod-cpu", "runpod-gpu"]
    assert api["config"]["name"] == "demo-api"
    assert re.fullmatch(r"[0-9a-f]{64}", api["config_hash"])
    assert data["functions"]["api:greet"] == {
        "id": "api:greet",
        "module": "api",
        "qualname": "greet",
        "name": "greet",
        "kind": "function",
        "is_async": True,
        "is_generator": False,
        "params": [
            {"name": "name", "kind": "positional_or_keyword", "has_default": False},
            {"name": "punctuation", "kind": "positional_or_keyword", "has_default": True},
        ],
        "methods": [],
        "route": {"method": "POST", "path": "/greet"},
        "resource": "demo-api",
        "calls": [],
        "dependencies": [],
        "system_dependencies": [],
    }
    assert data["functions"]["workers.gpu:normalize"]["calls"] == ["workers.cpu:summarize"]
    assert data["function_registry"] == {
        "greet": "demo-api",
        "health": "demo-api",
        "normalize": "demo-gpu",
        "summarize": "demo-cpu",
    }


def test_class_methods_are_in_the_manifest() -> None:
    model = manifest_of("classes").functions["model:Model"]
    assert (model.kind, model.name, model.resource) == ("class", "Model", "model-server")
    assert model.methods
    assert all(m.name and not m.name.startswith("_") for m in model.methods)


def test_registry_leaves_out_ambiguous_names() -> None:
    manifest = manifest_of("same_name")
    assert sorted(manifest.functions) == ["a.process:process", "b.process:process"]
    assert "process" not in manifest.function_registry
    assert manifest.function_registry == {}


def test_registry_maps_unambiguous_names() -> None:
    manifest = manifest_of("seed_style")
    assert manifest.function_registry == {
        "gpu_compute": "flash-quickstart",
        "health_check": "api-service",
        "preprocess_data": "data-preprocessor",
        "process_data": "api-service",
        "run_inference": "ml-inference-gpu",
        "transcode": "custom-ml-env",
    }


def test_build_manifest_refuses_a_bad_fingerprint_or_version() -> None:
    plan = group(analyze_project(FIXTURES / "demo", use_cache=False))
    with pytest.raises(ValueError, match="source_fingerprint"):
        build_manifest(plan, python_version="3.11", source_fingerprint="abc")
    with pytest.raises(ValueError, match="python_version"):
        build_manifest(plan, python_version="py311", source_fingerprint=FINGERPRINT)


# --- source_fingerprint -----------------------------------------------------------------------

FILES = [("app.py", b"import os\n"), ("pkg/__init__.py", b""), ("pkg/mod.py", b"x = 1\n")]


def test_fingerprint_is_hex_sha256_and_order_free() -> None:
    digest = source_fingerprint(FILES)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert source_fingerprint(reversed(FILES)) == digest
    assert source_fingerprint(iter([FILES[1], FILES[2], FILES[0]])) == digest


def test_fingerprint_changes_with_content_and_path() -> None:
    digest = source_fingerprint(FILES)
    assert source_fingerprint([*FILES[:2], ("pkg/mod.py", b"x = 2\n")]) != digest
    assert source_fingerprint([*FILES[:2], ("pkg/other.py", b"x = 1\n")]) != digest
    assert source_fingerprint(FILES[:2]) != digest
    assert source_fingerprint([*FILES, ("empty.py", b"")]) != digest


def test_fingerprint_of_different_splits_differs() -> None:
    # Same concatenated bytes, split differently between path and content or between files.
    assert source_fingerprint([("ab", b"c")]) != source_fingerprint([("a", b"bc")])
    assert source_fingerprint([("a", b"xy"), ("b", b"")]) != source_fingerprint([("a", b"x"), ("b", b"y")])


def test_fingerprint_pins_the_framing() -> None:
    import hashlib

    expected = hashlib.sha256()
    for path, content in [(b"a.py", b"1"), (b"b.py", b"22")]:
        expected.update(len(path).to_bytes(8, "big") + path + len(content).to_bytes(8, "big") + content)
    assert source_fingerprint([("b.py", b"22"), ("a.py", b"1")]) == expected.hexdigest()
    assert source_fingerprint([]) == hashlib.sha256().hexdigest()


def test_fingerprint_refuses_a_path_given_twice() -> None:
    with pytest.raises(ValueError, match=r"'a\.py' is given twice"):
        source_fingerprint([("a.py", b"1"), ("a.py", b"2")])


# --- parse_manifest -----------------------------------------------------------------------------


def parse_error(data: Any) -> ProjectError:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ProjectError) as info:
        parse_manifest(text)
    assert "Traceback" not in info.value.message
    assert len(info.value.message.splitlines()) <= 3
    return info.value


def test_parse_refuses_an_unknown_key() -> None:
    data = demo_data()
    data["resources"]["demo-api"]["workers"] = 3
    error = parse_error(data)
    assert error.message == "manifest is not valid: resources.demo-api: unknown key 'workers'"
    assert error.hint == "the manifest is written by `flashc build`; build again rather than editing it"

    data = demo_data()
    data["built_at"] = "2024-01-01T00:00:00Z"
    assert parse_error(data).message == "manifest is not valid: unknown key 'built_at'"


@pytest.mark.parametrize(
    ("version", "found"),
    [
        (2, "schema_version 2"),
        ("1", 'schema_version "1"'),
        (None, "schema_version null"),
        (True, "schema_version true"),
        (1.0, "schema_version 1.0"),
    ],
)
def test_parse_refuses_another_schema_version(version: Any, found: str) -> None:
    data = demo_data()
    data["schema_version"] = version
    error = parse_error(data)
    assert error.message == f"manifest has {found}, but this flashc reads schema_version 1"
    assert error.hint == "build again with this version of flashc"


def test_parse_refuses_a_missing_schema_version() -> None:
    data = demo_data()
    del data["schema_version"]
    assert parse_error(data).message == "manifest has no schema_version, but this flashc reads schema_version 1"


def test_parse_summarises_many_problems_in_one_line() -> None:
    data = demo_data()
    data["target"]["platform"] = "win_amd64"
    data["functions"]["api:greet"]["is_async"] = "yes"
    data["functions"]["api:greet"]["params"][0]["kind"] = "positional"
    data["resources"]["demo-cpu"]["kind"] = "fifo"
    data["project"] = 7
    error = parse_error(data)
    assert error.message == (
        "manifest is not valid: project: Input should be a valid string; "
        "target.platform: Input should be 'linux_x86_64'; "
        "resources.demo-cpu.kind: Input should be 'queue' or 'load_balanced'; and 2 more"
    )

    data = demo_data()
    data["functions"]["api:greet"]["params"][0]["kind"] = "positional"
    assert parse_error(data).message == (
        "manifest is not valid: functions.api:greet.params[0].kind: Input should be 'positional_only', "
        "'positional_or_keyword', 'var_positional', 'keyword_only' or 'var_keyword'"
    )


def test_parse_refuses_broken_cross_references() -> None:
    data = demo_data()
    data["resources"]["demo-cpu"]["functions"] = []
    data["function_registry"]["greet"] = "demo-gpu"
    assert parse_error(data).message == (
        "manifest is not valid: function 'workers.cpu:summarize' is missing from resource 'demo-cpu'; "
        "function_registry maps 'greet' to 'demo-gpu', "
        "but that is not the resource of the only remote function or class named 'greet'"
    )


def test_parse_refuses_text_that_is_not_json() -> None:
    assert parse_error('{"schema_version": 1,').message == (
        "manifest is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 22"
    )
    assert parse_error("[]").message == "manifest is not valid: Input should be an object"


def test_manifest_is_frozen() -> None:
    manifest = manifest_of("demo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.project = "other"  # type: ignore[misc]


def test_json_schema() -> None:
    schema = manifest_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "flashc manifest"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "schema_version",
        "project",
        "target",
        "resources",
        "functions",
        "function_registry",
        "source_fingerprint",
    }
    assert schema["properties"]["schema_version"]["const"] == 1
    json.dumps(schema)  # JSON data only


def test_analyzer_does_not_load_pydantic_or_the_manifest() -> None:
    code = (
        "import sys, flashc.analyze, flashc.group; "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'flashc.manifest'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_each_resource_names_its_site_folder() -> None:
    plan = group(analyze_project(FIXTURES / "demo", use_cache=False))
    manifest = build_manifest(
        plan, python_version="3.11", source_fingerprint=FINGERPRINT, sites={"demo-gpu": "_flashc/sites/demo_gpu"}
    )
    assert {name: r.site for name, r in manifest.resources.items()} == {
        "demo-api": "_flashc/site",
        "demo-cpu": "_flashc/site",
        "demo-gpu": "_flashc/sites/demo_gpu",
    }
    with pytest.raises(ValueError, match="site"):
        build_manifest(plan, python_version="3.11", source_fingerprint=FINGERPRINT, sites={"demo-gpu": "../outside"})
