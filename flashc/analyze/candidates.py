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
of levels. A file that merely says "remote" (`remote_addr`, a docstring, another library's
`def remote`) is not parsed up front; if a name leads to it later, the linker loads it then.

The `@remote` line is a safety net for what names cannot tell: a decorator whose import is
missing is reported, and a re-export the rules above do not follow is still found.

Each verdict is kept in the scan cache's index with its rule, and `exports` records the names
the last run's `uses` rule looked for, so an unchanged file is not read again to be judged.
"""

from __future__ import annotations

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

    Records every verdict in the store's index, and the names the `uses` rule looked for.
    """
    paths = sorted(files)
    chosen = set(store.select(paths, "sdk", _sdk_test, trust=_sdk_trust))
    store.prefetch(sorted(chosen), jobs=jobs)
    looked_for: set[tuple[str, str]] = set()
    seen: dict[tuple[str, str], bool] = {}  # (path, word): whether the file holds the word
    while True:
        exports = exported_names(files, store.load, sorted(chosen))
        pairs = {(m, n) for m, names in exports.items() for n in names}
        new = pairs - looked_for
        if not new:
            break
        wanted = _modules_by_name(_by_module(new))

        def test(path: str, data: bytes, wanted: Mapping[str, Sequence[str]] = wanted) -> bool:
            def contains(word: str) -> bool:
                key = (path, word)
                if key not in seen:
                    seen[key] = word.encode() in data
                return seen[key]

            return _uses(files[path], data, wanted, contains)

        rest = [p for p in paths if p not in chosen]
        extra = store.select(rest, "uses", test, trust=_uses_trust(store.previous_exports, new, pairs))
        looked_for |= new
        store.prefetch(extra, jobs=jobs)
        chosen.update(extra)
    store.exports = frozenset(looked_for)
    return sorted(chosen)


def _sdk_test(path: str, data: bytes) -> bool:
    return mentions_sdk(data)


def _sdk_trust(rule: str | None) -> bool:
    return rule == "sdk"


def _uses_trust(
    known: AbstractSet[tuple[str, str]], new: AbstractSet[tuple[str, str]], pairs: AbstractSet[tuple[str, str]]
) -> Callable[[str | None], bool | None]:
    """What an unchanged file's old verdict, given against the `known` pairs, says about the `new` ones.

    Not selected: it uses none of `known`, so nothing new unless `new` goes beyond them. Selected:
    it used one of `known`, still exported if all of them are (in `pairs`); else it is read again.
    """
    unknown = not new <= known
    complete = known <= pairs

    def trust(rule: str | None) -> bool | None:
        if rule is None:
            return None if unknown else False
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
    exports: dict[str, frozenset[str]] = {}
    changed = True
    while changed:
        changed = False
        for path in chosen:
            f = files[path]
            names = _bound_names(f, load(path), exports)
            key = module_key(f)
            if names != exports.get(key, frozenset()):
                exports[key] = names
                changed = True
    return {m: names for m, names in exports.items() if names}


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
