"""Fetching wheels into the content-addressed cache: verified, healed, retried, never half-written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from flashc.deps.fetch import FetchError, WheelCache
from flashc.deps.fetch import fetch_wheels as fetch
from flashc.deps.models import Wheel
from flashc.errors import ProjectError

DATA = b"PK\x05\x06" + bytes(18) + b"wheel bytes"
SHA = hashlib.sha256(DATA).hexdigest()
URL = "https://files.example/pkg/alpha-1.0-py3-none-any.whl"


def wheel(url: str = URL, sha256: str = SHA) -> Wheel:
    return Wheel("alpha-1.0-py3-none-any.whl", url, len(DATA), sha256)


def client(handler: object) -> httpx.Client:
    assert callable(handler)
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_downloads_once_then_uses_the_cache(tmp_path: Path) -> None:
    calls: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, content=DATA)

    cache = WheelCache(tmp_path)
    paths = fetch([wheel(), wheel()], cache, client=client(serve))
    assert paths == {SHA: tmp_path / "wheels" / SHA / "alpha-1.0-py3-none-any.whl"}
    assert paths[SHA].read_bytes() == DATA and calls == [URL]
    fetch([wheel()], cache, client=client(serve))
    assert calls == [URL]
    assert not [p for p in (tmp_path / "wheels" / SHA).iterdir() if p.name.endswith(".part")]


def test_a_damaged_cached_wheel_is_fetched_again(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    fetch([wheel()], cache, client=client(lambda r: httpx.Response(200, content=DATA)))
    cache.path(wheel()).write_bytes(DATA[:10])  # a truncated file
    with pytest.raises(ProjectError, match=r"--offline, but the wheel cache lacks alpha-1\.0-py3-none-any\.whl"):
        fetch([wheel()], cache, offline=True)
    fetch([wheel()], cache, client=client(lambda r: httpx.Response(200, content=DATA)))
    assert cache.path(wheel()).read_bytes() == DATA


def test_other_bytes_than_locked_are_refused_and_not_cached(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path)
    with pytest.raises(FetchError) as info:
        fetch([wheel()], cache, client=client(lambda r: httpx.Response(200, content=b"evil")))
    assert info.value.message.startswith(f"alpha-1.0-py3-none-any.whl from {URL} has sha256 ")
    assert info.value.message.endswith(f"not the locked {SHA}")
    assert not cache.path(wheel()).exists()
    assert not list((tmp_path / "wheels" / SHA).iterdir())


def test_server_errors_and_resets_are_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flashc.deps.fetch.time.sleep", lambda seconds: None)
    answers = iter(["reset", "503", "ok"])

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer == "reset":
            raise httpx.ReadError("connection reset by peer")
        return httpx.Response(503 if answer == "503" else 200, content=DATA)

    assert fetch([wheel()], WheelCache(tmp_path), client=client(flaky))[SHA].read_bytes() == DATA


def test_failures_name_the_wheel_and_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flashc.deps.fetch.time.sleep", lambda seconds: None)
    with pytest.raises(FetchError) as info:
        fetch([wheel()], WheelCache(tmp_path), client=client(lambda r: httpx.Response(404)))
    assert info.value.message == f"cannot download alpha-1.0-py3-none-any.whl: {URL} answered 404 Not Found"
    assert info.value.hint == "check the index URL and its credentials"

    with pytest.raises(FetchError) as info:
        fetch([wheel()], WheelCache(tmp_path), client=client(lambda r: httpx.Response(503)))
    assert info.value.message == (
        f"cannot download alpha-1.0-py3-none-any.whl: {URL} answered 503 Service Unavailable 3 times"
    )
    assert info.value.hint == "the server is failing, not the wheel: try again later, or check the index URL"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(FetchError) as info:
        fetch([wheel()], WheelCache(tmp_path), client=client(down))
    assert info.value.message == f"cannot reach {URL}: connection refused"
    assert info.value.hint == (
        "check the network connection and the index URL; a build whose wheels are all cached needs no network "
        "(--offline)"
    )
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing half-written


def test_credentials_in_a_url_are_never_shown_but_its_port_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flashc.deps.fetch.time.sleep", lambda seconds: None)
    private = "https://me:secret@files.example:8443/pkg/alpha-1.0-py3-none-any.whl"
    with pytest.raises(FetchError) as info:
        fetch([wheel(private)], WheelCache(tmp_path), client=client(lambda r: httpx.Response(500)))
    assert info.value.message.startswith(
        "cannot download alpha-1.0-py3-none-any.whl: https://files.example:8443/pkg/alpha-1.0-py3-none-any.whl "
    )
    assert "secret" not in info.value.message


def test_credentials_of_the_index_are_sent_and_never_shown(tmp_path: Path) -> None:
    seen: list[str | None] = []

    def private(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, content=DATA)

    fetch(
        [wheel()],
        WheelCache(tmp_path),
        credentials={"files.example": ("me", "secret")},
        client=client(private),
    )
    assert seen and seen[0] is not None and seen[0].startswith("Basic ")


def test_local_files_are_copied_and_checked(tmp_path: Path) -> None:
    local = tmp_path / "house" / "alpha-1.0-py3-none-any.whl"
    local.parent.mkdir()
    local.write_bytes(DATA)
    cache = WheelCache(tmp_path / "cache")
    assert fetch([wheel(local.as_uri())], cache)[SHA].read_bytes() == DATA
    local.write_bytes(b"changed")
    with pytest.raises(FetchError, match="has sha256"):
        fetch([wheel(local.as_uri(), "0" * 64)], cache)
