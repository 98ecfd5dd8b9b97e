"""Archive paths: the problems that would make a member escape, clash or fail where it is unpacked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..errors import ProjectError

__all__ = ["arcname_problem", "check_arcnames", "collected"]


def check_arcnames(names: Sequence[str], links: Sequence[tuple[str, str]] = ()) -> None:
    """Refuse paths that could escape or clash where the archive is unpacked; every problem in one error.

    `names` are every member's path in archive order; `links` are (hard link, target) pairs,
    whose target must be a file that comes earlier in `names` and is not itself a link.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for name, count in Counter(names).items():
        problem = arcname_problem(name)
        if problem is not None:
            problems.append(problem)
            continue
        if count > 1:
            problems.append(f"archive path '{name}' appears {count} times")
        seen.add(name)
    # A file 'a' and a file 'a/b' cannot both be unpacked. Folders are collected once each (a
    # walk up stops at a folder already known), and names are walked again only if one clashes.
    folders: set[str] = set()
    for name in seen:
        parent = name.rpartition("/")[0]
        while parent and parent not in folders:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    if not folders.isdisjoint(seen):
        for name in seen:
            parent = name.rpartition("/")[0]
            while parent:
                if parent in seen:
                    problems.append(f"archive path '{parent}' is a file and also the folder of '{name}'")
                    break
                parent = parent.rpartition("/")[0]
    if links:
        problems.extend(_link_problems(names, links))
    if problems:
        raise collected(sorted(problems), f"{len(problems)} problems with archive paths", None)


def _link_problems(names: Sequence[str], links: Sequence[tuple[str, str]]) -> list[str]:
    position = {name: index for index, name in enumerate(names)}
    linked = {name for name, _ in links}
    problems = []
    for name, target in links:
        at = position.get(target)
        if at is None or at >= position[name] or target in linked:
            problems.append(f"hard link '{name}' points to '{target}', which is not a file earlier in the archive")
    return problems


def arcname_problem(name: str) -> str | None:
    """What is wrong with `name` as a member's path, or None."""
    # Most names are plain: ASCII, no backslash, and no empty, '.' or '..' segment (each of those
    # puts "//" or "/." in "/name/"); anything else gets the full check below.
    if name.isascii() and "\\" not in name and "//" not in f"/{name}/" and "/." not in f"/{name}":
        return None
    if not name:
        return "archive path '' is empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a file name in another encoding, as os.fsdecode leaves it
        return f"archive path {name!r} is not valid UTF-8; rename the file"
    segments = name.split("/")
    if "\\" in name:
        reason = "contains a backslash; use '/'"
    elif name.startswith("/"):
        reason = "is absolute"
    elif ".." in segments:
        reason = "contains a '..' segment"
    elif "." in segments or "" in segments:
        reason = "is not normalized (it has a '.' or empty segment)"
    else:
        return None
    return f"archive path '{name}' {reason}"


def collected(problems: list[str], summary: str, hint: str | None) -> ProjectError:
    """One error for every problem: the problem itself if alone, else a summary line and a list."""
    if len(problems) == 1:
        return ProjectError(problems[0], hint)
    return ProjectError(summary + ":\n" + "\n".join("  " + problem for problem in problems), hint)
