"""Diagnostics: problems in the user's sources, with a location, rendered like a compiler's.

    workers/gpu.py:12:5: error: LiveServerless has no parameter 'workerMax'
       12 |     workerMax=3,
          |     ^~~~~~~~~
          = hint: did you mean 'workersMax'?

Lines and columns are 1-based, as editors show them. Rendering needs the source
line, which the caller provides through `read_line`, so this module does no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal

__all__ = ["Diagnostic", "Note", "Severity", "Span", "render", "render_all", "sort_key"]

Severity = Literal["error", "warning"]


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """A range in a file: start line and column, end line and column (exclusive), all 1-based."""

    line: int
    col: int
    end_line: int
    end_col: int


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    """A second place that explains a diagnostic, such as where a conflicting name was first defined."""

    path: str
    span: Span | None
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: where it is, what is wrong, and what to do about it."""

    path: str
    span: Span | None
    severity: Severity
    code: str
    message: str
    hint: str | None = None
    notes: tuple[Note, ...] = ()
    show_source: bool = True  # False when the line holds what must not be printed again (a secret)


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    """Diagnostics print in file order, so the output is the same on every run."""
    if d.span is None:
        return (d.path, 0, 0, d.message)
    return (d.path, d.span.line, d.span.col, d.message)


LineReader = Callable[[str, int], "str | None"]


def render(d: Diagnostic, read_line: LineReader) -> str:
    """`path:line:col: severity: message`, the source line with a caret under the span, the hint."""
    out = [f"{_location(d.path, d.span)}: {d.severity}: {d.message}"]
    if d.show_source:
        out.extend(_excerpt(d.path, d.span, read_line))
    for note in d.notes:
        out.append(f"{_location(note.path, note.span)}: note: {note.message}")
        out.extend(_excerpt(note.path, note.span, read_line))
    if d.hint:
        out.append(f"  = hint: {d.hint}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], read_line: LineReader) -> str:
    return "\n".join(render(d, read_line) for d in sorted(diagnostics, key=sort_key))


def _location(path: str, span: Span | None) -> str:
    if span is None:
        return path
    return f"{path}:{span.line}:{span.col}"


def _excerpt(path: str, span: Span | None, read_line: LineReader) -> list[str]:
    if span is None:
        return []
    text = read_line(path, span.line)
    if text is None:
        return []
    text = text.rstrip("\r\n").expandtabs(1)
    width = len(str(span.line))
    end = span.end_col if span.end_line == span.line else len(text) + 1
    start = span.col - 1
    length = max(1, min(end - 1, len(text)) - start)
    gutter = " " * width
    return [
        f" {span.line} | {text}",
        f" {gutter} | {' ' * start}^{'~' * (length - 1)}",
    ]
