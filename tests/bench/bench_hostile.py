"""An endpoint's memory and answers under hostile load, against its own idle baseline.

The server is the endpoints' own (`flashc_runtime.server.Endpoint` over `_http`, the code every
local endpoint runs), serving a queue resource whose function echoes its input, in a process of
its own; its resident memory is read from /proc (VmRSS now, VmHWM at peak). Scenarios, one after
the other on the same server, in this order:

| scenario        | what the clients do                                                                  |
|-----------------|--------------------------------------------------------------------------------------|
| unauthenticated | 100 connections at once each send a head for a 10 MB body without a key, then 9 MiB  |
| chunked         | the same, chunked                                                                    |
| idle            | `--idle N` connections (default 20,000, within the file limit) open and say nothing, |
|                 | then one valid request: how long it takes, the server's descriptors and log size     |
| authenticated   | 100 connections with the key each send a 9 MiB job at once: the body budget admits   |
|                 | some, the others get 503 (the admitted jobs' results are then kept, as on Runpod)    |

Printed: each scenario's answers by status, the server's peak memory during it (the peak is
reset before each), how much it grew, and its ratio to the memory of the idle server before any
of it. Targets: unauthenticated and chunked grow the server by 64 MB at most; authenticated by
the body budget (256 MiB) plus 64 MB; the valid request under 20,000 idle connections is
answered in under 1 s. A missed target is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

KEY = "bench-key"
BODY = 9 * 1024 * 1024
MB = 1024 * 1024

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from flashc_runtime.handler import create_handler
    from flashc_runtime.server import Endpoint, _rate_limited

    def echo(x):
        return x

    async def main():
        resource = {"kind": "queue", "config": {"workersMax": 4}}
        endpoint = Endpoint(create_handler({"m:echo": echo}), resource, "ep1", sys.argv[1])
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_rate_limited(loop.default_exception_handler))
        server = await loop.create_server(endpoint.protocol, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())
    """
)


def memory(pid: int) -> tuple[int, int]:
    """Resident and peak resident bytes of `pid`."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


async def _send_body(port: int, head: bytes, body: bytes, *, piece: int, pause: float) -> int:
    """Send `head`, then `body` in pieces; the status the server answered (0: none before it closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for start in range(0, len(body), piece):
            if reader.at_eof() or writer.is_closing():
                break
            writer.write(body[start : start + piece])
            try:
                await asyncio.wait_for(writer.drain(), 30)
            except (ConnectionError, TimeoutError):
                break
            if pause:
                await asyncio.sleep(pause)
        line = await asyncio.wait_for(reader.readline(), 120)
        return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0
    except (ConnectionError, TimeoutError, IndexError, ValueError):
        return 0
    finally:
        writer.close()


async def _flood(port: int, head: bytes, body: bytes, n: int, piece: int, pause: float) -> collections.Counter[int]:
    results = await asyncio.gather(*(_send_body(port, head, body, piece=piece, pause=pause) for _ in range(n)))
    return collections.Counter(results)


def _job(size: int) -> bytes:
    """A job's JSON input of exactly `size` bytes: echo a long string."""
    head, tail = b'{"input": {"function": "echo", "args": ["', b'"]}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _chunked(body: bytes, size: int) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size))


def _valid(port: int) -> tuple[int, float]:
    payload = b'{"input": {"function": "echo", "args": [1]}}'
    head = (
        f"POST /v2/ep1/runsync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + payload)
        answer = sock.recv(65536)
    return int(answer.split()[1]), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=20_000, help="idle connections to hold (0: skip)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it too
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with open(log, "wb") as out:
            server = subprocess.Popen([sys.executable, "-c", SERVER, KEY], stdout=subprocess.PIPE, stderr=out)
        assert server.stdout is not None
        port = int(server.stdout.readline())
        try:
            _run(server.pid, port, args.idle, min(args.idle, hard - 200), log)
        finally:
            server.terminate()
            server.wait(10)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _run(pid: int, port: int, wanted_idle: int, idle: int, log: Path) -> None:
    status, _ = _valid(port)
    assert status == 200, f"the server answered {status} to a valid request"
    baseline, _ = memory(pid)
    print(f"baseline: {baseline / MB:.1f} MB resident, idle")
    missed = []
    body = b"x" * BODY
    unauthenticated = [
        ("unauthenticated", b"POST /v2/ep1/run HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n", body),
        ("chunked", b"POST /v2/ep1/run HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", _chunked(body, 65536)),
    ]
    for name, head, data in unauthenticated:
        if not _bodies(pid, port, name, head, data, 0.0, 64 * MB, baseline):
            missed.append(name)
    if idle and not _idle(pid, port, idle, wanted_idle, baseline, log):
        missed.append("idle")
    head = f"POST /v2/ep1/run HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {BODY}\r\n\r\n".encode()
    if not _bodies(pid, port, "authenticated", head, _job(BODY), 0.01, (256 + 64) * MB, baseline):
        missed.append("authenticated")
    print("targets: " + ("all met" if not missed else "missed " + ", ".join(missed)))


def _bodies(
    pid: int, port: int, name: str, head: bytes, data: bytes, pause: float, allowed: int, baseline: int
) -> bool:
    """100 clients send `head` and `data` at once; whether the server's peak grew by `allowed` at most."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before, _ = memory(pid)
    started = time.monotonic()
    answers = asyncio.run(_flood(port, head, data, 100, 256 * 1024, pause))
    _, peak = memory(pid)
    ok = peak - before <= allowed
    shown = ", ".join(f"{code or 'closed'}: {count}" for code, count in sorted(answers.items()))
    print(
        f"{name:16} 100 x 9 MiB in {time.monotonic() - started:5.1f} s; answers {shown}; "
        f"peak {peak / MB:.1f} MB (+{(peak - before) / MB:.1f} MB; {peak / baseline:.2f}x baseline); "
        + ("ok" if ok else f"MISSED (target: +{allowed / MB:.0f} MB at most)")
    )
    return ok


def _idle(pid: int, port: int, idle: int, wanted_idle: int, baseline: int, log: Path) -> bool:
    """`idle` connections held open, then one valid request; whether it was answered within 1 s."""
    held = []
    try:
        for _ in range(idle):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=30))
    except OSError as exc:
        print(f"idle: stopped opening at {len(held)} connections: {exc}")
    time.sleep(1.0)
    status, took = _valid(port)
    descriptors = len(os.listdir(f"/proc/{pid}/fd"))
    rss, _ = memory(pid)
    ok = status == 200 and took < 1.0
    note = "" if idle == wanted_idle else f" (of {wanted_idle} asked: the file limit)"
    print(
        f"idle             {len(held)} idle connections{note}: a valid request got {status} in {took:.2f} s; "
        f"the server holds {descriptors} descriptors, {rss / MB:.1f} MB = {rss / baseline:.2f}x baseline; "
        f"its log {log.stat().st_size} bytes; " + ("ok" if ok else "MISSED (target: 200 within 1 s)")
    )
    for sock in held:
        sock.close()
    return ok


if __name__ == "__main__":
    main()
