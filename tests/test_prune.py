from __future__ import annotations

import pytest

from flashc.deps.prune import Dist, PruneResult, _size, default_exclusions, prune, size_table


def dist(name: str, size: int, *requires: str, version: str = "1.0") -> Dist:
    return Dist(name=name, version=version, size=size, requires=requires)


def graph(*dists: Dist) -> dict[str, Dist]:
    return {d.name: d for d in dists}


# What `sentence-transformers` and `requests` resolve to on a Linux worker, trimmed: torch pulls the CUDA wheels and
# triton, which nothing else needs, and shares numpy and filelock with transformers.
ST = graph(
    dist("sentence-transformers", 250_000, "torch", "transformers", "numpy", version="3.0.1"),
    dist("transformers", 9_000_000, "numpy", "filelock", "huggingface-hub", version="4.44.2"),
    dist("huggingface-hub", 400_000, "filelock", version="0.24.6"),
    dist(
        "torch", 865_000_000, "filelock", "sympy", "networkx", "numpy", "nvidia-cudnn-cu12", "triton", version="2.5.1"
    ),
    dist("nvidia-cudnn-cu12", 1_234_567_890, "nvidia-cublas-cu12", version="9.1.0.70"),
    dist("nvidia-cublas-cu12", 410_600_000, version="12.4.5.8"),
    dist("triton", 209_500_000, "filelock", version="3.1.0"),
    dist("sympy", 6_200_000, "mpmath", version="1.13.1"),
    dist("mpmath", 536_200, version="1.3.0"),
    dist("networkx", 1_700_000, version="3.3"),
    dist("numpy", 18_300_000, version="2.1.1"),
    dist("filelock", 16_000, version="3.16.0"),
    dist("requests", 64_900, "urllib3", "idna", version="2.32.3"),
    dist("urllib3", 126_300, version="2.2.3"),
    dist("idna", 800, version="3.10"),
)
ROOTS = ("sentence-transformers", "requests")
TORCH_ONLY = ("mpmath", "networkx", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "sympy", "triton")


def test_nothing_excluded_keeps_everything_reachable() -> None:
    assert prune(ST, ROOTS, ()) == PruneResult(kept=tuple(sorted(ST)), excluded=(), dropped=(), freed=0, unknown=())


def test_excluding_torch_drops_what_only_torch_needed() -> None:
    result = prune(ST, ROOTS, ["torch"])
    assert result.excluded == ("torch",)
    assert result.dropped == TORCH_ONLY
    # numpy and filelock are shared with transformers, so they stay.
    assert result.kept == (
        "filelock",
        "huggingface-hub",
        "idna",
        "numpy",
        "requests",
        "sentence-transformers",
        "transformers",
        "urllib3",
    )
    assert result.unknown == ()
    assert result.freed == 865_000_000 + 1_234_567_890 + 410_600_000 + 209_500_000 + 6_200_000 + 536_200 + 1_700_000


def test_the_gpu_defaults_exclude_triton_too() -> None:
    result = prune(ST, ROOTS, default_exclusions(gpu_only=True))
    assert result.excluded == ("torch", "triton")
    assert result.dropped == ("mpmath", "networkx", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "sympy")
    assert result.unknown == ("torchaudio", "torchvision")


def test_default_exclusions() -> None:
    assert default_exclusions(gpu_only=True) == ("torch", "torchaudio", "torchvision", "triton")
    assert default_exclusions(gpu_only=False) == ()


def test_a_dependency_another_root_needs_stays() -> None:
    # filelock is also a root: excluding everything that needs it does not drop it.
    result = prune(ST, ["sentence-transformers", "filelock"], ["sentence-transformers"])
    assert result.kept == ("filelock",)
    assert "filelock" not in result.dropped


def test_excluding_a_root_prunes_its_dependencies_unless_needed_elsewhere() -> None:
    result = prune(ST, ROOTS, ["sentence-transformers"])
    assert result.excluded == ("sentence-transformers",)
    assert result.kept == ("idna", "requests", "urllib3")
    assert result.dropped == (
        "filelock",
        "huggingface-hub",
        "mpmath",
        "networkx",
        "numpy",
        "nvidia-cublas-cu12",
        "nvidia-cudnn-cu12",
        "sympy",
        "torch",
        "transformers",
        "triton",
    )
    assert result.freed == sum(d.size for d in ST.values()) - sum(ST[name].size for name in result.kept)


def test_an_excluded_dependency_goes_even_if_a_kept_one_requires_it() -> None:
    result = prune(ST, ["transformers"], ["numpy"])
    assert result.excluded == ("numpy",)
    assert result.kept == ("filelock", "huggingface-hub", "transformers")
    assert result.dropped == ()
    assert result.freed == 18_300_000


def test_unknown_names_are_reported_and_exclude_nothing() -> None:
    result = prune(ST, ROOTS, ["Torch", "tensorflow", "Not_Here", "tensorflow"])
    assert result.excluded == ("torch",)
    assert result.unknown == ("not-here", "tensorflow")
    assert result.dropped == TORCH_ONLY


def test_every_name_is_normalised() -> None:
    dists = {
        "Sentence_Transformers": dist("Sentence_Transformers", 1, "Torch"),
        "torch": dist("torch", 10, "NVIDIA.cublas-CU12"),
        "nvidia-cublas-cu12": dist("nvidia-cublas-cu12", 100),
        "PyYAML": dist("PyYAML", 1000),
    }
    result = prune(dists, ["sentence-transformers", "pyyaml"], ["TORCH"])
    assert result == PruneResult(
        kept=("pyyaml", "sentence-transformers"),
        excluded=("torch",),
        dropped=("nvidia-cublas-cu12",),
        freed=110,
        unknown=(),
    )


def test_cycles_do_not_loop() -> None:
    dists = graph(
        dist("app", 1, "a"),
        dist("a", 10, "b", "a"),
        dist("b", 100, "c", "a"),
        dist("c", 1000, "b"),
        dist("d", 10_000, "c"),
    )
    assert prune(dists, ["app"], ()).kept == ("a", "app", "b", "c")
    result = prune(dists, ["app", "d"], ["a"])
    assert result.kept == ("app", "b", "c", "d")
    assert result.dropped == ()
    result = prune(dists, ["app"], ["b"])
    assert (result.kept, result.excluded, result.dropped, result.freed) == (("a", "app"), ("b",), ("c",), 1100)


def test_a_root_cycle_excluded_whole() -> None:
    dists = graph(dist("a", 1, "b"), dist("b", 2, "a"))
    result = prune(dists, ["a"], ["a"])
    assert (result.kept, result.excluded, result.dropped, result.freed) == ((), ("a",), ("b",), 3)


def test_names_missing_from_the_graph_are_skipped() -> None:
    # torch was left out of the resolution already; its dependants still point at it.
    dists = graph(dist("app", 1, "torch", "numpy"), dist("numpy", 2))
    assert prune(dists, ["app", "ghost"], ()).kept == ("app", "numpy")


def test_unreachable_distributions_are_in_no_field() -> None:
    dists = graph(dist("app", 1), dist("orphan", 2, "leaf"), dist("leaf", 4))
    assert prune(dists, ["app"], ["leaf"]) == PruneResult(
        kept=("app",), excluded=("leaf",), dropped=(), freed=4, unknown=()
    )


def test_a_name_given_twice_in_the_graph_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="the graph has 'pyyaml' twice"):
        prune({"PyYAML": dist("PyYAML", 1), "pyyaml": dist("pyyaml", 1)}, [], [])


# --- size_table --------------------------------------------------------------------------------------------------


def test_size_table_lists_the_largest_first() -> None:
    dropped = prune(ST, ROOTS, ["torch"]).dropped
    assert size_table(ST, ["torch", *dropped], limit=4) == (
        "distribution        version       size\n"
        "nvidia-cudnn-cu12   9.1.0.70    1.2 GB\n"
        "torch               2.5.1     865.0 MB\n"
        "nvidia-cublas-cu12  12.4.5.8  410.6 MB\n"
        "triton              3.1.0     209.5 MB\n"
        "... and 3 more (8.4 MB)"
    )


def test_size_table_without_truncation_has_no_summary_line() -> None:
    assert size_table(ST, ["idna", "Requests", "urllib3", "filelock"]) == (
        "distribution  version       size\n"
        "urllib3       2.2.3     126.3 KB\n"
        "requests      2.32.3     64.9 KB\n"
        "filelock      3.16.0     16.0 KB\n"
        "idna          3.10     800 bytes"
    )


def test_size_table_breaks_ties_by_name() -> None:
    dists = graph(dist("b", 5), dist("a", 5), dist("c", 7))
    assert size_table(dists, ["a", "b", "c"], limit=2) == (
        "distribution  version     size\n"
        "c             1.0      7 bytes\n"
        "a             1.0      5 bytes\n"
        "... and 1 more (5 bytes)"
    )


def test_size_table_edges() -> None:
    assert size_table(ST, []) == "distribution  version  size"
    assert size_table(ST, ["idna", "idna"], limit=0) == "distribution  version  size\n... and 1 more (800 bytes)"
    with pytest.raises(ValueError, match="limit must not be negative, not -1"):
        size_table(ST, ["idna"], limit=-1)
    with pytest.raises(ValueError, match="not in the graph: ghost, tensorflow"):
        size_table(ST, ["idna", "Tensorflow", "ghost"])


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (800, "800 bytes"),
        (999, "999 bytes"),
        (1000, "1.0 KB"),
        (12_500, "12.5 KB"),
        (999_949, "999.9 KB"),
        (999_960, "1.0 MB"),
        (350_000_000, "350.0 MB"),
        (1_200_000_000, "1.2 GB"),
        (999_960_000_000, "1.0 TB"),
    ],
)
def test_sizes_are_in_1000_based_units(n: int, text: str) -> None:
    assert _size(n) == text
