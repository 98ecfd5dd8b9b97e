"""The `flashc_render` fixture, as a user's test suite sees it: run by pytest in a separate process.

The runs are subprocesses so that pytest loads the plugin the way it does for a user, from the
`pytest11` entry point of the installed flashc, with no `-p` option and no conftest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GENERATED = [
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


@pytest.fixture
def user(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's folder with an empty pytest config, in which pytest loads entry-point plugins."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini("[pytest]\n")
    return pytester


def copy_project(user: pytest.Pytester, fixture: str) -> Path:
    project = user.path / "project"
    shutil.copytree(FIXTURES / fixture, project, ignore=shutil.ignore_patterns(".flash", "__pycache__"))
    return project


def test_the_plugin_is_loaded_from_its_entry_point(user: pytest.Pytester) -> None:
    user.makepyfile(test_uses_fixture="def test_it(flashc_render):\n    assert callable(flashc_render)\n")
    result = user.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins: *flashc-0.1.0*"])

    disabled = user.runpytest_subprocess("-p", "no:flashc")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'flashc_render' not found*"])


def test_flashc_render_returns_what_flashc_render_out_writes(user: pytest.Pytester) -> None:
    copy_project(user, "demo")
    user.makepyfile(
        test_render=f"""
        import json
        import sys

        from click.testing import CliRunner

        from flashc.cli import main


        def test_same_files_as_the_command_line(flashc_render, tmp_path):
            out = tmp_path / "out"
            result = CliRunner().invoke(main, ["render", "project", "--out", str(out)])
            assert result.exit_code == 0, result.output
            written = {{
                p.relative_to(out).as_posix(): p.read_bytes().decode("utf-8") for p in out.rglob("*") if p.is_file()
            }}
            # Both target the worker images' Python, whatever runs the tests.
            rendered = flashc_render("project")
            assert list(rendered) == {GENERATED!r}
            assert sorted(written) == {GENERATED!r}
            for path, text in written.items():
                assert rendered[path] == text, path


        def test_default_python_version_is_the_worker_images(flashc_render):
            manifest = json.loads(flashc_render("project")["flash_manifest.json"])
            assert manifest["target"]["python_version"] == "3.12"
            manifest = json.loads(flashc_render("project", python_version="3.11")["flash_manifest.json"])
            assert manifest["target"]["python_version"] == "3.11"


        def test_relative_paths_are_resolved_against_the_working_directory(flashc_render, monkeypatch):
            expected = flashc_render("project")
            monkeypatch.chdir("project")
            assert flashc_render() == expected
        """
    )
    result = user.runpytest_subprocess("test_render.py")
    result.assert_outcomes(passed=3)


def test_a_syrupy_snapshot_passes_until_a_handler_changes(user: pytest.Pytester) -> None:
    project = copy_project(user, "demo")
    user.makepyfile(
        test_snapshot="""
        def test_generated_handlers(flashc_render, snapshot):
            assert flashc_render("project") == snapshot
        """
    )
    created = user.runpytest_subprocess("test_snapshot.py", "--snapshot-update")
    created.assert_outcomes(passed=1)
    snapshot = (user.path / "__snapshots__" / "test_snapshot.ambr").read_text(encoding="utf-8")
    assert "_flashc/flashc_handlers/handler_demo_api.py" in snapshot
    assert 'health = importlib.import_module("api").health' in snapshot

    user.runpytest_subprocess("test_snapshot.py").assert_outcomes(passed=1)

    api = project / "api.py"
    api.write_text(api.read_text(encoding="utf-8").replace("def health(", "def healthz("), encoding="utf-8")
    changed = user.runpytest_subprocess("test_snapshot.py")
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(['*healthz = importlib.import_module("api").healthz*'])


def test_a_project_with_errors_fails_with_the_diagnostics_and_no_traceback(user: pytest.Pytester) -> None:
    copy_project(user, "err_class")
    user.makepyfile(
        test_errors="""
        def test_generated_handlers(flashc_render):
            flashc_render("project")


        def test_missing_project(flashc_render):
            flashc_render("missing")
        """
    )
    result = user.runpytest_subprocess("test_errors.py")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert (
        "classes.py:7:7: error: class 'Empty' has no public methods to serve\n"
        " 7 | class Empty:\n"
        "   |       ^~~~~\n"
        "  = hint: add a method whose name does not start with '_'\n"
        "classes.py:13:7: error: 'NeedsArgs.__init__' requires arguments (model_path), "
        "but an endpoint creates its instance without arguments\n"
        " 13 | class NeedsArgs:\n"
        "    |       ^~~~~~~~~\n"
        "  = hint: give these parameters default values, or read them from the environment inside __init__\n"
        "flashc: error: 2 errors found\n"
    ) in output
    assert "flashc: error: project folder 'missing' does not exist\n" in output
    assert "Traceback" not in output
    assert "During handling" not in output
    assert "pytest_plugin.py" not in output
    assert "DiagnosticsError" not in output
