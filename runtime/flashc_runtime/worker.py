"""The process that runs a queue-based endpoint's jobs, apart from the process that serves HTTP.

    python -m flashc_runtime.worker --root DIR --resource NAME

It imports the resource's handler and reads jobs as JSON lines on stdin
(`{"id": ..., "input": {...}}`), runs each as it arrives (sync functions in threads, async ones
on the event loop), and writes one JSON line per finished job on stdout:
`{"id": ..., "status": "COMPLETED", "output": ...}` or `{"id": ..., "status": "FAILED", "error": ...}`.
If user code kills this process, the server fails the jobs it was running and starts a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from .handler import drain

__all__ = ["main"]


def _failure(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{text}"


async def _serve(handler: Any, out: Any) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    def emit(job_id: str, item: Any) -> None:
        out.write(json.dumps({"id": job_id, "chunk": item}) + "\n")
        out.flush()

    async def run(job: dict[str, Any]) -> None:
        try:
            output = await drain(await handler(job), lambda item: emit(job["id"], item))
            line = json.dumps({"id": job["id"], "status": "COMPLETED", "output": output})
        except Exception as exc:  # user code failed: the job fails, the worker goes on
            line = json.dumps({"id": job["id"], "status": "FAILED", "error": _failure(exc)})
        out.write(line + "\n")
        out.flush()

    while True:
        raw = await reader.readline()
        if not raw:
            break
        job = json.loads(raw)
        task = loop.create_task(run(job))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flashc_runtime.worker")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--resource", required=True)
    args = parser.parse_args(argv)
    from .client import RESOURCE_ENV
    from .server import import_handler

    os.environ[RESOURCE_ENV] = args.resource
    # User code may print: keep the protocol on a private copy of stdout, send prints to stderr.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    handler, _ = import_handler(args.root, args.resource)
    protocol.write('{"ready": true}\n')  # the server waits for this before it serves
    asyncio.run(_serve(handler, protocol))


if __name__ == "__main__":
    main()
