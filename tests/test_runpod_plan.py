"""The Runpod deploy plan: a pure function of what the code wants and what the server has; and the
one table from a manifest resource to Runpod's endpoint fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from flashc.deploy.runpod.payload import Desired, desired, gpu_ids
from flashc.deploy.runpod.plan import Recorded, RemoteEndpoint, ServerState, plan, plan_undeploy

SHA = "a" * 64


def resource(name: str, *, compute: str = "gpu", kind: str = "queue", **config: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "workersMin": 0,
        "workersMax": 3,
        "idleTimeout": 5,
        "executionTimeoutMs": 0,
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "locations": None,
        "flashboot": True,
        "env": None,
        "template": None,
        "networkVolume": None,
        "networkVolumes": None,
        "networkVolumeId": None,
    }
    if compute == "gpu":
        base.update(gpus=["any"], gpuCount=1, minCudaVersion=None)
    else:
        base.update(instanceIds=["cpu3c-1-2"])
    base.update(config)
    return {"name": name, "compute": compute, "kind": kind, "config": base}


def want(*resources: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Desired]:
    return {r["name"]: desired(r, env or {}, image="runpod/flash:py3.12-latest", calls_others=False) for r in resources}


def recorded(d: Desired, endpoint_id: str) -> Recorded:
    return Recorded(endpoint_id, f"t-{endpoint_id}", d.kind, d.config_hash, d.env_hash, d.endpoint, d.template)


def state(
    *endpoints: tuple[str, str], recorded: dict[str, Recorded] | None = None, sha: str | None = SHA
) -> ServerState:
    return ServerState(
        "app", "env", "build", tuple(RemoteEndpoint(i, n) for i, n in endpoints), recorded or {}, sha, {}
    )


def actions(p: Any) -> list[tuple[str, str]]:
    return [(s.action, s.name) for s in p.steps]


def test_every_field_the_user_wrote_reaches_the_endpoint() -> None:
    gpu = resource(
        "gpu",
        gpus=["NVIDIA GeForce RTX 4090", "AMPERE_80"],
        gpuCount=2,
        executionTimeoutMs=600000,
        flashboot=False,
        locations="EU-RO-1,US-KS-2",
        minCudaVersion="12.8",
        scalerType="REQUEST_COUNT",
        scalerValue=2,
        idleTimeout=120,
        template={"containerDiskInGb": 100, "dockerArgs": "--x", "startScript": "", "env": None},
    )
    d = desired(gpu, {"MODE": "a"}, image="runpod/flash:py3.12-latest", calls_others=False)
    assert d.endpoint == {
        "name": "gpu",
        "workersMin": 0,
        "workersMax": 3,
        "idleTimeout": 120,
        "executionTimeoutMs": 600000,
        "scalerType": "REQUEST_COUNT",
        "scalerValue": 2,
        "locations": "EU-RO-1,US-KS-2",
        "flashBootType": "OFF",
        "gpuIds": "ADA_24,AMPERE_80",
        "gpuCount": 2,
        "minCudaVersion": "12.8",
        "allowedCudaVersions": "",
        "type": "QB",
    }
    assert d.template["containerDiskInGb"] == 100 and d.template["dockerArgs"] == "--x"
    cpu = desired(resource("cpu", compute="cpu", kind="load_balanced"), {}, image="img", calls_others=False)
    assert cpu.endpoint["instanceIds"] == ["cpu3c-1-2"] and cpu.endpoint["type"] == "LB"
    assert not {"gpuIds", "gpuCount", "minCudaVersion"} & set(cpu.endpoint)
    assert cpu.template["containerDiskInGb"] == 10  # a cpu3c-1-2 has at most 10 GB


def test_gpu_ids_name_pools_and_exclude_the_other_models_of_a_named_one() -> None:
    assert gpu_ids(["ADA_24"]) == "ADA_24"
    assert gpu_ids(["NVIDIA L4"]) == "AMPERE_24,-NVIDIA GeForce RTX 3090,-NVIDIA RTX A5000"
    assert gpu_ids(["NVIDIA L4", "AMPERE_24"]) == "AMPERE_24"
    assert gpu_ids(["any"]).split(",")[0] == "ADA_24" and len(gpu_ids(["any"]).split(",")) == 11


def test_first_deploy_creates_everything_and_uploads() -> None:
    p = plan(
        want(resource("a"), resource("b")), dataclasses.replace(state(sha=None), app_id=None, environment_id=None), SHA
    )
    assert p.create_app and p.create_environment and p.upload
    assert actions(p) == [("create", "a"), ("create", "b")]


def test_an_unchanged_redeploy_changes_nothing() -> None:
    w = want(resource("a"), resource("b"))
    s = state(("e1", "a"), ("e2", "b"), recorded={"a": recorded(w["a"], "e1"), "b": recorded(w["b"], "e2")})
    p = plan(w, s, SHA)
    assert p.changes_nothing and actions(p) == [("keep", "a"), ("keep", "b")]


def test_code_env_and_config_changes_are_told_apart() -> None:
    before = want(resource("a"), resource("b"))
    s = state(("e1", "a"), ("e2", "b"), recorded={"a": recorded(before["a"], "e1"), "b": recorded(before["b"], "e2")})
    # New code: a new archive to upload; the endpoints stay as they are.
    assert plan(before, s, "b" * 64).upload
    # env only: the template is updated, the endpoint not.
    p = plan(want(resource("a"), resource("b"), env={"MODE": "x"}), s, SHA)
    assert actions(p) == [("update-env", "a"), ("update-env", "b")]
    # config: an update naming the fields that change.
    p = plan(want(resource("a", workersMax=5), resource("b")), s, SHA)
    assert [(st.action, st.name, st.changed) for st in p.steps] == [
        ("update", "a", ("workersMax",)),
        ("keep", "b", ()),
    ]


def test_gpu_to_cpu_replaces_and_a_removed_resource_is_deleted() -> None:
    before = want(resource("a"), resource("b"))
    s = state(("e1", "a"), ("e2", "b"), recorded={"a": recorded(before["a"], "e1"), "b": recorded(before["b"], "e2")})
    p = plan(want(resource("a", compute="cpu")), s, SHA)
    assert [(st.action, st.name, st.endpoint_id) for st in p.steps] == [("replace", "a", "e1"), ("delete", "b", "e2")]


def test_an_interrupted_deploy_converges_without_duplicates() -> None:
    w = want(resource("a"), resource("b"))
    # The last run created e1 and e2 (twice, as an answer was lost) but never recorded them.
    s = state(("e1", "a"), ("e2", "b"), ("e3", "b"), recorded={}, sha=None)
    p = plan(w, s, SHA)
    assert [(st.action, st.name, st.endpoint_id) for st in p.steps] == [
        ("update", "a", "e1"),
        ("delete", "b", "e3"),
        ("update", "b", "e2"),
    ]
    assert p.upload


def test_undeploy_deletes_what_the_server_lists() -> None:
    s = state(("e1", "a"), ("e2", "b"))
    assert [(st.action, st.endpoint_id) for st in plan_undeploy(s).steps] == [("delete", "e1"), ("delete", "e2")]
    assert [st.name for st in plan_undeploy(s, {"b"}).steps] == ["b"]
