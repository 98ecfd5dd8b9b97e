from __future__ import annotations

import dataclasses
import keyword
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flashc.analyze import analyze_project
from flashc.group import BuildPlan, Group, group, handler_slugs
from flashc.models import Analysis

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True, scope="module")
def _fixtures_stay_clean() -> Iterator[None]:
    """Analysis runs without the scan cache, so it must not leave a .flash folder in the repo's fixtures."""
    before = set(FIXTURES.glob("**/.flash"))
    yield
    assert set(FIXTURES.glob("**/.flash")) == before


def analyze(name: str) -> Analysis:
    return analyze_project(FIXTURES / name, use_cache=False)


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def shape(plan: BuildPlan) -> dict[str, tuple[str, str, str, list[str]]]:
    return {g.name: (g.type, g.kind, g.compute, [f.id for f in g.functions]) for g in plan.groups}


def assert_handlers_well_formed(plan: BuildPlan) -> None:
    modules = [g.handler_module for g in plan.groups]
    assert len(set(modules)) == len(modules)
    for g in plan.groups:
        package, _, name = g.handler_module.partition(".")
        assert package == "flashc_handlers"
        assert name.isidentifier() and not keyword.iskeyword(name)
        assert g.handler_path == f"_flashc/{g.handler_module.replace('.', '/')}.py"


def test_demo_has_one_group_per_resource() -> None:
    plan = group(analyze("demo"))
    assert plan.project == "demo"
    assert shape(plan) == {
        "demo-api": ("CpuLiveLoadBalancer", "load_balanced", "cpu", ["api:greet", "api:health"]),
        "demo-cpu": ("LiveServerless", "queue", "cpu", ["workers.cpu:summarize"]),
        "demo-gpu": ("LiveServerless", "queue", "gpu", ["workers.gpu:normalize"]),
    }
    assert [(g.handler_module, g.handler_path) for g in plan.groups] == [
        ("flashc_handlers.handler_demo_api", "_flashc/flashc_handlers/handler_demo_api.py"),
        ("flashc_handlers.handler_demo_cpu", "_flashc/flashc_handlers/handler_demo_cpu.py"),
        ("flashc_handlers.handler_demo_gpu", "_flashc/flashc_handlers/handler_demo_gpu.py"),
    ]
    assert {g.name: g.dependencies for g in plan.groups} == {
        "demo-api": (),
        "demo-cpu": ("numpy==1.26.4",),
        "demo-gpu": (),
    }


def test_groups_carry_the_resource_config_and_hash() -> None:
    analysis = analyze("demo")
    plan = group(analysis)
    for resource, g in zip(analysis.resources, plan.groups, strict=True):
        assert g.name == resource.name
        assert g.config == resource.config
        assert g.config_hash == resource.config_hash


def test_routes_groups_are_load_balanced() -> None:
    plan = group(analyze("routes"))
    assert shape(plan) == {
        "admin": ("CpuLiveLoadBalancer", "load_balanced", "cpu", ["api:admin_health"]),
        "api-service": (
            "LiveLoadBalancer",
            "load_balanced",
            "gpu",
            ["api:delete_item", "api:health_check", "api:patch_item", "api:process_data", "api:put_item"],
        ),
    }
    assert_handlers_well_formed(plan)


def test_classes_group_holds_the_class() -> None:
    plan = group(analyze("classes"))
    (g,) = plan.groups
    assert (g.name, g.kind, g.compute) == ("model-server", "queue", "gpu")
    assert [(f.id, f.kind) for f in g.functions] == [("model:Model", "class")]
    assert g.dependencies == ("torch",)
    assert g.handler_module == "flashc_handlers.handler_model_server"


def test_same_name_functions_stay_apart() -> None:
    plan = group(analyze("same_name"))
    assert shape(plan) == {
        "res-a": ("LiveServerless", "queue", "gpu", ["a.process:process"]),
        "res-b": ("LiveServerless", "queue", "gpu", ["b.process:process"]),
    }
    assert_handlers_well_formed(plan)


def test_seed_style_dependencies_per_group() -> None:
    plan = group(analyze("seed_style"))
    deps = {g.name: (g.dependencies, g.system_dependencies) for g in plan.groups}
    assert deps == {
        "api-service": ((), ()),
        "custom-ml-env": ((), ("ffmpeg",)),
        "data-preprocessor": (("pandas", "numpy", "scikit-learn"), ()),
        "flash-quickstart": (("torch", "numpy"), ()),
        "ml-inference-gpu": (("torch", "transformers", "numpy"), ()),
    }
    assert {g.name: g.compute for g in plan.groups}["data-preprocessor"] == "cpu"
    assert_handlers_well_formed(plan)


@pytest.mark.parametrize("name", ["demo", "routes", "classes", "same_name", "seed_style"])
def test_groups_and_functions_are_sorted(name: str) -> None:
    plan = group(analyze(name))
    names = [g.name for g in plan.groups]
    assert names == sorted(names)
    for g in plan.groups:
        ids = [f.id for f in g.functions]
        assert ids == sorted(ids)
        assert all(f.resource == g.name for f in g.functions)
    assert_handlers_well_formed(plan)


def test_dependencies_are_merged_in_first_seen_order(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "deps",
        {
            "a.py": """\
                from tetra_rp import LiveServerless, remote

                shared = LiveServerless(name="shared")

                @remote(shared, dependencies=["torch", "numpy"], system_dependencies=["git", "ffmpeg"])
                def first(x):
                    return x
            """,
            "b.py": """\
                from a import shared
                from tetra_rp import remote

                @remote(shared, dependencies=["pillow", "torch", "numpy==1.26.4"], system_dependencies=["curl", "git"])
                def second(x):
                    return x
            """,
        },
    )
    (g,) = group(analyze_project(project, use_cache=False)).groups
    assert [f.id for f in g.functions] == ["a:first", "b:second"]
    assert g.dependencies == ("torch", "numpy", "pillow", "numpy==1.26.4")
    assert g.system_dependencies == ("curl", "ffmpeg", "git")


RESOURCE_NAMES = ["My Model", "my-model", "my.model", "my/model", "1st", "gpu worker"]


def test_handler_names_never_collide(tmp_path: Path) -> None:
    source = "from tetra_rp import LiveServerless, remote\n"
    for i, name in enumerate(RESOURCE_NAMES):
        source += f'\n\n@remote(LiveServerless(name="{name}"))\ndef f{i}(x):\n    return x\n'
    project = write_project(tmp_path / "slugs", {"app.py": source})
    analysis = analyze_project(project, use_cache=False)
    assert not analysis.has_errors, analysis.diagnostics

    plan = group(analysis)
    assert {g.name: g.handler_module.removeprefix("flashc_handlers.") for g in plan.groups} == {
        "1st": "handler_r_1st",
        "My Model": "handler_my_model",
        "gpu worker": "handler_gpu_worker",
        "my-model": "handler_my_model_2",
        "my.model": "handler_my_model_3",
        "my/model": "handler_my_model_4",
    }
    assert_handlers_well_formed(plan)

    # The suffixes follow the sorted names, not the order the analysis lists them in.
    shuffled = dataclasses.replace(analysis, resources=tuple(reversed(analysis.resources)))
    assert group(shuffled) == plan


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["GPU Worker"], {"GPU Worker": "gpu_worker"}),
        (["--a--b--"], {"--a--b--": "a_b"}),
        (["", "___"], {"": "r_", "___": "r__2"}),
        (["9", "Ünï"], {"9": "r_9", "Ünï": "n"}),
        (["a", "a!", "a_2"], {"a": "a", "a!": "a_2", "a_2": "a_2_2"}),
        (["class"], {"class": "class"}),
    ],
)
def test_handler_slugs(names: list[str], expected: dict[str, str]) -> None:
    assert handler_slugs(names) == expected
    assert handler_slugs(reversed(names)) == expected


def test_group_refuses_an_analysis_with_errors() -> None:
    analysis = analyze("err_routes")
    assert analysis.has_errors
    with pytest.raises(ValueError, match="without errors"):
        group(analysis)


def test_group_is_frozen() -> None:
    plan = group(analyze("classes"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.groups[0].name = "other"  # type: ignore[misc]
    assert isinstance(plan.groups[0], Group)
