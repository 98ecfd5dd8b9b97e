"""`flashc build`: analyze, render and pack into .flash/archive.tar.gz (dependencies come later)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

from click.testing import CliRunner

from flashc.cli import main

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def checkout(parent: Path) -> Path:
    root = parent / "demo"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns(".flash"))
    return root


def build(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.output


def test_two_checkouts_build_the_same_bytes(tmp_path: Path) -> None:
    first, second = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    os.utime(second / "api.py", (978307200, 978307200))
    old = os.umask(0o077)
    try:
        assert build(second)[0] == 0
    finally:
        os.umask(old)
    assert build(first)[0] == 0
    digests = {hashlib.sha256((r / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() for r in (first, second)}
    assert len(digests) == 1


def test_archive_layout_and_json_summary(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    code, output = build(root, "--json")
    assert code == 0
    summary = json.loads(output)
    assert summary["resources"] == ["demo-api", "demo-cpu", "demo-gpu"]
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        names = tar.getnames()
    assert hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest() == summary["sha256"]
    assert "flash_manifest.json" in names and "workers/gpu.py" in names
    assert "_flashc/flashc_runtime/handler.py" in names and "_flashc/tetra_rp/__init__.py" in names
    assert not any(n.startswith(".flash") for n in names)
    assert (root / ".flash" / "flash_manifest.json").read_text().endswith("}\n")


def test_flash_as_a_file_is_refused(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    (root / ".flash").write_text("not a folder")
    code, output = build(root)
    assert code == 1
    assert "is a file, but flashc keeps its build state there" in output


def test_terminal_summary_keep_build_and_quiet(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    code, output = build(root)
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "analyzed 5 Python files: 3 resources, 4 functions"
    assert lines[1].startswith("packed ") and lines[1].endswith(f"{root / '.flash' / 'archive.tar.gz'}")
    assert lines[2].startswith("sha256 ")
    assert not (root / ".flash" / ".build").exists()
    assert build(root, "--keep-build", "--quiet") == (0, "")
    with tarfile.open(root / ".flash" / "archive.tar.gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    staged = {
        p.relative_to(root / ".flash" / ".build").as_posix(): p.read_bytes()
        for p in (root / ".flash" / ".build").rglob("*")
        if p.is_file()
    }
    assert staged == members
    assert build(root, "-q") == (0, "")
    assert not (root / ".flash" / ".build").exists()  # removed again without --keep-build


def test_bad_output_and_outside_symlink_are_clear_errors(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    code, output = build(root, "-o", str(tmp_path / "missing" / "a.tar.gz"))
    assert code == 2
    assert f"flashc: error: output folder '{tmp_path / 'missing'}' does not exist" in output
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (root / "data.txt").symlink_to(secret)
    code, output = build(root)
    assert code == 1
    assert f"symlink 'data.txt' points outside the project (to '{secret}')" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()


def test_unchanged_project_is_up_to_date_and_any_change_rebuilds(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    first = json.loads(build(root, "--json")[1])
    assert first["up_to_date"] is False
    again = json.loads(build(root, "--json")[1])
    assert again["up_to_date"] is True and again["sha256"] == first["sha256"]
    code, output = build(root)
    assert code == 0 and output.startswith("up to date: no input changed since the last build\n")
    # A source edit, a touched archive or --force each make it build again.
    (root / "workers" / "cpu.py").write_text((root / "workers" / "cpu.py").read_text() + "\n# edit\n")
    edited = json.loads(build(root, "--json")[1])
    assert edited["up_to_date"] is False and edited["sha256"] != first["sha256"]
    archive = root / ".flash" / "archive.tar.gz"
    archive.write_bytes(b"tampered")
    rebuilt = json.loads(build(root, "--json")[1])
    assert rebuilt["up_to_date"] is False and rebuilt["sha256"] == edited["sha256"]
    assert json.loads(build(root, "--json", "--force")[1])["up_to_date"] is False
