"""What each site ships: what a resource's worker image has is left out where only such resources need it."""

from __future__ import annotations

import dataclasses

from flashc.deps.choose import Shadowed, choose
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


@dataclasses.dataclass(frozen=True)
class Have:
    version: str


@dataclasses.dataclass(frozen=True)
class Image:
    description: str
    has: tuple[tuple[str, str], ...]

    def provides(self, name: str) -> Have | None:
        return next((Have(v) for n, v in self.has if n == name), None)


GPU = Image("the GPU image", (("torch", "1.0"), ("triton", "1.0")))
CPU = Image("the CPU image", (("fastapi", "1.0"),))
GPU_IMAGE = "provided by the GPU image"


def req(text: str, resource: str | None) -> Requirement:
    return _requirement(text, Origin("app.py", 1, f"dependencies of {resource}:f"), resource)


def reqs(*items: Requirement) -> RequirementSet:
    return RequirementSet(items, IndexOptions(), (), ())


def test_gpu_only_torch_and_what_only_it_needs_are_left_out() -> None:
    site = Site("_flashc/site", ("gpu",), GRAPH)
    (plan,) = choose(Resolution((site,)), reqs(req("app", "gpu")), {"gpu": GPU})
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
    (plan,) = choose(Resolution((site,)), both, {"gpu": GPU, "cpu": CPU})
    assert plan.left_out == ()
    # The project's own requirements are every resource's: a CPU resource needs torch through them.
    files = reqs(req("app", "gpu"), _requirement("torchmetrics", Origin("requirements.txt", 1, "requirements.txt")))
    (plan,) = choose(Resolution((Site("_flashc/site", ("cpu", "gpu"), graph),)), files, {"gpu": GPU, "cpu": CPU})
    assert plan.left_out == ()
    # With GPU resources only, the image has torch for all of them.
    (plan,) = choose(Resolution((Site("_flashc/site", ("gpu",), graph),)), files, {"gpu": GPU})
    assert dict(plan.left_out)["torch"] == GPU_IMAGE


def test_keep_gpu_packages_and_exclude() -> None:
    site = Site("_flashc/site", ("gpu",), GRAPH)
    (kept,) = choose(Resolution((site,)), reqs(req("app", "gpu")), {"gpu": GPU}, keep_gpu_packages=True)
    assert kept.left_out == ()
    (plan,) = choose(Resolution((site,)), reqs(req("app", "gpu")), {"gpu": GPU}, exclude=["numpy"])
    assert dict(plan.left_out)["numpy"] == "--exclude"
    assert [p.name for p in plan.ships] == ["app"]


def test_split_sites_decide_each_for_its_own_resource() -> None:
    gpu = Site("_flashc/sites/gpu", ("gpu",), GRAPH)
    cpu = Site("_flashc/sites/cpu", ("cpu",), GRAPH)
    plans = choose(
        Resolution((cpu, gpu), "conflict"), reqs(req("app", "gpu"), req("app", "cpu")), {"gpu": GPU, "cpu": CPU}
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
        Resolution((cpu, gpu), "conflict"), reqs(req("app", "gpu"), req("app", "cpu")), {"gpu": GPU, "cpu": CPU}
    )
    deps = Dependencies(Target("3.11"), reqs(), IndexOptions(), plans, "conflict", False, ())
    assert deps.left_out == () and deps.saved == 0  # the CPU site ships torch and what it needs
    (gpu_only,) = choose(Resolution((gpu,)), reqs(req("app", "gpu")), {"gpu": GPU})
    alone = Dependencies(Target("3.11"), reqs(), IndexOptions(), (gpu_only,), None, False, ())
    assert [p.name for p in alone.left_out] == ["nvidia-cublas", "torch", "triton"] and alone.saved == 2800


def test_what_the_cpu_image_has_in_that_version_is_left_out_and_another_version_ships() -> None:
    graph = (pin("app", "fastapi"), pin("fastapi", "starlette"), pin("starlette"))
    site = Site("_flashc/site", ("cpu",), graph)
    (plan,) = choose(Resolution((site,)), reqs(req("app", "cpu")), {"cpu": CPU})
    assert [p.name for p in plan.ships] == ["app"]
    assert dict(plan.left_out) == {"fastapi": "provided by the CPU image", "starlette": "needed only by fastapi"}
    newer = Image("the CPU image", (("fastapi", "0.9"),))
    (plan,) = choose(Resolution((site,)), reqs(req("app", "cpu")), {"cpu": newer})
    assert [p.name for p in plan.ships] == ["app", "fastapi", "starlette"]
    assert plan.shadowed == (Shadowed("fastapi", "1.0", "0.9", "the CPU image", ("cpu",)),)


def test_a_site_shared_by_two_images_leaves_out_only_what_every_image_needing_it_has() -> None:
    graph = (pin("app", "fastapi"), pin("fastapi"), pin("tool", "torch"), *GRAPH[2:])
    site = Site("_flashc/site", ("cpu", "gpu"), graph)
    both = reqs(req("app", "cpu"), req("app", "gpu"), req("tool", "gpu"))
    (plan,) = choose(Resolution((site,)), both, {"gpu": GPU, "cpu": CPU})
    # fastapi: the GPU resource needs it too and its image has none; torch: only the GPU resource needs it.
    assert "fastapi" in [p.name for p in plan.ships]
    assert dict(plan.left_out)["torch"] == GPU_IMAGE
