"""The standard library of the worker's Python: which top-level modules it has, and what replaced those removed."""

from __future__ import annotations

import functools
import sys

__all__ = ["REMOVAL_NOTES", "STDLIB_CHANGES", "parse_version", "stdlib_modules"]


def parse_version(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# PEP 594's dead batteries removed in 3.13 (lib2to3 went too).
_PEP_594_IN_3_13 = [
    "aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis",
    "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
]  # fmt: skip


# Standard-library modules added or removed since 3.10: (first version with it, first without).
STDLIB_CHANGES: dict[str, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {
    "tomllib": ((3, 11), None),
    "annotationlib": ((3, 14), None),
    "compression": ((3, 14), None),
    "binhex": (None, (3, 11)),
    **dict.fromkeys(["asynchat", "asyncore", "distutils", "imp", "smtpd"], (None, (3, 12))),
    **dict.fromkeys([*_PEP_594_IN_3_13, "lib2to3"], (None, (3, 13))),
}


# What the hint for a module removed from the standard library adds after "removed in Python 3.N".
REMOVAL_NOTES = {
    "imp": ": use importlib",
    "distutils": " (PEP 632): add setuptools, which provides it, or use sysconfig/shutil",
    "asynchat": " (PEP 594): use asyncio",
    "asyncore": " (PEP 594): use asyncio",
    "smtpd": " (PEP 594): add aiosmtpd",
    **dict.fromkeys(_PEP_594_IN_3_13, " (PEP 594)"),
}


_NOT_ON_LINUX = frozenset(
    {"_msi", "_overlapped", "_scproxy", "_winapi", "_wmi", "msilib", "msvcrt", "nt", "winreg", "winsound"}
)


@functools.lru_cache(maxsize=8)
def stdlib_modules(target: tuple[int, int]) -> frozenset[str]:
    """The top-level standard-library modules a CPython of version `target` has on Linux.

    The running Python's `sys.stdlib_module_names`, corrected by a table of the modules added or
    removed from 3.10 to 3.14; other differences between versions are private `_` modules.
    """
    names = set(sys.stdlib_module_names) | set(STDLIB_CHANGES)
    for name, (added, removed) in STDLIB_CHANGES.items():
        if (added is not None and target < added) or (removed is not None and target >= removed):
            names.discard(name)
    return frozenset(names - _NOT_ON_LINUX)
