"""What each site ships: the GPU image's packages left out where only GPU resources need them."""

from __future__ import annotations

from flashc.deps.choose import GPU_IMAGE, choose
from flashc.deps.models import Pin, Resolution, Site, Wheel
from flashc.deps.requirements import IndexOptions, Origin, Requirement, RequirementSet, _requirement


def pin(name: str, *requires: str, size: int = 100) -> Pin:
    return Pin(name, "1.0", Wheel(f"{name}-1.0-py3-none-any.whl", f"https://x/{name}.whl", size, "0" * 64), requires)


GRAPH = (
    pin("app", "numpy", "torch"),
    pin("numpy"),
    pin("torch", "triton", "nvidia-cublas", "numpy", size=2000),
    pin("triton", size=300),
    pin("nvidia-cublas", size=500),
)


def req(text: str, resource: str | None) -> Requirement:
    return _requirement(text, Origin("app.py", 1, f"dependencies of {resource}:f"), resource)


def reqs(*items: Requirement) -> RequirementSet:
    return RequirementSet(items, IndexOptions(), (), ())


def test_gpu_only_torch_and_what_only_it_needs_are_left_out() -> None:
    site = Site("_flashc/site", ("gpu",), GRAPH)
    (plan,) = choose(Resolution((site,)), reqs(req("app", "gpu")), {"gpu": "gpu"})
    assert [p.name for p in plan.ships] == ["app", "numpy"]
    assert dict(plan.left_out) == {
        "torch": GPU_IMAGE,
        "triton": GPU_IMAGE,
        "nvidia-cublas": "needed only by torch",
    }
    assert sum(p.wheel.size or 0 for p, _ in plan.left_out_pins) == 2800


def test_a_cpu_resource_that_needs_torch_keeps_it() -> None:
    graph = (*GRAPH, pin("torchmetrics", "torch"))
    site = Site("_flashc/site", ("cpu", "gpu"), graph)
    both = reqs(req("app", "gpu"), req("torchmetrics", "cpu"))
    (plan,) = choose(Resolution((site,)), both, {"gpu": "gpu", "cpu": "cpu"})
    assert plan.left_out == ()
    # The project's own files count as CPU roots too.
    files = reqs(req("app", "gpu"), _requirement("torchmetrics", Origin("requirements.txt", 1, "requirements.txt")))
    (plan,) = choose(Resolution((Site("_flashc/site", ("gpu",), graph),)), files, {"gpu": "gpu"})
    assert plan.left_out == ()


def test_keep_gpu_packages_and_exclude() -> None:
    site = Site("_flashc/site", ("gpu",), GRAPH)
    (kept,) = choose(Resolution((site,)), reqs(req("app", "gpu")), {"gpu": "gpu"}, keep_gpu_packages=True)
    assert kept.left_out == ()
    (plan,) = choose(Resolution((site,)), reqs(req("app", "gpu")), {"gpu": "gpu"}, exclude=["numpy"])
    assert dict(plan.left_out)["numpy"] == "--exclude"
    assert [p.name for p in plan.ships] == ["app"]


def test_split_sites_decide_each_for_its_own_resource() -> None:
    gpu = Site("_flashc/sites/gpu", ("gpu",), GRAPH)
    cpu = Site("_flashc/sites/cpu", ("cpu",), GRAPH)
    plans = choose(
        Resolution((cpu, gpu), "conflict"), reqs(req("app", "gpu"), req("app", "cpu")), {"gpu": "gpu", "cpu": "cpu"}
    )
    assert [(p.site.path, dict(p.left_out).get("torch")) for p in plans] == [
        ("_flashc/sites/cpu", None),
        ("_flashc/sites/gpu", GPU_IMAGE),
    ]


def test_what_another_site_ships_is_not_counted_as_left_out() -> None:
    from flashc.deps.plan import Dependencies
    from flashc.deps.target import Target

    gpu = Site("_flashc/sites/gpu", ("gpu",), GRAPH)
    cpu = Site("_flashc/sites/cpu", ("cpu",), GRAPH)
    plans = choose(
        Resolution((cpu, gpu), "conflict"), reqs(req("app", "gpu"), req("app", "cpu")), {"gpu": "gpu", "cpu": "cpu"}
    )
    deps = Dependencies(Target("3.11"), reqs(), IndexOptions(), plans, "conflict", False, ())
    assert deps.left_out == () and deps.saved == 0  # the CPU site ships torch and what it needs
    (gpu_only,) = choose(Resolution((gpu,)), reqs(req("app", "gpu")), {"gpu": "gpu"})
    alone = Dependencies(Target("3.11"), reqs(), IndexOptions(), (gpu_only,), None, False, ())
    assert [p.name for p in alone.left_out] == ["nvidia-cublas", "torch", "triton"] and alone.saved == 2800
