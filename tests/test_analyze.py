from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import TypeAdapter

from flashc.analyze import analyze_project
from flashc.cli import main
from flashc.diagnostics import Diagnostic, render_all
from flashc.models import ANALYSIS_SCHEMA_VERSION, Analysis, Route

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True, scope="module")
def _fixtures_stay_clean() -> Iterator[None]:
    """These tests run without the scan cache, so they must not leave a .flash folder in the repo's fixtures."""
    before = set(FIXTURES.glob("**/.flash"))
    yield
    assert set(FIXTURES.glob("**/.flash")) == before


def analyze(name: str) -> Analysis:
    return analyze_project(FIXTURES / name, use_cache=False)


def line_reader(root: Path) -> Callable[[str, int], str | None]:
    def read_line(path: str, lineno: int) -> str | None:
        try:
            lines = (root / path).read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else None

    return read_line


def rendered(name: str, diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> str:
    """The diagnostics as `flashc analyze` prints them, with a trailing newline to match the pinned text."""
    return render_all(diagnostics, line_reader(FIXTURES / name)) + "\n"


def pinned(text: str) -> str:
    return textwrap.dedent(text)


def ids(analysis: Analysis) -> list[str]:
    return [f.id for f in analysis.functions]


def routes(analysis: Analysis) -> dict[str, tuple[str, str] | None]:
    return {f.id: (f.route.method, f.route.path) if f.route else None for f in analysis.functions}


def resources(analysis: Analysis) -> dict[str, tuple[str, str, str, tuple[str, ...]]]:
    return {r.name: (r.type, r.kind, r.compute, r.functions) for r in analysis.resources}


# Errors and warnings: every err_* and warn_* fixture has a test named after it, with its output pinned.


def test_every_error_and_warning_fixture_is_pinned() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.name.startswith(("err_", "warn_"))}
    tested = {name.removeprefix("test_") for name in globals() if name.startswith(("test_err_", "test_warn_"))}
    assert folders == tested


def test_err_class() -> None:
    analysis = analyze("err_class")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_class", analysis.diagnostics) == pinned(
        """\
        classes.py:7:7: error: class 'Empty' has no public methods to serve
         7 | class Empty:
           |       ^~~~~
          = hint: add a method whose name does not start with '_'
        classes.py:13:7: error: 'NeedsArgs.__init__' requires arguments (model_path), but an endpoint creates its instance without arguments
         13 | class NeedsArgs:
            |       ^~~~~~~~~
          = hint: give these parameters default values, or read them from the environment inside __init__
        """  # noqa: E501
    )


def test_err_config_params() -> None:
    analysis = analyze("err_config_params")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_config_params", analysis.diagnostics) == pinned(
        """\
        configs.py:3:36: error: LiveServerless has no parameter 'workerMax'
         3 | typo = LiveServerless(name="typo", workerMax=3)
           |                                    ^~~~~~~~~~~
        configs.py:13:9: note: 'typo' is used here
         13 | @remote(typo)
            |         ^~~~
          = hint: did you mean 'workersMax'?
        configs.py:4:48: error: parameter 'workersMax' of LiveServerless expects int, got str '3'
         4 | wrong_type = LiveServerless(name="wrong-type", workersMax="3", gpus=GpuGroup.ANY)
           |                                                ^~~~~~~~~~~~~~
        configs.py:18:9: note: 'wrong_type' is used here
         18 | @remote(wrong_type)
            |         ^~~~~~~~~~
        configs.py:4:64: error: parameter 'gpus' of LiveServerless expects list of GpuGroup or GpuType, got GpuGroup.ANY
         4 | wrong_type = LiveServerless(name="wrong-type", workersMax="3", gpus=GpuGroup.ANY)
           |                                                                ^~~~~~~~~~~~~~~~~
        configs.py:18:9: note: 'wrong_type' is used here
         18 | @remote(wrong_type)
            |         ^~~~~~~~~~
          = hint: wrap it in a list: gpus=[GpuGroup.ANY]
        configs.py:5:11: error: LiveServerless requires 'name'
         5 | unnamed = LiveServerless(workersMax=2)
           |           ^~~~~~~~~~~~~~~~~~~~~~~~~~~~
        configs.py:23:9: note: 'unnamed' is used here
         23 | @remote(unnamed)
            |         ^~~~~~~
          = hint: add name=...
        configs.py:6:54: error: GpuGroup has no member 'AMPERE_81'
         6 | bad_member = LiveServerless(name="bad-member", gpus=[GpuGroup.AMPERE_81])
           |                                                      ^~~~~~~~~~~~~~~~~~
        configs.py:28:9: note: 'bad_member' is used here
         28 | @remote(bad_member)
            |         ^~~~~~~~~~
          = hint: did you mean 'GpuGroup.AMPERE_80'?
        configs.py:7:29: error: LiveServerless takes keyword arguments only
         7 | positional = LiveServerless("positional")
           |                             ^~~~~~~~~~~~
        configs.py:33:9: note: 'positional' is used here
         33 | @remote(positional)
            |         ^~~~~~~~~~
          = hint: write name=value
        configs.py:8:73: error: PodTemplate has no parameter 'disk'
         8 | bad_template = LiveServerless(name="bad-template", template=PodTemplate(disk=10))
           |                                                                         ^~~~~~~
        configs.py:38:9: note: 'bad_template' is used here
         38 | @remote(bad_template)
            |         ^~~~~~~~~~~~
          = hint: valid parameters: containerDiskInGb, dockerArgs, startScript, advancedStart, containerRegistryAuthId, env
        configs.py:9:54: error: workersMax (2) is less than workersMin (4)
         9 | bounds = LiveServerless(name="bounds", workersMin=4, workersMax=2)
           |                                                      ^~~~~~~~~~~~
        configs.py:43:9: note: 'bounds' is used here
         43 | @remote(bounds)
            |         ^~~~~~
        configs.py:10:57: error: both gpus and instanceIds are given
         10 | both = LiveServerless(name="both", gpus=[GpuGroup.ANY], instanceIds=[CpuInstanceType.CPU3G_1_4])
            |                                                         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
        configs.py:48:9: note: 'both' is used here
         48 | @remote(both)
            |         ^~~~
          = hint: instanceIds makes this a CPU endpoint: drop gpus, or drop instanceIds
        """  # noqa: E501
    )


def test_err_duplicate_function() -> None:
    analysis = analyze("err_duplicate_function")
    assert analysis.has_errors
    assert rendered("err_duplicate_function", analysis.diagnostics) == pinned(
        """\
        dup.py:12:5: error: 'handler' is defined twice in module 'dup' with @remote
         12 | def handler():
            |     ^~~~~~~
        dup.py:7:5: note: first defined here
         7 | def handler():
           |     ^~~~~~~
          = hint: rename one of them
        """
    )


def test_err_module_path() -> None:
    analysis = analyze("err_module_path")
    assert analysis.has_errors
    assert ids(analysis) == ["ok:fine"]
    assert rendered("err_module_path", analysis.diagnostics) == pinned(
        """\
        jobs.v2.py:5:5: error: 'jobs.v2.py' cannot be imported by a module path, so 'dotted_file' cannot be deployed
         5 | def dotted_file():
           |     ^~~~~~~~~~~
          = hint: rename the file or folder so that its name holds no dot other than the .py suffix
        """
    )


def test_err_mothership_clash() -> None:
    analysis = analyze("err_mothership_clash")
    assert [r.name for r in analysis.resources] == ["api"]
    assert rendered("err_mothership_clash", analysis.diagnostics) == pinned(
        """\
        mothership.py:3:14: error: resource 'api' serves the project's app, but another resource has that name
         3 | mothership = CpuLiveLoadBalancer(name="api", workersMin=1, workersMax=3)
           |              ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
        worker.py:3:7: note: resource 'api' is declared here
         3 | api = CpuLiveServerless(name="api")
           |       ^
          = hint: give the mothership its own name, such as name="api-entrypoint"
        """
    )


def test_err_mothership_config() -> None:
    analysis = analyze("err_mothership_config")
    assert [r.name for r in analysis.resources] == ["worker"]
    assert rendered("err_mothership_config", analysis.diagnostics) == pinned(
        """\
        mothership.py:3:53: error: CpuLiveLoadBalancer has no parameter 'workerMax'
         3 | mothership = CpuLiveLoadBalancer(name="mothership", workerMax=3)
           |                                                     ^~~~~~~~~~~
          = hint: did you mean 'workersMax'?
        """
    )


def test_err_mothership_no_app() -> None:
    analysis = analyze("err_mothership_no_app")
    assert rendered("err_mothership_no_app", analysis.diagnostics) == pinned(
        """\
        mothership.py:3:14: error: 'mothership' serves the project's app, main.py's `app`, but main.py binds no 'app' at module level
         3 | mothership = LiveLoadBalancer(name="mothership", workersMax=2)
           |              ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: define it there (`app = FastAPI()`), or name the app with [tool.flashc] serve = "module:attribute"
        """  # noqa: E501
    )


def test_warn_mothership_off() -> None:
    # The seed's mothership.py says to comment the variable out to turn the mothership off: a warning, not an error.
    analysis = analyze("warn_mothership_off")
    assert not analysis.has_errors
    assert [(r.name, r.app) for r in analysis.resources] == [("worker", None)]
    assert rendered("warn_mothership_off", analysis.diagnostics) == pinned(
        """\
        mothership.py: warning: mothership.py binds no load-balanced config, so the project's app is not deployed
          = hint: to deploy it, write mothership = CpuLiveLoadBalancer(name="mothership"); to silence this, delete mothership.py
        """  # noqa: E501
    )


def test_err_no_remote() -> None:
    analysis = analyze("err_no_remote")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_no_remote", analysis.diagnostics) == pinned(
        """\
        .: error: no @remote or Endpoint functions found in project 'err_no_remote' (looked at 2 Python files after ignore rules)
          = hint: decorate a module-level function or class with @Endpoint(name=...) or @remote(resource_config=...), imported from runpod_flash, tetra_rp or flashc_runtime; check that .gitignore and .flashignore do not exclude your sources
        """  # noqa: E501
    )


def test_err_not_deployable() -> None:
    analysis = analyze("err_not_deployable")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_not_deployable", analysis.diagnostics) == pinned(
        """\
        places.py:8:9: error: @remote on 'factory.nested', a function defined inside another function, cannot be deployed
         8 |     def nested():
           |         ^~~~~~
          = hint: move 'nested' to the top level of the module
        places.py:16:9: error: @remote on method 'Service.method' cannot be deployed
         16 |     def method(self):
            |         ^~~~~~
          = hint: decorate the class instead: @remote(...) on a class serves all its public methods
        places.py:20:10: error: @remote cannot wrap a lambda
         20 | square = remote(cfg)(lambda x: x * x)
            |          ^~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: define a named function at the top level of the module and decorate it with @remote(...)
        places.py:27:11: error: remote(...) applied by hand cannot be deployed
         27 | wrapped = remote(cfg)(plain)
            |           ^~~~~~~~~~~~~~~~~~
          = hint: use it as a decorator: @remote(...) on the line above a module-level def or class
        places.py:32:9: error: @remote on 'under_main' under `if __name__ == "__main__":` cannot be deployed: that block never runs when the module is imported
         32 |     def under_main():
            |         ^~~~~~~~~~
          = hint: move the definition above the `if __name__ == "__main__":` block
        """  # noqa: E501
    )


def test_err_not_static() -> None:
    analysis = analyze("err_not_static")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_not_static", analysis.diagnostics) == pinned(
        """\
        settings.py:3:11: error: argument 'workersMax' of LiveServerless must be known at build time, but this is a call to multiprocessing.cpu_count() that only runs with the program
         3 | WORKERS = multiprocessing.cpu_count()
           |           ^~~~~~~~~~~~~~~~~~~~~~~~~~~
        workers.py:21:51: note: 'WORKERS' is used here
         21 | @remote(LiveServerless(name="workers", workersMax=WORKERS, locations=REGION))
            |                                                   ^~~~~~~
          = hint: write the value itself: a literal, or a module-level constant defined with one
        workers.py:8:10: error: argument 'locations' of LiveServerless must be known at build time, but this is an environment variable read when the program runs
         8 | REGION = os.environ["REGION"]
           |          ^~~~~~~~~~~~~~~~~~~~
        workers.py:21:70: note: 'REGION' is used here
         21 | @remote(LiveServerless(name="workers", workersMax=WORKERS, locations=REGION))
            |                                                                      ^~~~~~
          = hint: write the value itself; to give the worker environment variables, use env={...} on the resource config
        workers.py:11:29: error: argument 'name' of LiveServerless must be known at build time, but this is an environment variable read when the program runs
         11 | @remote(LiveServerless(name=os.getenv("ENDPOINT_NAME", "x")))
            |                             ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: write the value itself; to give the worker environment variables, use env={...} on the resource config
        workers.py:16:36: error: argument 'name' of LiveServerless must be known at build time, but this is a call to random.randint() that only runs with the program
         16 | @remote(LiveServerless(name=f"job-{random.randint(0, 9)}"))
            |                                    ^~~~~~~~~~~~~~~~~~~~
          = hint: write the value itself: a literal, or a module-level constant defined with one
        workers.py:26:48: error: argument 'workersMax' of LiveServerless must be known at build time, but this is a conditional expression
         26 | @remote(LiveServerless(name="cond", workersMax=3 if REGION else 1))
            |                                                ^~~~~~~~~~~~~~~~~~
          = hint: write a literal value, or a module-level constant defined with one
        workers.py:31:58: error: option 'dependencies' of @remote must be known at build time, but this is a call to random.choice() that only runs with the program
         31 | @remote(LiveServerless(name="third-party"), dependencies=random.choice([["a"], ["b"]]))
            |                                                          ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: write the value itself: a literal, or a module-level constant defined with one
        """  # noqa: E501
    )


def test_err_parse() -> None:
    analysis = analyze("err_parse")
    assert analysis.has_errors
    assert ids(analysis) == ["good:good"]
    assert rendered("err_parse", analysis.diagnostics) == pinned(
        """\
        broken.py:5:11: error: cannot parse this file: '(' was never closed
         5 | def broken(x:
           |           ^
          = hint: fix the syntax error, or exclude the file in .flashignore
        """
    )


def test_err_remote_usage() -> None:
    analysis = analyze("err_remote_usage")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_remote_usage", analysis.diagnostics) == pinned(
        """\
        usage.py:7:2: error: @remote on 'bare' needs a resource config
         7 | @remote
           |  ^~~~~~
          = hint: write @remote(resource_config=LiveServerless(name="...")) or pass a config defined above
        usage.py:12:2: error: @remote requires 'resource_config'
         12 | @remote()
            |  ^~~~~~~~
          = hint: add resource_config=...
        usage.py:17:14: error: @remote takes one positional argument, the resource config
         17 | @remote(cfg, ["numpy"])
            |              ^~~~~~~~~
          = hint: pass the other options by name, such as dependencies=[...]
        usage.py:22:14: error: @remote options must be written by name, not with **
         22 | @remote(cfg, **OPTIONS)
            |              ^~~~~~~~~
        usage.py:27:14: error: @remote has no parameter 'dependecies'
         27 | @remote(cfg, dependecies=["numpy"])
            |              ^~~~~~~~~~~~~~~~~~~~~
          = hint: did you mean 'dependencies'?
        usage.py:32:9: error: the resource config of @remote must be a config such as LiveServerless(...), got str
         32 | @remote(resource_config="usage")
            |         ^~~~~~~~~~~~~~~~~~~~~~~
          = hint: pass a resource config: LiveServerless, CpuLiveServerless, ServerlessEndpoint, CpuServerlessEndpoint, LiveLoadBalancer or CpuLiveLoadBalancer
        usage.py:38:2: error: 'twice' is decorated with @remote or an Endpoint more than once
         38 | @remote(cfg)
            |  ^~~~~~~~~~~
        """  # noqa: E501
    )


def test_err_requirements() -> None:
    analysis = analyze("err_requirements")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_requirements", analysis.diagnostics) == pinned(
        """\
        deps.py:6:45: error: invalid requirement 'pandas=2.0'
         6 | @remote(cfg, dependencies=["numpy==1.26.4", "pandas=2.0"])
           |                                             ^~~~~~~~~~~~
          = hint: did you mean 'pandas==2.0'?
        deps.py:11:14: error: parameter 'dependencies' of @remote expects list of str or None, got str 'numpy'
         11 | @remote(cfg, dependencies="numpy")
            |              ^~~~~~~~~~~~~~~~~~~~
          = hint: wrap it in a list: dependencies=['numpy']
        deps.py:16:45: error: invalid system package name 'lib gl'
         16 | @remote(cfg, system_dependencies=["ffmpeg", "lib gl"])
            |                                             ^~~~~~~~
          = hint: system_dependencies are apt package names such as 'ffmpeg' or 'libgl1'
        """
    )


def test_err_resource_conflict() -> None:
    analysis = analyze("err_resource_conflict")
    assert analysis.has_errors
    assert rendered("err_resource_conflict", analysis.diagnostics) == pinned(
        """\
        three.py:5:2: error: resource 'inference' is declared again with workersMax 7, but it was declared with 3
         5 | @Endpoint(name="inference", gpu=GpuGroup.AMPERE_80, workers=7)
           |  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
        one.py:3:10: note: workersMax is set to 3 here
         3 | config = LiveServerless(name="inference", gpus=[GpuGroup.AMPERE_80], workersMax=3)
           |          ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: make the two agree, set it in one place only, or give each its own name
        two.py:4:9: error: resource 'inference' is declared again with workersMax 5, but it was declared with 3
         4 | @remote(LiveServerless(name="inference", gpus=[GpuGroup.AMPERE_80], workersMax=5))
           |         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
        one.py:3:10: note: workersMax is set to 3 here
         3 | config = LiveServerless(name="inference", gpus=[GpuGroup.AMPERE_80], workersMax=3)
           |          ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: make the two agree, set it in one place only, or give each its own name
        two.py:9:9: error: resource 'inference' is declared again as a queue-based CPU resource (CpuLiveServerless), but it is a queue-based GPU resource (LiveServerless)
         9 | @remote(CpuLiveServerless(name="inference"))
           |         ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
        one.py:3:10: note: first declared here
         3 | config = LiveServerless(name="inference", gpus=[GpuGroup.AMPERE_80], workersMax=3)
           |          ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: give each its own name
        """  # noqa: E501
    )


def test_err_endpoint() -> None:
    analysis = analyze("err_endpoint")
    assert analysis.has_errors
    assert rendered("err_endpoint", analysis.diagnostics) == pinned(
        """\
        clients.py:6:2: error: Endpoint(id=...) is a client of an existing endpoint: it cannot decorate 'not_mine'
         6 | @existing
           |  ^~~~~~~~
          = hint: use Endpoint(name=...) for code of your own; call a client with `await ep.run(...)`
        clients.py:11:2: error: Endpoint(image=...) is a client of an existing endpoint: it cannot decorate 'from_image'
         11 | @Endpoint(name="sdxl", image="runpod/worker-sdxl:latest")
            |  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: use Endpoint(name=...) for code of your own; call a client with `await ep.run(...)`
        names.py:1:1: error: flashc does not support the SDK's 'FlashApp'
         1 | from runpod_flash import Endpointt, FlashApp
           | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: flashc deploys the project as one app: run `flashc deploy`, and drop FlashApp
        names.py:1:1: error: the SDK has no name 'Endpointt'
         1 | from runpod_flash import Endpointt, FlashApp
           | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: did you mean 'Endpoint'?
        names.py:2:1: error: flashc's SDK has no module 'runpod_flash.core.resources'
         2 | from runpod_flash.core.resources import GpuType
           | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: import from the package itself: from runpod_flash import GpuType
        routes.py:3:12: error: the Endpoint that serves route GET /status needs a name
         3 | nameless = Endpoint(cpu="cpu3c-1-2")
           |            ^~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: add name="...": a load-balanced endpoint is named by it
        routes.py:14:11: error: path 'no-slash' must start with '/'
         14 | @api.post("no-slash")
            |           ^~~~~~~~~~
          = hint: write @api.post("/no-slash")
        routes.py:19:10: error: path '/ping' is reserved by the runtime
         19 | @api.get("/ping")
            |          ^~~~~~~
          = hint: reserved paths: /ping, /execute; choose another path
        routes.py:24:2: error: @api.post(...) on 'with_data' takes one argument, the route's path
         24 | @api.post("/items", data={"x": 1})
            |  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: write @api.post("/path"); data= and other arguments are for client endpoints
        routes.py:34:11: error: route POST /items is already served by 'first' on resource 'api'
         34 | @api.post("/items")
            |           ^~~~~~~~
        routes.py:29:11: note: first used here
         29 | @api.post("/items")
            |           ^~~~~~~~
          = hint: give each function its own path
        routes.py:40:7: error: class 'Thing' cannot be a load-balanced route
         40 | class Thing:
            |       ^~~~~
          = hint: routes are functions: decorate a function with @api.post(...)
        routes.py:53:2: error: this Endpoint is used both as a decorator (@ep) and for routes (@ep.post(...))
         53 | @both_ways
            |  ^~~~~~~~~
        routes.py:48:2: note: used the other way here
         48 | @both_ways.post("/run")
            |  ^~~~~~~~~~~~~~~~~~~~~~
          = hint: an Endpoint is one or the other: make a second Endpoint with its own name
        shapes.py:4:45: error: gpu and cpu are mutually exclusive
         4 | @Endpoint(name="both", gpu=GpuGroup.ADA_24, cpu="cpu3c-1-2")
           |                                             ^~~~~~~~~~~~~~~
          = hint: give gpu= for a GPU endpoint, cpu= for CPU
        shapes.py:9:30: error: gpu must be a GpuGroup, a GpuType or a list of them, not the string 'ADA_24'
         9 | @Endpoint(name="string-gpu", gpu="ADA_24")
           |                              ^~~~~~~~~~~~
          = hint: write gpu=GpuGroup.ADA_24
        shapes.py:14:33: error: workers must be an int or (min, max), got 3 numbers
         14 | @Endpoint(name="three-workers", workers=(1, 2, 3))
            |                                 ^~~~~~~~~~~~~~~~~
        shapes.py:19:47: error: CPU endpoints are not available in US-KS-2
         19 | @Endpoint(name="cpu-abroad", cpu="cpu3c-1-2", datacenter=DataCenter.US_KS_2)
            |                                               ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~
          = hint: CPU data centers: EU-RO-1
        shapes.py:24:31: error: parameter 'cpu' of Endpoint expects CpuInstanceType or list of CpuInstanceType or None, got str 'cpu9x-1-1'
         24 | @Endpoint(name="unknown-cpu", cpu="cpu9x-1-1")
            |                               ^~~~~~~~~~~~~~~
          = hint: 'cpu9x-1-1' is not a CpuInstanceType; did you mean CpuInstanceType.CPU5C_1_2?
        """  # noqa: E501
    )


def test_endpoint_api() -> None:
    analysis = analyze("endpoint_api")
    assert analysis.diagnostics == ()
    assert resources(analysis) == {
        "api": ("CpuLiveLoadBalancer", "load_balanced", "cpu", ("api:get_item", "api:total")),
        "embedder": ("CpuLiveServerless", "queue", "cpu", ("embedder:Embedder",)),
        "gpu_worker": ("LiveServerless", "queue", "gpu", ("gpu_worker:embed",)),
        "legacy": ("CpuLiveServerless", "queue", "cpu", ("mixed:legacy_sum",)),
        "modern": ("CpuLiveServerless", "queue", "cpu", ("mixed:modern_sum",)),
        "named_after_me": ("CpuLiveServerless", "queue", "cpu", ("aliases:named_after_me",)),
        "with-volume": ("LiveServerless", "queue", "gpu", ("aliases:cached",)),
    }
    by_id = {f.id: f for f in analysis.functions}
    assert {f.id for f in analysis.functions if f.style == "remote"} == {"mixed:legacy_sum"}
    assert by_id["api:get_item"].route == Route("GET", "/items/{item_id}")
    assert by_id["api:total"].calls == ("mixed:modern_sum",)  # a route awaits a queue function
    assert by_id["gpu_worker:embed"].dependencies == ("torch",)
    configs = {r.name: dict(r.config) for r in analysis.resources}
    # The SDK's defaults: workers (0, 1), idle 60 s, CUDA 12.8 and every data center on GPU.
    assert configs["gpu_worker"]["gpus"] == ["NVIDIA GeForce RTX 4090"]
    assert (configs["gpu_worker"]["workersMin"], configs["gpu_worker"]["workersMax"]) == (0, 1)
    assert configs["gpu_worker"]["idleTimeout"] == 60 and configs["gpu_worker"]["minCudaVersion"] == "12.8"
    assert configs["gpu_worker"]["locations"].split(",")[:2] == ["US-CA-2", "US-IL-1"]
    assert configs["api"]["scalerType"] == "REQUEST_COUNT" and configs["api"]["instanceIds"] == ["cpu3c-1-2"]
    assert (configs["api"]["workersMin"], configs["api"]["workersMax"]) == (1, 3)
    assert (configs["embedder"]["workersMax"], configs["embedder"]["idleTimeout"]) == (2, 120)
    assert configs["with-volume"]["networkVolume"] == {
        "name": "models",
        "id": None,
        "size": 50,
        "dataCenterId": "EU-RO-1",
    }
    assert configs["with-volume"]["locations"] == "EU-RO-1"
    assert configs["legacy"]["idleTimeout"] == 5  # the old classes keep their own defaults


def test_err_routes() -> None:
    analysis = analyze("err_routes")
    assert analysis.has_errors

    assert rendered("err_routes", analysis.diagnostics) == pinned(
        """\
        api.py:7:14: error: method 'get' is not one of GET, POST, PUT, DELETE, PATCH
         7 | @remote(api, method="get", path="/lower")
           |              ^~~~~~~~~~~~
          = hint: write method="GET"
        api.py:12:14: error: method 'FETCH' is not one of GET, POST, PUT, DELETE, PATCH
         12 | @remote(api, method="FETCH", path="/fetch")
            |              ^~~~~~~~~~~~~~
        api.py:17:28: error: path 'no-slash' must start with '/'
         17 | @remote(api, method="GET", path="no-slash")
            |                            ^~~~~~~~~~~~~~~
          = hint: write path="/no-slash"
        api.py:22:28: error: path '/ping' is reserved by the runtime
         22 | @remote(api, method="GET", path="/ping")
            |                            ^~~~~~~~~~~~
          = hint: reserved paths: /ping, /execute; choose another path
        api.py:32:29: error: route POST /items is already served by 'first_items' on resource 'api'
         32 | @remote(api, method="POST", path="/items")
            |                             ^~~~~~~~~~~~~
        api.py:27:29: note: first used here
         27 | @remote(api, method="POST", path="/items")
            |                             ^~~~~~~~~~~~~
          = hint: give each function its own path
        api.py:37:2: error: functions on load-balanced resource 'api' need method and path
         37 | @remote(api)
            |  ^~~~~~~~~~~
          = hint: add method="POST", path="/your/route"
        api.py:42:16: error: HTTP routes (method=, path=) are only for load-balanced resources, but 'queue' is a LiveServerless
         42 | @remote(queue, method="POST", path="/queue")
            |                ^~~~~~~~~~~~~
          = hint: use LiveLoadBalancer or CpuLiveLoadBalancer for HTTP routes, or drop method= and path=
        """  # noqa: E501
    )


def test_err_undefined() -> None:
    analysis = analyze("err_undefined")
    assert analysis.has_errors
    assert analysis.functions == ()
    assert rendered("err_undefined", analysis.diagnostics) == pinned(
        """\
        undefined.py:4:49: error: 'LATER' is not defined at this point, so argument 'workersMax' of LiveServerless cannot be known at build time
         4 | @remote(LiveServerless(name="early", workersMax=LATER))
           |                                                 ^~~~~
          = hint: 'LATER' is only defined further down, at line 9: move that definition above this use
        undefined.py:12:9: error: 'missing_config' is not defined at this point, so the resource config of @remote cannot be known at build time
         12 | @remote(missing_config)
            |         ^~~~~~~~~~~~~~
          = hint: define it above this line as a module-level constant, or import it from a project module
        """  # noqa: E501
    )


def test_err_remote_not_imported() -> None:
    # Importing app.py would raise NameError, taking app:fine down with it: an error, not a warning.
    analysis = analyze("err_remote_not_imported")
    assert analysis.has_errors
    assert ids(analysis) == ["app:fine"]
    assert rendered("err_remote_not_imported", analysis.diagnostics) == pinned(
        """\
        app.py:5:2: error: 'forgot_import' is decorated with remote, but 'remote' is not defined here
         5 | @remote(LiveServerless(name="forgot"))
           |  ^~~~~~
          = hint: did you mean 'sdk_remote'? it is the SDK's remote, imported above
        """
    )


def test_err_sdk_not_imported() -> None:
    # A config, enum, constant or decorator of the SDK used without its import: the line to add, from
    # the SDK module the file imports from already (by name or as a module), else runpod_flash.
    analysis = analyze("err_sdk_not_imported")
    assert analysis.has_errors
    assert ids(analysis) == ["aliased:fine"]
    assert rendered("err_sdk_not_imported", analysis.diagnostics) == pinned(
        """\
        aliased.py:5:12: error: 'LiveLoadBalancer' is not imported, so importing this module fails (NameError)
         5 | @tr.remote(LiveLoadBalancer(name="api"), method="GET", path="/items")
           |            ^~~~~~~~~~~~~~~~
          = hint: add `from tetra_rp import LiveLoadBalancer` to the file's imports
        legacy.py:4:46: error: 'GpuGroup' is not imported, so importing this module fails (NameError)
         4 | config = LiveServerless(name="legacy", gpus=[GpuGroup.AMPERE_80], workersMax=DEFAULT_WORKERS_MAX)
           |                                              ^~~~~~~~
        legacy.py:7:9: note: 'config' is used here
         7 | @remote(config)
           |         ^~~~~~
          = hint: add `from tetra_rp import GpuGroup` to the file's imports
        legacy.py:4:78: error: 'DEFAULT_WORKERS_MAX' is not imported, so importing this module fails (NameError)
         4 | config = LiveServerless(name="legacy", gpus=[GpuGroup.AMPERE_80], workersMax=DEFAULT_WORKERS_MAX)
           |                                                                              ^~~~~~~~~~~~~~~~~~~
        legacy.py:7:9: note: 'config' is used here
         7 | @remote(config)
           |         ^~~~~~
          = hint: add `from tetra_rp import DEFAULT_WORKERS_MAX` to the file's imports
        legacy.py:12:9: error: 'CpuLiveServerless' is not imported, so importing this module fails (NameError)
         12 | @remote(CpuLiveServerless(name="cpu"))
            |         ^~~~~~~~~~~~~~~~~
          = hint: add `from tetra_rp import CpuLiveServerless` to the file's imports
        modern.py:5:2: error: 'Endpoint' is not imported, so importing this module fails (NameError)
         5 | @Endpoint(name="modern", cpu="cpu3c-1-2")
           |  ^~~~~~~~
          = hint: add `from runpod_flash import Endpoint` to the file's imports
        modern.py:11:2: error: 'forgot' is decorated with remote, but 'remote' is not defined here
         11 | @remote(CpuLiveServerless(name="forgot"))
            |  ^~~~~~
          = hint: add `from runpod_flash import remote` to the file's imports
        """
    )


def test_one_config_used_from_two_modules_is_one_resource(tmp_path: Path) -> None:
    # A GPU class made CPU by instanceIds: rebuilt from every field, it would say "both gpus and instanceIds".
    files = {
        "configs.py": "from tetra_rp import CpuInstanceType, LiveServerless\n\n"
        'shared = LiveServerless(name="cpu-shared", instanceIds=[CpuInstanceType.CPU3G_4_16])\n',
        "a.py": "from tetra_rp import remote\nfrom configs import shared\n\n@remote(shared)\ndef f():\n    return 1\n",
        "b.py": "from tetra_rp import remote\nfrom configs import shared\n\n@remote(shared)\ndef g():\n    return 2\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    analysis = analyze_project(tmp_path, use_cache=False)
    assert analysis.diagnostics == ()
    assert resources(analysis) == {"cpu-shared": ("LiveServerless", "queue", "cpu", ("a:f", "b:g"))}


def test_a_nameless_endpoint_is_named_after_the_first_definition_it_decorates(tmp_path: Path) -> None:
    """As the SDK names it: `ep = Endpoint(cpu=...)` takes its first definition's name, and the
    definitions after join that resource (the SDK's runtime does the same, so calls go there)."""
    ep = 'from runpod_flash import Endpoint\n\nep = Endpoint(cpu="cpu3c-1-2")\n'
    files = {
        "workers.py": ep + "\n\n@ep\ndef zeta(x):\n    return x\n\n\n@ep\nasync def alpha(x):\n    return x\n",
        "more.py": "from workers import ep\n\n\n@ep\ndef beta(x):\n    return x\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    analysis = analyze_project(tmp_path, use_cache=False)
    assert analysis.diagnostics == ()
    # zeta comes first in ep's own module, which runs before any module that imports ep.
    assert resources(analysis) == {
        "zeta": ("CpuLiveServerless", "queue", "cpu", ("more:beta", "workers:alpha", "workers:zeta"))
    }
    # Used only in two other modules, the first depends on import order: a name is asked for.
    (tmp_path / "workers.py").write_text(ep)
    (tmp_path / "other.py").write_text("from workers import ep\n\n\n@ep\ndef gamma(x):\n    return x\n")
    analysis = analyze_project(tmp_path, use_cache=False)
    (error,) = [d for d in analysis.diagnostics if d.severity == "error"]
    assert (error.path, error.span.line if error.span else None) == ("workers.py", 3)
    assert "'beta'" in error.message and "'gamma'" in error.message and "import order" in error.message
    assert error.hint == 'give it a name: Endpoint(name="...", ...)'


def test_the_runtime_names_a_nameless_endpoint_as_the_sdk_does() -> None:
    from flashc_runtime import Endpoint

    ep = Endpoint(cpu="cpu3c-1-2")

    def first() -> None: ...

    def second() -> None: ...

    assert ep(first).__remote_config__["resource_config"].name == "first"
    assert ep(second).__remote_config__["resource_config"].name == "first"
    assert ep.name == "first"


def test_declarations_of_one_resource_merge_what_each_sets() -> None:
    analysis = analyze("merge")
    assert not analysis.has_errors
    ids = ("one:first", "three:third", "two:second")
    assert resources(analysis) == {"shared": ("LiveServerless", "queue", "gpu", ids)}
    (shared,) = analysis.resources
    # one.py sets env, two.py workersMax, three.py (an Endpoint) workers=(0, 5): they agree, so all hold.
    assert shared.config["env"]["MODE"] == "a" and shared.config["workersMax"] == 5
    assert shared.config["idleTimeout"] == 5  # nobody set it: the first declaration's default
    # Each function keeps its own dependencies; the API style of each is recorded.
    assert {f.id: (f.style, f.dependencies) for f in analysis.functions} == {
        "one:first": ("remote", ()),
        "three:third": ("endpoint", ()),
        "two:second": ("remote", ("numpy",)),
    }
    assert [d.code for d in analysis.diagnostics] == ["secret"]


# Projects that analyze cleanly.


def test_demo() -> None:
    analysis = analyze("demo")
    assert analysis.diagnostics == ()
    assert analysis.project == "demo"
    assert (analysis.python_files, analysis.parsed_files) == (5, 3)
    assert resources(analysis) == {
        "demo-api": ("CpuLiveLoadBalancer", "load_balanced", "cpu", ("api:greet", "api:health")),
        "demo-cpu": ("LiveServerless", "queue", "cpu", ("workers.cpu:summarize",)),
        "demo-gpu": ("LiveServerless", "queue", "gpu", ("workers.gpu:normalize",)),
    }
    assert {r.name: (r.location.path, r.location.line) for r in analysis.resources} == {
        "demo-api": ("api.py", 3),
        "demo-cpu": ("workers/cpu.py", 3),
        "demo-gpu": ("workers/gpu.py", 3),
    }
    assert {f.id: (f.location.path, f.location.line, f.location.col) for f in analysis.functions} == {
        "api:greet": ("api.py", 7, 11),
        "api:health": ("api.py", 12, 5),
        "workers.cpu:summarize": ("workers/cpu.py", 11, 5),
        "workers.gpu:normalize": ("workers/gpu.py", 12, 11),
    }
    assert routes(analysis) == {
        "api:greet": ("POST", "/greet"),
        "api:health": ("GET", "/health"),
        "workers.cpu:summarize": None,
        "workers.gpu:normalize": None,
    }
    assert {f.id for f in analysis.functions if f.is_async} == {"api:greet", "workers.gpu:normalize"}
    assert {f.id: f.calls for f in analysis.functions if f.calls} == {
        "workers.gpu:normalize": ("workers.cpu:summarize",)
    }
    assert {f.id: f.dependencies for f in analysis.functions if f.dependencies} == {
        "workers.cpu:summarize": ("numpy==1.26.4",)
    }
    greet = analysis.functions[0]
    assert [(p.name, p.has_default) for p in greet.params] == [("name", False), ("punctuation", True)]
    configs = {r.name: r.config for r in analysis.resources}
    assert configs["demo-api"]["workersMin"] == 1
    assert configs["demo-cpu"]["instanceIds"] == ["cpu3c-2-4"]
    assert configs["demo-gpu"]["gpus"] == ["AMPERE_24", "ADA_24"]
    assert configs["demo-gpu"]["template"]["containerDiskInGb"] == 40


def test_import_forms() -> None:
    analysis = analyze("import_forms")
    assert analysis.diagnostics == ()
    assert resources(analysis) == {
        "module-alias": ("LiveServerless", "queue", "gpu", ("module_alias:via_module_alias",)),
        "name-alias": ("CpuLiveServerless", "queue", "cpu", ("name_alias:via_name_alias",)),
        "own-sdk": ("LiveServerless", "queue", "gpu", ("own_sdk:via_own_sdk",)),
        "plain": ("LiveServerless", "queue", "gpu", ("plain:plain_keyword", "plain:plain_positional")),
    }
    assert {f.id for f in analysis.functions if f.is_async} == {"plain:plain_positional"}


def test_config_sources() -> None:
    analysis = analyze("config_sources")
    assert analysis.diagnostics == ()
    assert {f.id: f.resource for f in analysis.functions} == {
        "app.workers.module_attr:uses_module_attribute": "team-cpu",
        "app.workers.relative:uses_relative_import": "team-gpu",
        "app.workers.star:uses_star_import": "team-gpu",
        "app.workers.through_init:uses_package_reexport": "team-cpu",
    }
    assert resources(analysis) == {
        "team-cpu": (
            "CpuLiveServerless",
            "queue",
            "cpu",
            ("app.workers.module_attr:uses_module_attribute", "app.workers.through_init:uses_package_reexport"),
        ),
        "team-gpu": (
            "LiveServerless",
            "queue",
            "gpu",
            ("app.workers.relative:uses_relative_import", "app.workers.star:uses_star_import"),
        ),
    }
    # Both configs are defined once, in app/configs.py, however the workers reach them.
    assert {r.name: (r.location.path, r.location.line) for r in analysis.resources} == {
        "team-cpu": ("app/configs.py", 6),
        "team-gpu": ("app/configs.py", 5),
    }
    configs = {r.name: r.config for r in analysis.resources}
    assert configs["team-gpu"]["workersMax"] == 10
    assert configs["team-gpu"]["gpus"] == ["AMPERE_80"]
    assert configs["team-cpu"]["instanceIds"] == ["cpu5c-2-4"]


def test_static_values() -> None:
    analysis = analyze("static_values")
    assert analysis.diagnostics == ()
    assert resources(analysis) == {
        "ml-cpu": ("LiveServerless", "queue", "cpu", ("values:on_cpu",)),
        "ml-values": ("LiveServerless", "queue", "gpu", ("values:compute",)),
    }
    configs = {r.name: dict(r.config) for r in analysis.resources}
    assert configs["ml-values"] == {
        "name": "ml-values",
        "gpus": ["AMPERE_80", "ADA_24"],
        "gpuCount": 2,
        "instanceIds": None,
        "workersMin": 0,
        "workersMax": 4,
        "idleTimeout": 5,
        "env": {"MODEL_ID": "gpt2", "MODE": "batch"},
        "executionTimeoutMs": 600000,
        "scalerType": "REQUEST_COUNT",
        "scalerValue": 2,
        "locations": "EU-RO-1,US-KS-2",
        "networkVolume": {"name": "models", "id": None, "size": 200, "dataCenterId": "EU-RO-1"},
        "networkVolumeId": None,
        "networkVolumes": None,
        "flashboot": True,
        "minCudaVersion": None,
        "template": {
            "containerDiskInGb": 100,
            "dockerArgs": "",
            "startScript": "",
            "advancedStart": False,
            "containerRegistryAuthId": "",
            "env": [{"key": "PYTHONPATH", "value": "/workspace"}],
        },
    }
    # ml-cpu is a LiveServerless made a CPU endpoint by instanceIds: it carries no GPU fields.
    assert configs["ml-cpu"] == {
        "name": "ml-cpu",
        "instanceIds": ["cpu3g-2-8", "cpu3c-4-8"],
        "workersMin": 0,
        "workersMax": 3,
        "idleTimeout": 5,
        "env": None,
        "executionTimeoutMs": 0,
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "locations": None,
        "networkVolume": None,
        "networkVolumeId": None,
        "networkVolumes": None,
        "flashboot": True,
        "template": None,
    }
    compute, on_cpu = analysis.functions
    assert compute.id == "values:compute"
    assert compute.dependencies == ("torch>=2.1", "numpy==1.26.4", "scipy>=1.11")
    assert compute.system_dependencies == ("ffmpeg", "libgl1")
    assert compute.accelerate_downloads is False
    assert on_cpu.id == "values:on_cpu"
    assert on_cpu.dependencies == ("pandas==2.2.2",)
    assert on_cpu.system_dependencies == ()
    assert on_cpu.accelerate_downloads is True


def test_classes() -> None:
    analysis = analyze("classes")
    assert analysis.diagnostics == ()
    (model,) = analysis.functions
    assert (model.id, model.kind, model.resource, model.dependencies) == (
        "model:Model",
        "class",
        "model-server",
        ("torch",),
    )
    assert (model.location.line, model.location.col) == (7, 7)
    # Private methods and properties are not served.
    assert [(m.name, m.is_async, m.is_generator) for m in model.methods] == [
        ("predict", False, False),
        ("embed", True, False),
        ("stream", False, True),
    ]
    assert [(p.name, p.kind, p.has_default) for p in model.methods[0].params] == [
        ("x", "positional_or_keyword", False),
        ("scale", "keyword_only", True),
    ]
    assert resources(analysis) == {"model-server": ("LiveServerless", "queue", "gpu", ("model:Model",))}


def test_routes() -> None:
    analysis = analyze("routes")
    assert analysis.diagnostics == ()
    assert routes(analysis) == {
        "api:admin_health": ("GET", "/api/health"),
        "api:delete_item": ("DELETE", "/api/items/{item_id}"),
        "api:health_check": ("GET", "/api/health"),
        "api:patch_item": ("PATCH", "/api/items/{item_id}"),
        "api:process_data": ("POST", "/api/process"),
        "api:put_item": ("PUT", "/api/items/{item_id}"),
    }
    # The same route on two different resources is no conflict.
    assert resources(analysis) == {
        "admin": ("CpuLiveLoadBalancer", "load_balanced", "cpu", ("api:admin_health",)),
        "api-service": (
            "LiveLoadBalancer",
            "load_balanced",
            "gpu",
            ("api:delete_item", "api:health_check", "api:patch_item", "api:process_data", "api:put_item"),
        ),
    }
    assert {f.id for f in analysis.functions if f.is_async} == {"api:process_data"}


def test_not_sdk_remote() -> None:
    analysis = analyze("not_sdk_remote")
    assert analysis.diagnostics == ()
    assert ids(analysis) == ["real:the_real_one"]
    assert resources(analysis) == {"real": ("LiveServerless", "queue", "gpu", ("real:the_real_one",))}


def test_cross_calls() -> None:
    analysis = analyze("cross_calls")
    assert analysis.diagnostics == ()
    assert {f.id: f.calls for f in analysis.functions} == {
        "workers.cpu:clean": ("workers.cpu:preprocess",),
        "workers.cpu:preprocess": (),
        "workers.gpu:inference": ("workers.cpu:preprocess",),
        "workers.gpu:no_calls": (),
        "workers.gpu:shadowed": (),
        "workers.gpu:via_alias_and_module": ("workers.cpu:clean", "workers.cpu:preprocess"),
    }
    assert {f.id for f in analysis.functions if f.is_async} == {
        "workers.gpu:inference",
        "workers.gpu:via_alias_and_module",
    }
    assert resources(analysis) == {
        "cpu": ("CpuLiveServerless", "queue", "cpu", ("workers.cpu:clean", "workers.cpu:preprocess")),
        "gpu": (
            "LiveServerless",
            "queue",
            "gpu",
            (
                "workers.gpu:inference",
                "workers.gpu:no_calls",
                "workers.gpu:shadowed",
                "workers.gpu:via_alias_and_module",
            ),
        ),
    }


def test_module_paths() -> None:
    analysis = analyze("module_paths")
    assert analysis.diagnostics == ()
    assert analysis.import_roots == ("", "src")
    assert {f.id: (f.module, f.location.path, f.resource) for f in analysis.functions} == {
        "examples.01_hello:hello": ("examples.01_hello", "examples/01_hello.py", "hello"),
        "my-app.handler:in_dashed_folder": ("my-app.handler", "my-app/handler.py", "dashed"),
        "ns.inner.worker:in_namespace_package": ("ns.inner.worker", "ns/inner/worker.py", "namespace"),
        "srcpkg.job:in_src_layout": ("srcpkg.job", "src/srcpkg/job.py", "src-layout"),
    }


def test_same_name() -> None:
    analysis = analyze("same_name")
    assert analysis.diagnostics == ()
    assert {f.id: (f.qualname, f.resource) for f in analysis.functions} == {
        "a.process:process": ("process", "res-a"),
        "b.process:process": ("process", "res-b"),
    }


def test_ignores() -> None:
    analysis = analyze("ignores")
    # generated/broken.py does not parse, but generated/ is ignored: no diagnostic.
    assert analysis.diagnostics == ()
    assert analysis.python_files == 2
    # scratch_drop.py (.gitignore), tools/local.py (nested .gitignore) and .venv-custom/ (a venv) are
    # left out; scratch_keep.py is brought back by .flashignore.
    assert ids(analysis) == ["kept:kept", "scratch_keep:re_included"]
    assert {f.location.path for f in analysis.functions} == {"kept.py", "scratch_keep.py"}
    assert resources(analysis) == {
        "kept": ("LiveServerless", "queue", "gpu", ("kept:kept", "scratch_keep:re_included"))
    }


def test_cached_run_gives_the_same_analysis(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", project, ignore=shutil.ignore_patterns(".flash"))
    cold = analyze_project(project)
    assert (project / ".flash" / "cache").is_dir()
    warm = analyze_project(project)
    assert dataclasses.replace(warm, parsed_files=0) == dataclasses.replace(cold, parsed_files=0)
    assert cold == analyze("demo")


# The command line.


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_analyze_demo_succeeds() -> None:
    code, out, err = run("analyze", "--no-cache", str(FIXTURES / "demo"))
    assert code == 0
    assert err == ""
    assert out.startswith("project 'demo': 5 Python files, 3 analyzed\n")
    assert out.endswith("\n3 resources, 4 functions\n")
    for fid in ("api:greet", "api:health", "workers.cpu:summarize", "workers.gpu:normalize"):
        assert fid in out


def test_cli_analyze_errors_exit_1_with_rendered_diagnostics() -> None:
    code, out, err = run("analyze", "--no-cache", str(FIXTURES / "err_class"))
    assert code == 1
    assert out.endswith("\n0 resources, 0 functions\n")
    # Source lines are read from the project folder, not from the current directory.
    assert err == pinned(
        """\
        classes.py:7:7: error: class 'Empty' has no public methods to serve
         7 | class Empty:
           |       ^~~~~
          = hint: add a method whose name does not start with '_'
        classes.py:13:7: error: 'NeedsArgs.__init__' requires arguments (model_path), but an endpoint creates its instance without arguments
         13 | class NeedsArgs:
            |       ^~~~~~~~~
          = hint: give these parameters default values, or read them from the environment inside __init__
        flashc: 2 errors, 0 warnings
        """  # noqa: E501
    )


def test_cli_analyze_warnings_exit_0() -> None:
    code, out, err = run("analyze", "--no-cache", str(FIXTURES / "merge"))
    assert code == 0
    assert "one:first" in out
    assert err.startswith("one.py:4:39: warning: the env value of HF_TOKEN")
    assert err.endswith("\nflashc: 0 errors, 1 warning\n")


def test_cli_analyze_missing_folder_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code, out, err = run("analyze", "--no-cache", str(missing))
    assert code == 2
    assert out == ""
    assert err == f"flashc: error: project folder '{missing}' does not exist\n"


def test_cli_analyze_json() -> None:
    code, out, _ = run("analyze", "--no-cache", "--json", str(FIXTURES / "merge"))
    assert code == 0
    data = json.loads(out)
    assert data["schema_version"] == ANALYSIS_SCHEMA_VERSION
    assert [(f["id"], f["style"]) for f in data["functions"]] == [
        ("one:first", "remote"),
        ("three:third", "endpoint"),
        ("two:second", "remote"),
    ]
    assert [r["name"] for r in data["resources"]] == ["shared"]
    assert [(d["severity"], d["code"], d["path"], d["span"]["line"]) for d in data["diagnostics"]] == [
        ("warning", "secret", "one.py", 4)
    ]


def test_cli_schema_describes_the_json_output() -> None:
    code, out, _ = run("schema", "analysis")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "flashc analysis"

    code, out, _ = run("analyze", "--no-cache", "--json", str(FIXTURES / "demo"))
    assert code == 0
    data = json.loads(out)
    defs = schema["$defs"]
    assert set(data) == set(schema["properties"]) == set(schema["required"])
    for key, model in (("functions", "RemoteFunction"), ("resources", "Resource")):
        for item in data[key]:
            assert set(item) == set(defs[model]["properties"])
    assert TypeAdapter(Analysis).validate_python(data) == analyze("demo")


def test_seed_style_project_analyzes_cleanly() -> None:
    # Code written in the Flash SDK's documented style builds unmodified.
    analysis = analyze("seed_style")
    assert analysis.diagnostics == ()
    assert resources(analysis) == {
        "api-service": ("LiveLoadBalancer", "load_balanced", "gpu", ("api:health_check", "api:process_data")),
        "custom-ml-env": ("ServerlessEndpoint", "queue", "gpu", ("custom_image:transcode",)),
        "data-preprocessor": ("LiveServerless", "queue", "cpu", ("pipeline:preprocess_data",)),
        "flash-quickstart": ("LiveServerless", "queue", "gpu", ("quickstart:gpu_compute",)),
        "ml-inference-gpu": ("LiveServerless", "queue", "gpu", ("pipeline:run_inference",)),
    }
    config = {r.name: r.config for r in analysis.resources}["data-preprocessor"]
    assert config["instanceIds"] == ["cpu5c-4-16", "cpu3c-4-8"]
    assert config["template"]["env"] == [{"key": "NUMPY_NUM_THREADS", "value": "4"}]
    assert {r.name: r.config for r in analysis.resources}["custom-ml-env"]["imageName"] == (
        "pytorch/pytorch:2.0.1-cuda11.7-cudnn8-runtime"
    )


def test_err_conditional() -> None:
    analysis = analyze("err_conditional")
    assert analysis.has_errors
    assert ids(analysis) == []
    assert rendered("err_conditional", analysis.diagnostics) == pinned(
        """\
        app.py:8:5: error: 'cfg' is assigned inside a branch (if, loop, match or except), so the resource config of @remote cannot be known until the program runs
         8 |     cfg = LiveServerless(name="api", workersMax=1)
           |     ^~~
        app.py:16:9: note: 'cfg' is used here
         16 | @remote(cfg)
            |         ^~~
          = hint: assign it once, outside any branch, above its use
        app.py:11:1: error: 'DEPS' is changed in place here, so option 'dependencies' of @remote cannot be known until the program runs
         11 | DEPS.append("numpy")
            | ^~~~~~~~~~~~~~~~~~~~
        app.py:21:60: note: 'DEPS' is used here
         21 | @remote(LiveServerless(name="mutated", **KW), dependencies=DEPS)
            |                                                            ^~~~
          = hint: write the final value in the assignment itself
        app.py:13:1: error: 'KW' is changed in place here, so **arguments of LiveServerless cannot be known until the program runs
         13 | KW["workersMax"] = 10
            | ^~~~~~~~~~~~~~~~
        app.py:21:42: note: 'KW' is used here
         21 | @remote(LiveServerless(name="mutated", **KW), dependencies=DEPS)
            |                                          ^~
          = hint: write the final value in the assignment itself
        """  # noqa: E501
    )


def test_err_decorator_names() -> None:
    analysis = analyze("err_decorator_names")
    assert analysis.has_errors
    assert ids(analysis) == ["app:undefined"]
    assert rendered("err_decorator_names", analysis.diagnostics) == pinned(
        """\
        app.py:7:2: error: the SDK has no name 'remot'
         7 | @tr.remot(cfg)
           |  ^~~~~~~~
          = hint: did you mean 'remote'?
        app.py:12:2: error: 'undefined_decorator' is not defined here, so importing this module fails
         12 | @undefined_decorator
            |  ^~~~~~~~~~~~~~~~~~~
          = hint: import or define 'undefined_decorator' above this line
        app.py:18:14: error: the resource config of @remote is given twice, by position and as resource_config=
         18 | @remote(cfg, resource_config=cfg)
            |              ^~~~~~~~~~~~~~~~~~~
          = hint: keep one of them
        app.py:28:1: error: 'rebound' is bound again here, so the module's 'rebound' is no longer the @remote function defined at line 24
         28 | rebound = None
            | ^~~~~~~
          = hint: rename one of them
        """  # noqa: E501
    )


def test_err_dataclass() -> None:
    analysis = analyze("err_dataclass")
    assert analysis.has_errors
    assert ids(analysis) == []
    assert rendered("err_dataclass", analysis.diagnostics) == pinned(
        """\
        app.py:8:7: error: 'NeedsField.__init__' requires arguments (model_path), but an endpoint creates its instance without arguments
         8 | class NeedsField:
           |       ^~~~~~~~~~
          = hint: give these parameters default values, or read them from the environment inside __init__
        """  # noqa: E501
    )


def test_err_route_identity() -> None:
    analysis = analyze("err_route_identity")
    assert analysis.has_errors
    assert ids(analysis) == ["api:by_id", "api:by_name"]
    assert rendered("err_route_identity", analysis.diagnostics) == pinned(
        """\
        api.py:11:28: error: route GET /items/{name}/ is already served by 'by_id' on resource 'api'
         11 | @remote(api, method="GET", path="/items/{name}/")
            |                            ^~~~~~~~~~~~~~~~~~~~~
        api.py:6:28: note: first used here
         6 | @remote(api, method="GET", path="/items/{item_id}")
           |                            ^~~~~~~~~~~~~~~~~~~~~~~
          = hint: give each function its own path
        api.py:16:28: error: path '/with space' contains ' '
         16 | @remote(api, method="GET", path="/with space")
            |                            ^~~~~~~~~~~~~~~~~~
          = hint: a path is made of /segments of letters, digits, -, _, . and {parameters}
        api.py:21:28: error: path '/ping/' is reserved by the runtime
         21 | @remote(api, method="GET", path="/ping/")
            |                            ^~~~~~~~~~~~~
          = hint: reserved paths: /ping, /execute; choose another path
        """
    )


def test_err_limits() -> None:
    analysis = analyze("err_limits")
    assert analysis.has_errors
    assert ids(analysis) == []
    assert rendered("err_limits", analysis.diagnostics) == pinned(
        """\
        app.py:3:7: error: this value is too large for a config
         3 | BIG = 10**5000
           |       ^~~~~~~~
        app.py:7:47: note: 'BIG' is used here
         7 | @remote(LiveServerless(name="big", workersMax=BIG))
           |                                               ^~~
        app.py:4:8: error: this value is too large for a config
         4 | WIDE = "a" * 10**9
           |        ^~~~~~~~~~~
        app.py:12:29: note: 'WIDE' is used here
         12 | @remote(LiveServerless(name=WIDE))
            |                             ^~~~
        app.py:17:43: error: argument 'env' of LiveServerless has a dict key that Python cannot hash (a tuple holding a list or dict)
         17 | @remote(LiveServerless(name="keys", env={("a", [1]): "x"}))
            |                                           ^~~~~~~~
          = hint: use a string as the key
        """  # noqa: E501
    )


def test_renamed_and_prebuilt_remote_decorators_are_found() -> None:
    # Files that mention neither `remote` nor the SDK, using a renamed re-export, are still analyzed.
    analysis = analyze("reexported_remote")
    assert analysis.diagnostics == ()
    assert resources(analysis) == {
        "prebuilt": ("CpuLiveServerless", "queue", "cpu", ("prebuilt:first", "prebuilt:second")),
        "shared-gpu": (
            "LiveServerless",
            "queue",
            "gpu",
            ("app:through_renamed_import", "other:through_module_attribute"),
        ),
    }
    by_id = {f.id: f for f in analysis.functions}
    assert by_id["prebuilt:second"].dependencies == ("numpy==1.26.4",)
    assert by_id["prebuilt:second"].calls == ("prebuilt:first",)


def test_star_imports_follow_python_rules() -> None:
    # An outside `import *` does not hide the SDK's names; a project module's __all__ is honoured.
    analysis = analyze("star_imports")
    assert analysis.diagnostics == ()
    assert ids(analysis) == ["app:after_outside_star"]
    assert [r.name for r in analysis.resources] == ["star-gpu"]


def test_enum_members_format_as_their_value_and_aliases_resolve() -> None:
    analysis = analyze("evaluation_edges")
    assert analysis.diagnostics == ()
    # `else:` of the main guard runs on import, so its definition is deployable.
    assert ids(analysis) == ["app:defined_on_import", "app:uses_alias"]
    assert [r.name for r in analysis.resources] == ["gpu-AMPERE_80-ADA_24"]


def test_class_shapes() -> None:
    analysis = analyze("class_shapes")
    assert analysis.diagnostics == ()
    by_id = {f.id: f for f in analysis.functions}
    tools = by_id["models:Tools"]
    assert [(m.name, [p.name for p in m.params]) for m in tools.methods] == [
        ("add", ["a", "b"]),  # a staticmethod keeps its first parameter
        ("make", ["n"]),  # a classmethod drops cls
        ("summarize", ["xs"]),  # cached_property is not a method to serve
    ]
    # Inside a method, `summarize` is the module's remote function, not the class attribute.
    assert tools.calls == ("models:summarize",)
    assert [m.name for m in by_id["models:Settings"].methods] == ["show"]
    assert by_id["models:Inherits"].methods == ()  # inherited: not visible, not an error
    assert by_id["models:fan_out"].calls == ("models:summarize",)  # handed over by reference


def test_import_star_cycles_resolve_in_linear_time(tmp_path: Path) -> None:
    import time

    names = [f"m{i}" for i in range(25)]
    for i, name in enumerate(names):
        stars = "".join(f"from {other} import *\n" for other in names if other != name)
        body = stars
        if i == 0:
            body = (
                "from tetra_rp import remote, LiveServerless\n"
                + stars
                + ('@remote(LiveServerless(name="x", workersMax=UNDEFINED))\ndef f(x):\n    print(x)\n    return x\n')
            )
        (tmp_path / f"{name}.py").write_text(body)
    started = time.perf_counter()
    analysis = analyze_project(tmp_path, use_cache=False)
    assert time.perf_counter() - started < 10
    assert [d.message for d in analysis.diagnostics] == [
        "'UNDEFINED' is not defined at this point, so argument 'workersMax' of LiveServerless "
        "cannot be known at build time"
    ]


def test_deeply_nested_expressions_do_not_crash(tmp_path: Path) -> None:
    prompt = "\n".join(f'    "line {i} of a long prompt "' for i in range(600))
    (tmp_path / "app.py").write_text(
        "from tetra_rp import remote, LiveServerless\n"
        f"PROMPT = (\n{prompt}\n)\n"
        '@remote(LiveServerless(name="deep"))\ndef f(x):\n    return PROMPT\n'
    )
    analysis = analyze_project(tmp_path, use_cache=False)
    assert ids(analysis) == ["app:f"]
