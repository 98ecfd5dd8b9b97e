"""A job of a queue endpoint, as the server keeps it: its state, its result, and how it shows.

Shared by the endpoint (`server`) and the worker supervision (`_supervise`). The output and a
generator's items are JSON text, as the worker sent them: they go into answers as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from ._http import Respond

__all__ = ["Job", "Settle", "Waiter", "with_raw"]


@dataclasses.dataclass(slots=True)
class Job:
    id: str
    input: Any  # for an in-process handler; dropped once the job starts
    body: bytes | None = None  # the request as a worker gets it; dropped once the job starts
    status: str = "IN_QUEUE"
    output: bytes = b"null"  # JSON text
    error: str | None = None
    queued_at: float = dataclasses.field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    done: bool = False  # finished, failed, cancelled or timed out
    task: asyncio.Task[None] | None = None  # the in-process run, when there is no worker process
    timer: asyncio.TimerHandle | None = None  # ends it TIMED_OUT
    stream: list[bytes] = dataclasses.field(default_factory=list)  # a generator's items so far, as JSON
    streamed: int = 0  # how many of them /stream has handed out
    retain: float = 0.0  # seconds its result is kept once it has finished
    waiters: list[Waiter] = dataclasses.field(default_factory=list)  # /runsync calls waiting

    def envelope(self) -> bytes:
        """The job as Runpod's API shows it, encoded: the output goes in as the JSON it came as."""
        fields: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started_at is not None:
            fields["delayTime"] = round((self.started_at - self.queued_at) * 1000)
        if self.started_at is not None and self.finished_at is not None:
            fields["executionTime"] = round((self.finished_at - self.started_at) * 1000)
        if self.error is not None:
            fields["error"] = self.error
        if self.status == "COMPLETED":
            return with_raw(fields, "output", self.output)
        return json.dumps(fields).encode()


def with_raw(fields: dict[str, Any], name: str, raw: bytes) -> bytes:
    """`fields` as a JSON object, with one more member whose value is JSON text already."""
    return b'%s, "%s": %s}' % (json.dumps(fields).encode()[:-1], name.encode(), raw)


# A running job's end: the job, COMPLETED or FAILED, and its output (JSON text) or error.
Settle = Callable[[Job, str, Any], None]


class Waiter:
    """A /runsync call waiting for its job: answered when the job ends, or when its wait runs out."""

    __slots__ = ("deadline", "respond")

    def __init__(self, respond: Respond, deadline: float) -> None:
        self.respond, self.deadline = respond, deadline
