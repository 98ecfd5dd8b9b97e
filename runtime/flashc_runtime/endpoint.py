"""`Endpoint`: the Flash SDK's current API, on top of the same resource configs and `@remote`.

    @Endpoint(name="gpu_worker", gpu=GpuType.ANY)        a queue-based resource (a function or class)
    api = Endpoint(name="api", cpu="cpu3c-1-2")          a load-balanced resource, with routes:
    @api.post("/process")
    ep = Endpoint(id="abc123")                           a client of an existing endpoint:
    job = await ep.run({...}); await job.wait()

`EndpointParams` is the schema of the constructor's arguments (snake_case, with the SDK's defaults and
checks); flashc's analyzer evaluates the same call from source and checks it against this class, so
build-time and run-time messages are the same. `endpoint_resource` turns the parameters into the
resource config (`LiveServerless`, `CpuLiveServerless`, `LiveLoadBalancer`, `CpuLiveLoadBalancer`)
that the rest of flashc works with, and names the config fields the user set, for the merge rule.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .decorator import RemoteCallError, remote, route_problems
from .enums import CPU_DATACENTERS, CpuInstanceType, CudaVersion, DataCenter, GpuGroup, GpuType, ServerlessScalerType
from .resources import (
    CpuLiveLoadBalancer,
    CpuLiveServerless,
    LiveLoadBalancer,
    LiveServerless,
    NetworkVolume,
    PodTemplate,
    ServerlessResource,
)
from .schema import ConfigError, ParamProblem, SchemaModel, validate_params

if TYPE_CHECKING:
    from .client import Identity

__all__ = ["Endpoint", "EndpointJob", "EndpointParams", "endpoint_problems", "endpoint_resource"]

# Which fields of the resource config each Endpoint parameter sets.
PARAM_FIELDS: Mapping[str, tuple[str, ...]] = {
    "name": ("name",),
    "gpu": ("gpus",),
    "cpu": ("instanceIds",),
    "workers": ("workersMin", "workersMax"),
    "idle_timeout": ("idleTimeout",),
    "volume": ("networkVolume", "networkVolumes"),
    "datacenter": ("locations",),
    "env": ("env",),
    "gpu_count": ("gpuCount",),
    "execution_timeout_ms": ("executionTimeoutMs",),
    "flashboot": ("flashboot",),
    "scaler_type": ("scalerType",),
    "scaler_value": ("scalerValue",),
    "template": ("template",),
    "min_cuda_version": ("minCudaVersion",),
}
# Parameters that belong to the functions, not to the resource.
FUNCTION_PARAMS = ("dependencies", "system_dependencies", "accelerate_downloads")
_JOB_DONE = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


@dataclasses.dataclass(frozen=True, init=False, kw_only=True, eq=False)
class EndpointParams(SchemaModel):
    """Everything `Endpoint(...)` accepts, with the SDK's defaults."""

    display_name: ClassVar[str | None] = "Endpoint"

    name: str | None = None
    id: str | None = None
    gpu: GpuGroup | GpuType | list[GpuGroup | GpuType] | None = None
    cpu: CpuInstanceType | list[CpuInstanceType] | None = None
    workers: int | list[int] | None = None
    idle_timeout: int = 60
    dependencies: list[str] | None = None
    system_dependencies: list[str] | None = None
    accelerate_downloads: bool = True
    volume: NetworkVolume | list[NetworkVolume] | None = None
    datacenter: DataCenter | list[DataCenter] | None = None
    env: dict[str, str] | None = None
    gpu_count: int = 1
    execution_timeout_ms: int = 0
    flashboot: bool = True
    image: str | None = None
    scaler_type: ServerlessScalerType | None = None
    scaler_value: int = 4
    template: PodTemplate | None = None
    min_cuda_version: CudaVersion | None = CudaVersion.V12_8
    max_concurrency: int = 1

    @classmethod
    def _normalise(cls, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Data centers are read as the SDK reads them: `"eu_ro_1"` is EU-RO-1."""
        out = dict(kwargs)
        centers = out.get("datacenter")
        if isinstance(centers, str):
            out["datacenter"] = _data_center(centers)
        elif isinstance(centers, (list, tuple)):
            out["datacenter"] = [_data_center(c) if isinstance(c, str) else c for c in centers]
        return out

    @classmethod
    def _extra_checks(cls, values: Mapping[str, Any], given: frozenset[str]) -> list[ParamProblem]:
        problems = []
        if values["gpu"] is not None and values["cpu"] is not None:
            problems.append(
                ParamProblem("cpu", "gpu and cpu are mutually exclusive", "give gpu= for a GPU endpoint, cpu= for CPU")
            )
        if values["id"] is not None and values["image"] is not None:
            problems.append(
                ParamProblem(
                    "image",
                    "id and image are mutually exclusive",
                    "id= connects to an existing endpoint, image= deploys one from an image: keep one",
                )
            )
        if values["image"] is not None and values["name"] is None and values["id"] is None:
            problems.append(ParamProblem("image", "image= needs a name", 'add name="..."'))
        workers = values["workers"]
        if isinstance(workers, list):
            if len(workers) != 2:
                problems.append(
                    ParamProblem("workers", f"workers must be an int or (min, max), got {len(workers)} numbers")
                )
            elif min(workers) < 0:
                problems.append(ParamProblem("workers", f"workers cannot be negative: {tuple(workers)}"))
            elif workers[0] > workers[1]:
                problems.append(ParamProblem("workers", f"workers min ({workers[0]}) cannot exceed max ({workers[1]})"))
        elif isinstance(workers, int) and workers < 0:
            problems.append(ParamProblem("workers", f"workers cannot be negative: {workers}"))
        if not 1 <= values["idle_timeout"] <= 3600:
            problems.append(ParamProblem("idle_timeout", "idle_timeout must be between 1 and 3600 seconds"))
        if values["max_concurrency"] < 1:
            problems.append(ParamProblem("max_concurrency", "max_concurrency must be at least 1"))
        for key in ("gpu_count", "scaler_value"):
            if values[key] < 1:
                problems.append(ParamProblem(key, f"{key} must be at least 1"))
        if values["execution_timeout_ms"] < 0:
            problems.append(ParamProblem("execution_timeout_ms", "execution_timeout_ms must not be negative"))
        if values["volume"] == []:
            problems.append(ParamProblem("volume", "volume list must not be empty", "leave volume= out"))
        problems.extend(_datacenter_problems(values))
        return problems


def _data_center(text: str) -> DataCenter | str:
    try:
        return DataCenter.from_string(text)
    except ValueError:
        return text  # the schema names it as not a DataCenter, with the closest one


def _listed(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _datacenter_problems(values: Mapping[str, Any]) -> list[ParamProblem]:
    problems = []
    centers = _listed(values["datacenter"])
    volumes = _listed(values["volume"])
    if values["cpu"] is not None:
        outside = [c.value for c in centers if c not in CPU_DATACENTERS]
        if outside:
            problems.append(
                ParamProblem(
                    "datacenter",
                    f"CPU endpoints are not available in {', '.join(outside)}",
                    f"CPU data centers: {', '.join(sorted(c.value for c in CPU_DATACENTERS))}",
                )
            )
    seen: dict[str, str] = {}
    for v in volumes:
        where = str(v.dataCenterId)
        label = v.name or v.id or "?"
        if where in seen:
            problems.append(
                ParamProblem(
                    "volume",
                    f"two network volumes in data center {where} ('{seen[where]}' and '{label}')",
                    "an endpoint takes one network volume per data center",
                )
            )
        seen[where] = label
        if centers and where not in {c.value for c in centers}:
            problems.append(
                ParamProblem(
                    "volume",
                    f"network volume '{label}' is in {where}, which is not one of the endpoint's data centers",
                    f"add DataCenter.{where.replace('-', '_')} to datacenter=, or move the volume",
                )
            )
    return problems


def endpoint_problems(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], list[ParamProblem]]:
    """The full parameters of `Endpoint(**kwargs)` and what is wrong with them."""
    problems = []
    gpu = kwargs.get("gpu")
    if isinstance(gpu, str) and not isinstance(gpu, (GpuGroup, GpuType)):
        guess = next((m for m in (*GpuGroup, *GpuType) if gpu in (m.name, m.value)), None)
        problems.append(
            ParamProblem(
                "gpu",
                f"gpu must be a GpuGroup, a GpuType or a list of them, not the string {gpu!r}",
                f"write gpu={type(guess).__name__}.{guess.name}" if guess else "write gpu=GpuGroup.ANY, say",
            )
        )
    values, more = validate_params(EndpointParams, kwargs)
    return values, problems + more


def endpoint_resource(params: EndpointParams, name: str, *, load_balanced: bool) -> ServerlessResource:
    """The resource config an Endpoint stands for, named `name`; it records which fields were given."""
    given = {f for p in params.given for f in PARAM_FIELDS.get(p, ())}
    workers = params.workers
    low, high = (0, 1) if workers is None else (0, workers) if isinstance(workers, int) else tuple(workers)
    fields: dict[str, Any] = {
        "name": name,
        "workersMin": low,
        "workersMax": high,
        "idleTimeout": params.idle_timeout,
        "executionTimeoutMs": params.execution_timeout_ms,
        "scalerValue": params.scaler_value,
        "scalerType": params.scaler_type
        or (ServerlessScalerType.REQUEST_COUNT if load_balanced else ServerlessScalerType.QUEUE_DELAY),
        "flashboot": params.flashboot,
        "env": params.env,
        "template": params.template,
    }
    volumes = _listed(params.volume)
    if volumes:
        fields["networkVolume"] = volumes[0]
        if len(volumes) > 1:
            fields["networkVolumes"] = volumes
    centers = _listed(params.datacenter)
    cpu = params.cpu is not None
    if not centers and not cpu:
        centers = DataCenter.all()  # a GPU endpoint may run anywhere
    if centers:
        fields["locations"] = ",".join(c.value for c in centers)
    cls: type[ServerlessResource]
    if cpu:
        cls = CpuLiveLoadBalancer if load_balanced else CpuLiveServerless
        fields["instanceIds"] = _listed(params.cpu)
    else:
        cls = LiveLoadBalancer if load_balanced else LiveServerless
        fields["gpus"] = _listed(params.gpu) or [GpuGroup.ANY]
        fields["gpuCount"] = params.gpu_count
        fields["minCudaVersion"] = params.min_cuda_version
    config = cls(**fields)
    object.__setattr__(config, "given", frozenset(given | {"name"}))
    return config


class EndpointJob:
    """A job sent to a queue-based endpoint with `Endpoint.run`: poll it with `status()`, or `wait()`."""

    def __init__(self, data: Mapping[str, Any], endpoint: Endpoint) -> None:
        self._data = dict(data)
        self._endpoint = endpoint

    @property
    def id(self) -> str:
        return str(self._data.get("id", ""))

    @property
    def output(self) -> Any:
        return self._data.get("output")

    @property
    def error(self) -> Any:
        return self._data.get("error")

    @property
    def done(self) -> bool:
        return self._data.get("status") in _JOB_DONE

    async def status(self) -> str:
        """Ask the endpoint how the job is; returns its status (`IN_QUEUE`, `COMPLETED`...)."""
        self._data = await self._endpoint._send("GET", f"/status/{self.id}", None, queue=True)
        return str(self._data.get("status", "UNKNOWN"))

    async def cancel(self) -> EndpointJob:
        self._data.update(await self._endpoint._send("POST", f"/cancel/{self.id}", None, queue=True))
        return self

    async def wait(self, timeout: float | None = None) -> EndpointJob:
        """Poll until the job is done (0.25 s, growing to 5 s between polls); TimeoutError after `timeout`."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = 0.25
        while not self.done:
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"job {self.id} did not complete within {timeout}s (last status: {self._status})")
            await asyncio.sleep(pause if deadline is None else max(0.0, min(pause, deadline - loop.time())))
            pause = min(pause * 1.5, 5.0)
            await self.status()
        return self

    @property
    def _status(self) -> str:
        return str(self._data.get("status", "UNKNOWN"))

    def __repr__(self) -> str:
        return f"EndpointJob(id={self.id!r}, status={self._status!r})"


class Endpoint:
    """A resource of one's own (`@Endpoint(...)`, or routes on `api = Endpoint(...)`), or a client of
    an existing endpoint (`Endpoint(id=...)`, `Endpoint(name=..., image=...)`)."""

    def __init__(self, name: str | None = None, **params: Any) -> None:
        kwargs = dict(params)
        if name is not None:
            kwargs["name"] = name
        _, problems = endpoint_problems(kwargs)
        if problems:
            raise ConfigError("Endpoint", problems)
        self.params = EndpointParams(**kwargs)
        self._routes: dict[tuple[str, str], str] = {}
        self._decorated = False
        self._derived_name: str | None = None  # without name=: the first definition decorated, as the SDK names it

    @property
    def name(self) -> str | None:
        return self.params.name or self._derived_name

    @property
    def is_client(self) -> bool:
        return self.params.id is not None or self.params.image is not None

    # --- a resource of one's own --------------------------------------------------------------

    def __call__(self, obj: Any) -> Any:
        """`@Endpoint(...)` on a function or class: it runs on a queue-based endpoint."""
        if self.is_client:
            mode = "id" if self.params.id is not None else "image"
            raise ConfigError(
                "Endpoint",
                [ParamProblem(mode, f"Endpoint({mode}=...) is a client of an endpoint, not a decorator",
                              "use Endpoint(name=...) for your own code")],
            )  # fmt: skip
        if self._routes:
            raise ConfigError("Endpoint", [_MIXED])
        self._decorated = True
        if self.name is None:  # the SDK names the Endpoint after the first definition it decorates
            self._derived_name = obj.__name__
        assert self.name is not None
        config = endpoint_resource(self.params, self.name, load_balanced=False)
        return remote(config, **self._function_options())(obj)

    def _function_options(self) -> dict[str, Any]:
        return {key: getattr(self.params, key) for key in FUNCTION_PARAMS}

    def _route(self, method: str, path: str) -> Callable[[Any], Any]:
        if self.params.name is None:
            raise ConfigError("Endpoint", [ParamProblem("name", "routes need a named Endpoint", 'add name="..."')])
        if self._decorated:
            raise ConfigError("Endpoint", [_MIXED])
        config = endpoint_resource(self.params, self.params.name, load_balanced=True)
        problems = route_problems(config, method, path)
        if problems:
            raise ConfigError("Endpoint", problems)

        def decorate(func: Any) -> Any:
            key = (method, path)
            if key in self._routes:
                raise ConfigError(
                    "Endpoint",
                    [ParamProblem(None, f"route {method} {path} is already served by '{self._routes[key]}'")],
                )
            self._routes[key] = getattr(func, "__name__", "?")
            return remote(config, method=method, path=path, **self._function_options())(func)

        return decorate

    # --- routes on one's own resource, or calls to a client's load-balanced endpoint ------------

    def get(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self._http("GET", path, data, kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self._http("POST", path, data, kwargs)

    def put(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self._http("PUT", path, data, kwargs)

    def delete(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self._http("DELETE", path, data, kwargs)

    def patch(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self._http("PATCH", path, data, kwargs)

    def _http(self, method: str, path: str, data: Any, kwargs: Mapping[str, Any]) -> Any:
        if not self.is_client:
            if data is not None or kwargs:
                raise TypeError(
                    f"data and keyword arguments are for client endpoints (id= or image=); "
                    f"on your own endpoint write @api.{method.lower()}('{path}')"
                )
            return self._route(method, path)
        return self._send(method, path, data, queue=False)

    # --- a client of an existing endpoint -----------------------------------------------------

    async def run(self, input_data: Any, *, webhook: str | None = None) -> EndpointJob:
        """Queue a job; returns at once with the job (`await job.wait()` for its result)."""
        body: dict[str, Any] = {"input": input_data}
        if webhook is not None:
            body["webhook"] = webhook
        return EndpointJob(await self._send("POST", "/run", body, queue=True), self)

    async def runsync(self, input_data: Any, timeout: float = 60.0) -> EndpointJob:
        """Run a job and wait for it (the endpoint answers within its own wait time; then poll the job)."""
        return EndpointJob(
            await self._send("POST", "/runsync", {"input": input_data}, queue=True, timeout=timeout), self
        )

    async def cancel(self, job_id: str) -> EndpointJob:
        return EndpointJob(await self._send("POST", f"/cancel/{job_id}", None, queue=True), self)

    async def _send(self, method: str, path: str, body: Any, *, queue: bool, timeout: float = 60.0) -> Any:
        if not self.is_client:
            raise RemoteCallError(
                f"Endpoint '{self.name}' is your own resource: call its functions, or use Endpoint(id=...) as a client"
            )
        import asyncio

        from .client import _request, ensure_sdk_is_this_runtime

        ensure_sdk_is_this_runtime(f"{method} {path} to endpoint '{self.params.id or self.name}'")
        base, headers, identity = _client_target(self.params, queue=queue)
        return await asyncio.to_thread(_request, f"{base}{path}", body, headers, method, timeout, identity)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self.params, k)!r}" for k in sorted(self.params.given))
        return f"Endpoint({shown})"


_MIXED = ParamProblem(
    None,
    "an Endpoint is either a decorator (@ep) or a set of routes (@ep.post(...)), not both",
    "use two Endpoints with different names",
)


def _deployments() -> list[Path]:
    """The deployments flashc made for the project above the working folder and above the main script."""
    import __main__

    starts = [Path.cwd()]
    script = getattr(__main__, "__file__", None)
    if script:
        starts.append(Path(script).resolve().parent)
    found: list[Path] = []
    for start in starts:
        for folder in (start, *start.parents):
            deployment = folder / ".flash" / "deployment.json"
            if deployment.is_file():
                if deployment not in found:
                    found.append(deployment)
                break
    return found


def _client_target(params: EndpointParams, *, queue: bool) -> tuple[str, dict[str, str], Identity | None]:
    """Where a client's requests go: an endpoint flashc deployed (by resource name or endpoint id; on
    Runpod's stock images, by `FLASHC_ENDPOINTS`), else Runpod's API with RUNPOD_API_KEY; and the
    identity of an endpoint flashc runs on this machine."""
    from .client import Identity, endpoints, runpod_target

    wanted = {v for v in (params.id, params.name) if v}
    for name, target in sorted((endpoints() or {}).items()):
        if wanted & {name, target}:
            return (*runpod_target(target, load_balanced=not queue), None)
    for deployment in _deployments():
        data = json.loads(deployment.read_text(encoding="utf-8"))
        for resource, endpoint in data.get("endpoints", {}).items():
            if wanted & {resource, endpoint.get("endpoint_id")}:
                if data.get("target") == "runpod":  # the file holds no key: the caller's RUNPOD_API_KEY is it
                    return (*runpod_target(endpoint["endpoint_id"], load_balanced=not queue), None)
                identity = Identity(data["key"], endpoint["endpoint_id"])
                return endpoint["url"], {"Content-Type": "application/json"}, identity
    if params.id is None:
        raise RemoteCallError(
            f"endpoint '{params.name}' (image={params.image!r}) is not deployed: flashc deploys image endpoints "
            "on Runpod only; give id= of a running endpoint"
        )
    if not os.environ.get("RUNPOD_API_KEY"):
        raise RemoteCallError(f"set RUNPOD_API_KEY to call Runpod endpoint '{params.id}'")
    return (*runpod_target(params.id, load_balanced=not queue), None)
