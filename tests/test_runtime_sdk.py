"""The SDK surface user code imports from `flashc_runtime`: resource configs, enums and `@remote`."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from flashc_runtime import (
    ConfigError,
    CpuInstanceType,
    CpuLiveLoadBalancer,
    CpuLiveServerless,
    CpuServerlessEndpoint,
    GpuGroup,
    LiveLoadBalancer,
    LiveServerless,
    NetworkVolume,
    PodTemplate,
    RemoteCallError,
    ServerlessEndpoint,
    ServerlessScalerType,
    remote,
)

ALL_CONFIGS = [
    LiveServerless,
    CpuLiveServerless,
    ServerlessEndpoint,
    CpuServerlessEndpoint,
    LiveLoadBalancer,
    CpuLiveLoadBalancer,
]
GPU_CONFIGS = [LiveServerless, ServerlessEndpoint, LiveLoadBalancer]
CPU_CONFIGS = [CpuLiveServerless, CpuServerlessEndpoint, CpuLiveLoadBalancer]
LOAD_BALANCED = [LiveLoadBalancer, CpuLiveLoadBalancer]
QUEUE = [LiveServerless, CpuLiveServerless, ServerlessEndpoint, CpuServerlessEndpoint]


def error_text(call: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


def ids(classes: list[type]) -> list[str]:
    return [c.__name__ for c in classes]


# Defaults from the SDK's configuration table


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_common_defaults(cls: type) -> None:
    config = cls(name="x")
    assert config.name == "x"
    assert config.workersMin == 0
    assert config.workersMax == 3
    assert config.idleTimeout == 5
    assert config.env is None
    assert config.networkVolumeId is None
    assert config.executionTimeoutMs == 0
    assert config.scalerValue == 4
    assert config.locations is None


@pytest.mark.parametrize("cls", GPU_CONFIGS, ids=ids(GPU_CONFIGS))
def test_gpu_defaults(cls: type) -> None:
    config = cls(name="x")
    assert config.gpus == [GpuGroup.ANY]
    assert config.gpuCount == 1
    assert config.is_cpu is False


@pytest.mark.parametrize("cls", CPU_CONFIGS, ids=ids(CPU_CONFIGS))
def test_cpu_defaults(cls: type) -> None:
    config = cls(name="x")
    assert config.instanceIds == [CpuInstanceType.CPU3G_2_8]
    assert config.is_cpu is True
    assert not hasattr(config, "gpus")


@pytest.mark.parametrize("cls", QUEUE, ids=ids(QUEUE))
def test_queue_configs_scale_on_queue_delay(cls: type) -> None:
    assert cls(name="x").scalerType is ServerlessScalerType.QUEUE_DELAY


@pytest.mark.parametrize("cls", LOAD_BALANCED, ids=ids(LOAD_BALANCED))
def test_load_balancers_scale_on_request_count(cls: type) -> None:
    assert cls(name="x").scalerType is ServerlessScalerType.REQUEST_COUNT


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_name_is_required(cls: type) -> None:
    assert error_text(lambda: cls()) == (
        f"invalid arguments to {cls.__name__}:\n  {cls.__name__} requires 'name' (add name=...)"
    )


def test_default_lists_are_not_shared_between_configs() -> None:
    first, second = LiveServerless(name="a"), LiveServerless(name="b")
    first.gpus.append(GpuGroup.AMPERE_24)
    assert second.gpus == [GpuGroup.ANY]
    assert LiveServerless(name="c").gpus == [GpuGroup.ANY]


@pytest.mark.parametrize("cls", [ServerlessEndpoint, CpuServerlessEndpoint], ids=["gpu", "cpu"])
def test_image_name_is_accepted_by_serverless_endpoints(cls: type) -> None:
    assert cls(name="x").imageName is None
    assert cls(name="x", imageName="me/worker:1").imageName == "me/worker:1"


@pytest.mark.parametrize("cls", [LiveServerless, CpuLiveServerless, LiveLoadBalancer, CpuLiveLoadBalancer])
def test_image_name_on_a_live_config_is_an_error_naming_it(cls: type) -> None:
    text = error_text(lambda: cls(name="x", imageName="me/worker:1"))
    assert f"{cls.__name__} has no parameter 'imageName'" in text


def test_instance_ids_make_live_serverless_a_cpu_endpoint() -> None:
    config = LiveServerless(name="x", instanceIds=[CpuInstanceType.CPU5C_2_4])
    assert config.is_cpu is True
    assert config.instanceIds == [CpuInstanceType.CPU5C_2_4]
    data = config.to_dict()
    assert data["instanceIds"] == ["cpu5c-2-4"]
    assert "gpus" not in data and "gpuCount" not in data


def test_enum_values_are_accepted_in_place_of_members() -> None:
    config = LiveServerless(name="x", gpus=["AMPERE_24"], scalerType="REQUEST_COUNT")
    assert config.gpus == [GpuGroup.AMPERE_24]
    assert config.scalerType is ServerlessScalerType.REQUEST_COUNT


def test_nested_configs() -> None:
    config = LiveServerless(
        name="x",
        template=PodTemplate(containerDiskInGb=40),
        networkVolume=NetworkVolume(name="models"),
    )
    assert config.template is not None and config.template.containerDiskInGb == 40
    assert config.networkVolume is not None and config.networkVolume.size == 100  # the SDK's default
    assert config.to_dict()["networkVolume"] == {"name": "models", "id": None, "size": 100, "dataCenterId": "EU-RO-1"}


# Wrong arguments


def test_misspelt_parameter_names_it_and_suggests_the_right_one() -> None:
    assert error_text(lambda: LiveServerless(name="x", workerMax=3)) == (
        "invalid arguments to LiveServerless:\n"
        "  LiveServerless has no parameter 'workerMax' (did you mean 'workersMax'?)"
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"workersMax": "3"}, "parameter 'workersMax' of LiveServerless expects int, got str '3'"),
        (
            {"gpus": GpuGroup.ANY},
            "parameter 'gpus' of LiveServerless expects list of GpuGroup or GpuType, got GpuGroup.ANY "
            "(wrap it in a list: gpus=[GpuGroup.ANY])",
        ),
        ({"gpuCount": True}, "parameter 'gpuCount' of LiveServerless expects int, got bool True"),
        ({"workersMin": False}, "parameter 'workersMin' of LiveServerless expects int, got bool False"),
        ({"name": 7}, "parameter 'name' of LiveServerless expects str, got int 7"),
        (
            {"env": {"A": 1}},
            "parameter 'env' of LiveServerless expects dict of str to str or None, got dict {'A': 1}",
        ),
    ],
    ids=["str-for-int", "gpus-not-a-list", "bool-for-int", "bool-for-int-false", "int-for-str", "env-value-int"],
)
def test_wrong_type_names_the_parameter_and_the_expected_type(kwargs: dict[str, Any], expected: str) -> None:
    text = error_text(lambda: LiveServerless(**{"name": "x", **kwargs}))
    assert text == f"invalid arguments to LiveServerless:\n  {expected}"


def test_every_problem_is_reported_at_once() -> None:
    text = error_text(lambda: LiveServerless(name="x", workerMax=3, gpuCount="2"))
    assert "'workerMax'" in text and "'gpuCount'" in text


def test_positional_arguments_are_refused() -> None:
    assert error_text(lambda: LiveServerless("x")) == (
        "invalid arguments to LiveServerless:\n  LiveServerless takes keyword arguments only (write name=value)"
    )


def test_config_error_is_a_type_error_with_its_problems() -> None:
    with pytest.raises(TypeError) as info:
        LiveServerless(name="x", workerMax=3)
    assert isinstance(info.value, ConfigError)
    assert [p.param for p in info.value.problems] == ["workerMax"]


# Read-only configs and their identity


@pytest.mark.parametrize(("field", "value"), [("workersMax", 5), ("name", "y"), ("brandNew", 1)])
def test_configs_are_read_only(field: str, value: Any) -> None:
    config = LiveServerless(name="x")
    with pytest.raises(AttributeError):
        setattr(config, field, value)
    with pytest.raises(AttributeError):
        delattr(config, "name")
    assert config.workersMax == 3 and config.name == "x"


def test_config_hash_ignores_env_but_not_workers_max() -> None:
    base = LiveServerless(name="x")
    assert LiveServerless(name="x", env={"TOKEN": "a"}).config_hash() == base.config_hash()
    assert LiveServerless(name="x", workersMax=4).config_hash() != base.config_hash()
    assert LiveServerless(name="y").config_hash() != base.config_hash()
    assert ServerlessEndpoint(name="x").config_hash() != base.config_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", base.config_hash())


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_to_dict_is_json_with_enum_values(cls: type) -> None:
    config = cls(name="x", env={"A": "b"}, template=PodTemplate(containerDiskInGb=20))
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["name"] == "x" and data["env"] == {"A": "b"}
    assert data["template"]["containerDiskInGb"] == 20
    assert data["scalerType"] == cls(name="x").scalerType.value
    assert set(data) == {f.name for f in dataclasses.fields(config)}
    if "gpus" in data:
        assert data["gpus"] == ["any"]
    if "instanceIds" in data and cls in CPU_CONFIGS:
        assert data["instanceIds"] == ["cpu3g-2-8"]


# @remote


def plain(value: int) -> int:
    """Doubles."""
    return value * 2


def test_remote_takes_the_config_positionally_or_by_name() -> None:
    config = LiveServerless(name="gpu-a")
    positional = remote(config)(plain)
    named = remote(resource_config=config, dependencies=["numpy==1.26.4"])(plain)
    assert positional.__remote_config__["resource_config"] is config
    assert named.__remote_config__["resource_config"] is config
    assert named.__remote_config__["dependencies"] == ["numpy==1.26.4"]


def test_remote_keeps_the_original_function_and_its_options() -> None:
    config = LiveLoadBalancer(name="api")
    decorated = remote(config, method="POST", path="/double")(plain)
    assert decorated.__wrapped__ is plain
    assert decorated.__name__ == "plain" and decorated.__doc__ == "Doubles."
    assert decorated.__remote_config__ == {
        "resource_config": config,
        "dependencies": None,
        "system_dependencies": None,
        "accelerate_downloads": True,
        "local": False,
        "method": "POST",
        "path": "/double",
    }
    assert decorated.__wrapped__(21) == 42


def test_calling_a_remote_function_without_a_deployment_says_to_deploy() -> None:
    import asyncio

    decorated = remote(LiveServerless(name="gpu-a"))(plain)
    with pytest.raises(RemoteCallError) as info:
        asyncio.run(decorated(1))
    assert str(info.value).startswith("plain is not deployed: no .flash/deployment.json above ")
    assert str(info.value).endswith("run `flashc deploy` in the project first")


def test_a_remote_class_instantiated_locally_is_a_handle_whose_methods_are_remote_calls() -> None:
    import asyncio

    @remote(CpuLiveServerless(name="cpu-a"))
    class Worker:
        def __init__(self, size: int, *, name: str = "w") -> None:
            raise AssertionError("never made here")

        def run(self, x: int) -> int:
            return x

        @staticmethod
        def version(full: bool = False) -> str:
            return "1"

    handle = Worker(3, name="big")
    assert repr(handle) == "<remote Worker(3, name='big') on 'cpu-a'>"
    # Arguments are checked here, as a local call checks them, before anything is sent.
    with pytest.raises(TypeError, match=r"^Worker\(\): missing a required argument: 'size'$"):
        Worker()
    with pytest.raises(TypeError, match=r"^Worker.run\(\): too many positional arguments$"):
        handle.run(1, 2)
    with pytest.raises(TypeError, match=r"^Worker.version\(\): got an unexpected keyword argument 'x'$"):
        handle.version(x=1)
    with pytest.raises(
        AttributeError, match=r"^a remote Worker has no method 'size' to call \(its public methods: run, version\)"
    ):
        handle.size  # noqa: B018
    with pytest.raises(RemoteCallError, match=r"Worker is not deployed: no .flash/deployment.json above "):
        asyncio.run(handle.run(1))


def test_remote_misspelt_option_suggests_the_right_one() -> None:
    assert error_text(lambda: remote(LiveServerless(name="x"), dependecies=["numpy"])) == (
        "invalid arguments to @remote:\n  @remote has no parameter 'dependecies' (did you mean 'dependencies'?)"
    )


def test_remote_without_config_is_an_error() -> None:
    assert error_text(lambda: remote()) == (
        "invalid arguments to @remote:\n  @remote requires 'resource_config' (add resource_config=...)"
    )
    assert "expects ServerlessResource, got str 'x'" in error_text(lambda: remote("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", QUEUE, ids=ids(QUEUE))
@pytest.mark.parametrize("option", ["method", "path"])
def test_method_and_path_are_only_for_load_balanced_configs(cls: type, option: str) -> None:
    value = "POST" if option == "method" else "/run"
    text = error_text(lambda: remote(cls(name="q"), **{option: value}))
    assert text == (
        "invalid arguments to @remote:\n"
        f"  HTTP routes (method=, path=) are only for load-balanced resources, but 'q' is a {cls.__name__} "
        "(use LiveLoadBalancer or CpuLiveLoadBalancer for HTTP routes, or drop method= and path=)"
    )


@pytest.mark.parametrize("cls", LOAD_BALANCED, ids=ids(LOAD_BALANCED))
def test_load_balanced_function_needs_method_and_path(cls: type) -> None:
    assert "need method and path" in error_text(lambda: remote(cls(name="api")))
    assert "need path" in error_text(lambda: remote(cls(name="api"), method="GET"))
    assert "need method" in error_text(lambda: remote(cls(name="api"), path="/a"))


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_every_http_method_is_accepted(method: str) -> None:
    decorated = remote(CpuLiveLoadBalancer(name="api"), method=method, path="/items")(plain)
    assert decorated.__remote_config__["method"] == method


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("get", "method 'get' is not one of GET, POST, PUT, DELETE, PATCH (write method=\"GET\")"),
        ("FETCH", "method 'FETCH' is not one of GET, POST, PUT, DELETE, PATCH"),
        ("HEAD", "method 'HEAD' is not one of GET, POST, PUT, DELETE, PATCH"),
    ],
)
def test_method_outside_the_allowed_set_is_an_error(method: str, expected: str) -> None:
    text = error_text(lambda: remote(LiveLoadBalancer(name="api"), method=method, path="/a"))
    assert text == f"invalid arguments to @remote:\n  {expected}"


def test_path_must_start_with_a_slash() -> None:
    text = error_text(lambda: remote(LiveLoadBalancer(name="api"), method="GET", path="items"))
    assert text == "invalid arguments to @remote:\n  path 'items' must start with '/' (write path=\"/items\")"


@pytest.mark.parametrize("path", ["/ping", "/execute", "/ping/", "/execute/"])
def test_runtime_paths_are_reserved(path: str) -> None:
    text = error_text(lambda: remote(LiveLoadBalancer(name="api"), method="GET", path=path))
    assert f"path '{path}' is reserved by the runtime (reserved paths: /ping, /execute; choose another path)" in text


def test_paths_below_reserved_ones_are_allowed() -> None:
    decorated = remote(LiveLoadBalancer(name="api"), method="GET", path="/ping/deep")(plain)
    assert decorated.__remote_config__["path"] == "/ping/deep"


# Standalone and light


def test_runtime_never_imports_flashc() -> None:
    code = "import flashc_runtime, sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'flashc'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _import_profile() -> dict[str, int]:
    """Cumulative import time in microseconds per module, from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import flashc_runtime"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    profile = {}
    for line in result.stderr.splitlines():
        match = re.fullmatch(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            profile[match.group(3)] = int(match.group(2))
    return profile


# What would make a worker's cold start slow: none of it may be imported by `import flashc_runtime`.
# (The time itself is measured by tests/bench/bench_runtime.py; a wall-clock bound here would fail
# on a busy machine, so this test asserts what decides the time: the modules imported.)
_HEAVY = ("asyncio", "pydantic", "pydantic_core", "flashc", "http", "email", "ssl", "concurrent", "pickle", "socket")


def test_runtime_imports_fast_and_without_pydantic() -> None:
    profiles = [_import_profile() for _ in range(3)]
    assert all("flashc_runtime" in p for p in profiles)
    best = min(p["flashc_runtime"] for p in profiles)
    assert best < 1_000_000, f"importing flashc_runtime took {best} µs"  # a gross regression only
    imported = set().union(*profiles)
    heavy = sorted(m for m in imported if m.split(".")[0] in _HEAVY)
    assert heavy == [], f"import flashc_runtime loads {heavy}"
    assert not {m for m in imported if m.split(".")[0] in ("pydantic", "pydantic_core", "flashc")}
