"""Generate a large, deterministic Python project for benchmarking `flashc analyze`.

The tree is `pkg_<p>/mod_<m>.py` packages (100 modules each) plus `pkg_0/configs.py`, which holds
resource configs shared across packages. About `remote_share` of the modules define `@remote`
functions or classes in the SDK's style; every other module is ordinary code that never mentions
the SDK, so an analyzer that skips files which cannot contain `@remote` is rewarded. Module
sizes vary around the mean that makes the tree total about `target_bytes`.

The same arguments always give byte-identical files: one `random.Random(1234)` drives every
choice, in a fixed order. `generate` writes `expected.json` last, so its presence means the tree
is complete; it records how many entries `flashc analyze --json` should list under "functions".
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

__all__ = ["FORBIDDEN", "MODULES_PER_PACKAGE", "SEED", "generate", "read_expected"]

SEED = 1234
MODULES_PER_PACKAGE = 100
# Ordinary modules must give an analyzer no textual reason to look closer.
FORBIDDEN = ("remote", "tetra_rp", "runpod_flash", "flashc_runtime")

_NOUNS = [
    "invoice", "order", "customer", "ledger", "shipment", "metric", "sample", "batch", "record",
    "session", "token", "report", "window", "bucket", "segment", "profile", "account", "payload",
    "event", "schedule", "vendor", "warehouse", "route", "quote", "basket", "tariff", "refund",
    "campaign", "cohort", "feature", "label", "region", "channel", "ticket", "asset", "budget",
]  # fmt: skip
_VERBS = [
    "load", "parse", "merge", "normalize", "validate", "summarize", "collect", "render", "score",
    "filter", "group", "rank", "split", "resolve", "compute", "reconcile", "index", "expand",
]  # fmt: skip
_KINDS = ["Index", "Store", "Builder", "Tracker", "Registry", "Planner", "Window", "Cache", "Summary"]
_GPUS = ["AMPERE_80", "AMPERE_48", "AMPERE_24", "ADA_24", "ADA_48_PRO", "HOPPER_141"]
_CPUS = ["CPU3C_2_4", "CPU3C_4_8", "CPU3G_2_8", "CPU3G_4_16", "CPU5C_2_4"]
_DEPENDENCIES = [
    ["numpy==1.26.4"],
    ["torch==2.3.1", "transformers==4.41.2"],
    ["pandas==2.2.2", "pyarrow==16.1.0"],
    ["scikit-learn==1.5.0"],
    ["pillow==10.3.0", "numpy==1.26.4"],
]
# Each kind of @remote module, cycled in this order; `expected.json` counts what was written.
_REMOTE_KINDS = [
    "gpu_function",
    "cpu_function",
    "async_gpu_function",
    "gpu_class",
    "shared_gpu_function",
    "async_cpu_function",
    "two_gpu_functions",
    "shared_cpu_class",
]


@dataclass(frozen=True)
class _Module:
    package: int
    index: int

    @property
    def dotted(self) -> str:
        return f"pkg_{self.package}.mod_{self.index}"

    @property
    def helper(self) -> str:
        return f"helper_{self.package}_{self.index}"

    @property
    def tag(self) -> str:
        """A suffix that makes names unique across the whole tree."""
        return f"{self.package}_{self.index}"


def generate(root: Path, files: int = 5000, target_bytes: int = 50_000_000, remote_share: float = 0.01) -> None:
    """Write the project into `root` and `root/expected.json` last.

    `root` must be missing, empty, or an earlier tree (it has `expected.json`); it is emptied first.
    """
    if root.exists():
        if any(root.iterdir()) and not (root / "expected.json").exists():
            raise ValueError(f"{root} is not empty and holds no generated tree; refusing to delete it")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(SEED)
    packages = max(1, math.ceil(files / MODULES_PER_PACKAGE))
    modules = [_Module(i // MODULES_PER_PACKAGE, i % MODULES_PER_PACKAGE) for i in range(files)]
    remote_count = max(1, round(files * remote_share))
    remote_ids = set(rng.sample(range(files), remote_count))

    written = _write(root / "pkg_0" / "configs.py", _configs_module())
    for package in range(packages):
        written += _write(root / f"pkg_{package}" / "__init__.py", _init_module(package))

    ordinary: list[_Module] = []
    remote_modules = 0
    functions: list[str] = []
    classes: list[str] = []
    for position, module in enumerate(modules):
        budget = _budget(rng, target_bytes - written, files - position)
        if position in remote_ids:
            kind = _REMOTE_KINDS[remote_modules % len(_REMOTE_KINDS)]
            source, marked = _remote_module(rng, module, kind, budget)
            remote_modules += 1
            names = [f"{module.dotted}.{name}" for name in marked]
            (classes if kind.endswith("_class") else functions).extend(names)
        else:
            source = _ordinary_module(rng, module, budget, ordinary)
            ordinary.append(module)
        written += _write(root / f"pkg_{module.package}" / f"mod_{module.index}.py", source)

    expected = {
        "bytes": written,
        "files": files + packages + 1,
        "functions": len(functions) + len(classes),
        "names": sorted(functions + classes),
        "remote_classes": len(classes),
        "remote_functions": len(functions),
        "remote_modules": remote_modules,
    }
    (root / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


def read_expected(root: Path) -> dict[str, Any]:
    """What `generate` recorded for `root`: counts, and the dotted names of the `@remote` objects."""
    data: dict[str, Any] = json.loads((root / "expected.json").read_text())
    return data


def _write(path: Path, source: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = source.encode()
    path.write_bytes(data)
    return len(data)


def _budget(rng: random.Random, bytes_left: int, modules_left: int) -> int:
    """Skewed sizes like a real project's, steered so the total lands near the target."""
    mean = max(bytes_left, 0) / modules_left
    return max(600, int(mean * rng.lognormvariate(-0.18, 0.6)))


# --- module skeletons --------------------------------------------------------------------


def _configs_module() -> str:
    return '''"""Resource configs shared by workers in several packages."""

from tetra_rp import CpuInstanceType, GpuGroup, LiveServerless

gpu_shared = LiveServerless(
    name="gpu-shared",
    gpus=[GpuGroup.AMPERE_80, GpuGroup.HOPPER_141],
    workersMin=0,
    workersMax=4,
    idleTimeout=10,
)

cpu_shared = LiveServerless(name="cpu-shared", instanceIds=[CpuInstanceType.CPU3G_4_16], workersMax=2)
'''


def _init_module(package: int) -> str:
    return f'"""Package {package} of the benchmark project."""\n\n__all__: list[str] = []\n'


_HEADER = '''"""$summary

$detail
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
$config

def $helper(values: Sequence[float], scale: float = 1.0) -> float:
    """Return the scaled mean of ``values``, or 0.0 when there are none."""
    if not values:
        return 0.0
    total = 0.0
    for value in values:
        total += value * scale
    return total / len(values)
'''


def _ordinary_module(rng: random.Random, module: _Module, budget: int, ordinary: list[_Module]) -> str:
    """Plain code that imports helpers from up to three earlier ordinary modules."""
    imported = sorted(rng.sample(ordinary, min(len(ordinary), rng.randint(0, 3))), key=lambda m: m.dotted)
    imports = "".join(f"from {m.dotted} import {m.helper}\n" for m in imported)
    source = _padded(rng, _header(rng, module, imports, ""), budget, [m.helper for m in imported])
    for word in FORBIDDEN:
        if word in source:
            raise AssertionError(f"ordinary module {module.dotted} contains {word!r}")
    return source


def _remote_module(rng: random.Random, module: _Module, kind: str, budget: int) -> tuple[str, list[str]]:
    """A worker module of the given kind; returns its source and the names it marks `@remote`."""
    tag = module.tag
    slug = tag.replace("_", "-")
    cpu = "cpu" in kind
    deps = rng.choice(_DEPENDENCIES)
    if kind.startswith("shared_"):
        config = "cpu_shared" if cpu else "gpu_shared"
        imports = f"from pkg_0.configs import {config}\nfrom tetra_rp import remote\n"
        config_line = ""
    elif cpu:
        config = f"cpu_config_{tag}"
        imports = "from tetra_rp import CpuInstanceType, LiveServerless, remote\n"
        config_line = (
            f'\n{config} = LiveServerless(name="cpu-worker-{slug}", '
            f"instanceIds=[CpuInstanceType.{rng.choice(_CPUS)}])\n"
        )
    else:
        config = f"gpu_config_{tag}"
        imports = "from tetra_rp import GpuGroup, LiveServerless, remote\n"
        config_line = (
            f'\n{config} = LiveServerless(name="gpu-worker-{slug}", '
            f"gpus=[GpuGroup.{rng.choice(_GPUS)}], workersMax={rng.randint(1, 5)})\n"
        )
    decorator = f"@remote(resource_config={config}, dependencies={json.dumps(deps)})\n"

    if kind.endswith("_class"):
        workers = decorator + _remote_class(tag)
        marked = [f"Model_{tag}"]
    elif kind == "two_gpu_functions":
        workers = decorator + _remote_function(tag, "infer", is_async=False)
        workers += "\n\n" + decorator + _remote_function(tag, "embed", is_async=False)
        marked = [f"infer_{tag}", f"embed_{tag}"]
    else:
        workers = decorator + _remote_function(tag, "infer", is_async=kind.startswith("async_"))
        marked = [f"infer_{tag}"]

    source = _header(rng, module, imports, config_line) + "\n\n" + workers
    return _padded(rng, source, budget, [module.helper]), marked


def _header(rng: random.Random, module: _Module, imports: str, config: str) -> str:
    noun = rng.choice(_NOUNS)
    first, second = rng.choice(_VERBS), rng.choice(_VERBS)
    return Template(_HEADER).substitute(
        summary=f"{noun.capitalize()} handling for package {module.package}.",
        detail=f"Helpers here {first} and {second} {noun} data for downstream reports.",
        imports="\n" + imports if imports else "",
        config=config,
        limit=rng.choice([32, 64, 128, 256, 500]),
        threshold=round(rng.uniform(0.1, 0.9), 2),
        helper=module.helper,
    )


def _padded(rng: random.Random, source: str, budget: int, helpers: list[str]) -> str:
    """`source` followed by ordinary definitions until it is about `budget` bytes long."""
    parts = [source]
    size = len(source)
    counter = 0
    while size < budget:
        counter += 1
        block = _block(rng, counter, helpers)
        parts.append(block)
        size += len(block)
    return "".join(parts)


def _remote_function(tag: str, verb: str, is_async: bool) -> str:
    prefix = "async def" if is_async else "def"
    return f'''{prefix} {verb}_{tag}(data: list[float], scale: float = 1.0) -> dict[str, float]:
    """Run the {verb} step on a worker and return summary statistics."""
    import numpy as np

    array = np.asarray(data, dtype=float) * scale
    return {{"sum": float(np.sum(array)), "mean": float(np.mean(array)), "max": float(np.max(array))}}
'''


def _remote_class(tag: str) -> str:
    return f'''class Model_{tag}:
    """A model kept loaded on the worker between calls."""

    def __init__(self, weights: list[float] | None = None) -> None:
        self.weights = weights or [0.5, 0.25, 0.25]
        self.calls = 0

    def predict(self, rows: list[list[float]]) -> list[float]:
        """Score each row with the loaded weights."""
        self.calls += 1
        return [self._score(row) for row in rows]

    async def health(self) -> dict[str, int]:
        return {{"calls": self.calls, "weights": len(self.weights)}}

    def _score(self, row: list[float]) -> float:
        return sum(w * x for w, x in zip(self.weights, row))
'''


# --- padding blocks ------------------------------------------------------------------------
# Each block is a top-level definition; `$name` placeholders keep Python's braces literal.

_BLOCKS = [
    '''

def $name(rows: Iterable[dict[str, Any]], key: str = "$noun") -> dict[str, float]:
    """$Verb $noun rows by ``key`` and return the total amount per group."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        bucket = str(row.get(key, "unknown"))
        amount = float(row.get("amount", 0.0))
        if amount < $small:
            continue
        totals[bucket] += amount * $factor
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

def $name(attempts: int = $count, base_delay: float = $factor) -> list[float]:
    """Delays for retrying a $noun fetch with capped exponential backoff."""
    delays = []
    delay = base_delay
    attempt = 0
    while attempt < attempts:
        delays.append(min(delay, 30.0))
        delay *= 2
        attempt += 1
    return delays
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
    problems = []
    for key in ("id", "name", "amount"):
        if key not in record:
            problems.append(f"missing field {key!r}")
    amount = record.get("amount")
    if amount is not None and not isinstance(amount, (int, float)):
        problems.append(f"amount must be a number, got {type(amount).__name__}")
    elif isinstance(amount, (int, float)) and amount < 0:
        problems.append(f"amount must not be negative, got {amount}")
    return problems
''',
    '''

class $Class:
    """Keeps running statistics of $noun values without storing them."""

    def __init__(self, name: str = "$noun") -> None:
        self.name = name
        self.count = 0
        self._mean = 0.0
        self._squares = 0.0
        self.history: list[float] = []

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self._mean
        self._mean += delta / self.count
        self._squares += delta * (value - self._mean)
        if len(self.history) < DEFAULT_LIMIT:
            self.history.append(value)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def stdev(self) -> float:
        return math.sqrt(self._squares / (self.count - 1)) if self.count > 1 else 0.0

    @staticmethod
    def merge(left: $Class, right: $Class) -> $Class:
        merged = $Class(left.name)
        for value in left.history + right.history:
            merged.add(value)
        return merged

    def __repr__(self) -> str:
        return f"$Class(name={self.name!r}, count={self.count}, mean={self.mean:.3f})"
''',
    '''

def $name(command: dict[str, Any]) -> str:
    """Describe the $noun command for the audit log."""
    match command:
        case {"action": "create", "id": ident}:
            return f"created {ident}"
        case {"action": "delete", "id": ident, "reason": reason}:
            return f"deleted {ident}: {reason}"
        case {"action": str(action)}:
            return f"unknown action {action}"
        case _:
            return "malformed command"
''',
    '''

def $name(values: Sequence[float], weights: Sequence[float] | None = None) -> dict[str, float]:
    """Summary statistics for $noun values, weighted when ``weights`` are given."""
    if weights is None:
        weights = [1.0] * len(values)
    pairs = [(v, w) for v, w in zip(values, weights) if w > 0 and not math.isnan(v)]
    if not pairs:
        return {"count": 0.0, "mean": 0.0, "spread": 0.0}
    total_weight = sum(w for _, w in pairs)
    mean = sum(v * w for v, w in pairs) / total_weight
    spread = max(v for v, _ in pairs) - min(v for v, _ in pairs)
    return {"count": float(len(pairs)), "mean": mean, "spread": spread * $factor}
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

    def regions(self) -> list[str]:
        return sorted(self.entries, key=lambda region: (-len(self.entries[region]), region))

    def to_json(self) -> str:
        return json.dumps({region: list(items) for region, items in self.entries.items()}, sort_keys=True)
''',
]

_HELPER_BLOCK = '''

def $name(batches: Sequence[Sequence[float]]) -> list[float]:
    """$Verb $noun batches with the shared helpers, dropping empty ones."""
    results = []
    for batch in batches:
        if not batch:
            continue
        score = $calls
        results.append(round(score, 4) if score > THRESHOLD else 0.0)
    return results
'''


def _block(rng: random.Random, counter: int, helpers: list[str]) -> str:
    noun = rng.choice(_NOUNS)
    verb = rng.choice(_VERBS)
    template = _HELPER_BLOCK if helpers and rng.random() < 0.15 else rng.choice(_BLOCKS)
    calls = " + ".join(f"{helper}(batch)" for helper in rng.sample(helpers, min(len(helpers), 2)))
    return Template(template).substitute(
        name=f"{verb}_{noun}_{counter}",
        Class=f"{noun.capitalize()}{rng.choice(_KINDS)}{counter}",
        noun=noun,
        Verb=verb.capitalize(),
        small=round(rng.uniform(0.5, 50.0), 2),
        factor=round(rng.uniform(0.5, 2.5), 3),
        count=rng.randint(3, 12),
        calls=calls or "0.0",
    )


def _check(root: Path) -> None:
    """Parse every generated file as Python 3.10, so a template slip shows up here."""
    for path in sorted(root.rglob("*.py")):
        ast.parse(path.read_bytes(), filename=str(path), feature_version=(3, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--remote-share", type=float, default=0.01)
    args = parser.parse_args()
    generate(args.root, args.files, int(args.mb * 1_000_000), args.remote_share)
    _check(args.root)
    print((args.root / "expected.json").read_text(), end="")


if __name__ == "__main__":
    main()
