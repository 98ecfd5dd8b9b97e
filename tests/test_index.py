"""What the index has for a distribution, summarised when nothing fits the worker."""

from __future__ import annotations

from pathlib import Path

import httpx

from flashc.index import available_files, describe_available
from flashc.requirements import IndexOptions


def test_lists_local_find_links_and_the_simple_api(tmp_path: Path) -> None:
    (tmp_path / "Demo_Pkg-1.0.tar.gz").write_bytes(b"")
    (tmp_path / "other-1.0.tar.gz").write_bytes(b"")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"files": [{"filename": "demo_pkg-2.0-cp312-cp312-win_amd64.whl"}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    options = IndexOptions(index_url="https://mirror.test/simple/", find_links=(str(tmp_path),))
    files = available_files("demo-pkg", options, client=client)
    assert files == ["Demo_Pkg-1.0.tar.gz", "demo_pkg-2.0-cp312-cp312-win_amd64.whl"]
    assert str(seen[0].url) == "https://mirror.test/simple/demo-pkg/"
    assert seen[0].headers["accept"] == "application/vnd.pypi.simple.v1+json"


def test_index_errors_leave_what_is_known(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    assert available_files("x", IndexOptions(), client=client) == []
    assert available_files("x", IndexOptions(no_index=True)) == []


def test_summary_names_versions_platforms_and_sdists() -> None:
    assert describe_available([]) == "the index lists no files for it"
    assert describe_available(["x-1.0.tar.gz"]) == (
        "version 1.0 exists; 1.0 has a source distribution, which flashc does not build"
    )
    assert describe_available(
        [
            "x-1.0-cp312-cp312-macosx_11_0_arm64.whl",
            "x-2.0-cp312-cp312-win_amd64.whl",
            "x-2.0-cp39-cp39-musllinux_1_2_x86_64.whl",
            "x-2.0.tar.gz",
        ]
    ) == (
        "versions 1.0 to 2.0 exist; 2.0 has wheels for Windows amd64, musl Linux x86_64 (cp39, cp312) "
        "and a source distribution, which flashc does not build"
    )
