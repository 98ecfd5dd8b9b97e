from __future__ import annotations

import gzip
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import replace as dataclass_replace
from pathlib import Path

import pytest
from wheelhouse import make_wheel

from flashc.errors import ProjectError, UsageError
from flashc.pack import (
    DEFAULT_MTIME,
    Entry,
    Layer,
    PackResult,
    TooLarge,
    project_entries,
    wheel_layer,
    write_archive,
)
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


def split_members(raw: bytes) -> list[tuple[bytes, bytes]]:
    """Each gzip member of `raw`, in order: (its compressed bytes, its content)."""
    found = []
    while raw:
        d = zlib.decompressobj(31)
        content = d.decompress(raw)
        assert d.eof
        found.append((raw[: len(raw) - len(d.unused_data)], content))
        raw = d.unused_data
    return found


def gzip_members(raw: bytes) -> list[bytes]:
    """The decompressed content of each gzip member of `raw`, in order."""
    return [content for _, content in split_members(raw)]


def layer(tmp_path: Path, files: dict[str, bytes], name: str = "dep") -> Layer:
    wheel = make_wheel(tmp_path / "wheels", name, "1.0", files=files)
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return wheel_layer(wheel, sha256, tmp_path / "cache", site="_flashc/site")


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


def test_mtime_sets_every_member_time_and_changes_the_bytes(tmp_path: Path) -> None:
    root = make(tmp_path / "project", TREE)
    default = pack(root, tmp_path / "default.tar.gz")
    stamped = pack(root, tmp_path / "stamped.tar.gz", mtime=1_700_000_000)
    again = pack(root, tmp_path / "again.tar.gz", mtime=1_700_000_000)
    later = pack(root, tmp_path / "later.tar.gz", mtime=1_700_000_001)

    assert DEFAULT_MTIME == 315532800  # 1980-01-01, the zip epoch
    assert {m.mtime for m in members(default.path)} == {DEFAULT_MTIME}
    assert {m.mtime for m in members(stamped.path)} == {1_700_000_000}
    assert stamped.sha256 == again.sha256
    assert len({default.sha256, stamped.sha256, later.sha256}) == 3


def test_source_date_epoch_is_not_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The settings are read once, elsewhere, and passed in as `mtime`.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "not a number")
    result = write_archive([Entry("a.py", data=b"")], tmp_path / "a.tar.gz")
    assert [m.mtime for m in members(result.path)] == [DEFAULT_MTIME]


def test_the_bytes_do_not_depend_on_the_number_of_threads(tmp_path: Path) -> None:
    rng = random.Random(7)
    # 9 MiB of tar: three chunks, compressed as three gzip members (plus the trailer's).
    words = [rng.randbytes(6).hex().encode() for _ in range(2000)]
    big = b" ".join(rng.choice(words) for _ in range(700_000))
    entries = [Entry("big.txt", data=big), *(Entry(f"m{i}.py", data=b"x = %d\n" % i) for i in range(100))]
    results = [write_archive(entries, tmp_path / f"w{n}.tar.gz", workers=n) for n in (1, 2, 4)]
    assert len({r.sha256 for r in results}) == 1
    parts = gzip_members(results[0].path.read_bytes())
    assert [len(p) for p in parts[:-1]] == [4 * 1024 * 1024, 4 * 1024 * 1024, len(b"".join(parts[2:-1]))]
    assert contents(results[0].path)["big.txt"] == big


def test_the_tar_stream_is_one_archive_padded_to_a_whole_record(tmp_path: Path) -> None:
    result = write_archive([Entry("a.py", data=b"x" * 700)], tmp_path / "a.tar.gz")
    parts = gzip_members(result.path.read_bytes())
    tar = b"".join(parts)
    assert len(tar) % tarfile.RECORDSIZE == 0
    # The project layer holds the member, the trailer only the end-of-archive marker and padding.
    assert parts[-1] == bytes(len(parts[-1])) and len(parts[-1]) >= 1024
    assert len(b"".join(parts[:-1])) == 512 + 1024
    with tarfile.open(result.path, "r:gz") as tar_file:
        assert tar_file.getnames() == ["a.py"]


def test_an_empty_archive_is_a_valid_empty_tar(tmp_path: Path) -> None:
    result = write_archive([], tmp_path / "a.tar.gz")
    assert gzip.decompress(result.path.read_bytes()) == bytes(tarfile.RECORDSIZE)
    assert members(result.path) == []
    assert (result.members, result.uncompressed) == (0, 0)


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
def test_gnu_tar_lists_and_extracts_the_archive(tmp_path: Path) -> None:
    root = make(tmp_path / "project", TREE)
    (root / "bin/run.sh").chmod(0o755)
    dep = layer(tmp_path, {"dep/__init__.py": b"X = 1\n"})
    entries = [*project_entries(root, walk_project(root).files), *GENERATED]
    result = write_archive(entries, tmp_path / "a.tar.gz", layers=[dep])
    listed = subprocess.run(["tar", "-tzf", result.path], capture_output=True, text=True, check=True).stdout
    assert listed.splitlines() == [m.name for m in members(result.path)]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", result.path, "-C", out], check=True)
    assert (out / "workers/gpu.py").read_text() == TREE["workers/gpu.py"]
    assert (out / "_flashc/site/dep/__init__.py").read_bytes() == b"X = 1\n"
    assert os.access(out / "bin/run.sh", os.X_OK)


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
        path=tmp_path / "a.tar.gz",
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        uncompressed=8,
        members=2,
        links=0,
        project_size=len(raw) - len(split_members(raw)[-1][0]),
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


# Dependency layers


def test_layers_are_copied_verbatim_after_the_project_layer(tmp_path: Path) -> None:
    first = layer(tmp_path, {"alpha/__init__.py": b"A = 1\n" * 200}, "alpha")
    second = layer(tmp_path, {"beta/__init__.py": b"B = 2\n"}, "beta")
    result = write_archive([Entry("app.py", data=b"import alpha\n")], tmp_path / "a.tar.gz", layers=[first, second])

    raw = result.path.read_bytes()
    start = result.project_size
    middle = start + first.compressed_size
    end = middle + second.compressed_size
    assert raw[start:middle] == first.path.read_bytes()
    assert raw[middle:end] == second.path.read_bytes()
    assert gzip.decompress(raw[end:]) == bytes(len(gzip.decompress(raw[end:])))  # the trailer: zeros
    names = [m.name for m in members(result.path)]
    assert names[0] == "app.py"
    assert names[1:] == [f.arcname for f in (*first.files, *second.files)]
    with tarfile.open(result.path, "r:*") as tar:
        assert tar.extractfile("_flashc/site/alpha/__init__.py").read() == b"A = 1\n" * 200  # type: ignore[union-attr]
    assert result.members == 1 + len(first.files) + len(second.files)
    assert result.uncompressed == len(b"import alpha\n") + sum(f.size for f in (*first.files, *second.files))


def test_paths_are_checked_across_entries_and_layers_together(tmp_path: Path) -> None:
    dep = layer(tmp_path, {"dep/__init__.py": b""})
    entries = [Entry("_flashc/site/dep/__init__.py", data=b"mine"), Entry("_flashc/site/dep_1.0.py/x", data=b"")]
    entries.append(Entry("../x", data=b""))
    with pytest.raises(ProjectError) as info:
        write_archive(entries, tmp_path / "a.tar.gz", layers=[dep])
    assert info.value.message == (
        "2 problems with archive paths:\n"
        "  archive path '../x' contains a '..' segment\n"
        "  archive path '_flashc/site/dep/__init__.py' appears 2 times"
    )
    assert not (tmp_path / "a.tar.gz").exists()


def test_a_hard_link_must_point_to_an_earlier_file(tmp_path: Path) -> None:
    dep = layer(tmp_path, {"dep/__init__.py": b""})
    first, second, *rest = dep.files
    bad = dataclass_replace(dep, files=(dataclass_replace(first, link=second.arcname), second, *rest))
    with pytest.raises(ProjectError) as info:
        write_archive([], tmp_path / "a.tar.gz", layers=[bad])
    assert info.value.message == (
        f"hard link '{first.arcname}' points to '{second.arcname}', which is not a file earlier in the archive"
    )


def test_over_the_limit_is_refused_before_a_layer_is_read(tmp_path: Path) -> None:
    dep = layer(tmp_path, {"dep/blob.bin": random.Random(1).randbytes(50_000)})
    out = tmp_path / "dist"
    out.mkdir()
    previous = write_archive([Entry("old.py", data=b"old")], out / "app.tar.gz")
    before = previous.path.read_bytes()
    dep.path.unlink()  # reading the layer would fail: the size check comes first

    with pytest.raises(TooLarge) as info:
        write_archive([Entry("app.py", data=b"x = 1\n")], out / "app.tar.gz", layers=[dep], max_size=10_000)
    assert info.value.limit == 10_000
    assert info.value.layers == (dep,)
    assert info.value.size > info.value.project_size + dep.compressed_size > 50_000
    assert info.value.message == (
        f"the archive would be {info.value.size:,} bytes compressed, over the limit of 10,000 bytes"
    )
    assert (out / "app.tar.gz").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["app.tar.gz"]


def test_a_layer_missing_from_the_cache_is_a_project_error(tmp_path: Path) -> None:
    dep = layer(tmp_path, {"dep/__init__.py": b""})
    dep.path.unlink()
    with pytest.raises(ProjectError) as info:
        write_archive([], tmp_path / "a.tar.gz", layers=[dep])
    assert info.value.message == (f"cannot read the cached layer of dep 1.0 '{dep.path}': No such file or directory")
    assert info.value.hint == "build again: a layer missing from the cache is built anew"
    assert leftovers(tmp_path) == [] and not (tmp_path / "a.tar.gz").exists()


def test_a_layer_that_changed_size_is_a_project_error(tmp_path: Path) -> None:
    dep = layer(tmp_path, {"dep/__init__.py": b""})
    with dep.path.open("ab") as f:
        f.write(b"more")
    with pytest.raises(ProjectError) as info:
        write_archive([], tmp_path / "a.tar.gz", layers=[dep])
    assert info.value.message == (
        f"cannot read the cached layer of dep 1.0 '{dep.path}': "
        f"it is {dep.compressed_size + 4:,} bytes, not {dep.compressed_size:,}"
    )
    assert not (tmp_path / "a.tar.gz").exists()
