"""Errors a user can act on. Library code raises them; only `cli.py` turns them into output and exit codes.

FlashcError                 root: every failure flashc reports without a traceback
├── UsageError              the command line is wrong (exit 2)
├── ProjectError            the project folder cannot be read as a project (exit 1)
└── DiagnosticsError        the sources have errors; carries every Diagnostic (exit 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .diagnostics import Diagnostic

__all__ = ["DiagnosticsError", "FlashcError", "ProjectError", "UsageError"]


class FlashcError(Exception):
    """Root of every error flashc reports to the user as a message rather than a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(FlashcError):
    """The command was called wrongly: a missing folder, a bad option value."""

    exit_code = 2


class ProjectError(FlashcError):
    """The project cannot be read: unreadable ignore file, folder that is not a directory."""


class DiagnosticsError(FlashcError):
    """The project's sources have errors; every one of them is in `diagnostics`."""

    def __init__(self, diagnostics: Sequence[Diagnostic], root: Path) -> None:
        errors = sum(1 for d in diagnostics if d.severity == "error")
        super().__init__(f"{errors} error{'s' if errors != 1 else ''} found")
        self.diagnostics = tuple(diagnostics)
        self.root = root  # diagnostic paths are relative to it
