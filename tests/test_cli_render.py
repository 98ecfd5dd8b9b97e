"""`flashc render` and `flashc schema manifest` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from flashc.cli import main
from flashc.manifest import parse_manifest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_render_writes_the_generated_files(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    result = CliRunner().invoke(main, ["render", str(FIXTURES / "demo"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [
        "_flashc/flashc_handlers/__init__.py",
        "_flashc/flashc_handlers/handler_demo_api.py",
        "_flashc/flashc_handlers/handler_demo_cpu.py",
        "_flashc/flashc_handlers/handler_demo_gpu.py",
        "_flashc/runpod_flash/__init__.py",
        "_flashc/tetra_rp/__init__.py",
        "flash_manifest.json",
        "handler_demo-api.py",
        "handler_demo-cpu.py",
        "handler_demo-gpu.py",
    ]
    manifest = parse_manifest((out / "flash_manifest.json").read_text())
    assert sorted(manifest.resources) == ["demo-api", "demo-cpu", "demo-gpu"]
    assert not list(out.rglob("*.tmp"))


def test_render_refuses_a_project_with_errors_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    result = CliRunner().invoke(main, ["render", str(FIXTURES / "err_class"), "--out", str(out)])
    assert result.exit_code == 1
    assert "classes.py:7:7: error: class 'Empty' has no public methods to serve" in result.output
    assert " 7 | class Empty:" in result.output
    assert not out.exists()


def test_render_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    result = CliRunner().invoke(main, ["render", str(FIXTURES / "demo"), "--out", str(out)])
    assert result.exit_code == 2
    assert f"flashc: error: '{out}' exists and is not a folder" in result.output


def test_schema_manifest_prints_json_schema() -> None:
    result = CliRunner().invoke(main, ["schema", "manifest"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"schema_version", "resources", "functions", "function_registry"} <= set(schema["properties"])
