"""Resolution with uv for the worker: backtracking, target markers and tags, split sites, located failures."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from wheelhouse import LINUX_311, LINUX_312, make_wheel

from flashc.deps.models import Resolution
from flashc.deps.requirements import IndexOptions, Origin, Requirement, RequirementSet, _requirement
from flashc.deps.resolve import ResolutionCache, resolve_project
from flashc.deps.target import Target
from flashc.deps.uv import ResolveError, default_uv
from flashc.diagnostics import Note, Span
from flashc.errors import DiagnosticsError


def req(text: str, resource: str | None = None, line: int = 3) -> Requirement:
    """A requirement written by resource `resource`'s function (in `<resource>.py`), or in requirements.txt."""
    if resource is None:
        return _requirement(text, Origin("requirements.txt", line, "requirements.txt"))
    return _requirement(text, Origin(f"{resource}.py", line, f"dependencies of {resource}:f"), resource)


def resolve(
    house: Path,
    folder: Path,
    reqs: Sequence[Requirement],
    resources: Sequence[str] = (),
    python: str = "3.11",
    **kwargs: object,
) -> Resolution:
    options = IndexOptions(no_index=True, find_links=(str(house),))
    return resolve_project(
        RequirementSet(tuple(reqs), options, (), ()),
        resources,
        Target(python),
        uv=default_uv(folder / "uv"),
        **kwargs,  # type: ignore[arg-type]
    )


def versions(resolution: Resolution, site: int = 0) -> dict[str, str]:
    return {p.name: p.version for p in resolution.sites[site].pins}


def test_backtracks_where_taking_the_newest_fails(tmp_path: Path) -> None:
    # The newest a needs lib<2, but b needs a<2, whose only release needs lib>=2: pip and uv pick a 1.0.
    house = tmp_path / "house"
    make_wheel(house, "a", "2.0", requires=["lib<2"])
    make_wheel(house, "a", "1.0", requires=["lib>=2"])
    make_wheel(house, "b", "1.0", requires=["a<2"])
    make_wheel(house, "lib", "1.0")
    make_wheel(house, "lib", "2.0")
    resolution = resolve(house, tmp_path, [req("a"), req("b")])
    assert versions(resolution) == {"a": "1.0", "b": "1.0", "lib": "2.0"}
    assert {p.name: p.requires for p in resolution.sites[0].pins} == {"a": ("lib",), "b": ("a",), "lib": ()}
    assert resolution.split is None and resolution.sites[0].path == "_flashc/site"


@pytest.mark.skipif(sys.version_info[:2] == (3, 12), reason="needs a target Python other than the host's")
def test_markers_are_judged_for_the_target_not_this_machine(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(
        house,
        "alpha",
        "1.0",
        requires=[
            'beta; python_version >= "3.12"',  # the host is not 3.12: pip alone would drop it
            'gamma; sys_platform == "win32"',
            'delta; platform_machine == "x86_64"',
            'epsilon; platform_machine == "aarch64"',
            "zeta; extra == 'fast'",
        ],
    )
    for name in ("beta", "gamma", "delta", "epsilon", "zeta"):
        make_wheel(house, name, "1.0")
    assert versions(resolve(house, tmp_path / "1", [req("alpha")], python="3.12")) == {
        "alpha": "1.0",
        "beta": "1.0",
        "delta": "1.0",
    }
    assert versions(resolve(house, tmp_path / "2", [req("alpha")], python="3.11")) == {"alpha": "1.0", "delta": "1.0"}
    assert "zeta" in versions(resolve(house, tmp_path / "3", [req("alpha[fast]")], python="3.12"))
    direct = [req('beta; python_version >= "3.12"'), req('gamma; sys_platform == "win32"')]
    assert versions(resolve(house, tmp_path / "4", direct, python="3.12")) == {"beta": "1.0"}


def test_the_wheel_the_worker_prefers_is_chosen(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "fastmath", "1.0", tag=LINUX_311)
    make_wheel(house, "fastmath", "1.0", tag=LINUX_312)
    make_wheel(house, "fastmath", "1.0", tag="cp312-cp312-macosx_11_0_arm64")
    make_wheel(house, "fastmath", "1.0")  # a pure fallback loses to the compiled wheel
    pins = resolve(house, tmp_path, [req("fastmath")], python="3.12").sites[0].pins
    assert [p.wheel.filename for p in pins] == [f"fastmath-1.0-{LINUX_312}.whl"]
    assert pins[0].wheel.url == (house / f"fastmath-1.0-{LINUX_312}.whl").as_uri()


def test_every_requirement_that_cannot_be_installed_is_reported_at_its_place(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "onlymac", "1.0", tag="cp311-cp311-macosx_11_0_arm64")
    make_wheel(house, "fine", "1.0")
    with pytest.raises(DiagnosticsError) as info:
        resolve(
            house,
            tmp_path,
            [req("fine", "a"), req("onlymac", "a", 5), req("nothere==1.0", "b", 7), req("fine>=9", None, 2)],
            ["a", "b"],
        )
    found = [(d.path, d.span, d.message[: d.message.index(" (CPython")]) for d in info.value.diagnostics]
    worker = "cannot be installed on the worker"
    assert found == [
        ("a.py", Span(5, 1, 6, 1), f"'onlymac' (dependencies of a:f) {worker}"),
        ("b.py", Span(7, 1, 8, 1), f"'nothere==1.0' (dependencies of b:f) {worker}"),
        ("requirements.txt", Span(2, 1, 3, 1), f"'fine>=9' {worker}"),
    ]
    # Each carries the resolver's own derivation.
    messages = [d.message for d in info.value.diagnostics]
    assert "onlymac" in messages[0] and "Because" in messages[0]
    assert "nothere" in messages[1] and "fine>=9" in messages[2] and "only fine==1.0 is available" in messages[2]


def test_resources_whose_versions_conflict_get_a_site_folder_each(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "numpy", "1.26.2")
    make_wheel(house, "numpy", "2.1.0")
    make_wheel(house, "requests", "2.32.0")
    resolution = resolve(
        house,
        tmp_path,
        [req("numpy<2", "Old Model"), req("numpy>=2", "new", 9), req("requests")],
        ["Old Model", "new"],
    )
    assert [(s.path, s.resources) for s in resolution.sites] == [
        ("_flashc/sites/old_model", ("Old Model",)),
        ("_flashc/sites/new", ("new",)),
    ]
    assert versions(resolution, 0) == {"numpy": "1.26.2", "requests": "2.32.0"}
    assert versions(resolution, 1) == {"numpy": "2.1.0", "requests": "2.32.0"}
    assert resolution.split == (
        "Because you require numpy<2 and numpy>=2, we can conclude that your requirements are unsatisfiable."
    )


def test_a_conflict_inside_one_resource_is_an_error_with_both_places(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "numpy", "1.26.2")
    make_wheel(house, "numpy", "2.1.0")
    make_wheel(house, "scipy", "1.16.0", requires=["numpy>=2"])
    with pytest.raises(DiagnosticsError) as info:
        resolve(house, tmp_path, [req("numpy<2", "gpu", 4), req("scipy", "gpu", 5)], ["gpu", "cpu"])
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.path, diagnostic.span) == ("gpu.py", Span(4, 1, 5, 1))
    assert diagnostic.message.startswith("the requirements of resource 'gpu' cannot be installed together: ")
    assert "numpy" in diagnostic.message and "scipy" in diagnostic.message
    assert diagnostic.notes == (Note("gpu.py", Span(5, 1, 6, 1), "'scipy' is required here (dependencies of gpu:f)"),)


def test_a_second_resolution_comes_from_the_cache_without_uv(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0", requires=["beta"])
    make_wheel(house, "beta", "1.0")
    cache = ResolutionCache(tmp_path / "cache")
    first = resolve(house, tmp_path, [req("alpha")], cache=cache)

    def no_uv(args: Sequence[str], cwd: Path) -> tuple[int, str, str]:
        raise AssertionError(f"uv was called: {args}")

    options = IndexOptions(no_index=True, find_links=(str(house),))
    again = resolve_project(RequirementSet((req("alpha"),), options, (), ()), [], Target("3.11"), uv=no_uv, cache=cache)
    assert again == first
    # Other requirements are another resolution.
    with pytest.raises(AssertionError, match="uv was called"):
        resolve_project(RequirementSet((req("beta"),), options, (), ()), [], Target("3.11"), uv=no_uv, cache=cache)


def test_no_deps_takes_only_the_direct_requirements(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "alpha", "1.0", requires=["beta"])
    make_wheel(house, "beta", "1.0")
    assert versions(resolve(house, tmp_path, [req("alpha")], no_deps=True)) == {"alpha": "1.0"}


def test_offline_without_a_cache_says_so(tmp_path: Path) -> None:
    options = IndexOptions(index_url="https://pypi.org/simple")
    with pytest.raises(ResolveError) as info:
        resolve_project(
            RequirementSet((req("numpy"),), options, (), ()),
            [],
            Target("3.11"),
            uv=default_uv(tmp_path / "uv"),
            offline=True,
        )
    assert info.value.message.startswith("cannot resolve offline: ")
    assert info.value.hint is not None and "without --offline" in info.value.hint


def test_an_unreachable_index_is_a_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    options = IndexOptions(index_url="http://127.0.0.1:9/simple")
    with pytest.raises(ResolveError) as info:
        resolve_project(
            RequirementSet((req("numpy"),), options, (), ()), [], Target("3.11"), uv=default_uv(tmp_path / "uv")
        )
    first, uv_said = info.value.message.split("\n")
    assert first == "cannot reach the package index at http://127.0.0.1:9/simple: connection refused"
    assert uv_said.startswith("  uv: Failed to fetch: http://127.0.0.1:9/simple/numpy/")


def test_a_plain_linux_wheel_installs_as_pip_on_the_worker_would_but_after_any_manylinux_one(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "mixed", "0.9", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(house, "mixed", "1.0", tag="cp311-cp311-linux_x86_64")  # a private index's own build
    (pin,) = resolve(house, tmp_path / "1", [req("mixed")]).sites[0].pins
    assert pin.wheel.filename == "mixed-1.0-cp311-cp311-linux_x86_64.whl"
    make_wheel(house, "mixed", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    (pin,) = resolve(house, tmp_path / "2", [req("mixed")]).sites[0].pins
    assert pin.wheel.filename == "mixed-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"


def test_a_url_that_does_not_answer_is_reported_at_its_requirement_with_the_others(tmp_path: Path) -> None:
    import http.server
    import threading

    class Gone(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def do_HEAD(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gone)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ghost-1.0-py3-none-any.whl"
        house = tmp_path / "house"
        make_wheel(house, "fine", "1.0")
        with pytest.raises(DiagnosticsError) as info:
            resolve(
                house, tmp_path, [req("fine", "a"), req(f"ghost @ {url}", "a", 5), req("nothere", "b", 7)], ["a", "b"]
            )
    finally:
        server.shutdown()
    found = [(d.path, d.span.line if d.span else None) for d in info.value.diagnostics]
    assert found == [("a.py", 5), ("b.py", 7)]
    assert "404" in info.value.diagnostics[0].message


def test_a_resource_that_conflicts_with_nobody_shares_a_folder(tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "numpy", "1.26.2")
    make_wheel(house, "numpy", "2.1.0")
    make_wheel(house, "requests", "2.32.0")
    resolution = resolve(
        house,
        tmp_path,
        [req("numpy<2", "old"), req("numpy>=2", "new"), req("requests", "web"), req("numpy", "any")],
        ["any", "new", "old", "plain", "web"],
    )
    assert [(s.path, s.resources) for s in resolution.sites] == [
        ("_flashc/sites/any", ("any", "new", "plain", "web")),
        ("_flashc/sites/old", ("old",)),
    ]
