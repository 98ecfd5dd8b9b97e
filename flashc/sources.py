"""Project files: walk the project folder and keep what belongs to the build, with gitignore semantics.

Rules, in the order they apply (last match wins, so `!pattern` re-includes):

    built-in defaults   caches, build output, `.venv/`, `venv/` (a user rule may re-include them)
    .gitignore          in the root and every sub-folder, patterns relative to that folder
    .flashignore        same, read after the folder's `.gitignore` so it can override it

Deeper folders' rules come after shallower ones. As in git, an ignored folder is pruned: it is never
walked, so no rule can re-include a file inside it. Hard ignores beat every rule: VCS folders,
flashc's own `.flash/` state, `.env` and `.env.*` secrets in any case (`.ENV`), and virtual environments (recognised by
their `pyvenv.cfg` or `conda-meta/`, whatever the folder's name). Symlinked folders are not
followed; symlinked files are listed like files; broken symlinks are skipped.

Well-known credential files (`CREDENTIAL_FILES`, `CREDENTIAL_FOLDERS`: SSH keys, `.aws/`, `.netrc`,
`.pypirc`, `.npmrc`, `.envrc`...) are left out unless a rule re-includes them by a negation
(`!id_rsa` in a `.flashignore`): they are listed in `Snapshot.credentials`, so a build can say
what it left out. Unlike `.env`, a project may mean to ship one, so it can be kept on purpose.

Matching uses `pathspec.GitIgnoreSpec`, which is built to answer for file paths. Two adaptations
make its answers git's for a walk that prunes folders (checked against `git ls-files --others
--exclude-standard` on thousands of random trees):

- Every folder's rules are rebased onto the project root (`foo` in `pkg/.gitignore` becomes
  `pkg/**/foo`), so one spec per folder holds every rule that applies, in git's order.
- A folder is checked by its path without a trailing slash, against a variant of the rules in
  which dir-only patterns (`foo/`) lose their slash. Checking `foo/` would let `*` beat `!*/`
  (pathspec ranks a dir-only match below a match on the whole path) and would make `logs/**`
  prune `logs/` itself, so `!logs/.gitkeep` could not keep that file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pathspec import GitIgnoreSpec

from .errors import ProjectError, UsageError

__all__ = [
    "CREDENTIAL_FILES",
    "CREDENTIAL_FOLDERS",
    "IGNORE_FILES",
    "LARGE_FILE",
    "MEMORY_BUDGET",
    "ProjectFiles",
    "Snapshot",
    "snapshot_project",
    "walk_project",
]

IGNORE_FILES = (".gitignore", ".flashignore")
"""Per-folder ignore files, in the order their rules apply."""
LARGE_FILE = 16 * 1024 * 1024
"""Files bigger than this many bytes are never kept in memory: read again on demand, hashed while streaming."""
MEMORY_BUDGET = 256 * 1024 * 1024
"""At most this many bytes of file contents are kept in memory per snapshot; past it files are read again."""
_CHUNK = 1024 * 1024
_READ_HINT = "check the file's permissions, or add it to .flashignore"

# Soft defaults: applied before any user rule, so `!/build/` in a `.flashignore` keeps `build/`.
_DEFAULT_RULES = (
    "__pycache__/",
    "*.pyc",
    "*.pyo",
    "node_modules/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    "/build/",
    "/dist/",
    ".venv/",
    "venv/",
)
# Hard ignores, checked before any rule: shipping these would leak history, state or secrets.
_HARD_NAMES = frozenset({".git", ".hg", ".svn", ".flash"})
CREDENTIAL_FILES = frozenset(
    {
        "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk",
        ".netrc", "_netrc", ".pypirc", ".npmrc", ".yarnrc", ".envrc", ".git-credentials", ".pgpass",
        ".dockercfg", ".boto", ".s3cfg", ".vault-token", "credentials.json", "service-account.json",
    }
)  # fmt: skip
"""File names (compared in lower case) left out of a build unless a `!path` rule re-includes them."""
CREDENTIAL_FOLDERS = frozenset({".ssh", ".aws", ".gnupg", ".docker", ".kube", ".azure", ".gcloud", ".config/gcloud"})
"""Folders (names or paths ending a folder's path, in lower case) left out unless a `!path/` rule re-includes them."""
_VENV_MARKERS = frozenset({"pyvenv.cfg", "conda-meta"})
_GLOB_SPECIAL = re.compile(r"([\\*?\[])")
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
_RULES_HINT = "fix or delete the line; ignore files use .gitignore syntax (https://git-scm.com/docs/gitignore)"


@dataclasses.dataclass(slots=True)
class _Cache:
    """What a snapshot has read so far; the only mutable part of it."""

    listed: frozenset[str]
    started_ns: int = dataclasses.field(default_factory=time.time_ns)
    contents: dict[str, bytes] = dataclasses.field(default_factory=dict)
    digests: dict[str, str] = dataclasses.field(default_factory=dict)
    stats: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # size, st_mode
    kept: int = 0  # bytes in `contents`


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """The files of a project after ignore rules, and their contents, each read at most once.

    Paths are POSIX, relative to `root`, sorted. `read`, `digest` and the other methods take one
    of `files`: anything else is a `KeyError`, since a build reads only what the snapshot lists
    (and the up-to-date check covers). A file that cannot be read is a `ProjectError` naming it.
    """

    root: Path
    """Absolute and resolved."""
    files: tuple[str, ...]
    """Every kept regular file, of any kind."""
    ignored: tuple[str, ...]
    """The top-most ignored paths: a pruned folder appears once, with a trailing `/`."""
    credentials: tuple[str, ...] = ()
    """The ignored paths (folders with a trailing `/`) left out only because they look like credentials."""
    _cache: _Cache = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cache", _Cache(frozenset(self.files)))

    def read(self, path: str) -> bytes:
        """The file's bytes: from memory after the first read, except large files, read again each time."""
        cache = self._cache
        data = cache.contents.get(path)
        if data is not None:
            return data
        with self._opened(path) as f:
            data = f.read()
        if len(data) <= LARGE_FILE and cache.kept + len(data) <= MEMORY_BUDGET:
            cache.contents[path] = data
            cache.kept += len(data)
        return data

    def digest(self, path: str) -> str:
        """The sha256 hex digest of the file's bytes, computed once; large files are hashed while streaming."""
        cache = self._cache
        digest = cache.digests.get(path)
        if digest is not None:
            return digest
        if path in cache.contents or not self.is_large(path):
            digest = hashlib.sha256(self.read(path)).hexdigest()
        else:
            hasher = hashlib.sha256()
            with self._opened(path) as f:
                while chunk := f.read(_CHUNK):
                    hasher.update(chunk)
            digest = hasher.hexdigest()
        cache.digests[path] = digest
        return digest

    def size(self, path: str) -> int:
        """The file's size in bytes when it was last read (or first looked at, if it was not read yet)."""
        return self._stat(path)[0]

    def is_executable(self, path: str) -> bool:
        """Whether any execute bit is set on the file (pack makes such members 755)."""
        return bool(self._stat(path)[1] & 0o111)

    @property
    def started_ns(self) -> int:
        """When the snapshot was taken (before it read any file), in `time.time_ns()` units.

        A file changed after this may differ from the bytes the snapshot holds: a cache keyed by
        file signatures must not trust signatures of files changed after it.
        """
        return self._cache.started_ns

    def is_large(self, path: str) -> bool:
        """Over `LARGE_FILE` bytes: `read` gets it from disk each time, so stream it from `root / path` instead."""
        return self.size(path) > LARGE_FILE

    def _stat(self, path: str) -> tuple[int, int]:
        found = self._cache.stats.get(path)
        if found is None:
            try:
                st = os.stat(self._absolute(path))
            except OSError as exc:
                raise _unreadable(path, exc) from exc
            found = self._cache.stats[path] = (st.st_size, st.st_mode)
        return found

    def _absolute(self, path: str) -> str:
        if path not in self._cache.listed:
            raise KeyError(f"{path!r} is not a file of the snapshot of {self.root}")
        return os.path.join(self.root, path)

    @contextlib.contextmanager
    def _opened(self, path: str) -> Iterator[BinaryIO]:
        """The file open for reading; an OSError while opening or reading it becomes a ProjectError."""
        absolute = self._absolute(path)
        try:
            # Checked before opening: opening a FIFO for reading would block until someone writes to it.
            if not stat.S_ISREG(os.stat(absolute).st_mode):
                raise ProjectError(f"cannot read '{path}': not a regular file", _READ_HINT)
            with open(absolute, "rb") as f:
                st = os.fstat(f.fileno())
                self._cache.stats[path] = (st.st_size, st.st_mode)
                yield f
        except OSError as exc:
            raise _unreadable(path, exc) from exc


def _unreadable(path: str, exc: OSError) -> ProjectError:
    return ProjectError(f"cannot read '{path}': {exc.strerror or exc}", _READ_HINT)


ProjectFiles = Snapshot
"""The older name of `Snapshot`, kept for existing callers."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Rules:
    """The compiled rules that apply inside one folder."""

    files: Any  # GitIgnoreSpec for file paths
    dirs: Any  # GitIgnoreSpec for folder paths, given without a trailing slash
    # One regex that matches wherever any pattern matches: most paths match no pattern, and one
    # search is several times faster than asking every pattern in turn.
    file_filter: re.Pattern[str] | None
    dir_filter: re.Pattern[str] | None

    @classmethod
    def of(cls, files: Any, dirs: Any) -> _Rules:
        return cls(files, dirs, _any_pattern(files), _any_pattern(dirs))

    def __add__(self, other: _Rules) -> _Rules:
        return _Rules.of(self.files + other.files, self.dirs + other.dirs)

    def ignores_file(self, rel: str) -> bool:
        if self.file_filter is not None and self.file_filter.search(rel) is None:
            return False
        return bool(self.files.check_file(rel).include)

    def ignores_dir(self, rel: str) -> bool:
        return bool(self.dir_verdict(rel))

    def file_verdict(self, rel: str) -> bool | None:
        """True if the last rule matching `rel` ignores it, False if it re-includes it, None if none matches."""
        if self.file_filter is not None and self.file_filter.search(rel) is None:
            return None
        include: bool | None = self.files.check_file(rel).include
        return include

    def dir_verdict(self, rel: str) -> bool | None:
        if self.dir_filter is not None and self.dir_filter.search(rel) is None:
            return None
        include: bool | None = self.dirs.check_file(rel).include
        return include


def _any_pattern(spec: Any) -> re.Pattern[str] | None:
    """A regex matching any path some pattern of `spec` matches; None if one cannot be built."""
    parts = []
    for pattern in spec.patterns:
        if pattern.include is None:
            continue  # comments and blank lines
        regex = getattr(pattern, "regex", None)
        if not isinstance(regex, re.Pattern) or not isinstance(regex.pattern, str) or regex.flags != re.UNICODE:
            return None
        # Every pattern names the same group; an alternation may hold each name only once.
        parts.append("(?:" + _NAMED_GROUP.sub("(?:", regex.pattern) + ")")
    try:
        return re.compile("|".join(parts) or "(?!)")
    except re.error:  # pragma: no cover - pathspec's regexes are plain; fall back to asking each
        return None


def snapshot_project(root: Path) -> Snapshot:
    """Walk `root` and return its files after ignore rules; no file is read until asked for.

    Raises `UsageError` if `root` is not an existing folder, and `ProjectError` if a folder or an
    ignore file cannot be read or an ignore file holds a pattern that cannot be compiled.
    """
    top = _resolve_root(root)
    files: list[str] = []
    ignored: list[str] = []
    credentials: list[str] = []
    undecodable: list[str] = []
    # (absolute folder, its POSIX path relative to root with a trailing slash or "", rules in force)
    pending: list[tuple[str, str, _Rules]] = [(str(top), "", _default_rules())]
    while pending:
        folder, prefix, rules = pending.pop()
        entries = _scan(folder, prefix)
        if prefix and any(entry.name in _VENV_MARKERS for entry in entries):
            ignored.append(prefix)
            continue
        own = _read_rules(folder, prefix, entries)
        if own is not None:
            rules = rules + own
        for entry in entries:
            name = entry.name
            rel = prefix + name
            if entry.is_symlink():
                # Symlinked folders are not followed; broken or looping links are skipped.
                if not _is_file(entry):
                    continue
                is_dir = False
            elif entry.is_dir(follow_symlinks=False):
                is_dir = True
            elif entry.is_file(follow_symlinks=False):
                is_dir = False
            else:
                continue  # sockets, FIFOs, devices
            if is_dir:
                verdict = None if name in _HARD_NAMES else rules.dir_verdict(rel)
                if name in _HARD_NAMES or verdict:
                    ignored.append(rel + "/")
                elif verdict is None and _is_credential_folder(rel):
                    ignored.append(rel + "/")
                    credentials.append(rel + "/")
                elif _undecodable(name):
                    undecodable.append(rel + "/")
                else:
                    pending.append((entry.path, rel + "/", rules))
                continue
            if name in _HARD_NAMES or _is_secret(name):
                ignored.append(rel)
                continue
            verdict = rules.file_verdict(rel)
            if verdict:
                ignored.append(rel)
            elif verdict is None and name.lower() in CREDENTIAL_FILES:
                ignored.append(rel)
                credentials.append(rel)
            elif _undecodable(name):
                undecodable.append(rel)
            else:
                files.append(rel)
    if undecodable:
        raise _undecodable_error(sorted(undecodable))
    return Snapshot(
        root=top,
        files=tuple(sorted(files)),
        ignored=tuple(sorted(ignored)),
        credentials=tuple(sorted(credentials)),
    )


def walk_project(root: Path) -> Snapshot:
    """The older name of `snapshot_project`, kept for existing callers."""
    return snapshot_project(root)


def _is_file(entry: os.DirEntry[str]) -> bool:
    """Whether the entry is a file or a link to one; False for a broken or looping link."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_secret(name: str) -> bool:
    name = name.lower()  # `.ENV` is the same file on a case-insensitive disk, and as secret on any
    return name == ".env" or name.startswith(".env.")


def _undecodable(name: str) -> bool:
    """Whether the name's bytes are not UTF-8 (Python holds them as surrogates): an archive member's,
    a manifest's or a cache key's path must be text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _undecodable_error(paths: list[str]) -> ProjectError:
    shown = [p.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for p in paths]
    what = f"'{shown[0]}'" if len(shown) == 1 else f"{len(shown)} paths: " + ", ".join(f"'{p}'" for p in shown[:5])
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return ProjectError(
        f"file names must be UTF-8, and these bytes are not: {what}{more}",
        "rename it, or leave it out with a pattern in .flashignore (`*` stands for the bytes: `name*.txt`)",
    )


def _is_credential_folder(rel: str) -> bool:
    rel = rel.lower()
    return any(rel == f or rel.endswith("/" + f) for f in CREDENTIAL_FOLDERS)


def _resolve_root(root: Path) -> Path:
    if not root.exists():
        raise UsageError(f"project folder '{root}' does not exist")
    if not root.is_dir():
        raise UsageError(f"project folder '{root}' is not a directory")
    return root.resolve()


def _scan(folder: str, prefix: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as exc:
        shown = prefix or folder
        raise ProjectError(
            f"cannot read folder '{shown}': {exc.strerror or exc}",
            hint="check its permissions, or add it to .flashignore",
        ) from exc


@functools.cache
def _default_rules() -> _Rules:
    return _compile("", [(n, line) for n, line in enumerate(_DEFAULT_RULES, 1)], "<defaults>")


def _read_rules(folder: str, prefix: str, entries: list[os.DirEntry[str]]) -> _Rules | None:
    """Compile the folder's ignore files, `.gitignore` first; None if it has none."""
    by_name = {entry.name: entry for entry in entries if entry.name in IGNORE_FILES}
    combined: _Rules | None = None
    for name in IGNORE_FILES:
        entry = by_name.get(name)
        if entry is None or not _is_file(entry):
            continue  # absent, a folder, or a broken link
        shown = prefix + name
        rules = _compile(prefix, _read_lines(os.path.join(folder, name), shown), shown)
        combined = rules if combined is None else combined + rules
    return combined


def _read_lines(path: str, shown: str) -> list[tuple[int, str]]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ProjectError(
            f"{shown}: cannot read ignore file: {exc.strerror or exc}",
            hint="check the file's permissions",
        ) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProjectError(
            f"{shown}:{line}: ignore file is not valid UTF-8",
            hint="save the file as UTF-8",
        ) from exc
    return list(enumerate(text.splitlines(), 1))


def _compile(prefix: str, lines: list[tuple[int, str]], shown: str) -> _Rules:
    """Compile one ignore file's lines, rebased from the folder `prefix` onto the project root."""
    numbered: list[tuple[int, str, str, str]] = []
    for number, line in lines:
        rebased = _rebase(line, prefix)
        if rebased is not None:
            numbered.append((number, line, *rebased))
    try:
        file_spec = GitIgnoreSpec.from_lines([f for _, _, f, _ in numbered])
        dir_spec = GitIgnoreSpec.from_lines([d for _, _, _, d in numbered])
    except (ValueError, re.error) as exc:  # pathspec's pattern errors are ValueErrors; bad ranges are re.errors
        raise _pattern_error(numbered, shown) from exc
    return _Rules.of(file_spec, dir_spec)


def _pattern_error(numbered: list[tuple[int, str, str, str]], shown: str) -> ProjectError:
    """Find the line pathspec rejects, so the error points at it."""
    for number, line, file_line, dir_line in numbered:
        for candidate in (file_line, dir_line):
            try:
                GitIgnoreSpec.from_lines([candidate])
            except (ValueError, re.error):
                return ProjectError(f"{shown}:{number}: invalid ignore pattern {line!r}", _RULES_HINT)
    return ProjectError(f"{shown}: invalid ignore pattern", _RULES_HINT)  # pragma: no cover


def _rebase(line: str, prefix: str) -> tuple[str, str] | None:
    """One gitignore line as (pattern for files, pattern for folders), both relative to the root.

    None for blank lines and comments. A dir-only pattern (`foo/`) keeps its slash in the file
    pattern, where it matches the files below such folders, and loses it in the folder pattern,
    which is only ever checked against folders.
    """
    # Git drops trailing spaces unless the last one is escaped; pathspec does the same.
    if not line.endswith("\\ "):
        line = line.rstrip()
    if not line or line.startswith("#"):
        return None
    negate = "!" if line.startswith("!") else ""
    body = line[len(negate) :]
    dir_only = body.endswith("/")
    body = body.rstrip("/")
    if not body:
        # "/" matches nothing, in git and in pathspec; a lone "!" stays as it is, for pathspec to reject.
        return None if dir_only else (line, line)
    if prefix:
        # A slash at the start or in the middle anchors the pattern to its folder.
        body = _escape(prefix) + (body.removeprefix("/") if "/" in body else "**/" + body)
    if not dir_only:
        return (negate + body, negate + body)
    # pathspec reads `foo/**/` as `foo/`; git matches only the folders inside `foo`, like `foo/*/`.
    file_body = body[:-1] if body.endswith("/**") else body
    return (negate + file_body + "/", negate + body)


def _escape(prefix: str) -> str:
    """The folder path as a literal glob, so a folder named `[x]` or `a*` matches only itself."""
    escaped = _GLOB_SPECIAL.sub(r"\\\1", prefix)
    return "\\" + escaped if escaped.startswith(("#", "!")) else escaped
