"""The Runpod client (`flashc/deploy/runpod/`: api, operations, upload, credentials) against FakeRunpod."""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runpod_fake import API_KEY, FakeRunpod, Fault, _Reader, validate

from flashc import __version__
from flashc.deploy.runpod import (
    ApiKey,
    App,
    AuthError,
    Build,
    EndpointRef,
    Environment,
    EnvironmentRef,
    RunpodApi,
    RunpodError,
    Unreachable,
    UploadError,
    find_api_key,
    put_archive,
)
from flashc.deploy.runpod import operations as ops
from flashc.deploy.runpod import upload as upload_module


class Clock:
    """A clock a test moves by hand; it starts at the real time, which put_archive reads by default."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeRunpod:
    return FakeRunpod(clock=clock)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def api(fake: FakeRunpod, sleeps: list[float]) -> Iterator[RunpodApi]:
    with RunpodApi(ApiKey(API_KEY), transport=fake.transport, sleep=sleeps.append) as client:
        yield client


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)  # 10,242 bytes
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def template(**env: str) -> dict[str, Any]:
    return {
        "name": "demo-gpu__template",
        "imageName": "runpod/flash:py3.12-latest",
        "containerDiskInGb": 64,
        "dockerArgs": "",
        "env": [{"key": k, "value": v} for k, v in env.items()],
        "ports": "",
        "startScript": "",
        "advancedStart": False,
        "config": {},
        "containerRegistryAuthId": "",
    }


def endpoint_input(env_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "demo-gpu",
        "type": "QB",
        "gpuIds": "ADA_24",
        "gpuCount": 1,
        "idleTimeout": 60,
        "executionTimeoutMs": 0,
        "minCudaVersion": "12.8",
        "allowedCudaVersions": "",
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "workersMin": 0,
        "workersMax": 3,
        "workersPFBTarget": 0,
        "flashBootType": "FLASHBOOT",
        "flashEnvironmentId": env_id,
        **extra,
    }


def deployed(api: RunpodApi, archive: Path, manifest: dict[str, Any] | None = None) -> tuple[App, Environment, Build]:
    app = api.create_app("demo")
    env = api.create_environment(app.id, "dev")
    size = archive.stat().st_size
    key = put_archive(api, lambda: api.prepare_upload(app.id, size), archive, sha256=sha(archive), sleep=lambda s: None)
    build = api.finalize_upload(app.id, key, manifest or {"version": "1.0", "resources": {}})
    api.deploy_build(env.id, build.id)
    return app, env, build


# -- credentials ----------------------------------------------------------------------------------


def test_key_from_the_environment_first(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RUNPOD_API_KEY=rpa_fromdotenv0000000000\n")
    key = find_api_key(tmp_path, {"RUNPOD_API_KEY": "rpa_fromenviron00000000001", "HOME": str(tmp_path)})
    assert key is not None
    assert (key.reveal(), key.source) == ("rpa_fromenviron00000000001", "environment")


def test_key_from_dotenv_then_runpod_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".runpod").mkdir(parents=True)
    (home / ".runpod" / "config.toml").write_text('[default]\napi_key = "rpa_fromconfig000000000001"\n')
    project = tmp_path / "project"
    project.mkdir()
    key = find_api_key(project, {"HOME": str(home), "RUNPOD_API_KEY": "  "})
    assert key is not None
    assert (key.reveal(), key.source) == ("rpa_fromconfig000000000001", "~/.runpod/config.toml")
    (project / ".env").write_text("# secrets\nexport RUNPOD_API_KEY='rpa_fromdotenv0000000001'\n")
    key = find_api_key(project, {"HOME": str(home)})
    assert key is not None
    assert (key.reveal(), key.source) == ("rpa_fromdotenv0000000001", ".env")


def test_runpodctl_apikey_only_without_a_default_profile(tmp_path: Path) -> None:
    config = tmp_path / ".runpod" / "config.toml"
    config.parent.mkdir()
    config.write_text('apikey = "rpa_runpodctl000000000001"\napiurl = "https://api.runpod.io/graphql"\n')
    key = find_api_key(tmp_path / "nowhere", {"HOME": str(tmp_path)})
    assert key is not None and key.reveal() == "rpa_runpodctl000000000001"
    config.write_text('apikey = "rpa_runpodctl000000000001"\n[default]\nother = 1\n')
    assert find_api_key(tmp_path / "nowhere", {"HOME": str(tmp_path)}) is None
    config.write_text("this is [not toml")
    assert find_api_key(tmp_path / "nowhere", {"HOME": str(tmp_path)}) is None


def test_the_key_never_shows() -> None:
    key = ApiKey("rpa_SECRETSECRETSECRETWXYZ", ".env")
    assert repr(key) == "ApiKey(rpa_…WXYZ, from .env)"
    assert str(key) == "rpa_…WXYZ"
    assert f"{key}" == "rpa_…WXYZ"
    assert "SECRET" not in repr([key]) and "SECRET" not in str({"k": key})
    assert str(ApiKey("short")) == "…"
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert copy.deepcopy({"key": key})["key"] is key
    with pytest.raises(AttributeError):
        key.source = "environment"  # type: ignore[misc]


# -- round trips ----------------------------------------------------------------------------------


def test_apps_and_environments_round_trip(api: RunpodApi, fake: FakeRunpod) -> None:
    assert api.app_by_name("demo") is None  # the server says "app not found"
    app = api.create_app("demo")
    assert app == App(app.id, "demo", ())
    env = api.create_environment(app.id, "dev")
    assert env == Environment(env.id, "dev")
    found = api.app_by_name("demo")
    assert found == App(app.id, "demo", (EnvironmentRef(env.id, "dev", None),))
    assert found.environment("dev") is not None and found.environment("prod") is None
    assert api.environment_by_name(app.id, "dev") == env
    assert api.environment_by_name(app.id, "prod") is None  # null, as the server answers
    assert api.environment(env.id) == env
    assert api.environment("env-nope") is None
    assert fake.rejected == []
    assert api.calls == len(fake.calls) == 8


def test_requests_carry_the_key_the_user_agent_and_the_envelope(api: RunpodApi, fake: FakeRunpod) -> None:
    api.app_by_name("demo")
    request = fake.requests[-1]
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["User-Agent"] == f"flashc/{__version__}"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    assert body == {"query": ops.GET_APP_BY_NAME.document, "variables": {"flashAppName": "demo"}}


def test_builds_round_trip(api: RunpodApi, fake: FakeRunpod, archive: Path) -> None:
    manifest = {"version": "1.0", "resources": {"demo-gpu": {"functions": []}}}
    app, env, build = deployed(api, archive, manifest)
    assert build.manifest == manifest
    assert fake.uploaded(sha(archive))
    (ref,) = api.builds(app.id)
    assert ref.id == build.id and ref.object_key and ref.created_at
    assert api.build(build.id) == build
    assert api.build("build-nope") is None
    assert api.environment(env.id).active_build_id == build.id  # type: ignore[union-attr]
    api.update_build_manifest(build.id, {**manifest, "resources_endpoints": {"demo-gpu": "https://x"}})
    assert api.build(build.id).manifest["resources_endpoints"] == {"demo-gpu": "https://x"}  # type: ignore[union-attr,index]
    assert fake.rejected == []


def test_endpoints_and_templates_round_trip(api: RunpodApi, fake: FakeRunpod) -> None:
    app = api.create_app("demo")
    env = api.create_environment(app.id, "dev")
    saved = api.save_endpoint(endpoint_input(env.id, template=template(FOO="1")))
    assert saved["name"] == "demo-gpu" and saved["flashEnvironmentId"] == env.id and saved["templateId"]
    assert "aiKey" not in saved  # a per-endpoint secret flashc does not ask for
    assert api.environment(env.id).endpoints == (EndpointRef(saved["id"], "demo-gpu"),)  # type: ignore[union-attr]
    assert api.endpoint_exists(saved["id"]) and not api.endpoint_exists("ep-nope")
    tpl = api.template(saved["templateId"])
    assert tpl is not None and tpl["env"] == [{"key": "FOO", "value": "1"}] and tpl["imageName"].startswith("runpod/")
    assert api.template("tpl-nope") is None
    updated = api.save_template(
        {
            "id": tpl["id"],
            "name": tpl["name"],
            "imageName": tpl["imageName"],
            "containerDiskInGb": 64,
            "dockerArgs": "",
            "env": [{"key": "FOO", "value": "2"}],
            "volumeInGb": 0,
        }
    )
    assert updated["env"] == [{"key": "FOO", "value": "2"}]
    again = api.save_endpoint(endpoint_input(env.id, id=saved["id"], templateId=saved["templateId"], workersMax=5))
    assert (again["id"], again["workersMax"]) == (saved["id"], 5)
    assert len(fake.endpoints) == 1
    api.delete_endpoint(saved["id"])
    assert not api.endpoint_exists(saved["id"])
    assert fake.rejected == []


def test_volumes_round_trip(api: RunpodApi, fake: FakeRunpod) -> None:
    assert api.volumes() == []
    made = api.create_volume("models", 50, "EU-RO-1")
    assert made == {"id": made["id"], "name": "models", "size": 50, "dataCenterId": "EU-RO-1"}
    assert api.volumes() == [made]
    assert fake.calls[1] == ("POST networkvolumes", {"dataCenterId": "EU-RO-1", "name": "models", "size": 50})
    assert fake.requests[1].headers["Authorization"] == f"Bearer {API_KEY}"


def test_volumes_also_accepts_an_object_holding_the_list() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"networkVolumes": [{"id": "v1", "name": "m"}]})

    with RunpodApi(ApiKey(API_KEY), transport=httpx.MockTransport(handler)) as api:
        assert api.volumes() == [{"id": "v1", "name": "m"}]


def test_every_document_is_valid_against_the_fakes_schema() -> None:
    for op in ops.OPERATIONS.values():
        doc = _Reader(op.document).document()
        assert (doc.name, doc.kind, doc.selections[0].name) == (op.name, op.kind, op.root)
        assert validate(doc) == [], op.name


# -- errors and retries ---------------------------------------------------------------------------


def test_a_rejected_key_is_an_auth_error_without_the_key(fake: FakeRunpod) -> None:
    wrong = ApiKey("rpa_WRONGWRONGWRONGWRONG1234")
    with RunpodApi(wrong, transport=fake.transport) as api, pytest.raises(AuthError) as caught:
        api.create_app("demo")
    error = caught.value
    assert str(error) == "RUNPOD_API_KEY was rejected (HTTP 401)"
    assert error.status == 401 and not error.retryable
    assert error.hint == "the key (rpa_…1234) came from environment; make a new one in Runpod's console"
    for text in (str(error), repr(error), error.hint or "", repr(api)):
        assert "WRONGWRONG" not in text
    assert fake.count("createFlashApp") == 1 and fake.apps == {}


def test_a_rejected_key_on_rest_is_an_auth_error_too(fake: FakeRunpod, sleeps: list[float]) -> None:
    wrong = ApiKey("rpa_WRONGWRONGWRONGWRONG1234")
    with (
        RunpodApi(wrong, transport=fake.transport, sleep=sleeps.append) as api,
        pytest.raises(AuthError, match=r"^RUNPOD_API_KEY was rejected \(HTTP 401\)$"),
    ):
        api.volumes()
    assert fake.count("GET networkvolumes") == 1 and sleeps == []


def test_server_text_is_shown_without_the_key_or_a_presigned_query(api: RunpodApi, fake: FakeRunpod) -> None:
    fake.inject(
        "createFlashApp",
        Fault.graphql_error(f"bad key {API_KEY} for https://bucket.s3.amazonaws.com/a.tgz?X-Amz-Signature=abc"),
    )
    with pytest.raises(RunpodError) as caught:
        api.create_app("demo")
    assert str(caught.value) == (
        "Runpod API: createFlashApp: bad key rpa_…STUV for https://bucket.s3.amazonaws.com/a.tgz?…"
    )
    assert API_KEY not in repr(caught.value) and "abc" not in repr(caught.value)


def test_a_query_is_retried_on_5xx_and_timeouts(api: RunpodApi, fake: FakeRunpod, sleeps: list[float]) -> None:
    api.create_app("demo")
    fake.inject("getFlashAppByName", Fault.status(503), Fault.timeout(), Fault.timeout("connect"))
    assert api.app_by_name("demo") is not None
    assert fake.count("getFlashAppByName") == 4
    assert sleeps == [1, 2, 4]


def test_a_query_gives_up_after_four_attempts(api: RunpodApi, fake: FakeRunpod, sleeps: list[float]) -> None:
    fake.inject("getFlashAppByName", Fault.status(502, times=4))
    with pytest.raises(RunpodError) as caught:
        api.app_by_name("demo")
    assert (caught.value.status, caught.value.retryable) == (502, True)
    assert fake.count("getFlashAppByName") == 4 and sleeps == [1, 2, 4]
    fake.inject("getFlashAppByName", Fault.timeout(times=4))
    with pytest.raises(Unreachable) as unreachable:
        api.app_by_name("demo")
    assert str(unreachable.value) == "Runpod API: getFlashAppByName: timed out (ReadTimeout) talking to api.runpod.io"
    assert unreachable.value.retryable and not unreachable.value.maybe_applied


def test_a_query_is_retried_when_the_server_says_try_again(api: RunpodApi, fake: FakeRunpod) -> None:
    fake.inject("getFlashAppByName", Fault.graphql_error("Service Unavailable, please try again later"))
    assert api.app_by_name("demo") is None
    assert fake.count("getFlashAppByName") == 2


def test_a_4xx_or_a_plain_graphql_error_is_not_retried(api: RunpodApi, fake: FakeRunpod, sleeps: list[float]) -> None:
    fake.inject("getFlashAppByName", Fault.status(400, '{"errors": [{"message": "bad"}]}'))
    with pytest.raises(RunpodError) as caught:
        api.app_by_name("demo")
    assert (caught.value.status, caught.value.retryable, caught.value.messages) == (400, False, ("bad",))
    fake.inject("getFlashAppByName", Fault.graphql_error("permission denied"))
    with pytest.raises(RunpodError, match="permission denied"):
        api.app_by_name("demo")
    assert fake.count("getFlashAppByName") == 2 and sleeps == []


def test_a_mutation_is_sent_once(api: RunpodApi, fake: FakeRunpod, sleeps: list[float]) -> None:
    fake.inject("createFlashApp", Fault.status(503))
    with pytest.raises(RunpodError) as caught:
        api.create_app("demo")
    assert (caught.value.status, caught.value.retryable, caught.value.maybe_applied) == (503, True, True)
    fake.inject("createFlashApp", Fault.connect_error())
    with pytest.raises(Unreachable) as unreachable:
        api.create_app("demo")
    assert unreachable.value.retryable and not unreachable.value.maybe_applied  # it never left
    assert fake.count("createFlashApp") == 2 and sleeps == [] and fake.apps == {}


def test_a_mutation_applied_but_its_answer_lost(api: RunpodApi, fake: FakeRunpod) -> None:
    fake.inject("createFlashApp", Fault.lost_answer())
    with pytest.raises(Unreachable) as caught:
        api.create_app("demo")
    assert caught.value.retryable and caught.value.maybe_applied
    assert api.app_by_name("demo") is not None  # the caller reads again instead of creating twice
    fake.inject("createFlashEnvironment", Fault.slow(301))  # longer than the client's 300 s
    app = api.app_by_name("demo")
    assert app is not None
    with pytest.raises(Unreachable):
        api.create_environment(app.id, "dev")
    assert api.environment_by_name(app.id, "dev") is not None
    assert fake.delays == [("createFlashEnvironment", 301)]


def test_a_slow_answer_within_the_timeout_is_only_recorded(api: RunpodApi, fake: FakeRunpod) -> None:
    fake.inject("getFlashAppByName", Fault.slow(12))
    assert api.app_by_name("demo") is None
    assert fake.delays == [("getFlashAppByName", 12)] and fake.count("getFlashAppByName") == 1


def test_rest_reads_are_retried_and_creations_are_not(api: RunpodApi, fake: FakeRunpod, sleeps: list[float]) -> None:
    fake.inject("GET networkvolumes", Fault.status(500), Fault.timeout())
    assert api.volumes() == []
    fake.inject("POST networkvolumes", Fault.status(500))
    with pytest.raises(RunpodError) as caught:
        api.create_volume("models", 50, "EU-RO-1")
    assert str(caught.value).startswith("Runpod API: POST /networkvolumes: HTTP 500")
    assert caught.value.retryable and sleeps == [1, 2]
    assert fake.count("POST networkvolumes") == 1 and fake.volumes == {}


def test_a_non_json_answer_is_a_retryable_error(api: RunpodApi, fake: FakeRunpod) -> None:
    fake.inject("getFlashAppByName", Fault.status(200, "<html>gateway</html>", times=4))
    with pytest.raises(RunpodError, match="the answer is not JSON") as caught:
        api.app_by_name("demo")
    assert caught.value.retryable


# -- upload ---------------------------------------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_module, "CHUNK_SIZE", 4096)


def slots(api: RunpodApi, app_id: str, size: int, given: list[str]) -> Any:
    def provide() -> Any:
        slot = api.prepare_upload(app_id, size)
        given.append(slot.object_key)
        return slot

    return provide


def test_upload_streams_with_progress_and_no_authorization(
    api: RunpodApi, fake: FakeRunpod, archive: Path, small_chunks: None
) -> None:
    app = api.create_app("demo")
    size = archive.stat().st_size
    seen: list[tuple[int, int]] = []
    key = put_archive(
        api,
        lambda: api.prepare_upload(app.id, size),
        archive,
        sha256=sha(archive),
        progress=lambda s, t: seen.append((s, t)),
    )
    assert seen == [(0, size), (4096, size), (8192, size), (size, size)]
    put = fake.requests[-1]
    assert put.method == "PUT" and "Authorization" not in put.headers
    assert put.headers["Content-Type"] == "application/gzip"
    assert put.headers["Content-Length"] == str(size) and "Transfer-Encoding" not in put.headers
    assert fake.uploads[key].data == archive.read_bytes() and fake.uploads[key].attempts == 1
    assert api.calls == len(fake.calls) and fake.rejected == []


def test_upload_starts_again_after_a_reset(
    api: RunpodApi, fake: FakeRunpod, archive: Path, small_chunks: None, sleeps: list[float]
) -> None:
    app = api.create_app("demo")
    size = archive.stat().st_size
    fake.inject("upload", Fault.reset(after=5000), Fault.status(503))
    seen: list[int] = []
    upload_sleeps: list[float] = []
    key = put_archive(
        api,
        lambda: api.prepare_upload(app.id, size),
        archive,
        sha256=sha(archive),
        progress=lambda s, t: seen.append(s),
        sleep=upload_sleeps.append,
    )
    assert upload_sleeps == [2, 4] and fake.uploads[key].attempts == 3
    assert fake.uploads[key].sha256 == sha(archive)
    assert seen[:3] == [0, 4096, 0] and seen.count(0) == 3 and seen[-1] == size  # each attempt from the start
    assert fake.count("PrepareArtifactUpload") == 1


def test_upload_gives_up_after_five_attempts_without_the_query(api: RunpodApi, fake: FakeRunpod, archive: Path) -> None:
    app = api.create_app("demo")
    size = archive.stat().st_size
    fake.inject("upload", Fault.timeout(times=5))
    upload_sleeps: list[float] = []
    with pytest.raises(UploadError) as caught:
        put_archive(
            api, lambda: api.prepare_upload(app.id, size), archive, sha256=sha(archive), sleep=upload_sleeps.append
        )
    (upload,) = fake.uploads.values()
    assert str(caught.value) == (
        f"the archive's upload to https://flash-artifacts.s3.us-east-1.amazonaws.com/{upload.object_key}?… "
        "timed out (ReadTimeout), 5 attempts"
    )
    assert caught.value.retryable and "X-Amz" not in repr(caught.value)
    assert upload_sleeps == [2, 4, 8, 16] and upload.data is None


def test_upload_asks_a_new_slot_when_the_url_expired(
    api: RunpodApi, fake: FakeRunpod, archive: Path, clock: Clock
) -> None:
    app = api.create_app("demo")
    size = archive.stat().st_size
    given: list[str] = []
    fake.inject("upload", Fault.expired())  # S3's 403 "Request has expired"
    key = put_archive(api, slots(api, app.id, size, given), archive, sha256=sha(archive), sleep=lambda s: None)
    assert given == [given[0], key] and fake.uploads[given[0]].data is None
    assert fake.uploads[key].sha256 == sha(archive)
    # A slot already expired by its expiresAt is not even tried: no PUT to it.
    given.clear()
    puts = fake.count("upload")

    def expired_first() -> Any:
        slot = slots(api, app.id, size, given)()
        if len(given) == 1:
            clock.now += fake.upload_ttl + 1  # both sides read this clock
        return slot

    key = put_archive(api, expired_first, archive, sha256=sha(archive), clock=clock)
    assert given == [given[0], key] and fake.count("upload") == puts + 1


def test_upload_fails_at_once_on_another_403(api: RunpodApi, fake: FakeRunpod, archive: Path) -> None:
    app = api.create_app("demo")
    size = archive.stat().st_size
    denied = '<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
    fake.inject("upload", Fault.status(403, denied))
    with pytest.raises(UploadError) as caught:
        put_archive(api, lambda: api.prepare_upload(app.id, size), archive, sha256=sha(archive), sleep=lambda s: None)
    assert str(caught.value).endswith("was refused: HTTP 403 (AccessDenied: Access Denied)")
    assert "X-Amz" not in str(caught.value) and not caught.value.retryable
    assert fake.count("upload") == 1 and fake.count("PrepareArtifactUpload") == 1


def test_upload_refuses_an_archive_that_changed(api: RunpodApi, fake: FakeRunpod, archive: Path) -> None:
    app = api.create_app("demo")
    size = archive.stat().st_size
    with pytest.raises(UploadError, match="changed while it was uploaded"):
        put_archive(api, lambda: api.prepare_upload(app.id, size), archive, sha256="0" * 64)


def test_upload_through_a_plain_client(fake: FakeRunpod, archive: Path) -> None:
    with RunpodApi(ApiKey(API_KEY), transport=fake.transport) as api, httpx.Client(transport=fake.transport) as client:
        app = api.create_app("demo")
        size = archive.stat().st_size
        key = put_archive(client, lambda: api.prepare_upload(app.id, size), archive, sha256=sha(archive))
        assert fake.uploads[key].sha256 == sha(archive)
        assert api.calls == len(fake.calls) - 1  # the PUT went through the other client


def test_finalize_needs_the_upload(api: RunpodApi, fake: FakeRunpod) -> None:
    app = api.create_app("demo")
    slot = api.prepare_upload(app.id, 100)
    assert "X-Amz-Signature" not in repr(slot)
    with pytest.raises(RunpodError, match="artifact not found"):
        api.finalize_upload(app.id, slot.object_key, {"version": "1.0"})
    assert fake.builds == {}


# -- the fake's own checks --------------------------------------------------------------------------


def raw(fake: FakeRunpod, document: str, variables: dict[str, Any], *, key: str | None = API_KEY) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    with httpx.Client(transport=fake.transport) as client:
        return client.post(
            "https://api.runpod.io/graphql", json={"query": document, "variables": variables}, headers=headers
        )


def test_the_fake_rejects_a_bad_endpoint_input(api: RunpodApi, fake: FakeRunpod) -> None:
    env = api.create_environment(api.create_app("demo").id, "dev")
    bad = endpoint_input(env.id, template=template(), workersMax="3", scalerType="FAST", nmae="x")
    del bad["name"]
    response = raw(fake, ops.SAVE_ENDPOINT.document, {"input": bad})
    assert response.status_code == 400
    messages = [e["message"] for e in response.json()["errors"]]
    assert [m.split("; ", 1)[1] for m in messages] == [
        'Value "FAST" does not exist in "ScalerType" enum.',
        'Int cannot represent non-integer value: "3"',
        'Field "nmae" is not defined by type "EndpointInput".',
        'Field "name" of required type "String!" was not provided.',
    ]
    assert messages[1].startswith('Variable "$input" got invalid value "3" at "input.workersMax"; ')
    assert fake.endpoints == {} and [r.name for r in fake.rejected] == ["saveEndpoint"]
    with pytest.raises(RunpodError, match='Field "nmae" is not defined by type "EndpointInput"') as caught:
        api.save_endpoint({"nmae": "x"})
    assert caught.value.status == 400 and not caught.value.retryable


def test_the_fake_rejects_bad_documents_and_variables(fake: FakeRunpod) -> None:
    cases = [
        ('query x { flashAppz(flashAppName: "a") { id } }', {}, 'Cannot query field "flashAppz" on type "Query".'),
        (
            "query getFlashAppByName($flashAppName: String!) {"
            " flashAppByName(flashAppName: $flashAppName) { id sizes } }",
            {"flashAppName": "a"},
            'Cannot query field "sizes" on type "FlashApp".',
        ),
        (
            "query q($n: String) { flashAppByName(flashAppName: $n) { id } }",
            {"n": "a"},
            'Variable "$n" of type "String" used in position expecting type "String!".',
        ),
        (
            ops.FINALIZE_UPLOAD.document,
            {"input": {"flashAppId": "a", "objectKey": "k", "manifest": '{"version": "1.0"}'}},
            'Variable "$input" got invalid value "{\\"version\\": \\"1.0\\"}" at "input.manifest"; '
            'JSONObject cannot represent non-object value: "{\\"version\\": \\"1.0\\"}"',
        ),
        (ops.CREATE_APP.document, {}, 'Variable "$input" of required type "CreateFlashAppInput!" was not provided.'),
        (
            'mutation m { deleteEndpoint(id: "x") { id } }',
            {},
            'Field "deleteEndpoint" must not have a selection since type "Boolean" has no subfields.',
        ),
    ]
    for document, variables, message in cases:
        response = raw(fake, document, variables)
        assert response.status_code == 400, document
        assert response.json()["errors"][0]["message"] == message
    assert len(fake.rejected) == len(cases)
    response = raw(fake, ops.CREATE_APP.document, {"input": {"name": "demo"}}, key=None)
    assert response.status_code == 401 and fake.apps == {}


def test_the_fake_answers_unknown_apps_as_runpod_does(fake: FakeRunpod) -> None:
    response = raw(fake, ops.GET_APP_BY_NAME.document, {"flashAppName": "nope"})
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == "app not found"


def test_the_fake_serves_the_data_plane(api: RunpodApi, fake: FakeRunpod) -> None:
    env = api.create_environment(api.create_app("demo").id, "dev")
    endpoint_id = api.save_endpoint(endpoint_input(env.id, template=template()))["id"]
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(transport=fake.transport, base_url="https://api.runpod.ai/v2") as client:
        health = client.get(f"/{endpoint_id}/health", headers=auth)
        assert health.status_code == 200 and set(health.json()) == {"jobs", "workers"}
        assert client.get("/ep-nope/health", headers=auth).status_code == 404
        job = client.post(f"/{endpoint_id}/runsync", json={"input": {"function": "f", "args": [1]}}, headers=auth)
        assert job.json()["status"] == "COMPLETED" and job.json()["output"] == {"function": "f", "args": [1]}
        assert client.post(f"/{endpoint_id}/runsync", json={"input": 1}).status_code == 401
    assert fake.count("runsync") == 2 and fake.count("health") == 2
