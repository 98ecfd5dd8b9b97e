from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashc.errors import ProjectError, UsageError
from flashc.pack import Entry, PackResult, project_entries, write_archive
from flashc.sources import walk_project

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX modes, symlinks and resource limits")

TREE = {
    "app.py": "from tetra_rp import remote\n",
    "workers/__init__.py": "",
    "workers/gpu.py": "def normalize(x):\n    return x\n",
    "data/table.csv": "a,b\n1,2\n",
    "bin/run.sh": "#!/bin/sh\necho hi\n",
}
GENERATED = [
    Entry("_flashc/manifest.json", data=b'{"schema_version": 1}\n'),
    Entry("_flashc/handler_gpu.py", data=b"def handler(event):\n    return event\n"),
]


def make(root: Path, tree: dict[str, str]) -> Path:
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def pack(root: Path, output: Path, **kwargs: int) -> PackResult:
    entries = project_entries(root, walk_project(root).files) + GENERATED
    return write_archive(entries, output, **kwargs)


def members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return tar.getmembers()


def contents(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(autouse=True)
def _no_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the umask a test changes."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


# Reproducibility


@posix_only
@pytest.mark.usefixtures("umask")
def test_two_copies_with_other_folders_mtimes_and_umask_give_the_same_bytes(tmp_path: Path) -> None:
    results = []
    for name, mask, when, script_mode, order in (
        ("first", 0o022, 1_000_000_000, 0o755, TREE),
        ("second/deeper", 0o077, 1_700_000_000, 0o700, dict(reversed(TREE.items()))),
    ):
        os.umask(mask)
        root = make(tmp_path / name / "project", order)
        (root / "bin/run.sh").chmod(script_mode)
        for path in root.rglob("*"):
            os.utime(path, (when, when))
        out = tmp_path / name / "dist"
        out.mkdir()
        results.append(pack(root, out / "app.tar.gz"))
    first, second = results
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert (first.size, first.uncompressed, first.members) == (second.size, second.uncompressed, second.members)


def test_entry_order_does_not_matter(tmp_path: Path) -> None:
    entries = [Entry(f"m{i}.py", data=f"x = {i}\n".encode()) for i in range(20)]
    forward = write_archive(entries, tmp_path / "a.tar.gz")
    backward = write_archive(list(reversed(entries)), tmp_path / "b.tar.gz")
    assert forward.sha256 == backward.sha256
    assert [m.name for m in members(forward.path)] == sorted(e.arcname for e in entries)


def test_source_date_epoch_sets_every_mtime_and_changes_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path / "project", TREE)
    default = pack(root, tmp_path / "default.tar.gz")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    epoch = pack(root, tmp_path / "epoch.tar.gz")
    again = pack(root, tmp_path / "again.tar.gz")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    later = pack(root, tmp_path / "later.tar.gz")

    assert {m.mtime for m in members(default.path)} == {315532800}  # 1980-01-01, the zip epoch
    assert {m.mtime for m in members(epoch.path)} == {1700000000}
    assert epoch.sha256 == again.sha256
    assert len({default.sha256, epoch.sha256, later.sha256}) == 3


def test_mtime_argument_beats_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = write_archive([Entry("a.py", data=b"")], tmp_path / "a.tar.gz", mtime=1234)
    assert [m.mtime for m in members(result.path)] == [1234]


@pytest.mark.parametrize("value", ["abc", "1.5", "", " 17", "-1", "1e9"])
def test_a_source_date_epoch_that_is_not_an_integer_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(UsageError) as info:
        write_archive([Entry("a.py", data=b"")], tmp_path / "a.tar.gz")
    assert info.value.message == (
        f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970-01-01, not {value!r}"
    )
    assert list(tmp_path.iterdir()) == []


# Members and headers


@posix_only
def test_member_metadata_is_fixed_whatever_the_files_say(tmp_path: Path) -> None:
    root = make(tmp_path / "project", TREE)
    (root / "bin/run.sh").chmod(0o744)  # any execute bit makes the member executable
    (root / "data/table.csv").chmod(0o600)
    result = pack(root, tmp_path / "app.tar.gz", mtime=1_600_000_000)

    infos = members(result.path)
    assert [m.name for m in infos] == [
        "_flashc/handler_gpu.py",
        "_flashc/manifest.json",
        "app.py",
        "bin/run.sh",
        "data/table.csv",
        "workers/__init__.py",
        "workers/gpu.py",
    ]
    for m in infos:
        assert (m.type, m.uid, m.gid, m.uname, m.gname, m.mtime) == (tarfile.REGTYPE, 0, 0, "", "", 1_600_000_000)
    assert {m.name: m.mode for m in infos if m.mode != 0o644} == {"bin/run.sh": 0o755}
    assert contents(result.path)["workers/gpu.py"] == TREE["workers/gpu.py"].encode()


def test_executable_flag_on_an_entry_gives_mode_755(tmp_path: Path) -> None:
    result = write_archive(
        [Entry("run", data=b"#!/bin/sh\n", executable=True), Entry("lib.py", data=b"")], tmp_path / "a.tar.gz"
    )
    assert {m.name: m.mode for m in members(result.path)} == {"lib.py": 0o644, "run": 0o755}


def test_result_describes_the_archive_written(tmp_path: Path) -> None:
    entries = [Entry("a.py", data=b"abc"), Entry("b/c.py", data=b"12345")]
    result = write_archive(entries, tmp_path / "a.tar.gz")
    raw = (tmp_path / "a.tar.gz").read_bytes()
    assert result == PackResult(
        path=tmp_path / "a.tar.gz", sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), uncompressed=8, members=2
    )


def test_gzip_header_has_no_mtime_and_no_file_name(tmp_path: Path) -> None:
    result = write_archive([Entry("a.py", data=b"x = 1\n")], tmp_path / "named-archive.tar.gz")
    raw = result.path.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"  # gzip magic, deflate
    assert raw[3] & 0x08 == 0  # FNAME flag clear
    assert raw[4:8] == b"\0\0\0\0"  # MTIME zero
    assert b"named-archive" not in raw


def test_tar_is_pax_and_keeps_long_and_non_ascii_paths(tmp_path: Path) -> None:
    long = "pkg/" + "sub/" * 30 + "module.py"
    result = write_archive(
        [Entry(long, data=b"a"), Entry("données/café.txt", data=b"b"), Entry("a.py", data=b"c")],
        tmp_path / "a.tar.gz",
    )
    tar_bytes = gzip.decompress(result.path.read_bytes())
    assert tar_bytes[257:265] == b"ustar\x0000"  # POSIX magic: ustar headers, PAX extensions where needed
    assert contents(result.path) == {"a.py": b"c", "données/café.txt": b"b", long: b"a"}


@posix_only
@pytest.mark.usefixtures("umask")
def test_archive_mode_is_644_whatever_the_umask(tmp_path: Path) -> None:
    os.umask(0o077)
    result = write_archive([Entry("a.py", data=b"")], tmp_path / "a.tar.gz")
    assert result.path.stat().st_mode & 0o777 == 0o644


def test_packing_200_small_files_is_fast(tmp_path: Path) -> None:
    root = make(tmp_path / "project", {f"pkg{i % 10}/mod{i}.py": f"VALUE = {i}\n" * 20 for i in range(200)})
    entries = project_entries(root, walk_project(root).files)
    best = float("inf")
    for attempt in range(5):
        start = time.perf_counter()
        write_archive(entries, tmp_path / f"a{attempt}.tar.gz")
        best = min(best, time.perf_counter() - start)
    assert best < 0.1, f"packing 200 files took {best * 1000:.0f} ms"


# Atomic writes


def test_a_failing_source_leaves_the_previous_archive_and_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    previous = write_archive([Entry("old.py", data=b"old")], out / "app.tar.gz")
    before = previous.path.read_bytes()
    files = make(tmp_path / "project", {f"m{i}.py": "x = 1\n" * 1000 for i in range(5)})
    entries = [*project_entries(files, [f"m{i}.py" for i in range(5)]), Entry("z.py", source=files / "gone.py")]

    with pytest.raises(ProjectError) as info:
        write_archive(entries, out / "app.tar.gz")
    assert info.value.message == f"cannot read '{files / 'gone.py'}': No such file or directory"
    assert (out / "app.tar.gz").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["app.tar.gz"]


class _Interrupted(type(Path())):  # type: ignore[misc]
    """A source whose reading is interrupted, as Ctrl-C in the middle of packing would."""

    def __fspath__(self) -> str:
        raise KeyboardInterrupt


def test_an_interrupt_leaves_the_previous_archive_and_no_temp_file(tmp_path: Path) -> None:
    previous = write_archive([Entry("old.py", data=b"old")], tmp_path / "app.tar.gz")
    before = previous.path.read_bytes()
    entries = [Entry("a.py", data=b"a" * 100_000), Entry("b.py", source=_Interrupted(tmp_path / "b.py"))]

    with pytest.raises(KeyboardInterrupt):
        write_archive(entries, tmp_path / "app.tar.gz")
    assert (tmp_path / "app.tar.gz").read_bytes() == before
    assert leftovers(tmp_path) == []


@posix_only
def test_a_write_error_is_a_project_error_and_leaves_the_previous_archive(tmp_path: Path) -> None:
    import resource
    import signal

    previous = write_archive([Entry("old.py", data=b"old")], tmp_path / "app.tar.gz")
    before = previous.path.read_bytes()
    # A real write error, as on a full disk: the kernel refuses to grow a file past RLIMIT_FSIZE.
    big = Entry("big.bin", data=os.urandom(1_000_000))
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, old_limit[1]))
    try:
        with pytest.raises(ProjectError) as info:
            write_archive([big], tmp_path / "app.tar.gz")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert info.value.message == f"cannot write archive '{tmp_path / 'app.tar.gz'}': File too large"
    assert info.value.hint == "check free disk space and the folder's permissions"
    assert (tmp_path / "app.tar.gz").read_bytes() == before
    assert leftovers(tmp_path) == []


def test_a_missing_output_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        write_archive([Entry("a.py", data=b"")], tmp_path / "x" / "app.tar.gz")
    assert info.value.message == f"output folder '{tmp_path / 'x'}' does not exist"
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "app.tar.gz").mkdir()
    with pytest.raises(UsageError) as info:
        write_archive([Entry("a.py", data=b"")], tmp_path / "app.tar.gz")
    assert info.value.message == f"output '{tmp_path / 'app.tar.gz'}' is a directory"
    assert leftovers(tmp_path) == []


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to any folder")
def test_an_output_folder_that_is_not_writable_is_a_project_error(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(ProjectError) as info:
            write_archive([Entry("a.py", data=b"")], out / "app.tar.gz")
    finally:
        out.chmod(0o755)
    assert info.value.message == f"cannot write to output folder '{out}': Permission denied"
    assert list(out.iterdir()) == []


@posix_only
def test_a_source_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ProjectError) as info:
        write_archive([Entry("pipe", source=tmp_path / "pipe")], tmp_path / "a.tar.gz")
    assert info.value.message == f"cannot read '{tmp_path / 'pipe'}': not a regular file"
    assert leftovers(tmp_path) == []


# Archive paths


@pytest.mark.parametrize(
    ("arcname", "message"),
    [
        ("", "archive path '' is empty"),
        ("/etc/passwd", "archive path '/etc/passwd' is absolute"),
        ("../evil.py", "archive path '../evil.py' contains a '..' segment"),
        ("pkg/../../evil.py", "archive path 'pkg/../../evil.py' contains a '..' segment"),
        ("pkg\\mod.py", "archive path 'pkg\\mod.py' contains a backslash; use '/'"),
        ("./mod.py", "archive path './mod.py' is not normalized (it has a '.' or empty segment)"),
        ("pkg//mod.py", "archive path 'pkg//mod.py' is not normalized (it has a '.' or empty segment)"),
        ("pkg/", "archive path 'pkg/' is not normalized (it has a '.' or empty segment)"),
        ("bad\udcff.py", "archive path 'bad\\udcff.py' is not valid UTF-8; rename the file"),
    ],
)
def test_unsafe_archive_paths_are_refused(tmp_path: Path, arcname: str, message: str) -> None:
    with pytest.raises(ProjectError) as info:
        write_archive([Entry("ok.py", data=b""), Entry(arcname, data=b"")], tmp_path / "a.tar.gz")
    assert info.value.message == message
    assert list(tmp_path.iterdir()) == []


def test_duplicate_and_clashing_paths_are_refused_together(tmp_path: Path) -> None:
    entries = [
        Entry("a.py", data=b"1"),
        Entry("a.py", data=b"2"),
        Entry("pkg", data=b""),
        Entry("pkg/mod.py", data=b""),
        Entry("../x", data=b""),
    ]
    with pytest.raises(ProjectError) as info:
        write_archive(entries, tmp_path / "a.tar.gz")
    assert info.value.message == (
        "3 problems with archive paths:\n"
        "  archive path '../x' contains a '..' segment\n"
        "  archive path 'a.py' appears 2 times\n"
        "  archive path 'pkg' is a file and also the folder of 'pkg/mod.py'"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_entry_needs_exactly_one_of_data_and_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of data and source"):
        Entry("a.py")
    with pytest.raises(ValueError, match="exactly one of data and source"):
        Entry("a.py", data=b"", source=tmp_path / "a.py")


# Symlinks


@posix_only
def test_a_symlink_inside_the_project_is_archived_as_a_regular_file(tmp_path: Path) -> None:
    root = make(tmp_path / "project", {"data/real.bin": "payload", "main.py": ""})
    (root / "data/alias.bin").symlink_to("real.bin")
    (root / "shortcut.bin").symlink_to(root / "data/real.bin")  # absolute, still inside
    result = pack(root, tmp_path / "a.tar.gz")
    infos = {m.name: m for m in members(result.path)}
    assert infos["data/alias.bin"].isreg() and infos["shortcut.bin"].isreg()
    assert contents(result.path)["data/alias.bin"] == b"payload"
    assert contents(result.path)["shortcut.bin"] == b"payload"


@posix_only
def test_a_symlink_pointing_outside_the_project_is_refused(tmp_path: Path) -> None:
    secret = make(tmp_path / "elsewhere", {"secret.txt": "s3cr3t"}) / "secret.txt"
    root = make(tmp_path / "project", {"main.py": ""})
    (root / "data").mkdir()
    (root / "data/model.bin").symlink_to(secret)
    with pytest.raises(ProjectError) as info:
        project_entries(root, walk_project(root).files)
    assert info.value.message == f"symlink 'data/model.bin' points outside the project (to '{secret}')"
    assert info.value.hint == "copy the file into the project or add it to .flashignore"


@posix_only
def test_every_symlink_pointing_outside_is_reported_in_one_error(tmp_path: Path) -> None:
    outside = make(tmp_path / "elsewhere", {"a.txt": "", "b.txt": ""})
    root = make(tmp_path / "project", {"main.py": ""})
    (root / "a.txt").symlink_to(outside / "a.txt")
    (root / "b.txt").symlink_to("../elsewhere/b.txt")  # relative, climbing out
    with pytest.raises(ProjectError) as info:
        project_entries(root, walk_project(root).files)
    assert info.value.message == (
        "2 symlinks point outside the project:\n"
        f"  symlink 'a.txt' points outside the project (to '{outside / 'a.txt'}')\n"
        f"  symlink 'b.txt' points outside the project (to '{outside / 'b.txt'}')"
    )
    assert info.value.hint == "copy the files into the project or add them to .flashignore"


@posix_only
def test_a_file_reached_through_a_linked_folder_outside_is_refused(tmp_path: Path) -> None:
    outside = make(tmp_path / "elsewhere", {"weights.bin": ""})
    root = make(tmp_path / "project", {"main.py": ""})
    (root / "models").symlink_to(outside)
    with pytest.raises(ProjectError) as info:
        project_entries(root, ["main.py", "models/weights.bin"])
    assert info.value.message == (
        f"symlink 'models/weights.bin' points outside the project (to '{outside / 'weights.bin'}')"
    )


@posix_only
def test_a_project_root_reached_through_a_symlink_still_packs(tmp_path: Path) -> None:
    real = make(tmp_path / "real", {"main.py": "x = 1\n"})
    (tmp_path / "link").symlink_to(real)
    entries = project_entries(tmp_path / "link", ["main.py"])
    assert entries == [Entry("main.py", source=real / "main.py")]


def test_project_entries_refuses_paths_that_leave_the_root(tmp_path: Path) -> None:
    root = make(tmp_path / "project", {"main.py": ""})
    with pytest.raises(ProjectError) as info:
        project_entries(root, ["main.py", "../outside.py"])
    assert info.value.message == "archive path '../outside.py' contains a '..' segment"
