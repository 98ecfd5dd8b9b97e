from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flashc import sources
from flashc.errors import ProjectError, UsageError
from flashc.sources import LARGE_FILE, ProjectFiles, Snapshot, snapshot_project, walk_project


def make(root: Path, tree: dict[str, str]) -> Path:
    """Write `tree` under `root`: a path ending in '/' is an empty folder, anything else a file."""
    for rel, text in tree.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return root


def walk(root: Path, tree: dict[str, str]) -> ProjectFiles:
    return walk_project(make(root, tree))


needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")


# Ignore files


def test_nested_gitignore_applies_below_its_folder_with_paths_relative_to_it(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".gitignore": "*.log\n",
            "app.log": "",
            "main.py": "",
            "local.py": "",
            "pkg/.gitignore": "data/\n/local.py\n",
            "pkg/local.py": "",
            "pkg/mod.py": "",
            "pkg/data/big.bin": "",
            "pkg/sub/local.py": "",
            "pkg/sub/trace.log": "",
            "other/data/small.csv": "",
        },
    )
    assert result.files == (
        ".gitignore",
        "local.py",
        "main.py",
        "other/data/small.csv",
        "pkg/.gitignore",
        "pkg/mod.py",
        "pkg/sub/local.py",
    )
    assert result.ignored == ("app.log", "pkg/data/", "pkg/local.py", "pkg/sub/trace.log")


def test_flashignore_overrides_gitignore_in_the_same_folder(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".gitignore": "*.json\n!notes.txt\n",
            ".flashignore": "!config.json\n*.txt\n",
            "config.json": "",
            "cache.json": "",
            "notes.txt": "",
        },
    )
    assert result.files == (".flashignore", ".gitignore", "config.json")
    assert result.ignored == ("cache.json", "notes.txt")


def test_deeper_rules_override_shallower_ones(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".gitignore": "*.csv\n",
            "top.csv": "",
            "pkg/.gitignore": "!keep.csv\n",
            "pkg/keep.csv": "",
            "pkg/drop.csv": "",
        },
    )
    assert "pkg/keep.csv" in result.files
    assert result.ignored == ("pkg/drop.csv", "top.csv")


def test_a_file_inside_an_ignored_folder_cannot_be_re_included(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".gitignore": "assets/\n!assets/logo.png\n",
            "assets/logo.png": "",
            "assets/.flashignore": "!*\n",
            "assets/raw/photo.png": "",
            "app.py": "",
        },
    )
    assert result.files == (".gitignore", "app.py")
    assert result.ignored == ("assets/",)


def test_a_folder_whose_contents_are_ignored_keeps_re_included_files(tmp_path: Path) -> None:
    # `logs/**` matches what is inside logs/, not logs/ itself, so git keeps logs/.gitkeep.
    result = walk(
        tmp_path,
        {".gitignore": "logs/**\n!logs/.gitkeep\n", "logs/.gitkeep": "", "logs/run.log": "", "logs/old/a.log": ""},
    )
    assert result.files == (".gitignore", "logs/.gitkeep")
    assert result.ignored == ("logs/old/", "logs/run.log")


def test_allow_list_keeps_only_python_files_at_every_depth(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".flashignore": "*\n!*/\n!*.py\n",
            "main.py": "",
            "README.md": "",
            "pkg/mod.py": "",
            "pkg/data.csv": "",
            "pkg/sub/deep.py": "",
        },
    )
    assert result.files == ("main.py", "pkg/mod.py", "pkg/sub/deep.py")


def test_rules_in_a_folder_with_glob_characters_in_its_name_stay_in_that_folder(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {"[x]/.gitignore": "secret.txt\n", "[x]/secret.txt": "", "x/secret.txt": "", "a*b/.gitignore": "*\n"},
    )
    assert result.files == ("[x]/.gitignore", "x/secret.txt")
    assert result.ignored == ("[x]/secret.txt", "a*b/.gitignore")


def test_comments_blank_lines_and_trailing_spaces_are_not_patterns(tmp_path: Path) -> None:
    result = walk(tmp_path, {".gitignore": "# build output\n\nout.txt   \n", "out.txt": "", "# build output": ""})
    assert result.files == ("# build output", ".gitignore")
    assert result.ignored == ("out.txt",)


# Defaults


def test_default_ignores_drop_caches_and_build_output(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            "main.py": "",
            "main.pyc": "",
            "__pycache__/main.cpython-311.pyc": "",
            "pkg/__pycache__/mod.cpython-311.pyc": "",
            "node_modules/left-pad/index.js": "",
            ".mypy_cache/3.11/x.json": "",
            ".pytest_cache/README.md": "",
            ".ruff_cache/CACHEDIR.TAG": "",
            ".tox/py311/log": "",
            "demo.egg-info/PKG-INFO": "",
            "build/lib/main.py": "",
            "dist/demo-0.1.tar.gz": "",
            ".venv/lib/site.py": "",
            "venv/lib/site.py": "",
        },
    )
    assert result.files == ("main.py",)
    assert result.ignored == (
        ".mypy_cache/",
        ".pytest_cache/",
        ".ruff_cache/",
        ".tox/",
        ".venv/",
        "__pycache__/",
        "build/",
        "demo.egg-info/",
        "dist/",
        "main.pyc",
        "node_modules/",
        "pkg/__pycache__/",
        "venv/",
    )


def test_build_and_dist_are_only_ignored_at_the_root_and_env_is_an_ordinary_name(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {"pkg/build/steps.py": "", "pkg/dist/release.py": "", "env/settings.py": "", "envs/dev.py": ""},
    )
    assert result.files == ("env/settings.py", "envs/dev.py", "pkg/build/steps.py", "pkg/dist/release.py")


def test_a_user_rule_re_includes_a_default_ignore(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {".flashignore": "!/build/\n!venv/\n", "build/x.py": "", "venv/notes.md": "", "dist/y.py": ""},
    )
    assert result.files == (".flashignore", "build/x.py", "venv/notes.md")
    assert result.ignored == ("dist/",)


def test_hard_ignores_cannot_be_re_included(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".flashignore": "!.env\n!.env.*\n!.envrc\n!.git/\n!.flash/\n!.hg/\n!.svn/\n",
            ".env": "API_KEY=secret",
            ".env.production": "API_KEY=secret",
            "pkg/.env": "API_KEY=secret",
            ".git/config": "",
            ".flash/state.json": "",
            ".hg/store": "",
            ".svn/entries": "",
            "pkg/.git": "gitdir: ../.git/modules/pkg",
            ".envrc": "",
            "env.py": "",
            "app.py": "",
        },
    )
    assert result.files == (".envrc", ".flashignore", "app.py", "env.py")
    assert result.ignored == (
        ".env",
        ".env.production",
        ".flash/",
        ".git/",
        ".hg/",
        ".svn/",
        "pkg/.env",
        "pkg/.git",
    )


# Virtual environments


def test_a_virtual_environment_is_recognised_by_its_pyvenv_cfg_whatever_its_name(tmp_path: Path) -> None:
    result = walk(
        tmp_path,
        {
            ".flashignore": "!myenv/\n",
            "myenv/pyvenv.cfg": "home = /usr/bin\n",
            "myenv/lib/python3.11/site-packages/torch/__init__.py": "",
            "tools/sandbox/pyvenv.cfg": "",
            "tools/sandbox/bin/python": "",
            "tools/run.py": "",
        },
    )
    assert result.files == (".flashignore", "tools/run.py")
    assert result.ignored == ("myenv/", "tools/sandbox/")


def test_a_conda_environment_is_recognised_by_its_conda_meta_folder(tmp_path: Path) -> None:
    result = walk(tmp_path, {"py311/conda-meta/history": "", "py311/lib/site.py": "", "app.py": ""})
    assert result.files == ("app.py",)
    assert result.ignored == ("py311/",)


# Output


def test_output_is_sorted_and_independent_of_creation_order(tmp_path: Path) -> None:
    result = walk(tmp_path, {"b.py": "", "a/z.py": "", "a.py": "", "B.py": "", "a/b/c.py": "", "a-b.py": ""})
    assert result.files == ("B.py", "a-b.py", "a.py", "a/b/c.py", "a/z.py", "b.py")


def test_every_kind_of_file_is_listed_not_only_python(tmp_path: Path) -> None:
    result = walk(tmp_path, {"main.py": "", "requirements.txt": "", "model/weights.bin": "", "Dockerfile": ""})
    assert result.files == ("Dockerfile", "main.py", "model/weights.bin", "requirements.txt")


def test_a_pruned_folder_is_listed_once_not_file_by_file(tmp_path: Path) -> None:
    tree = {f"node_modules/pkg{i}/index.js": "" for i in range(20)}
    result = walk(tmp_path, {**tree, "app.py": ""})
    assert result.ignored == ("node_modules/",)


def test_root_is_absolute_and_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, {"proj/app.py": ""})
    monkeypatch.chdir(tmp_path)
    result = walk_project(Path("proj/../proj"))
    assert result.root == (tmp_path / "proj").resolve()
    assert result.files == ("app.py",)


# Symlinks


@needs_symlinks
def test_symlinked_folders_are_not_followed_and_symlinked_files_are_listed(tmp_path: Path) -> None:
    outside = make(tmp_path / "outside", {"huge.bin": "", "lib.py": ""})
    root = make(tmp_path / "proj", {"app.py": ""})
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    (root / "lib.py").symlink_to(outside / "lib.py")
    (root / "broken.py").symlink_to(root / "missing.py")
    (root / "loop").symlink_to(root / "loop")
    result = walk_project(root)
    assert result.files == ("app.py", "lib.py")
    assert result.ignored == ()


# Errors


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UsageError) as info:
        walk_project(missing)
    assert info.value.message == f"project folder '{missing}' does not exist"


def test_root_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    file = make(tmp_path, {"app.py": ""}) / "app.py"
    with pytest.raises(UsageError) as info:
        walk_project(file)
    assert info.value.message == f"project folder '{file}' is not a directory"


@pytest.mark.parametrize(
    ("pattern", "shown"),
    [("foo\\", "'foo\\\\'"), ("!", "'!'"), ("[z-a].py", "'[z-a].py'")],
)
def test_invalid_pattern_names_the_file_and_line(tmp_path: Path, pattern: str, shown: str) -> None:
    make(tmp_path, {"pkg/.flashignore": f"# comment\n*.tmp\n{pattern}\n", "pkg/a.py": ""})
    with pytest.raises(ProjectError) as info:
        walk_project(tmp_path)
    assert info.value.message == f"pkg/.flashignore:3: invalid ignore pattern {shown}"
    assert info.value.hint is not None
    assert "gitignore" in info.value.hint


def test_ignore_file_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_bytes(b"*.log\n\xff\xfe.txt\n")
    with pytest.raises(ProjectError) as info:
        walk_project(tmp_path)
    assert info.value.message == ".gitignore:2: ignore file is not valid UTF-8"
    assert info.value.hint == "save the file as UTF-8"


def test_ignore_file_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_bytes(b"\xef\xbb\xbf*.log\n")
    result = walk(tmp_path, {"app.log": "", "app.py": ""})
    assert result.ignored == ("app.log",)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_ignore_file_is_a_project_error(tmp_path: Path) -> None:
    ignore = make(tmp_path, {".gitignore": "*.log\n"}) / ".gitignore"
    ignore.chmod(0)
    try:
        with pytest.raises(ProjectError) as info:
            walk_project(tmp_path)
    finally:
        ignore.chmod(0o644)
    assert info.value.message == ".gitignore: cannot read ignore file: Permission denied"


# Snapshot: each file read at most once


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the snapshot opens, in order (by name)."""
    names: list[str] = []
    real: Callable[..., Any] = open

    def counting(file: str, *args: Any, **kwargs: Any) -> Any:
        names.append(os.path.basename(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(sources, "open", counting, raising=False)
    return names


def test_walk_project_is_snapshot_project(tmp_path: Path) -> None:
    make(tmp_path, {"app.py": "x = 1\n", ".gitignore": "*.log\n", "run.log": ""})
    assert walk_project(tmp_path) == snapshot_project(tmp_path)
    assert ProjectFiles is Snapshot
    assert snapshot_project(tmp_path).files == (".gitignore", "app.py")


def test_a_file_is_read_once_and_its_digest_computed_from_those_bytes(tmp_path: Path, opened: list[str]) -> None:
    snapshot = snapshot_project(make(tmp_path, {"app.py": "x = 1\n", "data.csv": "a,b\n"}))
    assert opened == []  # the walk reads no file but ignore files
    assert snapshot.read("app.py") == b"x = 1\n"
    (tmp_path / "app.py").write_text("x = 2  # edited after the build read it\n")
    assert snapshot.read("app.py") == b"x = 1\n"
    assert snapshot.digest("app.py") == hashlib.sha256(b"x = 1\n").hexdigest()
    assert snapshot.digest("data.csv") == hashlib.sha256(b"a,b\n").hexdigest()
    assert snapshot.read("data.csv") == b"a,b\n"
    assert (snapshot.size("app.py"), snapshot.size("data.csv")) == (6, 4)
    assert opened == ["app.py", "data.csv"]


def test_a_large_file_is_not_kept_and_its_digest_is_streamed(tmp_path: Path, opened: list[str]) -> None:
    content = b"\x00" * LARGE_FILE + b"!"
    (tmp_path / "weights.bin").write_bytes(content)
    snapshot = snapshot_project(tmp_path)
    assert snapshot.is_large("weights.bin") and snapshot.size("weights.bin") == LARGE_FILE + 1
    assert snapshot.digest("weights.bin") == snapshot.digest("weights.bin") == hashlib.sha256(content).hexdigest()
    assert opened == ["weights.bin"]
    assert snapshot.read("weights.bin") == content
    assert snapshot.read("weights.bin") == content
    assert opened == ["weights.bin"] * 3


def test_past_the_memory_budget_files_are_read_again(
    tmp_path: Path, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MEMORY_BUDGET", 10)
    snapshot = snapshot_project(make(tmp_path, {"a.txt": "123456", "b.txt": "abcdef"}))
    for _ in range(2):
        assert (snapshot.read("a.txt"), snapshot.read("b.txt")) == (b"123456", b"abcdef")
    assert opened == ["a.txt", "b.txt", "b.txt"]
    assert snapshot.digest("b.txt") == hashlib.sha256(b"abcdef").hexdigest()


def test_execute_bits_are_reported(tmp_path: Path) -> None:
    make(tmp_path, {"run.sh": "#!/bin/sh\n", "app.py": ""})
    (tmp_path / "run.sh").chmod(0o744)
    (tmp_path / "app.py").chmod(0o644)
    snapshot = snapshot_project(tmp_path)
    assert (snapshot.is_executable("run.sh"), snapshot.is_executable("app.py")) == (True, False)


def test_a_file_that_cannot_be_read_is_a_project_error_naming_it(tmp_path: Path) -> None:
    snapshot = snapshot_project(make(tmp_path, {"pkg/gone.py": "", "pkg/fifo": ""}))
    (tmp_path / "pkg/gone.py").unlink()
    for read in (snapshot.read, snapshot.digest, snapshot.size):
        with pytest.raises(ProjectError) as info:
            read("pkg/gone.py")
        assert info.value.message == "cannot read 'pkg/gone.py': No such file or directory"
        assert info.value.hint == "check the file's permissions, or add it to .flashignore"
    if hasattr(os, "mkfifo"):
        (tmp_path / "pkg/fifo").unlink()
        os.mkfifo(tmp_path / "pkg/fifo")
        with pytest.raises(ProjectError) as info:
            snapshot.read("pkg/fifo")
        assert info.value.message == "cannot read 'pkg/fifo': not a regular file"


def test_only_the_snapshot_files_can_be_read(tmp_path: Path) -> None:
    snapshot = snapshot_project(make(tmp_path, {".flashignore": "secret.txt\n", "secret.txt": "", "app.py": ""}))
    with pytest.raises(KeyError):
        snapshot.read("secret.txt")
    with pytest.raises(KeyError):
        snapshot.digest("../outside.py")


# Git agrees


GIT_CASES = {
    "nested rules": {
        ".gitignore": "*.log\n/local/\n",
        "a.log": "",
        "local/x.py": "",
        "pkg/local/y.py": "",
        "pkg/.gitignore": "!keep.log\ndata/\n",
        "pkg/keep.log": "",
        "pkg/data/z.csv": "",
    },
    "re-include in a re-included folder": {
        ".gitignore": "/*\n!/src/\nsrc/*\n!src/keep/\n",
        "top.py": "",
        "src/drop/a.py": "",
        "src/keep/b.py": "",
        "src/c.py": "",
    },
    "content of folders": {".gitignore": "x/**\n!x/a/\nb/**/\n", "x/a/f": "", "x/a/g/h": "", "b/f": "", "b/c/d": ""},
    "dir-only negation": {".gitignore": "a/*/c\n!c/\n", "a/s/c/f.py": "", "a/s/d/f.py": ""},
}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("tree", GIT_CASES.values(), ids=GIT_CASES.keys())
def test_kept_files_match_git(tmp_path: Path, tree: dict[str, str]) -> None:
    make(tmp_path, tree)
    ours = walk_project(tmp_path).files
    subprocess.run(["git", "init", "-q", "."], cwd=tmp_path, check=True)
    listed = subprocess.run(
        ["git", "-c", "core.excludesFile=", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert ours == tuple(sorted(listed.split("\0")[:-1]))
