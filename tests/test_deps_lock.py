"""pylock.toml: PEP 751 text flashc writes and reads back, and that another tool installs from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from wheelhouse import make_wheel

from flashc.deps.choose import SitePlan
from flashc.deps.lock import ForeignLock, Lock, lock_text, parse_lock, write_lock
from flashc.deps.models import Pin, Site, Wheel
from flashc.deps.target import Target
from flashc.errors import ProjectError

GPU_IMAGE = "provided by Runpod's GPU image for queue-based resources"

SHA = "ab" * 32


def pin(name: str, version: str = "1.0", *requires: str, size: int | None = 10) -> Pin:
    wheel = Wheel(f"{name}-{version}-py3-none-any.whl", f"https://files.example/{name}-{version}.whl", size, SHA)
    return Pin(name, version, wheel, requires)


UNION = Lock(
    Target("3.11"),
    "cd" * 32,
    (
        SitePlan(
            Site("_flashc/site", ("cpu", "gpu"), (pin("app", "1.0", "torch"), pin("torch", "2.1.0"))),
            (("torch", GPU_IMAGE),),
        ),
    ),
)


def test_union_lock_text_is_pinned() -> None:
    assert lock_text(UNION) == (
        "# Written by `flashc lock`: the wheels `flashc build` installs for the worker (PEP 751).\n"
        'lock-version = "1.0"\n'
        "environments = [\"python_version == '3.11' and sys_platform == 'linux' and platform_machine == 'x86_64'\"]\n"
        'requires-python = "==3.11.*"\n'
        'created-by = "flashc"\n'
        "\n"
        "[[packages]]\n"
        'name = "app"\n'
        'version = "1.0"\n'
        'dependencies = [{ name = "torch" }]\n'
        'wheels = [{ name = "app-1.0-py3-none-any.whl", url = "https://files.example/app-1.0.whl", size = 10, '
        f'hashes = {{ sha256 = "{SHA}" }} }}]\n'
        "\n"
        "[[packages]]\n"
        'name = "torch"\n'
        'version = "2.1.0"\n'
        'wheels = [{ name = "torch-2.1.0-py3-none-any.whl", url = "https://files.example/torch-2.1.0.whl", size = 10, '
        f'hashes = {{ sha256 = "{SHA}" }} }}]\n'
        "\n"
        "[packages.tool.flashc]\n"
        f'left-out = "{GPU_IMAGE}"\n'
        "\n"
        "[tool.flashc]\n"
        f'inputs = "{"cd" * 32}"\n'
        'python-version = "3.11"\n'
        'glibc = "2.35"\n'
        'machine = "x86_64"\n'
        "\n"
        "[[tool.flashc.sites]]\n"
        'path = "_flashc/site"\n'
        'group = "all"\n'
        'resources = ["cpu", "gpu"]\n'
    )


def test_round_trips_union_and_split(tmp_path: Path) -> None:
    assert parse_lock(lock_text(UNION), tmp_path) == UNION
    split = Lock(
        Target("3.12", "2.28"),
        "ef" * 32,
        (
            SitePlan(Site("_flashc/sites/new", ("New",), (pin("numpy", "2.1.0"), pin("requests"))), ()),
            SitePlan(Site("_flashc/sites/old", ("Old",), (pin("numpy", "1.26.2"), pin("requests"))), ()),
        ),
        "numpy<2 and numpy>=2",
    )
    text = lock_text(split)
    assert 'dependency-groups = ["new", "old"]' in text
    assert "marker = \"'new' in dependency_groups or 'old' in dependency_groups\"" in text  # requests, stored once
    assert parse_lock(text, tmp_path) == split


def test_local_wheels_in_the_project_are_written_as_relative_paths(tmp_path: Path) -> None:
    local = tmp_path / "wheels" / "mine-1.0-py3-none-any.whl"
    wheel = Wheel(local.name, local.as_uri(), 5, SHA)
    site = Site("_flashc/site", ("r",), (Pin("mine", "1.0", wheel, ()),))
    lock = Lock(Target("3.11"), "cd" * 32, (SitePlan(site, ()),))
    text = lock_text(lock, tmp_path)
    assert 'path = "wheels/mine-1.0-py3-none-any.whl"' in text and "file://" not in text
    assert parse_lock(text, tmp_path) == lock


def test_another_tools_lock_is_foreign() -> None:
    with pytest.raises(ForeignLock) as info:
        parse_lock('lock-version = "1.0"\ncreated-by = "uv"\n', Path("."))
    assert info.value.message == (
        "pylock.toml was written by uv, not by `flashc lock`, so it says nothing of the worker's platform"
    )


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: t.replace('lock-version = "1.0"', 'lock-version = "2.0"'), "lock-version '2.0' is not supported"),
        (lambda t: t.replace(SHA, "xyz", 1), "packages[0].wheels[0].hashes.sha256: expected 64 lowercase hex digits"),
        (lambda t: t.replace('name = "app"', 'name = "App"'), "packages[0].name: 'App' is not in normal form"),
        (lambda t: t.replace('\nversion = "1.0"', '\nversion = "one"', 1), "packages[0].version: 'one' is not a valid"),
        (lambda t: t.replace('python-version = "3.11"', "python-version = 3"), "tool.flashc.python-version: expected"),
        (lambda t: t.replace("size = 10,", "size = -1,", 1), "packages[0].wheels[0].size: expected a byte count"),
        (lambda t: t + "[[", "not valid TOML"),
        (
            lambda t: t.replace('name = "app-1.0-py3-none-any.whl"', 'name = "app-2.0-py3-none-any.whl"'),
            "packages[0]: the wheel app-2.0-py3-none-any.whl is not app 1.0",
        ),
    ],
)
def test_invalid_locks_are_project_errors_naming_the_place(edit: object, reason: str) -> None:
    assert callable(edit)
    with pytest.raises(ProjectError) as info:
        parse_lock(edit(lock_text(UNION)), Path("."))
    assert info.value.message.startswith("pylock.toml: ")
    assert reason in info.value.message
    assert info.value.hint == "run `flashc lock` to write it again"


def test_written_atomically_and_installable_by_uv(tmp_path: Path) -> None:
    """Other tools read the lock: uv installs exactly its wheels for the worker, from local files."""
    house = tmp_path / "house"
    app = make_wheel(house, "app", "1.0", requires=["lib"])
    lib = make_wheel(house, "lib", "2.0")
    import hashlib

    def wheel(path: Path) -> Wheel:
        return Wheel(path.name, path.as_uri(), path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())

    pins = (Pin("app", "1.0", wheel(app), ("lib",)), Pin("lib", "2.0", wheel(lib), ()))
    lock = Lock(Target("3.11"), "cd" * 32, (SitePlan(Site("_flashc/site", ("r",), pins), ()),))
    project = tmp_path / "project"
    project.mkdir()
    path = write_lock(project, lock)
    assert path == project / "pylock.toml" and not [p for p in project.iterdir() if p.name != "pylock.toml"]
    from uv import find_uv_bin

    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env["UV_CACHE_DIR"] = str(tmp_path / "uvcache")
    target = tmp_path / "site"
    done = subprocess.run(
        [
            find_uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--offline",
            "--target",
            str(target),
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_35",
            "-r",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (target / "app" / "__init__.py").is_file() and (target / "lib" / "__init__.py").is_file()
