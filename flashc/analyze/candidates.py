"""Which files are parsed up front: those that can hold SDK code, told from their bytes.

Parsing with libcst is the cost of a cold analysis, about ten times `ast.parse`, so a file is
parsed up front only when one of two rules selects it; both read bytes and never parse:

| rule   | a file is selected when                                              | told by                    |
|--------|----------------------------------------------------------------------|----------------------------|
| `sdk`  | it names an SDK module (`tetra_rp`, `runpod_flash`, `flashc_runtime`) | bytes containment          |
|        | or has a decorator line `@remote`                                    | a regex, on files that     |
|        |                                                                      | mention `remote`           |
| `uses` | it imports a name that a selected module binds to an SDK thing (the  | names by containment, then |
|        | SDK's `remote` or `Endpoint`, an SDK module, a `remote(...)` or an   | the file's import          |
|        | `Endpoint(...)` call, an alias of these), `import *` from that       | statements by a regex      |
|        | module, or imports the module itself and mentions the name           |                            |

`uses` runs to a fixed point: a selected file's own bindings (`from config import api` in a
package `__init__`) make new names for the next round, so re-exports are followed any number
of levels. Rounds after the first judge only the files whose import statements name a module
with a new name, and a module's names are worked out again only when a module it imports from
gains one, so a chain of N re-exports costs time linear in N. A file that merely says "remote"
(`remote_addr`, a docstring, another library's `def remote`) is not parsed up front; if a name
leads to it later, the linker loads it then.

The `@remote` line is a safety net for what names cannot tell: a decorator whose import is
missing is reported, and a re-export the rules above do not follow is still found.

Each verdict is kept in the scan cache's index with its rule, and `exports` records the names
the last run's `uses` rule looked for, so an unchanged file is not read again to be judged.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from ..modules import ModuleFile
from . import ir
from .link import SDK_ROOTS, module_key

if TYPE_CHECKING:
    from .cache import SummaryStore

__all__ = ["SDK_DECORATORS", "anchor", "exported_names", "mentions_sdk", "select_candidates", "uses_exports"]

SDK_DECORATORS = frozenset({"remote", "Endpoint"})
"""The SDK's names that make deployable things: a name bound to one of these is worth following."""

Exports = Mapping[str, frozenset[str]]
"""Per module key, the names it binds to SDK things."""

_SDK_MODULES = tuple(root.encode() for root in SDK_ROOTS)
_REMOTE_LINE = re.compile(rb"^[ \t]*@[ \t]*remote\b", re.MULTILINE)
# An import statement at the start of a line or after `;` or `:`: `from <dots><module> import <names>`
# (parenthesised over lines, or continued with backslashes) or `import <modules>`. Text in a
# string that looks like one only selects a file too many, which parsing then sorts out.
_IMPORT = re.compile(
    rb"(?:^|[;:])[ \t]*(?:"
    rb"from[ \t]+(?P<module>\.*[ \t]*[\w.]*?)[ \t]+import[ \t]*(?P<names>\([^)]*\)|(?:[^\n;\\]|\\\r?\n)*)"
    rb"|import[ \t]+(?P<modules>(?:[^\n;\\]|\\\r?\n)*))",
    re.MULTILINE,
)
_COMMENT = re.compile(rb"#[^\n]*")


def mentions_sdk(data: bytes) -> bool:
    """The `sdk` rule: the file names an SDK module or decorates something with a bare `remote`."""
    if any(m in data for m in _SDK_MODULES):
        return True
    return b"remote" in data and _REMOTE_LINE.search(data) is not None


def anchor(f: ModuleFile) -> str | None:
    """The package a file's relative imports start from ('' for the top level); None if it has no module path."""
    if f.module is None:
        return None
    return f.module if f.is_package else f.module.rpartition(".")[0]


def select_candidates(files: Mapping[str, ModuleFile], store: SummaryStore, *, jobs: int | None = None) -> list[str]:
    """The files to parse up front, in path order; their summaries are loaded into `store`.

    Records every verdict in the store's index, and the names the `uses` rule looked for. The
    first round judges every file not yet chosen; later rounds only the files whose import
    statements name a module that exports a new name (`_Importers`), so a re-export chain of N
    modules costs N small rounds rather than N passes over the project.
    """
    paths = sorted(files)
    chosen = set(store.select(paths, "sdk", _sdk_test, trust=_sdk_trust))
    store.prefetch(sorted(chosen), jobs=jobs)
    exports = _Exports(files, store.load)
    known = store.previous_exports
    missing = set(known)  # pairs the last run looked for that no chosen module exports (yet)
    looked_for: set[tuple[str, str]] = set()
    seen: dict[tuple[str, str], bool] = {}  # (path, word): whether the file holds the word
    first_rest: list[str] | None = None
    importers: _Importers | None = None
    added = sorted(chosen)
    while True:
        new = exports.add(added) - looked_for
        if not new:
            break
        missing -= new
        wanted = _modules_by_name(_by_module(new))

        def test(path: str, data: bytes, wanted: Mapping[str, Sequence[str]] = wanted) -> bool:
            def contains(word: str) -> bool:
                key = (path, word)
                if key not in seen:
                    seen[key] = word.encode() in data
                return seen[key]

            return _uses(files[path], data, wanted, contains)

        within = new <= known
        if first_rest is None:
            rest = first_rest = [p for p in paths if p not in chosen]
        else:
            importers = importers or _Importers(files, store, first_rest, chosen, seen)
            rest = importers.suspects(new, within_known=within, complete=not missing)
        extra = store.select(rest, "uses", test, trust=_uses_trust(within, not missing))
        looked_for |= new
        store.prefetch(extra, jobs=jobs)
        chosen.update(extra)
        added = extra
    store.exports = frozenset(looked_for)
    return sorted(chosen)


class _Importers:
    """Which files not chosen may use a pair, after the first round, found without judging every file.

    A file uses `(module, name)` only if its bytes hold `name` and an import statement names
    `module`, a package above it or a module below it, or `module` as `from package import module`.
    Files are indexed by the modules their import statements name, each read and matched once,
    and only once they hold a name some round looked for. A file the store vouches for (unchanged
    since the last run, which selected it by no rule) joins the index only when a round looks
    for a pair the last run did not: for the others its old verdict stands. A file the last run
    selected by the `uses` rule is judged again once every pair it may have used is back.
    """

    def __init__(
        self,
        files: Mapping[str, ModuleFile],
        store: SummaryStore,
        rest: Sequence[str],
        chosen: AbstractSet[str],
        seen: dict[tuple[str, str], bool],
    ) -> None:
        """`rest`: the files the first round judged; `chosen` grows as rounds choose files."""
        self._chosen = chosen
        self._files = files
        self._store = store
        self._seen = seen
        rest = [p for p in rest if store.exists(p)]
        self._vouched = [p for p in rest if store.previous_rule(p) == (True, None)]
        vouched = set(self._vouched)
        self._pool = [p for p in rest if p not in vouched]  # the files a round may judge
        self._reselect = {p for p in self._pool if store.previous_rule(p) == (True, "uses")}
        self._names: set[str] = set()
        self._indexed: set[str] = set()
        self._by_key: dict[str, set[str]] = {}

    def suspects(self, new: AbstractSet[tuple[str, str]], *, within_known: bool, complete: bool) -> list[str]:
        """The files not chosen that may use one of `new`, in path order.

        `within_known`: the last run looked for all of `new`, so its verdicts on vouched files stand.
        `complete`: every pair the last run looked for is exported again, so its selections stand.
        """
        if not within_known and self._vouched:
            self._pool += self._vouched
            self._index(self._vouched, self._names)
            self._vouched = []
        fresh = {name for _, name in new} - self._names
        if fresh:
            self._names |= fresh
            self._index(self._pool, fresh)
        found: set[str] = set()
        for module, name in new:
            for key in _lookup_keys(module):
                found.update(p for p in self._by_key.get(key, ()) if self._holds(p, name))
        if complete:  # it stays so: exports only grow
            found |= self._reselect
            self._reselect = set()
        return sorted(found - self._chosen)

    def _holds(self, path: str, name: str) -> bool:
        key = (path, name)
        if key not in self._seen:
            self._seen[key] = name.encode() in self._store.read(path)
        return self._seen[key]

    def _index(self, paths: Iterable[str], names: AbstractSet[str]) -> None:
        """Index the import statements of those `paths` not indexed yet that hold one of `names`."""
        for path in paths:
            if path in self._indexed:
                continue
            if not any(self._holds(path, name) for name in names):
                continue
            self._indexed.add(path)
            base = anchor(self._files[path])
            for level, module, imported in _imports(self._store.read(path)):
                if imported is None:
                    keys = [f"import {module}"] + [f"under {p}" for p in _packages_above(module)]
                else:
                    target = _absolute(base, level, module)
                    if target is None:
                        continue
                    keys = [f"from {target}"] + [f"from {target}.{n}" for n in imported if n != "*"]
                for key in keys:
                    self._by_key.setdefault(key, set()).add(path)


def _lookup_keys(module: str) -> list[str]:
    """The index keys of import statements that may name `module` (see `_Importers`)."""
    return [f"import {module}", f"under {module}", f"from {module}"] + [f"import {p}" for p in _packages_above(module)]


def _packages_above(module: str) -> list[str]:
    """`a` and `a.b` for `a.b.c`."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class _Exports:
    """Per module key, the names the chosen modules bind to SDK things, kept as modules are chosen.

    A module is judged again only when a module it reads exports more. Judging is monotone (more
    exports elsewhere never take a name away), so this reaches the same fixed point as judging
    every chosen module until nothing changes, and a chain of N re-exports costs N judgements.
    """

    def __init__(self, files: Mapping[str, ModuleFile], load: Callable[[str], ir.ModuleSummary]) -> None:
        self.names: dict[str, frozenset[str]] = {}
        self._files = files
        self._load = load
        self._readers: dict[str, set[str]] = {}  # module -> chosen paths whose judgement reads its exports

    def add(self, paths: Iterable[str]) -> set[tuple[str, str]]:
        """Choose `paths` too; the (module, name) pairs this adds."""
        queue = collections.deque(sorted(paths))
        queued = set(queue)
        for path in queue:
            for module in _reads(self._files[path], self._load(path)):
                self._readers.setdefault(module, set()).add(path)
        added: set[tuple[str, str]] = set()
        while queue:
            path = queue.popleft()
            queued.discard(path)
            f = self._files[path]
            key = module_key(f)
            names = _bound_names(f, self._load(path), self.names)
            old = self.names.get(key, frozenset())
            if names == old:
                continue
            self.names[key] = names
            added.update((key, n) for n in names - old)
            for reader in sorted(self._readers.get(key, set()) - queued):
                queue.append(reader)
                queued.add(reader)
        return added


def _reads(f: ModuleFile, summary: ir.ModuleSummary) -> set[str]:
    """The modules whose exports `_bound_names` reads for this module."""
    base = anchor(f)
    modules: set[str] = set()
    for b in summary.bindings:
        if isinstance(b, ir.ImportBinding) and (target := _absolute(base, b.level, b.module)) is not None:
            modules.add(target if b.attr is None else f"{target}.{b.attr}")
            modules.add(target)
    for star in summary.star_imports:
        if (target := _absolute(base, star.level, star.module)) is not None:
            modules.add(target)
    return modules


def _sdk_test(path: str, data: bytes) -> bool:
    return mentions_sdk(data)


def _sdk_trust(rule: str | None) -> bool:
    return rule == "sdk"


def _uses_trust(within_known: bool, complete: bool) -> Callable[[str | None], bool | None]:
    """What an unchanged file's old verdict, given against the last run's pairs, says about this round's.

    Not selected: it uses none of them, so nothing new when the round looks `within_known` ones.
    Selected: it used one of them, still exported when `complete` (all of them are); else it is
    read again.
    """

    def trust(rule: str | None) -> bool | None:
        if rule is None:
            return False if within_known else None
        if rule == "uses":
            return True if complete else None
        return None  # selected by another rule last time: never judged by this one

    return trust


def exported_names(
    files: Mapping[str, ModuleFile], load: Callable[[str], ir.ModuleSummary], chosen: Sequence[str]
) -> dict[str, frozenset[str]]:
    """Per module key, the names each of the `chosen` modules binds to SDK things.

    Only the chosen modules' own summaries are read (following imports into other modules
    would parse files that nothing may need); names they import from each other are followed
    to a fixed point, so `from .config import api` in a package `__init__` re-exports `api`.
    """
    exports = _Exports(files, load)
    exports.add(chosen)
    return {m: names for m, names in exports.names.items() if names}


def _bound_names(f: ModuleFile, summary: ir.ModuleSummary, exports: Exports) -> frozenset[str]:
    """The module-level names of one module bound to SDK things, given what other modules export."""
    base = anchor(f)
    things: set[str] = set()  # names of the SDK's decorators and modules, and of what they made
    modules: dict[str, str] = {}  # names bound to project modules

    def made_by_sdk(expr: ir.Expr) -> bool:
        if isinstance(expr, ir.Name):
            return expr.id in things
        if isinstance(expr, ir.Attr):
            if isinstance(expr.base, ir.Name) and expr.base.id in modules:
                return expr.attr in exports.get(modules[expr.base.id], ())
            # `tetra_rp.remote`, `api.post`; any `x.remote` also counts, as it always has
            return expr.attr in SDK_DECORATORS or made_by_sdk(expr.base)
        if isinstance(expr, ir.Call):
            return made_by_sdk(expr.func)
        return False

    events: list[tuple[int, ir.Binding | ir.StarImport]] = [(b.index, b) for b in summary.bindings]
    events += [(s.index, s) for s in summary.star_imports]
    for _, event in sorted(events, key=lambda e: e[0]):
        if isinstance(event, ir.StarImport):
            target = _absolute(base, event.level, event.module)
            if target is not None and target.split(".")[0] in SDK_ROOTS:
                things.update(SDK_DECORATORS)
            elif target is not None:
                things.update(n for n in exports.get(target, ()) if not n.startswith("_"))
            continue
        name = event.name
        things.discard(name)
        modules.pop(name, None)
        if isinstance(event, ir.ImportBinding):
            target = _absolute(base, event.level, event.module)
            if target is None:
                continue
            if target.split(".")[0] in SDK_ROOTS:
                if event.attr is None or event.attr in SDK_DECORATORS:
                    things.add(name)
            elif event.attr is None:
                modules[name] = target  # `import common [as c]`: `common.endpoint` may follow
            elif event.attr in exports.get(target, ()):
                things.add(name)
            else:
                modules[name] = f"{target}.{event.attr}"  # `from pkg import config`
        elif isinstance(event, ir.AssignBinding) and made_by_sdk(event.value):
            things.add(name)
    return frozenset(things)


def uses_exports(f: ModuleFile, data: bytes, exports: Exports, contains: Callable[[str], bool] | None = None) -> bool:
    """The `uses` rule: whether the file imports one of `exports`' names from its module.

    Also when it imports the module itself (`import common`, `from pkg import config`) and
    mentions the name, or imports `*` from it and mentions the name. `contains(word)` tells
    whether the bytes hold a word; a caller that asks again in later rounds may remember it.
    """
    return _uses(f, data, _modules_by_name(exports), contains or functools.partial(_contains, data))


def _uses(f: ModuleFile, data: bytes, by_name: Mapping[str, Sequence[str]], contains: Callable[[str], bool]) -> bool:
    """`uses_exports`, given the exporting modules of each name."""
    base = anchor(f)
    hits: dict[str, set[str]] = {}
    # The names first: there are few, while every module that imports the SDK exports `remote`.
    for name, modules in by_name.items():
        if not contains(name):
            continue
        for module in modules:
            if module in hits or contains(module.rpartition(".")[2]) or _encloses(module, base):
                hits.setdefault(module, set()).add(name)
    if not hits:
        return False
    for level, module, imported in _imports(data):
        if imported is None:
            # `import a.b [as c]` gives `a.b` and the modules above it; a deeper one may be imported by it
            if any(m == module or m.startswith(f"{module}.") or module.startswith(f"{m}.") for m in hits):
                return True
            continue
        target = _absolute(base, level, module)
        if target is None:
            continue
        if target in hits and ("*" in imported or hits[target] & imported):
            return True
        if any(f"{target}.{n}" in hits for n in imported):
            return True
    return False


def _contains(data: bytes, word: str) -> bool:
    return word.encode() in data


def _imports(data: bytes) -> Iterator[tuple[int, str, set[str] | None]]:
    """The import statements of a source: (level, module, imported names), names None for `import x`."""
    for match in _IMPORT.finditer(data):
        module_text = match["module"]
        if module_text is not None:
            text = module_text.replace(b" ", b"").replace(b"\t", b"")
            dotted = text.lstrip(b".")
            names = _names(match["names"])
            yield len(text) - len(dotted), dotted.decode("ascii", "replace"), {n.split(" ")[0] for n in names}
        else:
            for name in _names(match["modules"]):
                yield 0, name.split(" ")[0], None


def _names(text: bytes) -> Iterator[str]:
    """The comma-separated items of an import list, `as` clauses kept after a space."""
    text = _COMMENT.sub(b"", text).replace(b"\\\n", b" ").replace(b"\\\r\n", b" ")
    text = text.strip().strip(b"()")
    for item in text.split(b","):
        words = item.split()
        if words:
            yield " ".join(w.decode("ascii", "replace") for w in words)


def _absolute(base: str | None, level: int, target: str) -> str | None:
    """The module `from <level dots><target> import` means in a module whose package is `base`."""
    if level == 0:
        return target or None
    if base is None:
        return None
    parts = base.split(".") if base else []
    if level - 1 > len(parts):
        return None
    parts = parts[: len(parts) - (level - 1)]
    if target:
        parts.append(target)
    return ".".join(parts) or None


def _encloses(module: str, base: str | None) -> bool:
    """Whether a relative import in package `base` can name `module` with dots alone (`from .. import x`)."""
    return base is not None and (base == module or base.startswith(f"{module}."))


def _by_module(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = {}
    for module, name in pairs:
        grouped.setdefault(module, set()).add(name)
    return {m: frozenset(names) for m, names in grouped.items()}


def _modules_by_name(exports: Exports) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for module in sorted(exports):
        for name in exports[module]:
            by_name.setdefault(name, []).append(module)
    return by_name
