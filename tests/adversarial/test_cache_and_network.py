"""A damaged cache heals; an index out of reach is the network's failure, not the requirement's.

Every cache flashc keeps (wheels, layers, resolutions, uv's own) is damaged the ways a crash, a
full disk or a hand could damage it; the next build must succeed with the same bytes and leave a
good entry behind. Indexes that refuse connections, answer 5xx or refuse access are local servers
and closed ports: no test here needs the real network.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from wheelhouse import make_wheel, write_project

from flashc.cli import main
from flashc.deps.fetch import FetchError, WheelCache, fetch_wheels
from flashc.deps.models import Wheel
from flashc.deps.requirements import IndexOptions
from flashc.deps.target import Target
from flashc.deps.uv import ResolveError, Unsatisfiable, compile_pins

APP = """from tetra_rp import CpuLiveServerless, remote


@remote(CpuLiveServerless(name="cpu"), dependencies=["alpha"])
def f(x):
    return x
"""
WHEEL = "alpha-1.0-py3-none-any.whl"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No index but what a test sets; a cache of the test's own (returned)."""
    for name in [k for k in os.environ if k.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's retries would only make failing tests slower
    monkeypatch.setattr("flashc.deps.fetch.time.sleep", lambda seconds: None)  # so would flashc's back-off
    cache = tmp_path / "cache"
    monkeypatch.setenv("FLASHC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def house(tmp_path: Path) -> Path:
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0", payload=3000)
    return house


@pytest.fixture
def local(env: Path, house: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Wheels from a find-links folder: the cache, returned."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return env


def build(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["build", str(root), *args])
    return result.exit_code, result.output


def archive_digest(root: Path) -> str:
    return hashlib.sha256((root / ".flash" / "archive.tar.gz").read_bytes()).hexdigest()


def leftovers(*folders: Path) -> list[Path]:
    """Temporary files a write left behind."""
    return [p for folder in folders for p in folder.rglob("*") if p.name.endswith((".part", ".tmp"))]


def built_clean(root: Path, *args: str) -> str:
    """Build, asserting it succeeded with no more than warnings; the archive's sha256."""
    code, output = build(root, "--force", *args)
    assert code == 0, output
    assert "internal error" not in output and "Traceback" not in output
    return archive_digest(root)


# --- the wheel cache ------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 can tell
    path.write_bytes(bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"<html>503 Service Unavailable</html>\n")


def _no_record(path: Path) -> None:
    """A whole zip, but without RECORD: what a tool that rewrote the file could leave."""
    with zipfile.ZipFile(path) as zf:
        kept = [(info, zf.read(info)) for info in zf.infolist() if not info.filename.endswith("/RECORD")]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in kept:
            zf.writestr(info, data)


def _folder(path: Path) -> None:
    path.unlink()
    (path / "stray").mkdir(parents=True)


def _file_for_folder(path: Path) -> None:
    shutil.rmtree(path.parent)
    path.parent.write_bytes(b"")


def _deleted(path: Path) -> None:
    shutil.rmtree(path.parent)


WHEEL_DAMAGE = {
    "truncated": _truncate,
    "same size, a byte flipped": _flip,
    "garbage": _garbage,
    "no RECORD": _no_record,
    "a folder instead": _folder,
    "a file instead of its folder": _file_for_folder,
    "deleted": _deleted,
}


@pytest.mark.parametrize("damage", WHEEL_DAMAGE, ids=list(WHEEL_DAMAGE))
def test_a_damaged_cached_wheel_is_fetched_again_and_the_archive_is_the_same(
    tmp_path: Path, local: Path, damage: str
) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    (cached,) = (local / "wheels").glob(f"*/{WHEEL}")
    good = cached.read_bytes()
    WHEEL_DAMAGE[damage](cached)
    # The layers are cached: the wheel is not even read, and the archive is the same.
    assert built_clean(root) == first
    # Without them, the wheel is needed: checked against its sha256, fetched again.
    shutil.rmtree(local / "layers")
    assert built_clean(root) == first
    assert cached.read_bytes() == good
    assert leftovers(local, root / ".flash") == []


def test_a_damaged_wheel_offline_is_named_not_installed(tmp_path: Path, local: Path) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    built_clean(root)
    (cached,) = (local / "wheels").glob(f"*/{WHEEL}")
    _truncate(cached)
    shutil.rmtree(local / "layers")
    code, output = build(root, "--force", "--offline")
    assert code == 1
    assert f"flashc: error: --offline, but the wheel cache lacks {WHEEL}" in output
    assert "internal error" not in output


def test_a_wheel_cache_that_cannot_be_written_is_a_cache_error(tmp_path: Path) -> None:
    data = b"PK\x05\x06" + bytes(18)
    wheel = Wheel(WHEEL, (tmp_path / WHEEL).as_uri(), len(data), hashlib.sha256(data).hexdigest())
    (tmp_path / WHEEL).write_bytes(data)
    (tmp_path / "cache").write_bytes(b"")  # a file where the cache folder should be
    with pytest.raises(FetchError) as info:
        fetch_wheels([wheel], WheelCache(tmp_path / "cache"))
    assert info.value.message.startswith(f"cannot write to the wheel cache '{tmp_path / 'cache' / 'wheels'}': ")
    assert info.value.hint == "check free disk space and the folder's permissions (FLASHC_CACHE_DIR chooses another)"


def test_builds_fetching_the_same_wheel_at_once_never_see_half_of_it(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    wheel = Wheel(WHEEL, "https://files.example/" + WHEEL, len(data), hashlib.sha256(data).hexdigest())
    started = threading.Barrier(4)

    def slow(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            for at in range(0, len(data), 1 << 18):
                yield data[at : at + (1 << 18)]

        return httpx.Response(200, content=body())

    def one() -> bytes:
        started.wait()
        paths = fetch_wheels([wheel], WheelCache(tmp_path), client=httpx.Client(transport=httpx.MockTransport(slow)))
        return paths[wheel.sha256].read_bytes()

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(one())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == data for r in results)
    assert leftovers(tmp_path) == []


def test_partial_downloads_a_killed_build_left_are_swept_when_that_wheel_is_fetched(tmp_path: Path) -> None:
    data = b"PK\x05\x06" + bytes(18)
    wheel = Wheel(WHEEL, (tmp_path / WHEEL).as_uri(), len(data), hashlib.sha256(data).hexdigest())
    (tmp_path / WHEEL).write_bytes(data)
    cache = WheelCache(tmp_path / "cache")
    folder = cache.path(wheel).parent
    folder.mkdir(parents=True)
    stale, fresh = folder / ".killed.part", folder / ".running.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")  # another build's download, going on
    os.utime(stale, (0, 0))
    assert fetch_wheels([wheel], cache)[wheel.sha256].read_bytes() == data
    assert not stale.exists() and fresh.exists()


# --- the layer cache ------------------------------------------------------------------------------


def _layer_files(cache: Path, suffix: str) -> list[Path]:
    return [p for p in (cache / "layers").glob(f"*{suffix}")]


LAYER_DAMAGE = {
    "layer truncated": lambda cache: [_truncate(p) for p in _layer_files(cache, ".gz")],
    "layer deleted": lambda cache: [p.unlink() for p in _layer_files(cache, ".gz")],
    "metadata garbage": lambda cache: [p.write_text("{") for p in _layer_files(cache, ".json")],
    "metadata deleted": lambda cache: [p.unlink() for p in _layer_files(cache, ".json")],
    "plan garbage": lambda cache: [p.write_text('{"layers": 5}') for p in (cache / "layers" / "plans").iterdir()],
}


@pytest.mark.parametrize("damage", LAYER_DAMAGE, ids=list(LAYER_DAMAGE))
def test_a_damaged_layer_is_built_again_never_shipped(tmp_path: Path, local: Path, damage: str) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    assert LAYER_DAMAGE[damage](local)
    assert built_clean(root) == first
    assert built_clean(root) == first  # and the cache holds a good layer again


# --- the resolution cache -------------------------------------------------------------------------


def _resolution(cache: Path) -> Path:
    (path,) = (cache / "resolutions").glob("*.json")
    return path


def _edit_wheel(field: str, value: object) -> object:
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        data["sites"][0]["pins"][0]["wheel"][field] = value
        path.write_text(json.dumps(data))

    return edit


RESOLUTION_DAMAGE = {
    "truncated": _truncate,
    "not an object": lambda path: path.write_text("[]"),
    "sha256 a number": _edit_wheel("sha256", 5),
    "sha256 a relative path": _edit_wheel("sha256", "../../elsewhere"),
    "file name with a folder": _edit_wheel("filename", "../../escape.whl"),
    "size a string": _edit_wheel("size", "big"),
}


@pytest.mark.parametrize("damage", RESOLUTION_DAMAGE, ids=list(RESOLUTION_DAMAGE))
def test_a_damaged_resolution_is_resolved_again(tmp_path: Path, local: Path, damage: str) -> None:
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    edit = RESOLUTION_DAMAGE[damage]
    assert callable(edit)
    edit(_resolution(local))
    shutil.rmtree(local / "layers")  # so that the wheel named by the resolution is needed
    assert built_clean(root) == first
    assert json.loads(_resolution(local).read_text())["sites"][0]["pins"][0]["wheel"]["filename"] == WHEEL
    # Fields that become a path in the cache are checked: nothing was written outside it.
    assert not (tmp_path / "elsewhere").exists() and not (local / "escape.whl").exists()


# --- uv's cache -----------------------------------------------------------------------------------


def _unpacked(cache: Path) -> Path:
    """uv's unpacked copy of the find-links wheel, in flashc's cache."""
    (folder,) = (cache / "uv" / "archive-v0").iterdir()
    return folder


UV_DAMAGE = {
    "METADATA deleted": lambda cache: (_unpacked(cache) / "alpha-1.0.dist-info" / "METADATA").unlink(),
    "METADATA garbage": lambda cache: (_unpacked(cache) / "alpha-1.0.dist-info" / "METADATA").write_bytes(b"\xff"),
    "unpacked wheel deleted": lambda cache: shutil.rmtree(_unpacked(cache)),
    "pointer garbage": lambda cache: [p.write_text("garbage") for p in (cache / "uv").rglob("*.rev")],
}


@pytest.mark.parametrize("damage", UV_DAMAGE, ids=list(UV_DAMAGE))
def test_a_damaged_entry_of_uvs_cache_is_removed_and_resolved_again(tmp_path: Path, local: Path, damage: str) -> None:
    """uv itself trusts its cache: without flashc's cleaning, every later resolution says
    "alpha==1.0 has an invalid package format" (or a decoding error), for ever."""
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)
    UV_DAMAGE[damage](local)
    assert built_clean(root, "--refresh") == first  # --refresh: flashc resolves again, with uv
    metadata = (_unpacked(local) / "alpha-1.0.dist-info" / "METADATA").read_text()
    assert "Name: alpha" in metadata


def test_uvs_cache_is_cleaned_only_for_damage_and_at_most_twice(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def damaged(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        calls.append(list(args[:2]) if args[0] == "pip" else list(args))
        return (
            1,
            "",
            (
                "error: No solution found when resolving dependencies:\n"
                "  cause: Because alpha==1.0 has an invalid package format and you require alpha, ...\n"
                "hint: The structure of `alpha` (v1.0) was invalid:\n"
                "  failed to open file `/c/uv/archive-v0/Xy/alpha-1.0.dist-info/METADATA`: No such file\n"
            ),
        )

    answer = compile_pins(["alpha"], Target("3.12"), IndexOptions(), uv=damaged)
    assert isinstance(answer, Unsatisfiable)  # still broken after cleaning: the wheel itself, then
    assert calls == [
        ["pip", "compile"],
        ["cache", "clean", "--no-config", "alpha"],
        ["pip", "compile"],
        ["cache", "clean", "--no-config"],
        ["pip", "compile"],
    ]
    calls.clear()

    def missing(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        calls.append(list(args[:2]))
        return 1, "", "error: No solution found\n  cause: Because there are no versions of alpha, ...\n"

    assert isinstance(compile_pins(["alpha"], Target("3.12"), IndexOptions(), uv=missing), Unsatisfiable)
    assert calls == [["pip", "compile"]]


# --- indexes out of reach -------------------------------------------------------------------------


class FakeIndex(http.server.ThreadingHTTPServer):
    """A PEP 503 index of the wheels in `house`; `status` set answers every request with it."""

    def __init__(self, house: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.house = house
        self.status: int | None = None
        self.url = f"http://127.0.0.1:{self.server_address[1]}/simple"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeIndex

    def do_GET(self) -> None:
        if self.server.status is not None:
            return self._answer(self.server.status, b"")
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "simple":
            links = "".join(
                f'<a href="/files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{w.name}</a>\n'
                for w in sorted(self.server.house.glob(f"{parts[1].replace('-', '_')}-*.whl"))
            )
            return self._answer(200, f"<html><body>\n{links}</body></html>\n".encode(), "text/html")
        if len(parts) == 2 and parts[0] == "files" and (self.server.house / parts[1]).is_file():
            return self._answer(200, (self.server.house / parts[1]).read_bytes())
        return self._answer(404, b"")

    def do_HEAD(self) -> None:
        self._answer(405, b"")

    def _answer(self, status: int, body: bytes, kind: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def index(house: Path) -> Iterator[FakeIndex]:
    server = FakeIndex(house)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_network_error(output: str, first_line: str) -> None:
    assert f"flashc: error: {first_line}\n" in output, output
    assert "internal error" not in output and "Traceback" not in output
    assert "cannot be installed on the worker" not in output  # not the requirement's fault


def test_a_closed_port_is_an_index_out_of_reach(tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}/simple"
    monkeypatch.setenv("UV_INDEX_URL", url)
    root = write_project(tmp_path / "proj", {"app.py": APP})
    code, output = build(root)
    assert code == 1
    assert_network_error(output, f"cannot reach the package index at {url}: connection refused")
    assert "  = hint: check the network connection and the index URL (--index-url in requirements.txt" in output
    assert not (root / ".flash" / "archive.tar.gz").exists()
    assert not (env / "wheels").exists() and not (env / "resolutions").exists()
    assert leftovers(env, root / ".flash") == []


def test_an_index_answering_503_is_out_of_reach(
    tmp_path: Path, env: Path, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.status = 503
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    root = write_project(tmp_path / "proj", {"app.py": APP})
    code, output = build(root)
    assert code == 1
    assert_network_error(output, f"cannot reach the package index at {index.url}: it answered 503 Service Unavailable")
    assert "  = hint: the server is failing, not the requirements: try again later" in output


def test_an_index_refusing_access_says_so(
    tmp_path: Path, env: Path, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.status = 401
    monkeypatch.setenv("UV_INDEX_URL", index.url.replace("http://", "http://me:secret@"))
    root = write_project(tmp_path / "proj", {"app.py": APP})
    code, output = build(root)
    assert code == 1
    assert_network_error(output, f"the package index at {index.url} refuses access (401 Unauthorized)")
    assert "secret" not in output


def test_a_package_the_index_does_not_have_is_not_a_network_error(
    tmp_path: Path, env: Path, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_INDEX_URL", index.url)
    root = write_project(tmp_path / "proj", {"app.py": APP.replace('"alpha"', '"nothere"')})
    code, output = build(root)
    assert code == 1
    assert "app.py:5:1: error: 'nothere' (dependencies of app:f) cannot be installed on the worker" in output
    assert "cannot reach" not in output and "internal error" not in output


def test_a_file_server_out_of_reach_when_fetching_is_a_network_error_and_spoils_nothing(
    tmp_path: Path, env: Path, index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_INDEX_URL", index.url)
    root = write_project(tmp_path / "proj", {"app.py": APP})
    first = built_clean(root)  # resolved through the index, the wheel fetched from it
    file_url = index.url.replace("/simple", f"/files/{WHEEL}")
    before = sorted(p.relative_to(root) for p in (root / ".flash").rglob("*"))
    # The resolution is cached, the wheel and its layer are not: the build must download it.
    for kind in ("wheels", "layers"):
        shutil.rmtree(env / kind)
    index.status = 503
    code, output = build(root, "--force")
    assert code == 1
    assert_network_error(output, f"cannot download {WHEEL}: {file_url} answered 503 Service Unavailable 3 times")
    index.shutdown()
    index.server_close()
    code, output = build(root, "--force")
    assert code == 1
    assert_network_error(output, f"cannot reach {file_url}: connection refused")
    # Nothing half-written: no wheel, no temporary file, the last archive as it was.
    assert [p for p in (env / "wheels").rglob("*") if p.is_file()] == []
    assert leftovers(env, root / ".flash") == []
    assert archive_digest(root) == first
    assert sorted(p.relative_to(root) for p in (root / ".flash").rglob("*")) == before


def test_a_download_cut_short_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flashc.deps.fetch.time.sleep", lambda seconds: None)
    data = bytes(range(256)) * 4096
    wheel = Wheel(WHEEL, "https://files.example/" + WHEEL, len(data), hashlib.sha256(data).hexdigest())

    def cut(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield data[:5000]
            raise httpx.ReadError("connection reset by peer")

        return httpx.Response(200, content=body())

    cache = WheelCache(tmp_path)
    with pytest.raises(FetchError) as info:
        fetch_wheels([wheel], cache, client=httpx.Client(transport=httpx.MockTransport(cut)))
    assert info.value.message == f"cannot reach https://files.example/{WHEEL}: connection reset by peer"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --- what uv says, read ---------------------------------------------------------------------------

UV_SAYS = {
    "dns": (
        "error: Failed to fetch: `https://pypi.example/simple/alpha/`\n"
        "  cause: error sending request for url (https://pypi.example/simple/alpha/)\n"
        "  cause: client error (Connect)\n  cause: dns error\n"
        "  cause: failed to lookup address information: Name or service not known\n",
        "cannot reach the package index at https://pypi.example/simple: the host name does not resolve",
    ),
    "timeout": (
        "error: Failed to fetch: `https://pypi.example/simple/alpha/`\n"
        "  cause: error sending request for url (https://pypi.example/simple/alpha/)\n"
        "  cause: operation timed out\n",
        "cannot reach the package index at https://pypi.example/simple: timed out",
    ),
    "tls": (
        "error: Failed to fetch: `https://pypi.example/simple/alpha/`\n"
        "  cause: error sending request for url (https://pypi.example/simple/alpha/)\n"
        "  cause: client error (Connect)\n"
        "  cause: invalid peer certificate: UnknownIssuer\n",
        "cannot reach the package index at https://pypi.example/simple: TLS failed",
    ),
    "file host": (
        "error: Request failed after 3 retries\n"
        "  cause: Failed to fetch: `https://files.example/packages/alpha-1.0-py3-none-any.whl`\n"
        "  cause: HTTP status server error (502 Bad Gateway) for url "
        "(https://files.example/packages/alpha-1.0-py3-none-any.whl)\n",
        "cannot reach https://files.example (fetching https://files.example/packages/alpha-1.0-py3-none-any.whl): "
        "it answered 502 Bad Gateway",
    ),
}


@pytest.mark.parametrize("case", UV_SAYS, ids=list(UV_SAYS))
def test_what_uv_says_of_the_network_becomes_a_network_error(case: str) -> None:
    stderr, expected = UV_SAYS[case]

    def uv(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        return 2, "", stderr

    options = IndexOptions(index_url="https://user:pw@pypi.example/simple/")
    with pytest.raises(ResolveError) as info:
        compile_pins(["alpha"], Target("3.12"), options, uv=uv)
    assert info.value.message.split("\n")[0] == expected


def test_a_package_or_host_named_like_a_network_failure_is_not_one() -> None:
    stderr = (
        "error: Failed to download `ssl-timeout @ https://tls.example/ssl_timeout-1.0-py3-none-any.whl`\n"
        "  cause: HTTP status client error (404 Not Found) for url "
        "(https://tls.example/ssl_timeout-1.0-py3-none-any.whl)\n"
    )

    def uv(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        return 2, "", stderr

    answer = compile_pins(["ssl-timeout @ https://tls.example/x.whl"], Target("3.12"), IndexOptions(), uv=uv)
    assert isinstance(answer, Unsatisfiable) and "404 Not Found" in answer.reason
