"""A pytest plugin for snapshot tests of the files flashc generates for a project.

Installing flashc registers the plugin with pytest (entry point `pytest11`, name `flashc`), so the
`flashc_render` fixture is there in every test run, with no `conftest.py` or `-p` option. It gives
a callable that renders a project and returns the generated files of the archive as
`{posix path: text}`: the handlers, the SDK aliases and `flash_manifest.json`, the same files
`flashc render --out` writes. Compare them with a snapshot library such as syrupy:

    def test_generated_handlers(flashc_render, snapshot):
        assert flashc_render("path/to/project") == snapshot

A project with errors fails the test with flashc's diagnostics, as the command line prints them,
never with a traceback. Disable the plugin with `-p no:flashc`.

The manifest's `source_fingerprint` hashes every file the build ships, so any change to them
changes the snapshot. Keep the test and its snapshots out of the project folder, or ignore them
in the project's `.flashignore`; otherwise updating a snapshot changes the fingerprint it holds.

pytest imports this module at the start of every run of every project that has flashc installed,
so it imports nothing of flashc until a test renders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from .errors import FlashcError

__all__ = ["FlashcRender", "flashc_render"]


class FlashcRender(Protocol):
    """The type of the `flashc_render` fixture, for annotating tests."""

    def __call__(
        self, project_dir: str | os.PathLike[str] = ".", *, python_version: str | None = None
    ) -> dict[str, str]:
        """The generated files of the project at `project_dir`, as `{posix path: text}`."""


@pytest.fixture
def flashc_render() -> FlashcRender:
    """Render a project as `flashc render --out` does and return `{posix path: text}`, sorted by path.

    A relative `project_dir` is resolved against the current working directory, as on the command
    line. `python_version` is the target written into the manifest; it defaults to the worker
    images' Python, as `flashc render` does (never the interpreter running the tests, so snapshots
    do not change between Python versions). The scan cache is neither read nor written. A project
    with errors fails the test with the rendered diagnostics.
    """

    def render(project_dir: str | os.PathLike[str] = ".", *, python_version: str | None = None) -> dict[str, str]:
        from .errors import FlashcError
        from .pipeline import generate

        try:
            generated = generate(Path(project_dir), python_version=python_version, use_cache=False)
        except FlashcError as exc:
            report = _report(exc)
        else:
            return {f.path: f.text for f in generated.files}
        # Failing outside the `except` keeps pytest from printing the FlashcError as the context.
        pytest.fail(report, pytrace=False)

    return render


def _report(exc: FlashcError) -> str:
    """The text `flashc` prints for the error: diagnostics with their source lines, then the summary."""
    from .diagnostics import render_all
    from .errors import DiagnosticsError

    lines = []
    if isinstance(exc, DiagnosticsError):
        lines.append(render_all(exc.diagnostics, _line_reader(exc.root)))
    lines.append(f"flashc: error: {exc.message}")
    if exc.hint:
        lines.append(f"  = hint: {exc.hint}")
    return "\n".join(lines)


def _line_reader(root: Path) -> Callable[[str, int], str | None]:
    """Read source lines under `root`, each file once; None for a file or line that is not there."""
    cache: dict[str, list[str] | None] = {}

    def read_line(path: str, number: int) -> str | None:
        if path not in cache:
            try:
                cache[path] = (root / path).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                cache[path] = None
        text = cache[path]
        if text is None or not 1 <= number <= len(text):
            return None
        return text[number - 1]

    return read_line
