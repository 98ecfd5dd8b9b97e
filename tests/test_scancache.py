"""The analysis cache, `.flash/cache/analyze.json`: reused when nothing changed, never trusted over the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flashc import sources
from flashc.analyze import analyze_project, cache
from flashc.analyze.cache import SummaryStore
from flashc.sources import snapshot_project

CACHE = Path(".flash") / "cache" / "analyze.json"

MAIN_ALPHA = """\
from tetra_rp import remote, LiveServerless
from settings import WORKERS


@remote(LiveServerless(name="x", workersMax=WORKERS))
def alpha(value):
    return value
"""
# Same size as MAIN_ALPHA, so an edit from one to the other keeps the file's size.
MAIN_BRAVO = MAIN_ALPHA.replace("alpha", "bravo")
# settings.py mentions no SDK name: it is parsed only because main.py imports from it.
SETTINGS_2 = "WORKERS = 2\n"
SETTINGS_5 = "WORKERS = 5\n"
assert len(MAIN_ALPHA) == len(MAIN_BRAVO) and len(SETTINGS_2) == len(SETTINGS_5)


def make(root: Path, tree: dict[str, str]) -> Path:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def project(tmp_path: Path, main: str = MAIN_ALPHA, settings: str = SETTINGS_2) -> Path:
    return make(tmp_path / "proj", {"main.py": main, "settings.py": settings})


def found(root: Path) -> tuple[list[str], int]:
    """The function ids and the workersMax of resource 'x', as a user reads them off `flashc analyze`."""
    analysis = analyze_project(root)
    assert not analysis.diagnostics
    (resource,) = analysis.resources
    return [f.id for f in analysis.functions], resource.config["workersMax"]


def read_cache(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / CACHE).read_text(encoding="utf-8"))
    return data


def write_cache(root: Path, document: Any) -> None:
    (root / CACHE).write_text(json.dumps(document), encoding="utf-8")


def changed_ns(path: Path) -> int:
    st = os.stat(path)
    return max(st.st_mtime_ns, st.st_ctime_ns)


def edit_keeping_size_and_mtime(path: Path, text: str) -> None:
    before = os.stat(path)
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def stale_cache(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A project whose main.py defines `bravo`, and a cache document that says it defines `alpha`.

    The document records main.py's current stat signature with the digest of its old content,
    which is what a same-tick edit leaves behind. Its `started_ns` is left for the caller to set.
    """
    root = project(tmp_path)
    assert found(root) == (["main:alpha"], 2)
    old = read_cache(root)
    (root / "main.py").write_text(MAIN_BRAVO)
    assert found(root) == (["main:bravo"], 2)
    document = read_cache(root)
    old_digest = old["files"]["main.py"][4]
    assert old_digest != document["files"]["main.py"][4]
    document["files"]["main.py"][4] = old_digest
    document["entries"][old_digest] = old["entries"][old_digest]
    return root, document


# Reuse


def test_second_run_gives_the_same_analysis_as_the_first_and_as_no_cache(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = analyze_project(root)
    assert (root / CACHE).is_file()
    second = analyze_project(root)
    assert second == first
    assert analyze_project(root, use_cache=False) == first
    assert [f.id for f in first.functions] == ["main:alpha"]


_PROBE = """
import sys
from pathlib import Path
from flashc import sources
from flashc.analyze import analyze_project
from flashc.sources import snapshot_project
analysis = analyze_project(Path(sys.argv[1]))
print(",".join(f.id for f in analysis.functions))
print("libcst" in sys.modules)
"""


def probe(root: Path) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(root)], capture_output=True, text=True, timeout=120, cwd=root.parent
    )
    assert result.returncode == 0, result.stderr
    ids, libcst_loaded = result.stdout.split()
    return ids, libcst_loaded


def test_warm_run_does_not_load_the_parser_and_an_edit_does(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert probe(root) == ("main:alpha", "True")
    assert probe(root) == ("main:alpha", "False")
    (root / "main.py").write_text(MAIN_BRAVO)
    assert probe(root) == ("main:bravo", "True")


def test_analysis_reads_the_files_through_the_snapshot_it_is_given(tmp_path: Path) -> None:
    root = project(tmp_path)
    snapshot = snapshot_project(root)
    analysis = analyze_project(snapshot)
    assert [f.id for f in analysis.functions] == ["main:alpha"]
    # Later stages get the bytes the analysis saw, not what is on disk by then.
    (root / "main.py").write_text(MAIN_BRAVO)
    assert snapshot.read("main.py") == MAIN_ALPHA.encode()
    assert snapshot.read("settings.py") == SETTINGS_2.encode()


def test_an_edit_after_the_snapshot_read_a_file_is_not_trusted_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The build reads every file (for its up-to-date key) before the analysis stats them; an edit
    # in between must not leave the new signature paired with the old content in the cache.
    root = project(tmp_path)
    snapshot = snapshot_project(root)
    assert snapshot.read("main.py") == MAIN_ALPHA.encode()
    (root / "main.py").write_text(MAIN_BRAVO)
    later = time.time_ns() + 60_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: later)  # the analysis starts a minute after the read
    assert [f.id for f in analyze_project(snapshot).functions] == ["main:alpha"]
    monkeypatch.undo()
    assert found(root) == (["main:bravo"], 2)


def test_warm_analysis_of_a_snapshot_does_not_read_the_unchanged_decorated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    assert found(root) == (["main:alpha"], 2)
    document = read_cache(root)
    document["started_ns"] = max(changed_ns(root / "main.py"), changed_ns(root / "settings.py")) + 3_000_000_000
    write_cache(root, document)
    opened: list[str] = []
    real = open

    def counting(file: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.path.basename(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(sources, "open", counting, raising=False)
    analysis = analyze_project(snapshot_project(root))
    assert [f.id for f in analysis.functions] == ["main:alpha"]
    assert "main.py" not in opened


# Edits


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("main.py", MAIN_BRAVO, (["main:bravo"], 2)),
        ("settings.py", SETTINGS_5, (["main:alpha"], 5)),
    ],
    ids=["decorated-file", "imported-file"],
)
def test_same_size_edit_with_mtime_set_back_is_picked_up(
    tmp_path: Path, path: str, text: str, expected: tuple[list[str], int]
) -> None:
    root = project(tmp_path)
    assert found(root) == (["main:alpha"], 2)
    edit_keeping_size_and_mtime(root / path, text)
    assert found(root) == expected
    assert found(root) == expected


def test_same_size_edit_older_than_the_cache_write_is_caught_by_the_change_time(tmp_path: Path) -> None:
    # An edit made after a long run stat'd the file but before it wrote the cache: it is outside
    # the two-second window, and size and mtime match, so only ctime (and inode) can reveal it.
    root = project(tmp_path)
    assert found(root) == (["main:alpha"], 2)
    document = read_cache(root)
    before = os.stat(root / "main.py")
    # File times tick coarsely (a kernel tick, some milliseconds): let the edit get a new ctime.
    time.sleep(0.05)
    edit_keeping_size_and_mtime(root / "main.py", MAIN_BRAVO)
    assert os.stat(root / "main.py").st_ctime_ns != before.st_ctime_ns
    document["started_ns"] = changed_ns(root / "main.py") + 3_000_000_000
    write_cache(root, document)
    assert found(root) == (["main:bravo"], 2)


def test_file_changed_within_two_seconds_of_the_cache_write_is_read_again(tmp_path: Path) -> None:
    root, document = stale_cache(tmp_path)
    document["started_ns"] = changed_ns(root / "main.py") + 1_900_000_000
    write_cache(root, document)
    assert found(root) == (["main:bravo"], 2)
    # The run corrected the cache: the next one, with the same window, still sees bravo.
    assert read_cache(root)["files"]["main.py"][4] != document["files"]["main.py"][4]
    assert found(root) == (["main:bravo"], 2)


def test_unchanged_signature_outside_the_racy_window_is_trusted_without_reading_the_file(tmp_path: Path) -> None:
    # The counterpart of the test above: it shows that the two-second window, not a reread of
    # every file, is what caught the same-tick edit there.
    root, document = stale_cache(tmp_path)
    document["started_ns"] = changed_ns(root / "main.py") + 2_100_000_000
    write_cache(root, document)
    assert found(root) == (["main:alpha"], 2)


# Broken caches


def _foreign_key(document: dict[str, Any]) -> bytes:
    document["key"] = "0" * 16
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda document: b"\x00\xff\xfe not json at all",
        lambda document: json.dumps(document).encode()[:200],
        lambda document: b"",
        lambda document: b"[1, 2, 3]",
        lambda document: b'"analyze"',
        lambda document: json.dumps({**document, "entries": [], "files": 3}).encode(),
        lambda document: json.dumps({"key": document["key"]}).encode(),
        _foreign_key,
    ],
    ids=["garbage", "truncated", "empty", "list", "string", "wrong-shape", "key-only", "other-key"],
)
def test_corrupt_or_foreign_cache_is_ignored_and_rewritten(tmp_path: Path, corrupt: Any) -> None:
    root, document = stale_cache(tmp_path)
    # Trusted, this document would report the stale `alpha`: used at all, it shows.
    document["started_ns"] = changed_ns(root / "main.py") + 10_000_000_000
    key = document["key"]
    (root / CACHE).write_bytes(corrupt(document))
    assert found(root) == (["main:bravo"], 2)
    rewritten = read_cache(root)
    assert rewritten["key"] == key
    assert sorted(rewritten["files"]) == ["main.py", "settings.py"]
    assert found(root) == (["main:bravo"], 2)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: {**d, "files": {}}, id="no-files"),
        pytest.param(lambda d: {**d, "files": {p: [] for p in d["files"]}}, id="empty-signature"),
        pytest.param(lambda d: {**d, "started_ns": "soon"}, id="written-ns-text"),
        pytest.param(lambda d: {**d, "files": {p: 5 for p in d["files"]}}, id="signature-int"),
        pytest.param(lambda d: {**d, "entries": {k: ["No"] for k in d["entries"]}}, id="unknown-node"),
        pytest.param(lambda d: {**d, "entries": dict.fromkeys(d["entries"])}, id="null-summary"),
    ],
)
def test_cache_with_current_key_but_malformed_content_is_ignored(tmp_path: Path, corrupt: Any) -> None:
    root = project(tmp_path, main=MAIN_BRAVO)
    assert found(root) == (["main:bravo"], 2)
    write_cache(root, corrupt(read_cache(root)))
    assert found(root) == (["main:bravo"], 2)


# Where and how the cache is written


def test_flash_being_a_file_does_not_fail_the_analysis(tmp_path: Path) -> None:
    root = make(project(tmp_path), {".flash": "not a folder\n"})
    assert found(root) == (["main:alpha"], 2)
    assert found(root) == (["main:alpha"], 2)
    assert (root / ".flash").read_text() == "not a folder\n"


def test_cache_path_being_a_folder_does_not_fail_the_analysis_or_leave_temp_files(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / CACHE).mkdir(parents=True)
    assert found(root) == (["main:alpha"], 2)
    assert (root / CACHE).is_dir()
    assert [p.name for p in (root / CACHE).parent.iterdir()] == ["analyze.json"]


def test_cache_is_written_whole_with_no_temp_files_and_no_absolute_paths(tmp_path: Path) -> None:
    root = project(tmp_path)
    found(root)
    (root / "main.py").write_text(MAIN_BRAVO)
    found(root)
    leftovers = sorted(str(p.relative_to(root)) for p in (root / ".flash").rglob("*") if p.is_file())
    assert leftovers == [str(CACHE)]
    text = (root / CACHE).read_text(encoding="utf-8")
    json.loads(text)
    for absolute in {str(tmp_path), str(tmp_path.resolve()), str(root.resolve())}:
        assert absolute not in text


def test_deleted_file_is_dropped_from_the_cache(tmp_path: Path) -> None:
    second = MAIN_ALPHA.replace("alpha", "other").replace('name="x"', 'name="y"')
    root = make(project(tmp_path), {"other.py": second})
    analysis = analyze_project(root)
    assert [f.id for f in analysis.functions] == ["main:alpha", "other:other"]
    before = read_cache(root)
    other_digest = before["files"]["other.py"][4]
    assert other_digest in before["entries"]

    (root / "other.py").unlink()
    analysis = analyze_project(root)
    assert [f.id for f in analysis.functions] == ["main:alpha"]
    after = read_cache(root)
    assert sorted(after["files"]) == ["main.py", "settings.py"]
    assert other_digest not in after["entries"]


# Which files are parsed: the index keeps each verdict, and trusts it only where it still holds

CONFIG_EXPORTS = """\
from tetra_rp import LiveServerless, remote

gpu_task = remote(LiveServerless(name="t"))
THING = 1
"""
CONFIG_NO_TASK = CONFIG_EXPORTS.replace("gpu_task = remote(", "gpu_task = print(")
CONFIG_THING = CONFIG_EXPORTS.replace("THING = 1", 'THING = remote(LiveServerless(name="u"))')
JOBS = "from config import gpu_task\n\n\n@gpu_task\ndef train(x):\n    return x\n"
HELPERS = "from config import THING\n\n\n@THING\ndef helped(x):\n    return x\n"


def names_project(tmp_path: Path) -> Path:
    return make(tmp_path / "proj", {"main.py": MAIN_ALPHA, "settings.py": SETTINGS_2, "config.py": CONFIG_EXPORTS})


def ids_and_parsed(root: Path) -> tuple[list[str], list[str]]:
    """The function ids, and the files the index says were selected for parsing."""
    analysis = analyze_project(root)
    assert not analysis.has_errors, analysis.diagnostics
    selected = sorted(path for path, row in read_cache(root)["files"].items() if row[4] is not None)
    return [f.id for f in analysis.functions], selected


def settle(root: Path) -> None:
    """Make the cache's verdicts trusted: as if the last run started well after every file changed."""
    document = read_cache(root)
    document["started_ns"] = max(changed_ns(p) for p in root.rglob("*.py")) + 3_000_000_000
    write_cache(root, document)


def test_a_verdict_stands_while_the_names_it_was_given_for_stand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(names_project(tmp_path), {"jobs.py": JOBS, "helpers.py": HELPERS})
    assert ids_and_parsed(root) == (
        ["jobs:train", "main:alpha"],
        ["config.py", "jobs.py", "main.py"],
    )
    settle(root)
    opened: list[str] = []
    real = open

    def counting(file: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.path.basename(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(sources, "open", counting, raising=False)
    assert ids_and_parsed(root)[0] == ["jobs:train", "main:alpha"]
    # helpers.py mentions config's names, but the index knows it imports none that config exports.
    assert "helpers.py" not in opened


def test_a_user_of_a_name_no_longer_exported_is_no_longer_parsed(tmp_path: Path) -> None:
    root = make(names_project(tmp_path), {"jobs.py": JOBS})
    assert ids_and_parsed(root)[1] == ["config.py", "jobs.py", "main.py"]
    settle(root)
    (root / "config.py").write_text(CONFIG_NO_TASK)
    assert ids_and_parsed(root) == (["main:alpha"], ["config.py", "main.py"])


def test_an_unchanged_file_importing_a_name_newly_exported_is_parsed(tmp_path: Path) -> None:
    root = make(names_project(tmp_path), {"helpers.py": HELPERS})
    assert ids_and_parsed(root)[1] == ["config.py", "main.py"]
    settle(root)
    (root / "config.py").write_text(CONFIG_THING)
    assert ids_and_parsed(root) == (["helpers:helped", "main:alpha"], ["config.py", "helpers.py", "main.py"])


def test_a_new_file_using_exported_names_is_parsed(tmp_path: Path) -> None:
    root = names_project(tmp_path)
    assert ids_and_parsed(root)[1] == ["config.py", "main.py"]
    settle(root)
    make(root, {"jobs.py": JOBS})
    assert ids_and_parsed(root) == (["jobs:train", "main:alpha"], ["config.py", "jobs.py", "main.py"])


def test_a_verdict_given_in_another_package_is_not_trusted(tmp_path: Path) -> None:
    root = make(tmp_path / "proj", {"a.py": "x = 1\n"})
    snapshot = snapshot_project(root)
    tested: list[str] = []

    def test(path: str, data: bytes) -> bool:
        tested.append(path)
        return False

    def select(context: str) -> None:
        store = SummaryStore(snapshot_project(root), contexts={"a.py": context})
        assert store.select(["a.py"], "uses", test, trust=lambda rule: False) == []
        store.save()

    select("pkg")
    settle(root)
    select("pkg")
    assert tested == ["a.py"]
    select("other")
    assert tested == ["a.py", "a.py"]
    assert snapshot.files == ("a.py",)


def test_the_cache_key_covers_the_selection_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache._scanner_key()
    real = Path.read_bytes

    def other_rules(self: Path) -> bytes:
        data = real(self)
        return data + b"\n# other rules\n" if self.name == "candidates.py" else data

    monkeypatch.setattr(Path, "read_bytes", other_rules)
    assert cache._scanner_key() != before
