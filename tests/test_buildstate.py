"""The up-to-date check: its key covers exactly what a build reads, through the same snapshot and config."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashc.buildstate import inputs_key
from flashc.config import CliOptions, parse_config
from flashc.errors import ProjectError
from flashc.sources import Snapshot, snapshot_project

FILES = {"app.py": "print('hi')\n", "data/table.csv": "a,b\n"}
FINGERPRINT = "0" * 64


def project(tmp_path: Path, files: dict[str, str] = FILES) -> Snapshot:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return snapshot_project(tmp_path)


def fingerprint(environ: dict[str, str]) -> str:
    return parse_config(None, CliOptions(), environ, "3.11").fingerprint()


def test_same_inputs_give_the_same_key(tmp_path: Path) -> None:
    first = inputs_key(project(tmp_path / "a"), FINGERPRINT, {"output": None})
    assert inputs_key(project(tmp_path / "b"), FINGERPRINT, {"output": None}) == first


@pytest.mark.parametrize(
    "change",
    [
        {"app.py": "print('bye')\n"},
        {"new.py": ""},
        {"data/table.csv": "a,b,c\n"},
    ],
    ids=["edit", "new-file", "data-file"],
)
def test_any_file_change_changes_the_key(tmp_path: Path, change: dict[str, str]) -> None:
    before = inputs_key(project(tmp_path / "a"), FINGERPRINT)
    assert inputs_key(project(tmp_path / "b", {**FILES, **change}), FINGERPRINT) != before


def test_config_and_extra_change_the_key(tmp_path: Path) -> None:
    snapshot = project(tmp_path)
    base = inputs_key(snapshot, fingerprint({}), {"output": None})
    keys = {
        base,
        inputs_key(snapshot, fingerprint({"SOURCE_DATE_EPOCH": "1700000000"}), {"output": None}),
        inputs_key(snapshot, fingerprint({}), {"output": "/elsewhere.tar.gz"}),
    }
    assert len(keys) == 3
    assert inputs_key(snapshot, fingerprint({"FLASHC_CACHE_DIR": "/c"}), {"output": None}) == base


def test_the_key_is_made_of_the_bytes_the_build_then_reads(tmp_path: Path) -> None:
    snapshot = project(tmp_path)
    key = inputs_key(snapshot, FINGERPRINT)
    (tmp_path / "app.py").write_text("print('edited while building')\n")
    assert snapshot.read("app.py") == FILES["app.py"].encode()  # what pack will archive
    assert inputs_key(snapshot, FINGERPRINT) == key


def test_a_mapping_of_settings_still_works_for_older_callers(tmp_path: Path) -> None:
    snapshot = project(tmp_path)
    assert inputs_key(snapshot, {"max_size": 1}) != inputs_key(snapshot, {"max_size": 2})


def test_an_unreadable_file_is_a_project_error(tmp_path: Path) -> None:
    snapshot = project(tmp_path)
    (tmp_path / "app.py").unlink()
    with pytest.raises(ProjectError) as info:
        inputs_key(snapshot, FINGERPRINT)
    assert info.value.message == "cannot read 'app.py': No such file or directory"
