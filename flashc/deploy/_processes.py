"""Endpoint processes known by more than their pid, so that a reused pid is never taken for one.

`.flash/deployment.json` outlives its processes (a crash, `kill`, a reboot), and the kernel gives
a freed pid to a later process. A pid alone made `status` report a dead endpoint running and
`undeploy` signal whatever process group had that number since. So each endpoint's record says
which process it is:

- `started`: its start time, field 22 of `/proc/<pid>/stat`, in clock ticks after boot. The kernel
  sets it at the fork, it never changes, no process chooses it, and /proc shows it for any
  process: two processes with one pid did not start in the same tick (pids are handed out in
  turn: the number would have to come round all of pid_max within one tick, 10 ms at 100 Hz). It is read right after the
  fork; the child cannot have been reaped yet, as flashc is its parent.
- `boot_id`: `/proc/sys/kernel/random/boot_id`, as ticks count from a boot and the file outlives it.
- `token`: a random `FLASHC_PROCESS_TOKEN` in the process's environment, compared with
  `/proc/<pid>/environ` when that is readable (a process of this user; another user's, flashc
  could not signal anyway). It ties the record to the process flashc started, not only to the one
  /proc showed under its pid then: where /proc is another pid namespace's (a container), those differ.

A process is the endpoint when its start time and boot match and its environment, when readable,
holds the token. A record written by an earlier flashc has none of these: its process is the
endpoint when its command line is the runtime server's with the record's endpoint id and log
file (the log's path is the project's own, so no other project's endpoint and no unrelated
process has it); a deploy that keeps such an endpoint records its start time. Without /proc (not
Linux) the pid is all there is, and a process that exists is taken for the endpoint, as before.

A process that is not the endpoint is reported stopped and never signalled. One being stopped is
waited for by its start time alone: an exiting process shows no environment.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "TOKEN_ENV",
    "alive",
    "identified",
    "identify",
    "parse_stat",
    "running",
    "same_process",
    "stop",
    "stop_group",
]

TOKEN_ENV = "FLASHC_PROCESS_TOKEN"
_PROC = Path("/proc")


def parse_stat(data: bytes) -> tuple[str, int]:
    """The state (`R`, `S`, `Z`...) and start time (clock ticks after boot) in a `/proc/<pid>/stat`.

    Its second field, the command name in parentheses, may itself hold spaces and parentheses
    (`a) (b`): the fields after it start after the last `)`. ValueError when `data` is not one."""
    name_end = data.rindex(b")")
    fields = data[name_end + 1 :].split()
    return fields[0].decode("ascii"), int(fields[19])  # fields 3 and 22 of proc(5)


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_stat((_PROC / str(pid) / "stat").read_bytes())
    except (OSError, ValueError, IndexError):
        return None


@functools.cache
def _has_proc() -> bool:
    return (_PROC / "self" / "stat").is_file()


@functools.cache
def _boot_id() -> str | None:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def identify(pid: int, token: str) -> dict[str, Any]:
    """The identity of the process `pid` flashc has just started with `token` in its environment,
    to record with its pid: its start time and boot (None without /proc), and the token."""
    stat = _stat(pid) if _has_proc() else None
    return {"started": stat[1] if stat else None, "boot_id": _boot_id() if stat else None, "token": token}


def alive(pid: int) -> bool:
    """Whether a process `pid` exists (whichever it is), reaping it when it is a finished child of ours."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a finished child of ours stays a zombie until reaped: that is not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _pid(record: Mapping[str, Any]) -> int | None:
    pid = record.get("pid") if isinstance(record, Mapping) else None
    # 0 and negative numbers are process groups to os.killpg (0: flashc's own), 1 is init.
    return pid if type(pid) is int and pid > 1 else None


def running(record: Mapping[str, Any]) -> bool:
    """Whether the endpoint process `record` (an endpoint of deployment.json) names is running:
    its pid is a live process and that process is the one flashc started for it (see the module's
    docstring). A finished child of ours that it names is reaped."""
    pid = _pid(record)
    if pid is None:
        return False
    if not _has_proc():
        return alive(pid)
    recorded = record.get("started")
    if type(recorded) is not int:  # recorded by an earlier flashc, or where there was no /proc
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X") and _runs_the_server(pid, record)
    if record.get("boot_id") != _boot_id() or not _lives(pid, recorded):
        return False
    token = record.get("token")
    if not isinstance(token, str):
        return True
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except PermissionError:
        return True  # another user's process: the start time says it all
    except OSError:
        return False  # gone since
    # Empty for a process that is exiting (its memory is gone already): stopped, too.
    return f"{TOKEN_ENV}={token}".encode() in environ.split(b"\0")


def _lives(pid: int, started: int | None) -> bool:
    """Whether process `pid`, which started at `started` (None: not known), has not ended; a
    finished child of ours is reaped."""
    if started is None:
        return alive(pid)
    stat = _stat(pid)
    if stat is None or stat[1] != started:
        return False
    if stat[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _runs_the_server(pid: int, record: Mapping[str, Any]) -> bool:
    """Whether process `pid` runs the runtime's server with the endpoint id and log file of `record`."""
    try:
        args = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False

    def after(flag: bytes) -> bytes | None:
        return args[args.index(flag) + 1] if flag in args[:-1] else None

    endpoint_id, log = record.get("endpoint_id"), record.get("log")
    return (
        b"flashc_runtime.server" in args
        and isinstance(endpoint_id, str)
        and isinstance(log, str)
        and after(b"--endpoint-id") == os.fsencode(endpoint_id)
        and after(b"--log") == os.fsencode(log)
    )


def identified(record: Mapping[str, Any]) -> dict[str, Any]:
    """`record`, of a running endpoint, with its start time and boot recorded when an earlier flashc
    recorded none (it has no token: its environment was made without one)."""
    pid = _pid(record)
    if type(record.get("started")) is int or pid is None or not _has_proc():
        return dict(record)
    stat = _stat(pid)
    return {**record, "started": stat[1], "boot_id": _boot_id()} if stat else dict(record)


def same_process(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether two records of an endpoint name one process (the later may have added its start time)."""
    started = before.get("started")
    return before.get("pid") == after.get("pid") and (started is None or started == after.get("started"))


def stop(record: Mapping[str, Any]) -> None:
    """Stop the endpoint `record` names, with its process group, if its process is still the
    endpoint's (`running`); a process that is not is left alone."""
    pid = _pid(record)
    if pid is None or not running(record):
        return
    # Until it has ended: an exiting process shows no environment, which `running` takes for stopped.
    started = identified(record).get("started")
    stop_group(pid, lambda: _lives(pid, started))


def stop_group(pid: int, running: Callable[[], bool]) -> None:
    """Stop the process group of `pid`, a process that leads it (started in a session of its own):
    TERM, then KILL if `running()` still says it runs after 3 s; give up 2 s later.

    The group is signalled by number (no pidfd names a group), after the caller made sure `pid`
    is the leader it means. The kernel gives no new process a pid that still names a group, so
    the number changes hands only after the whole group has ended and pids came round pid_max."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and running():
            time.sleep(0.05)
        if not running():
            return
