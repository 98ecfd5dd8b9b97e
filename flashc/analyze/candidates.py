"""Which files are parsed up front: those that can hold SDK code.

A file that can hold a decorated function mentions `remote` (the decorator, however imported) or an
SDK module. A file may also use a name another candidate made for the SDK's remote (`from common
import endpoint`): `remote_aliases` finds those names, and the files that mention them are parsed too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..modules import ModuleFile
from . import ir
from .link import SDK_ROOTS

__all__ = ["CANDIDATE_MARKERS", "remote_aliases"]

CANDIDATE_MARKERS = (b"remote", b"tetra_rp", b"runpod_flash", b"flashc_runtime")


def remote_aliases(
    files: Mapping[str, ModuleFile], load: Callable[[str], ir.ModuleSummary], candidates: Sequence[str]
) -> set[str]:
    """Other names under which the candidate modules make the SDK's remote available.

    Only a module's own bindings are read (`from tetra_rp import remote as endpoint`, then
    `task = endpoint`): following imports into other modules here would parse files that
    nothing may need.
    """
    aliases: set[str] = set()
    for path in candidates:
        summary = load(path)
        local = {"remote"} if any(s.module.split(".")[0] in SDK_ROOTS for s in summary.star_imports) else set()
        for b in summary.bindings:
            if _names_remote(b, local):
                local.add(b.name)
        aliases |= local
    aliases.discard("remote")
    return aliases


def _names_remote(b: ir.Binding, aliases: set[str]) -> bool:
    """Whether a binding makes another name for the SDK's remote, judged within its own module."""
    if isinstance(b, ir.ImportBinding):
        return b.attr == "remote" and b.module.split(".")[0] in SDK_ROOTS
    if isinstance(b, ir.AssignBinding):
        value = b.value
        # `task = endpoint` (an alias above), or `task = tetra_rp.remote`
        return (isinstance(value, ir.Name) and value.id in aliases) or (
            isinstance(value, ir.Attr) and value.attr == "remote"
        )
    return False
