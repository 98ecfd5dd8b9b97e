"""Whether the Flash SDK, installed where flashc runs, has taken over the SDK's module names.

flashc makes `tetra_rp` and `runpod_flash` names of its runtime, so that Flash SDK code runs on
flashc unmodified. Installing the SDK itself into the same environment (`pip install -r
requirements.txt` of a project made for it) replaces them: `import tetra_rp` then gives the SDK,
and local calls of `@remote` functions go to Runpod's cloud instead of flashc's endpoints, without
a word. Every command checks, before it does anything else; the runtime checks again before the
first call leaves a local program (`flashc_runtime.client.ensure_sdk_is_this_runtime`), with the
same words. Nothing of the SDK is imported to find out.
"""

from __future__ import annotations

import dataclasses

from .errors import ProjectError

__all__ = ["SdkProblem", "check_sdk_aliases"]


@dataclasses.dataclass(frozen=True)
class SdkProblem:
    """The SDK's module names lead to the SDK itself here: what is wrong, and what to do."""

    message: str
    hint: str

    def error(self) -> ProjectError:
        """The problem as an error, for a command that must not go on."""
        return ProjectError(self.message, self.hint)


def check_sdk_aliases() -> SdkProblem | None:
    """The problem when `tetra_rp` or `runpod_flash` do not lead to flashc's runtime in this
    environment, None when they do (or are not there at all)."""
    from flashc_runtime.client import sdk_problem

    found = sdk_problem()
    return None if found is None else SdkProblem(*found)
