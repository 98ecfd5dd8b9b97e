"""Wheel layers: a wheel installed into cached tar members, and site folders assembled from them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from flashc_runtime.unpack import unpack
from wheelhouse import make_wheel

import flashc.pack.layers
from flashc.errors import ProjectError
from flashc.pack import (
    DEFAULT_MTIME,
    PackResult,
    Site,
    SiteLayers,
    SiteWheel,
    cached_site_layers,
    site_layers,
    wheel_layer,
    write_archive,
)

SITE = "_flashc/site"
HINT = "delete '{}' from the wheel cache; the next build downloads it again"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel(folder: Path, name: str, version: str = "1.0", files: dict[str, bytes] | None = None) -> SiteWheel:
    path = make_wheel(folder, name, version, files=files)
    return SiteWheel(path, sha256(path), name, version)


def rewrite(path: Path, changes: dict[str, bytes], *, modes: dict[str, int] | None = None) -> Path:
    """Rewrite the wheel at `path` with entries replaced or added and the given modes, keeping its RECORD."""
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    entries.update(changes)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path


def build(tmp_path: Path, sites: list[Site], out: str = "a.tar.gz", **kwargs: int) -> tuple[SiteLayers, PackResult]:
    cache = tmp_path / "cache"
    assembled = site_layers(sites, cache, **kwargs)
    result = write_archive([], tmp_path / out, layers=assembled.layers, **kwargs)
    return assembled, result


def listing(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:*") as tar:
        return {m.name: m for m in tar.getmembers()}


def read(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def cached(tmp_path: Path) -> list[str]:
    """The layer files in the cache (not the plans that name them)."""
    folder = tmp_path / "cache" / "layers"
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def extract_with_tarfile(archive: Path, out: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(out, filter="data")
        else:
            tar.extractall(out)


needs_gnu_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")


# Installing a wheel into a layer

DEMO = {
    "demo/__init__.py": b"def main():\n    return 1\n",
    "demo/data.json": b"{}",
    "demo/__pycache__/__init__.cpython-311.pyc": b"bytecode",
    "demo/legacy.py": b"X = 1\n",
    "demo/legacy.pyc": b"stale bytecode beside its source",
    "demo/sourceless.pyc": b"bytecode without a source",
    "demo-1.0.data/platlib/demo_native.py": b"NATIVE = True\n",
    "demo-1.0.data/purelib/demo_pure.py": b"PURE = True\n",
    "demo-1.0.data/data/share/demo/readme.txt": b"hello",
    "demo-1.0.data/scripts/demo-tool": b"#!python\nprint('x')\n",
    "demo-1.0.data/headers/demo.h": b"int x;",
    "demo-1.0.dist-info/entry_points.txt": b"[console_scripts]\ndemo-cli = demo:main\n",
}


def test_libraries_and_data_go_to_the_site_and_scripts_headers_and_bytecode_do_not(tmp_path: Path) -> None:
    demo = wheel(tmp_path / "wheels", "demo", files=DEMO)
    layer = wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site=SITE)
    assert [f.arcname.removeprefix(f"{SITE}/") for f in layer.files] == [
        "demo-1.0.dist-info/INSTALLER",
        "demo-1.0.dist-info/METADATA",
        "demo-1.0.dist-info/RECORD",
        "demo-1.0.dist-info/WHEEL",
        "demo-1.0.dist-info/entry_points.txt",
        "demo/__init__.py",
        "demo/data.json",
        "demo/legacy.py",
        "demo/sourceless.pyc",
        "demo_native.py",
        "demo_pure.py",
        "share/demo/readme.txt",
    ]
    result = write_archive([], tmp_path / "a.tar.gz", layers=[layer])
    files = read(result.path)
    assert files[f"{SITE}/demo-1.0.dist-info/INSTALLER"] == b"flashc\n"
    assert files[f"{SITE}/share/demo/readme.txt"] == b"hello"
    assert (layer.distribution, layer.version, layer.site) == ("demo", "1.0", SITE)
    assert layer.installed_size == sum(f.size for f in layer.files)


def install_wheel(wheel: Path, bundle: Path) -> None:
    """pypa/installer's install onto disk, libraries and data at the root, scripts and headers dropped:
    the reference a layer is compared with."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.records import RecordEntry
    from installer.sources import WheelFile

    dropped = {"scripts", "headers"}

    class Bundle(SchemeDictionaryDestination):
        def write_file(self, scheme, path, stream, is_executable):  # type: ignore[no-untyped-def]
            if scheme in dropped:
                return RecordEntry(str(path), None, None)
            return super().write_file(scheme, path, stream, is_executable)

        def write_script(self, name, module, attr, section):  # type: ignore[no-untyped-def]
            return RecordEntry(name, None, None)

        def finalize_installation(self, scheme, record_file_path, records):  # type: ignore[no-untyped-def]
            kept = [(s, r) for s, r in records if s not in dropped]
            super().finalize_installation(scheme, record_file_path, kept)

    root = str(bundle)
    destination = Bundle(
        {"purelib": root, "platlib": root, "data": root, "scripts": root, "headers": root},
        interpreter="/usr/bin/python3",
        script_kind="posix",
        bytecode_optimization_levels=(),
    )
    with WheelFile.open(wheel) as source, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # installer skips __pycache__ files, as the layer does
        install(source, destination, {"INSTALLER": b"flashc\n"})


def test_record_is_rewritten_as_an_install_on_disk_writes_it(tmp_path: Path) -> None:
    demo = wheel(tmp_path / "wheels", "demo", files=DEMO)
    layer = wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site=SITE)
    in_layer = {
        name.removeprefix(f"{SITE}/"): data
        for name, data in read(write_archive([], tmp_path / "a.tar.gz", layers=[layer]).path).items()
    }
    bundle = tmp_path / "bundle"
    install_wheel(demo.path, bundle)
    on_disk = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}

    # The same files with the same bytes, but for the bytecode its source shadows, which the
    # layer leaves out, and so RECORD lists it only on disk. installer writes the paths of files
    # from another scheme than the root's (platlib here) as './name'; the layer writes them plain.
    assert on_disk.pop("demo/legacy.pyc") == DEMO["demo/legacy.pyc"]
    record = on_disk.pop("demo-1.0.dist-info/RECORD").decode().splitlines()
    assert in_layer.pop("demo-1.0.dist-info/RECORD").decode().splitlines() == [
        line.removeprefix("./") for line in record if not line.startswith("demo/legacy.pyc,")
    ]
    assert in_layer == on_disk
    assert "demo-1.0.dist-info/RECORD,," in record
    installer = base64.urlsafe_b64encode(hashlib.sha256(b"flashc\n").digest()).decode().rstrip("=")
    assert f"demo-1.0.dist-info/INSTALLER,sha256={installer},7" in record


def test_members_are_sorted_with_fixed_metadata_and_execute_bits_kept(tmp_path: Path) -> None:
    path = make_wheel(tmp_path / "wheels", "tool", "1.0", files={"tool/run.sh": b"#!/bin/sh\n", "tool/a.py": b""})
    rewrite(path, {}, modes={"tool/run.sh": 0o100755})
    layer = wheel_layer(path, sha256(path), tmp_path / "cache", site=SITE, mtime=1_700_000_000)
    infos = listing(write_archive([], tmp_path / "a.tar.gz", layers=[layer]).path)
    assert list(infos) == sorted(infos) == [f.arcname for f in layer.files]
    for m in infos.values():
        assert (m.type, m.uid, m.gid, m.uname, m.gname, m.mtime) == (tarfile.REGTYPE, 0, 0, "", "", 1_700_000_000)
    assert {name: m.mode for name, m in infos.items() if m.mode != 0o644} == {f"{SITE}/tool/run.sh": 0o755}


def test_a_layer_file_is_gzip_members_of_tar_members_without_an_end_marker(tmp_path: Path) -> None:
    demo = wheel(tmp_path / "wheels", "demo", files=DEMO)
    layer = wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site=SITE)
    raw = layer.path.read_bytes()
    tar = b""
    while raw:
        d = zlib.decompressobj(31)
        tar += d.decompress(raw)
        assert d.eof and raw[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS 255
        raw = d.unused_data
    assert len(tar) == layer.tar_size and layer.tar_size % 512 == 0
    assert (layer.compressed_size, layer.sha256) == (layer.path.stat().st_size, sha256(layer.path))
    # The tar members end exactly where the layer does: no end-of-archive marker of its own.
    with tarfile.open(fileobj=io.BytesIO(tar + bytes(1024))) as members:
        infos = members.getmembers()
    assert [m.name for m in infos] == [f.arcname for f in layer.files]
    assert infos[-1].offset_data + infos[-1].size + -infos[-1].size % 512 == len(tar)

    meta = json.loads(layer.path.with_suffix(".json").read_text())
    first = layer.files[0]
    assert meta["files"][0] == {"arcname": first.arcname, "size": first.size, "sha256": first.sha256, "link": None}
    assert (meta["distribution"], meta["version"], meta["site"]) == ("demo", "1.0", SITE)
    assert (meta["tar_size"], meta["compressed_size"]) == (layer.tar_size, layer.compressed_size)


# The cache


def test_the_archive_is_the_same_with_a_cold_or_warm_cache_and_any_number_of_threads(tmp_path: Path) -> None:
    rng = random.Random(3)
    big = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(1_500_000)).encode()
    sites = [
        Site(
            SITE, (wheel(tmp_path / "wheels", "big", files={"big/words.txt": big}), wheel(tmp_path / "wheels", "small"))
        ),
    ]
    cold, first = build(tmp_path, sites, "cold.tar.gz", workers=1)
    warm, second = build(tmp_path, sites, "warm.tar.gz", workers=4)
    shutil.rmtree(tmp_path / "cache")
    again, third = build(tmp_path, sites, "again.tar.gz", workers=3)

    assert (cold.built, warm.built, again.built) == (2, 0, 2)
    assert first.sha256 == second.sha256 == third.sha256
    assert cold.layers == warm.layers
    assert read(first.path)[f"{SITE}/big/words.txt"] == big


def test_the_site_and_the_mtime_are_part_of_the_key(tmp_path: Path) -> None:
    demo = wheel(tmp_path / "wheels", "demo")
    one = wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site=SITE)
    other_site = wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site="_flashc/sites/gpu")
    other_time = wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site=SITE, mtime=DEFAULT_MTIME + 1)
    assert len({one.path, other_site.path, other_time.path}) == 3
    assert other_site.files[0].arcname.startswith("_flashc/sites/gpu/demo-1.0.dist-info/")
    assert len(cached(tmp_path)) == 6


@pytest.mark.parametrize(
    "damage",
    ["metadata missing", "metadata not json", "metadata of another format", "layer missing", "layer truncated"],
)
def test_a_cache_entry_that_cannot_be_trusted_is_built_again(tmp_path: Path, damage: str) -> None:
    sites = [Site(SITE, (wheel(tmp_path / "wheels", "demo", files=DEMO),))]
    before, first = build(tmp_path, sites, "first.tar.gz")
    layer = before.layers[0]
    meta = layer.path.with_suffix(".json")
    if damage == "metadata missing":
        meta.unlink()
    elif damage == "metadata not json":
        meta.write_text("{")
    elif damage == "metadata of another format":
        meta.write_text(meta.read_text().replace('"format": 1', '"format": 0'))
    elif damage == "layer missing":
        layer.path.unlink()
    else:
        layer.path.write_bytes(layer.path.read_bytes()[:-10])

    after, second = build(tmp_path, sites, "second.tar.gz")
    assert after.built == 1
    assert second.sha256 == first.sha256
    assert cached(tmp_path) == sorted([layer.path.name, meta.name])


def _build_at_once(wheel_: SiteWheel, cache: Path, barrier: Any) -> str:
    if barrier is not None:
        barrier.wait()
    return site_layers([Site(SITE, (wheel_,))], cache).layers[0].sha256


def test_two_threads_building_the_same_layer_both_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = wheel(tmp_path / "wheels", "big", files={"big/blob.bin": random.Random(5).randbytes(3_000_000)})
    barrier = threading.Barrier(2)

    def miss_together(folder: Path, spec: object) -> None:
        barrier.wait()  # both looked the layer up and missed: both build it, both publish it
        return None

    monkeypatch.setattr(flashc.pack.layers, "load", miss_together)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(_build_at_once(big, tmp_path / "cache", None))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert [name.rsplit(".", 1)[1] for name in cached(tmp_path)] == ["gz", "json"]


def _build_in_child(wheel_: SiteWheel, cache: Path, barrier: Any, results: Any) -> None:
    results.put(_build_at_once(wheel_, cache, barrier))


@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process")
def test_two_processes_building_the_same_layer_both_succeed(tmp_path: Path) -> None:
    big = wheel(tmp_path / "wheels", "big", files={"big/blob.bin": random.Random(6).randbytes(3_000_000)})
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = context.Queue()
    children = [
        context.Process(target=_build_in_child, args=(big, tmp_path / "cache", barrier, results)) for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    assert [child.exitcode for child in children] == [0, 0]
    assert results.get() == results.get()
    assert [name.rsplit(".", 1)[1] for name in cached(tmp_path)] == ["gz", "json"]
    assert site_layers([Site(SITE, (big,))], tmp_path / "cache").built == 0


def test_an_interrupt_stops_every_build_and_leaves_nothing_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = flashc.pack.layers.build

    def build_or_interrupt(folder: Path, spec: Any, pool: Any, *, ahead: int, cancelled: Any) -> Any:
        if spec.wheel.distribution == "first":
            raise KeyboardInterrupt  # as Ctrl-C reaches the main thread, waiting on this build
        deadline = time.monotonic() + 10
        while not cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)  # under way when the interrupt comes
        return real_build(folder, spec, pool, ahead=ahead, cancelled=cancelled)

    monkeypatch.setattr(flashc.pack.layers, "build", build_or_interrupt)
    sites = [Site(SITE, (wheel(tmp_path, "first"), wheel(tmp_path, "second", files={"second/x.py": b"x" * 10_000})))]
    with pytest.raises(KeyboardInterrupt):
        site_layers(sites, tmp_path / "cache", workers=2)
    assert cached(tmp_path) == []


# Damaged wheels


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"demo/__init__.py": b"VERSION = '6.6'\n"}, "'demo/__init__.py' does not match its sha256 and size in RECORD"),
        ({"demo/__init__.py": b"X = 1\n"}, "'demo/__init__.py' is 6 bytes, but RECORD says 16"),
        ({"demo/extra.py": b"import os\n"}, "'demo/extra.py' is not in RECORD"),
    ],
)
def test_a_tampered_wheel_is_refused_and_nothing_is_cached(
    tmp_path: Path, changes: dict[str, bytes], problem: str
) -> None:
    path = rewrite(make_wheel(tmp_path / "wheels", "demo", "1.0"), changes)
    with pytest.raises(ProjectError) as info:
        site_layers([Site(SITE, (SiteWheel(path, sha256(path), "demo", "1.0"),))], tmp_path / "cache")
    assert info.value.message == f"cannot install wheel 'demo-1.0-py3-none-any.whl': {problem}"
    assert info.value.hint == HINT.format(path)
    assert cached(tmp_path) == []


def test_a_file_linked_or_left_out_is_checked_all_the_same(tmp_path: Path) -> None:
    blob = random.Random(8).randbytes(4096)
    first = wheel(tmp_path / "a", "first", files={"first/blob.bin": blob})
    path = make_wheel(tmp_path / "b", "second", "1.0", files={"second/blob.bin": blob})
    rewrite(path, {"second/blob.bin": bytes(4096)})  # RECORD still says `blob`: the layer would link it
    with pytest.raises(ProjectError) as info:
        site_layers([Site(SITE, (first, SiteWheel(path, sha256(path), "second", "1.0")))], tmp_path / "cache")
    assert info.value.message == (
        "cannot install wheel 'second-1.0-py3-none-any.whl': "
        "'second/blob.bin' does not match its sha256 and size in RECORD"
    )
    assert [name for name in cached(tmp_path) if "second" in name] == []


def test_paths_that_leave_the_site_are_refused_together(tmp_path: Path) -> None:
    path = make_wheel(
        tmp_path, "demo", "1.0", files={"demo-1.0.data/purelib/../../evil.py": b"", "/etc/evil.py": b"", "ok.py": b""}
    )
    with pytest.raises(ProjectError) as info:
        wheel_layer(path, sha256(path), tmp_path / "cache", site=SITE)
    assert info.value.message == (
        "cannot install wheel 'demo-1.0-py3-none-any.whl': 2 problems:\n"
        "  '/etc/evil.py' would be installed outside the site folder\n"
        "  'demo-1.0.data/purelib/../../evil.py' would be installed outside the site folder"
    )
    assert cached(tmp_path) == []


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(b"not a zip")
    with pytest.raises(ProjectError) as info:
        wheel_layer(path, sha256(path), tmp_path / "cache", site=SITE)
    assert info.value.message == "cannot install wheel 'demo-1.0-py3-none-any.whl': File is not a zip file"
    assert info.value.hint == HINT.format(path)


def test_a_wheel_that_is_not_the_one_locked_is_refused(tmp_path: Path) -> None:
    demo = wheel(tmp_path, "demo")
    with pytest.raises(ProjectError) as info:
        wheel_layer(demo.path, "0" * 64, tmp_path / "cache", site=SITE)
    assert info.value.message == (
        f"cannot install wheel 'demo-1.0-py3-none-any.whl': its sha256 is {demo.sha256}, not {'0' * 64}"
    )
    assert cached(tmp_path) == []


def test_every_damaged_wheel_is_reported_at_once(tmp_path: Path) -> None:
    good = wheel(tmp_path, "good")
    bad = [SiteWheel(tmp_path / f"bad{i}-1.0-py3-none-any.whl", "0" * 64, f"bad{i}", "1.0") for i in (1, 2)]
    for w in bad:
        w.path.write_bytes(b"")
    with pytest.raises(ProjectError) as info:
        site_layers([Site(SITE, (good, *bad))], tmp_path / "cache")
    assert info.value.message == (
        "2 wheels cannot be installed:\n"
        "  cannot install wheel 'bad1-1.0-py3-none-any.whl': File is not a zip file\n"
        "  cannot install wheel 'bad2-1.0-py3-none-any.whl': File is not a zip file"
    )


def test_wheel_layer_refuses_choices_about_files_the_wheel_does_not_install(tmp_path: Path) -> None:
    demo = wheel(tmp_path, "demo")
    with pytest.raises(ValueError, match=r"demo-1\.0-py3-none-any\.whl installs no file 'nope\.py'"):
        wheel_layer(demo.path, demo.sha256, tmp_path / "cache", site=SITE, omit=["nope.py"])


# Site folders


def test_layers_come_in_site_order_then_distribution_name_order(tmp_path: Path) -> None:
    first = Site("_flashc/sites/b", (wheel(tmp_path, "zeta"), wheel(tmp_path, "Alpha")))
    second = Site("_flashc/sites/a", (wheel(tmp_path, "beta"),))
    assembled = site_layers([first, second], tmp_path / "cache")
    assert [(layer.site, layer.distribution) for layer in assembled.layers] == [
        ("_flashc/sites/b", "Alpha"),
        ("_flashc/sites/b", "zeta"),
        ("_flashc/sites/a", "beta"),
    ]


def test_the_same_wheel_in_two_sites_is_stored_once_and_linked(tmp_path: Path) -> None:
    blob = random.Random(9).randbytes(1_000_000)
    shared = wheel(tmp_path / "wheels", "shared", files={"shared/blob.bin": blob, "shared/__init__.py": b""})
    _, alone = build(tmp_path, [Site("_flashc/sites/a", (shared,))], "one.tar.gz")
    _, both = build(tmp_path, [Site("_flashc/sites/a", (shared,)), Site("_flashc/sites/b", (shared,))], "two.tar.gz")

    assert both.size < alone.size * 1.05
    assert both.links == 1 and both.uncompressed < alone.uncompressed * 1.01
    infos = listing(both.path)
    linked = infos["_flashc/sites/b/shared/blob.bin"]
    assert linked.islnk() and linked.linkname == "_flashc/sites/a/shared/blob.bin" and linked.size == 0
    assert infos["_flashc/sites/b/shared/__init__.py"].isreg()  # an empty file gains nothing from a link

    out = tmp_path / "tarfile"
    extract_with_tarfile(both.path, out)
    assert (out / "_flashc/sites/b/shared/blob.bin").read_bytes() == blob
    assert (out / "_flashc/sites/a/shared/blob.bin").read_bytes() == blob


def test_the_worker_unpacks_hard_links(tmp_path: Path) -> None:
    blob = random.Random(11).randbytes(10_000)
    shared = wheel(tmp_path / "wheels", "shared", files={"shared/blob.bin": blob})
    _, result = build(tmp_path, [Site("_flashc/sites/a", (shared,)), Site("_flashc/sites/b", (shared,))])
    unpack(result.path, tmp_path / "worker")
    assert (tmp_path / "worker/_flashc/sites/b/shared/blob.bin").read_bytes() == blob


def test_the_same_content_with_another_mode_is_not_linked(tmp_path: Path) -> None:
    blob = random.Random(12).randbytes(10_000)
    plain = wheel(tmp_path / "a", "plain", files={"plain/tool": blob})
    path = rewrite(
        make_wheel(tmp_path / "b", "runnable", "1.0", files={"runnable/tool": blob}),
        {},
        modes={"runnable/tool": 0o100755},
    )
    runnable = SiteWheel(path, sha256(path), "runnable", "1.0")
    _, result = build(tmp_path, [Site(SITE, (plain, runnable))])
    infos = listing(result.path)
    assert result.links == 0
    assert (infos[f"{SITE}/plain/tool"].mode, infos[f"{SITE}/runnable/tool"].mode) == (0o644, 0o755)


@needs_gnu_tar
def test_gnu_tar_extracts_hard_links_as_links(tmp_path: Path) -> None:
    blob = random.Random(10).randbytes(100_000)
    shared = wheel(tmp_path / "wheels", "shared", files={"shared/blob.bin": blob})
    _, result = build(tmp_path, [Site("_flashc/sites/a", (shared,)), Site("_flashc/sites/b", (shared,))])
    listed = subprocess.run(["tar", "-tzvf", result.path], capture_output=True, text=True, check=True).stdout
    assert "_flashc/sites/b/shared/blob.bin link to _flashc/sites/a/shared/blob.bin" in listed
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-xzf", result.path, "-C", out], check=True)
    a, b = out / "_flashc/sites/a/shared/blob.bin", out / "_flashc/sites/b/shared/blob.bin"
    assert a.read_bytes() == b.read_bytes() == blob
    assert os.stat(a).st_ino == os.stat(b).st_ino


def test_a_path_two_wheels_write_with_different_content_goes_to_the_later_name_with_a_warning(
    tmp_path: Path,
) -> None:
    first = wheel(tmp_path, "aaa", files={"shared/x.py": b"A\n", "shared/y.py": b"A\n", "aaa/__init__.py": b""})
    second = wheel(tmp_path, "bbb", "2.0", files={"shared/x.py": b"B\n", "shared/y.py": b"B\n"})
    assembled, result = build(tmp_path, [Site(SITE, (second, first))])
    assert read(result.path)[f"{SITE}/shared/x.py"] == b"B\n"
    assert [f.arcname for f in assembled.layers[0].files if "shared" in f.arcname] == []
    (warning,) = assembled.warnings
    assert (warning.path, warning.severity, warning.code) == (SITE, "warning", "overwrite")
    assert warning.message == "bbb 2.0 overwrites 2 files of aaa 1.0 with different content (first: 'shared/x.py')"
    assert warning.hint == (
        "the copy of bbb, later in name order, is kept, as an installer would leave it; "
        "exclude one of the two if the worker does not need it"
    )


def test_a_path_two_wheels_write_with_the_same_content_is_stored_once_without_a_warning(tmp_path: Path) -> None:
    first = wheel(tmp_path, "aaa", files={"shared/x.py": b"same\n"})
    second = wheel(tmp_path, "bbb", files={"shared/x.py": b"same\n"})
    assembled, result = build(tmp_path, [Site(SITE, (first, second))])
    assert assembled.warnings == ()
    assert list(listing(result.path)).count(f"{SITE}/shared/x.py") == 1


def test_a_rebuild_finds_every_layer_by_the_wheels_sha256_without_reading_them(tmp_path: Path) -> None:
    demo = wheel(tmp_path / "wheels", "demo", files=DEMO)
    other = wheel(tmp_path / "wheels", "other")
    sites = [Site(SITE, (demo, other)), Site("_flashc/sites/gpu", (other,))]
    assert cached_site_layers(sites, tmp_path / "cache") is None  # nothing built yet
    built, _ = build(tmp_path, sites)
    demo.path.unlink()
    other.path.unlink()  # a rebuild needs the layers only
    again = cached_site_layers(sites, tmp_path / "cache")
    assert again is not None and again.layers == built.layers and again.built == 0
    # Other wheels, another mtime, or a layer gone: no plan to reuse.
    assert cached_site_layers([Site(SITE, (demo,))], tmp_path / "cache") is None
    assert cached_site_layers(sites, tmp_path / "cache", mtime=DEFAULT_MTIME + 1) is None
    built.layers[0].path.unlink()
    assert cached_site_layers(sites, tmp_path / "cache") is None


def test_a_plan_record_that_does_not_match_the_wheels_is_not_trusted(tmp_path: Path) -> None:
    sites = [Site(SITE, (wheel(tmp_path / "wheels", "alpha"), wheel(tmp_path / "wheels", "beta")))]
    build(tmp_path, sites)
    (record,) = (tmp_path / "cache" / "layers" / "plans").glob("*.json")
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "layers": data["layers"][::-1]}))  # valid JSON, wrong order
    assert cached_site_layers(sites, tmp_path / "cache") is None
