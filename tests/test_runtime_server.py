"""A local endpoint speaking Runpod's serverless API, exercised over real loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flashc_runtime.handler import create_handler
from flashc_runtime.routes import create_route_handler
from flashc_runtime.server import Endpoint

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def add(a: int, b: int = 0) -> int:
    return a + b


def boom() -> None:
    raise ValueError("bad value")


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def not_json() -> object:
    return object()


def serve(handler: Any, resource: dict[str, Any]) -> Iterator[str]:
    """Run an endpoint on a free loopback port in a thread; stop it, and its jobs, afterwards."""
    loop = asyncio.new_event_loop()
    errors: list[str] = []  # anything the server let escape into the event loop is a bug
    loop.set_exception_handler(
        lambda _, context: errors.append(f"{context.get('message')}: {context.get('exception')!r}")
    )
    started = threading.Event()
    servers: list[asyncio.Server] = []

    async def run() -> None:
        endpoint = Endpoint(handler, resource, "ep1", KEY)
        server = await asyncio.get_running_loop().create_server(endpoint.protocol, "127.0.0.1", 0)
        servers.append(server)
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        # Sync jobs that were cancelled or timed out still run in threads: wait for them here,
        # or they finish against a closed loop and log from a thread while the next test runs.
        await asyncio.get_running_loop().shutdown_default_executor()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(5)
    port = servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(servers[0].close)
    thread.join(10)
    loop.close()
    assert not errors


@pytest.fixture
def queue() -> Iterator[str]:
    handler = create_handler({"m:add": add, "m:boom": boom, "m:slow": slow, "m:not_json": not_json})
    config = {"workersMax": 1, "executionTimeoutMs": 1500}
    yield from serve(handler, {"kind": "queue", "config": config})


def test_runsync_completes_with_runpods_envelope(queue: str) -> None:
    r = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "add", "args": [2, 3]}}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "COMPLETED" and body["output"] == 5
    assert isinstance(body["delayTime"], int) and isinstance(body["executionTime"], int) and body["id"]


def test_run_then_status(queue: str) -> None:
    job = httpx.post(f"{queue}/v2/ep1/run", json={"input": {"function": "add", "args": [1]}}, headers=AUTH).json()
    assert job["status"] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    for _ in range(100):
        status = httpx.get(f"{queue}/v2/ep1/status/{job['id']}", headers=AUTH).json()
        if status["status"] == "COMPLETED":
            break
        time.sleep(0.02)
    assert status["output"] == 1


def test_runsync_answers_in_progress_past_its_wait(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import flashc_runtime.server as server

    monkeypatch.setattr(server, "_RUNSYNC_WAIT", 0.2)
    started = time.monotonic()
    body = {"input": {"function": "slow", "args": [0.8]}}
    job = httpx.post(f"{queue}/v2/ep1/runsync", json=body, headers=AUTH).json()
    assert job["status"] == "IN_PROGRESS" and time.monotonic() - started < 0.7
    for _ in range(100):
        status = httpx.get(f"{queue}/v2/ep1/status/{job['id']}", headers=AUTH).json()
        if status["status"] != "IN_PROGRESS":
            break
        time.sleep(0.05)
    assert status["status"] == "COMPLETED" and status["output"] == "done"


def test_finished_results_expire_like_runpods(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import flashc_runtime.server as server

    monkeypatch.setattr(server, "RETAIN_RUNSYNC", 0.2)
    monkeypatch.setattr(server, "RETAIN_RUN", 0.6)
    sync = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "add", "args": [1]}}, headers=AUTH)
    queued = httpx.post(f"{queue}/v2/ep1/run", json={"input": {"function": "add", "args": [2]}}, headers=AUTH)
    time.sleep(0.4)
    assert httpx.get(f"{queue}/v2/ep1/status/{sync.json()['id']}", headers=AUTH).status_code == 404
    assert httpx.get(f"{queue}/v2/ep1/status/{queued.json()['id']}", headers=AUTH).json()["output"] == 2
    time.sleep(0.5)
    assert httpx.get(f"{queue}/v2/ep1/status/{queued.json()['id']}", headers=AUTH).status_code == 404
    # Expired jobs still count in the endpoint's totals.
    assert httpx.get(f"{queue}/v2/ep1/health", headers=AUTH).json()["jobs"]["completed"] == 2


def test_failures_end_failed_with_type_message_and_traceback(queue: str) -> None:
    body = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "boom"}}, headers=AUTH).json()
    assert body["status"] == "FAILED" and "output" not in body
    assert body["error"].startswith("ValueError: bad value\n") and "Traceback" in body["error"]
    unknown = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "nope"}}, headers=AUTH).json()
    assert unknown["status"] == "FAILED"
    assert "unknown function 'nope'; this endpoint serves: m:add, m:boom, m:not_json, m:slow" in unknown["error"]
    odd = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "not_json"}}, headers=AUTH).json()
    assert odd["status"] == "FAILED" and "not JSON serializable" in odd["error"]


def test_timeout_and_queueing_and_cancel(queue: str) -> None:
    timed = httpx.post(
        f"{queue}/v2/ep1/runsync", json={"input": {"function": "slow", "args": [3]}}, headers=AUTH, timeout=10
    ).json()
    assert timed["status"] == "TIMED_OUT"
    first = httpx.post(f"{queue}/v2/ep1/run", json={"input": {"function": "slow", "args": [0.5]}}, headers=AUTH).json()
    second = httpx.post(f"{queue}/v2/ep1/run", json={"input": {"function": "add", "args": [1]}}, headers=AUTH).json()
    time.sleep(0.1)
    # workersMax is 1: the second job waits in the queue, and can be cancelled there.
    assert httpx.get(f"{queue}/v2/ep1/status/{second['id']}", headers=AUTH).json()["status"] == "IN_QUEUE"
    cancelled = httpx.post(f"{queue}/v2/ep1/cancel/{second['id']}", headers=AUTH).json()
    assert cancelled["status"] == "CANCELLED"
    health = httpx.get(f"{queue}/v2/ep1/health", headers=AUTH).json()
    assert set(health) == {"jobs", "workers"} and health["jobs"]["inProgress"] in (0, 1)
    assert first["id"] != second["id"]


def test_malformed_requests_get_400_and_the_server_stays_up(queue: str) -> None:
    bad = httpx.post(f"{queue}/v2/ep1/runsync", content=b"{not json", headers=AUTH)
    assert bad.status_code == 400
    assert httpx.post(f"{queue}/v2/ep1/runsync", json=[1, 2], headers=AUTH).status_code == 400
    assert httpx.get(f"{queue}/v2/ep1/status/missing", headers=AUTH).status_code == 404
    ok = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "add", "args": [4]}}, headers=AUTH)
    assert ok.json()["output"] == 4


def test_missing_or_wrong_key_is_401(queue: str) -> None:
    assert httpx.get(f"{queue}/v2/ep1/health").status_code == 401
    assert httpx.get(f"{queue}/v2/ep1/health", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_payload_over_the_limit_is_413(queue: str) -> None:
    big = b'{"input": {"x": "' + b"a" * 10_000_001 + b'"}}'
    r = httpx.post(f"{queue}/v2/ep1/runsync", content=big, headers=AUTH)
    assert r.status_code == 413


@pytest.fixture
def routes() -> Iterator[str]:
    async def process(x: int, y: int) -> dict[str, int]:
        return {"result": x + y}

    def item(item_id: str, verbose: str = "no") -> dict[str, str]:
        return {"id": item_id, "verbose": verbose}

    handler = create_route_handler({("POST", "/api/process"): process, ("GET", "/items/{item_id}"): item})
    yield from serve(handler, {"kind": "load_balanced", "config": {"workersMax": 2}})


def test_load_balanced_routes_ping_and_errors(routes: str) -> None:
    assert httpx.get(f"{routes}/ping", headers=AUTH).json() == {"status": "healthy"}
    assert httpx.post(f"{routes}/api/process", json={"x": 5, "y": 3}, headers=AUTH).json() == {"result": 8}
    got = httpx.get(f"{routes}/items/42?verbose=yes", headers=AUTH).json()
    assert got == {"id": "42", "verbose": "yes"}
    assert httpx.get(f"{routes}/nope", headers=AUTH).status_code == 404
    assert httpx.get(f"{routes}/api/process", headers=AUTH).status_code == 405
    assert httpx.post(f"{routes}/api/process", json={"x": 1}, headers=AUTH).status_code == 400
    assert httpx.get(f"{routes}/ping").status_code == 401


def test_generator_functions_stream(tmp_path: object) -> None:
    def count(n: int) -> Any:
        for i in range(n):
            time.sleep(0.05)
            yield i

    async def letters() -> Any:
        for c in "ab":
            yield c

    handler = create_handler({"m:count": count, "m:letters": letters})
    for url in serve(handler, {"kind": "queue", "config": {"workersMax": 2}}):
        job = httpx.post(f"{url}/v2/ep1/run", json={"input": {"function": "count", "args": [5]}}, headers=AUTH).json()
        seen: list[int] = []
        for _ in range(200):
            part = httpx.get(f"{url}/v2/ep1/stream/{job['id']}", headers=AUTH).json()
            seen += [chunk["output"] for chunk in part["stream"]]
            if part["status"] == "COMPLETED":
                break
            time.sleep(0.02)
        assert seen == [0, 1, 2, 3, 4]  # each item once, in order, as it came
        final = httpx.get(f"{url}/v2/ep1/status/{job['id']}", headers=AUTH).json()
        assert final["output"] == [0, 1, 2, 3, 4]
        done = httpx.post(f"{url}/v2/ep1/runsync", json={"input": {"function": "letters"}}, headers=AUTH).json()
        assert done["output"] == ["a", "b"]


def _post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_a_cancelled_running_job_frees_its_slot_and_a_gone_client_harms_nothing(queue: str) -> None:
    # workersMax is 1: the slow job holds the only slot until it is cancelled.
    slow = httpx.post(f"{queue}/v2/ep1/run", json={"input": {"function": "slow", "args": [1.0]}}, headers=AUTH).json()
    time.sleep(0.05)
    assert httpx.post(f"{queue}/v2/ep1/cancel/{slow['id']}", headers=AUTH).json()["status"] == "CANCELLED"
    started = time.monotonic()
    quick = httpx.post(f"{queue}/v2/ep1/runsync", json={"input": {"function": "add", "args": [5]}}, headers=AUTH)
    assert quick.json()["output"] == 5 and time.monotonic() - started < 0.5
    # A client that hangs up while its /runsync waits: the job still ends, the server goes on.
    import socket

    host, port = queue.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(_post("/v2/ep1/runsync", b'{"input": {"function": "slow", "args": [0.2]}}'))
    time.sleep(0.4)
    health = httpx.get(f"{queue}/v2/ep1/health", headers=AUTH).json()
    assert health["jobs"]["completed"] == 2 and health["jobs"]["inProgress"] == 0


def test_bodies_too_deep_to_read_get_400(queue: str, routes_url: str) -> None:
    deep = b'{"input": {"args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert httpx.post(f"{queue}/v2/ep1/runsync", content=deep, headers=AUTH).status_code == 400
    assert httpx.post(f"{routes_url}/api/process", content=deep, headers=AUTH).status_code == 400


@pytest.fixture
def routes_url() -> Iterator[str]:
    def process(x: int, y: int) -> dict[str, int]:
        return {"result": x + y}

    def odd() -> object:
        return {1, 2}

    def leave() -> None:
        raise SystemExit(3)

    class HTTPException(Exception):  # FastAPI's, as the runtime reads it: a status and a detail
        def __init__(self, status_code: int, detail: object) -> None:
            self.status_code, self.detail = status_code, detail

    def odd_detail() -> None:
        raise HTTPException(400, {1, 2})

    handler = create_route_handler(
        {
            ("POST", "/api/process"): process,
            ("GET", "/odd"): odd,
            ("GET", "/leave"): leave,
            ("GET", "/detail"): odd_detail,
        }
    )
    yield from serve(handler, {"kind": "load_balanced", "config": {"workersMax": 2}})


def test_a_route_that_returns_no_json_or_exits_gets_500_and_the_server_goes_on(routes_url: str) -> None:
    odd = httpx.get(f"{routes_url}/odd", headers=AUTH)
    assert odd.status_code == 500 and odd.json()["error"].startswith("TypeError: Object of type set")
    leave = httpx.get(f"{routes_url}/leave", headers=AUTH)
    assert leave.status_code == 500 and leave.json()["error"].startswith("SystemExit: 3")
    detail = httpx.get(f"{routes_url}/detail", headers=AUTH, timeout=10)  # answered, not left waiting
    assert detail.status_code == 500 and "not JSON" in detail.json()["error"]
    assert httpx.post(f"{routes_url}/api/process", json={"x": 1, "y": 2}, headers=AUTH).json() == {"result": 3}


def test_bodies_not_in_utf8_and_pickles_not_in_ascii_get_400(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = '{"input": {"function": "add", "args": [1]}}'
    utf16 = httpx.post(f"{queue}/v2/ep1/runsync", content=body.encode("utf-16"), headers=AUTH)
    assert utf16.status_code == 400 and utf16.json()["error"] == "the body must be JSON in UTF-8"
    monkeypatch.setenv("FLASHC_PICKLE_SECRET", "s")
    odd = {"input": {"pickled": "\u00e9", "signature": "ab", "issued": 1, "nonce": "n"}}
    refused = httpx.post(f"{queue}/v2/ep1/runsync", json=odd, headers=AUTH)
    assert refused.status_code == 400 and "both ASCII" in refused.json()["error"]
