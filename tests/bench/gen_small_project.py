"""Generate a small, deterministic Python project for benchmarking `flashc build`.

The project has 200 files: 20 packages, each an `__init__.py` and ordinary modules of 3 to 8 KB,
plus `requirements.txt` and `.gitignore` at the root. Modules import helpers from earlier
modules. `WORKERS` of them are SDK worker modules: module `k` defines a GPU queue resource
`gpu-k` with one `@remote` function, and a route `POST /pk` on the load-balanced resource `api`,
which every worker module declares with the same config, as a project that repeats a shared
config per module does.

The project has no dependencies: no `@remote` lists any, and `requirements.txt` holds only
comments, so a build never waits on a package index. `.gitignore` names only files the project
never has, so the files a build packs are exactly the files written here.

The same arguments always give byte-identical files: one `random.Random(SEED)` drives every
choice, in a fixed order, and nothing depends on the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from string import Template

__all__ = ["FILES", "PACKAGES", "SEED", "WORKERS", "Project", "generate"]

SEED = 200
FILES = 200
PACKAGES = 20
WORKERS = 5
MIN_BYTES = 3000
MAX_BYTES = 8000

_PACKAGE_NAMES = [
    "accounts", "billing", "catalog", "checkout", "compliance", "forecasting", "fulfilment",
    "identity", "inventory", "ledger", "marketing", "notifications", "pricing", "recommendations",
    "reporting", "search", "shipping", "support", "telemetry", "warehouse",
]  # fmt: skip
_MODULE_NAMES = [
    "models", "parsing", "exports", "imports", "metrics", "rules", "scoring", "storage", "queries",
    "schedule", "windows", "validation", "summaries", "formatting", "batching", "retries",
]  # fmt: skip
_NOUNS = [
    "invoice", "order", "customer", "shipment", "sample", "record", "session", "report", "bucket",
    "segment", "profile", "payload", "event", "vendor", "route", "quote", "refund", "ticket",
]  # fmt: skip
_VERBS = ["load", "parse", "merge", "normalize", "validate", "summarize", "score", "filter", "group", "rank"]
_KINDS = ["Index", "Store", "Builder", "Tracker", "Registry", "Window", "Summary"]
_GPUS = ["AMPERE_80", "AMPERE_48", "AMPERE_24", "ADA_24", "ADA_48_PRO"]

_REQUIREMENTS = """\
# Third-party packages the workers need, one per line.
# None yet: everything here runs on the standard library.
"""
_GITIGNORE = """\
__pycache__/
*.py[cod]
.env
.venv/
/dist/
.flash/
"""


@dataclass(frozen=True)
class Project:
    """What `generate` wrote: counts to compare with flashc's output."""

    files: tuple[str, ...]
    """Every file's POSIX path relative to the root, sorted."""
    bytes: int
    functions: int
    resources: int


def generate(root: Path) -> Project:
    """Write the project into `root`, which must be missing or empty."""
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    rng = random.Random(SEED)
    sources = {"requirements.txt": _REQUIREMENTS, ".gitignore": _GITIGNORE}
    for package in _PACKAGE_NAMES[:PACKAGES]:
        sources[f"{package}/__init__.py"] = f'"""The {package} package."""\n'

    modules = _module_paths(rng, FILES - len(sources))
    workers = set(rng.sample(range(len(modules)), WORKERS))
    helpers: list[tuple[str, str]] = []  # (dotted module, helper name) of earlier modules
    worker = 0
    for position, path in enumerate(modules):
        dotted = path.removesuffix(".py").replace("/", ".")
        helper = f"{rng.choice(_VERBS)}_{dotted.replace('.', '_')}"
        imported = sorted(rng.sample(helpers, min(len(helpers), rng.randint(0, 2))))
        sdk = ""
        if position in workers:
            worker += 1
            sdk = _worker_code(rng, worker)
        sources[path] = _module(rng, dotted, helper, imported, sdk, rng.randint(MIN_BYTES, MAX_BYTES))
        helpers.append((dotted, helper))

    written = 0
    for path, source in sorted(sources.items()):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = source.encode()
        target.write_bytes(data)
        written += len(data)
    return Project(files=tuple(sorted(sources)), bytes=written, functions=2 * WORKERS, resources=WORKERS + 1)


def _module_paths(rng: random.Random, count: int) -> list[str]:
    """`count` module paths spread evenly over the packages, with names unique in each package."""
    packages = _PACKAGE_NAMES[:PACKAGES]
    per_package = -(-count // len(packages))  # rounded up
    names = {package: rng.sample(_MODULE_NAMES, per_package) for package in packages}
    paths = []
    for i in range(count):
        package = packages[i % len(packages)]
        paths.append(f"{package}/{names[package][i // len(packages)]}.py")
    return paths


_HEADER = '''"""$Noun $module for the $package package.

Helpers here $verb and $second $noun data for the reports downstream.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
$imports
logger = logging.getLogger(__name__)

DEFAULT_LIMIT = $limit
THRESHOLD = $threshold


def $helper(values: Sequence[float], scale: float = 1.0) -> float:
    """Return the scaled mean of ``values``, or 0.0 when there are none."""
    if not values:
        return 0.0
    return sum(value * scale for value in values) / len(values)
'''


def _module(rng: random.Random, dotted: str, helper: str, imported: list[tuple[str, str]], sdk: str, size: int) -> str:
    package, _, module = dotted.partition(".")
    noun = rng.choice(_NOUNS)
    imports = "".join(f"from {name} import {function}\n" for name, function in imported)
    if sdk:
        sdk_import = "from tetra_rp import CpuLiveLoadBalancer, GpuGroup, LiveServerless, remote\n"
        imports = sdk_import + ("\n" + imports if imports else "")
    parts = [
        Template(_HEADER).substitute(
            Noun=noun.capitalize(),
            noun=noun,
            module=module,
            package=package,
            verb=rng.choice(_VERBS),
            second=rng.choice(_VERBS),
            imports="\n" + imports if imports else "",
            limit=rng.choice([32, 64, 128, 256]),
            threshold=round(rng.uniform(0.1, 0.9), 2),
            helper=helper,
        ),
        sdk,
    ]
    length = sum(len(part) for part in parts)
    counter = 0
    while length < size:
        counter += 1
        block = _block(rng, counter, [function for _, function in imported])
        parts.append(block)
        length += len(block)
    return "".join(parts)


def _worker_code(rng: random.Random, k: int) -> str:
    return f'''

gpu = LiveServerless(name="gpu-{k}", gpus=[GpuGroup.{rng.choice(_GPUS)}], workersMax={rng.randint(1, 4)})
api = CpuLiveLoadBalancer(name="api")


@remote(gpu)
def infer_{k}(rows: list[list[float]]) -> list[float]:
    """Score each row on a GPU worker."""
    return [sum(row) / max(len(row), 1) for row in rows]


@remote(api, method="POST", path="/p{k}")
async def route_{k}(x: int) -> dict[str, int]:
    """Answer a request on the shared API endpoint."""
    return {{"x": x}}
'''


# Each block is a top-level definition; `$name` placeholders keep Python's braces literal.
_BLOCKS = [
    '''

def $name(rows: Iterable[dict[str, Any]], key: str = "$noun") -> dict[str, float]:
    """$Verb $noun rows by ``key`` and return the total amount per group."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        amount = float(row.get("amount", 0.0))
        if amount < $small:
            continue
        totals[str(row.get(key, "unknown"))] += amount * $factor
    logger.debug("grouped %d $noun buckets", len(totals))
    return dict(totals)
''',
    '''

@dataclass(frozen=True)
class $Class:
    """One $noun as read from the upstream export."""

    name: str
    priority: int = 0
    weight: float = 1.0
    tags: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.name}#{self.priority}"

    def is_heavy(self, limit: float = $small) -> bool:
        return self.weight > limit and "skip" not in self.tags


def $name(items: Sequence[$Class], limit: int = DEFAULT_LIMIT) -> list[str]:
    """Labels of the heaviest $noun items, best first."""
    selected = [item for item in items if item.is_heavy()]
    selected.sort(key=lambda item: (-item.weight, item.priority, item.name))
    return [item.label() for item in selected[:limit]]
''',
    '''

def $name(text: str) -> list[dict[str, Any]]:
    """Parse a JSON lines export of $noun records, skipping lines that do not parse."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            logger.warning("line %d: %s", number, error)
            continue
        if isinstance(value, dict):
            records.append(value)
    return records
''',
    '''

def $name(values: Iterable[float], size: int = $count) -> Iterator[list[float]]:
    """Yield consecutive windows of ``size`` $noun values; the last one may be shorter."""
    window: list[float] = []
    for value in values:
        window.append(value)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window
''',
    '''

def $name(record: dict[str, Any]) -> list[str]:
    """Every problem with a $noun record, so a caller can report them all at once."""
    problems = [f"missing field {key!r}" for key in ("id", "name", "amount") if key not in record]
    amount = record.get("amount")
    if amount is not None and not isinstance(amount, (int, float)):
        problems.append(f"amount must be a number, got {type(amount).__name__}")
    elif isinstance(amount, (int, float)) and amount < 0:
        problems.append(f"amount must not be negative, got {amount}")
    return problems
''',
    '''

class $Class:
    """Keeps running statistics of $noun values without storing them all."""

    def __init__(self, name: str = "$noun") -> None:
        self.name = name
        self.count = 0
        self._mean = 0.0
        self._squares = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self._mean
        self._mean += delta / self.count
        self._squares += delta * (value - self._mean)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def stdev(self) -> float:
        return math.sqrt(self._squares / (self.count - 1)) if self.count > 1 else 0.0

    def __repr__(self) -> str:
        return f"$Class(name={self.name!r}, count={self.count}, mean={self.mean:.3f})"
''',
    '''

@dataclass
class $Class:
    """Groups $noun entries by region, keeping insertion order."""

    entries: dict[str, list[str]] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT

    def add(self, region: str, entry: str) -> bool:
        bucket = self.entries.setdefault(region, [])
        if len(bucket) >= self.limit or entry in bucket:
            return False
        bucket.append(entry)
        return True

    def to_json(self) -> str:
        return json.dumps(self.entries, sort_keys=True)
''',
]

_HELPER_BLOCK = '''

def $name(batches: Sequence[Sequence[float]]) -> list[float]:
    """$Verb $noun batches with the shared helpers, dropping empty ones."""
    results = []
    for batch in batches:
        if batch:
            score = $calls
            results.append(round(score, 4) if score > THRESHOLD else 0.0)
    return results
'''


def _block(rng: random.Random, counter: int, helpers: list[str]) -> str:
    noun = rng.choice(_NOUNS)
    verb = rng.choice(_VERBS)
    template = _HELPER_BLOCK if helpers and rng.random() < 0.2 else rng.choice(_BLOCKS)
    return Template(template).substitute(
        name=f"{verb}_{noun}_{counter}",
        Class=f"{noun.capitalize()}{rng.choice(_KINDS)}{counter}",
        noun=noun,
        Verb=verb.capitalize(),
        small=round(rng.uniform(0.5, 50.0), 2),
        factor=round(rng.uniform(0.5, 2.5), 3),
        count=rng.randint(3, 12),
        calls=" + ".join(f"{helper}(batch)" for helper in helpers) or "0.0",
    )
