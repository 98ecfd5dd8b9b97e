"""Where Runpod's stock worker images find a resource's entry module: `handler_<name>.py` at the
archive's root, the resource's name as it is (the images build the path from `FLASH_RESOURCE_NAME`;
the runtime's `stock.py` has the contract). Some names cannot be part of a file name: the build
warns at such a name, and a deploy to Runpod refuses it; flashc's own endpoints serve it."""

from __future__ import annotations

__all__ = ["entry_path", "entry_problem"]

_NAME_MAX = 255  # bytes in a file name, on the file systems workers unpack into


def entry_problem(resource: str) -> str | None:
    """Why `handler_<resource>.py` cannot be a file name, or None."""
    path = f"handler_{resource}.py"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no file name in UTF-8
        return "it is not valid UTF-8"
    bad = sorted({repr(c) for c in resource if c in "/\\\0"})
    if bad:
        return f"it holds {', '.join(bad)}"
    if size > _NAME_MAX:
        return f"handler_<name>.py would be {size} bytes long, over the {_NAME_MAX} a file name may have"
    return None


def entry_path(resource: str) -> str | None:
    """The entry module's path in the archive; None for a name no file can have."""
    return None if entry_problem(resource) else f"handler_{resource}.py"
