"""The handler factory generated handlers call: a Runpod job in, the function's result out."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from flashc_runtime import LiveServerless, remote
from flashc_runtime.handler import MAX_INSTANCES, RequestError, create_handler

cfg = LiveServerless(name="t")


def add(a: int, b: int = 0) -> int:
    return a + b


async def slow_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@remote(cfg)
def decorated(x: int) -> str:
    return f"raw {x}"


class Model:
    created = 0

    def __init__(self) -> None:
        Model.created += 1
        self.calls = 0

    def predict(self, x: int) -> int:
        self.calls += 1
        return x * 10

    async def embed(self, text: str) -> list[int]:
        return [len(text), self.calls]

    @staticmethod
    def version() -> str:
        return "1"

    def _private(self) -> None:
        raise AssertionError("never served")


def run(handler: Any, job_input: Any) -> Any:
    return asyncio.run(handler({"id": "job-1", "input": job_input}))


def test_calls_by_bare_name_or_id_with_args_and_kwargs() -> None:
    handler = create_handler({"m:add": add, "m:slow_double": slow_double})
    assert run(handler, {"function": "add", "args": [2], "kwargs": {"b": 3}}) == 5
    assert run(handler, {"function": "m:slow_double", "args": [4]}) == 8


def test_single_function_needs_no_name_and_decorated_objects_are_unwrapped() -> None:
    handler = create_handler({"m:decorated": decorated})
    assert run(handler, {"args": [7]}) == "raw 7"


def test_missing_input_means_no_arguments() -> None:
    handler = create_handler({"m:version": Model.version})
    assert run(handler, None) == "1"


def test_sync_functions_run_off_the_event_loop() -> None:
    seen: list[str] = []

    def where() -> None:
        seen.append(threading.current_thread().name)

    handler = create_handler({"m:where": where})
    run(handler, {})
    assert seen and seen[0] != threading.main_thread().name


def test_class_instance_is_created_once_and_reused() -> None:
    Model.created = 0
    handler = create_handler({"m:Model": Model})
    assert run(handler, {"method": "predict", "args": [2]}) == 20
    assert run(handler, {"function": "Model", "method": "embed", "args": ["abc"]}) == [3, 1]
    assert run(handler, {"method": "version"}) == "1"
    assert Model.created == 1


def test_request_problems_are_request_errors() -> None:
    handler = create_handler({"m:add": add, "m:Model": Model})
    with pytest.raises(RequestError, match="input has no 'function'; this endpoint serves: m:Model, m:add"):
        run(handler, {})
    with pytest.raises(RequestError, match="'input' must be an object"):
        run(handler, [1, 2])
    with pytest.raises(RequestError, match="'args' must be a list"):
        run(handler, {"function": "add", "args": "12"})
    with pytest.raises(RequestError, match="say which 'method' to call \\(embed, predict, version\\)"):
        run(handler, {"function": "Model"})
    with pytest.raises(RequestError, match="'m:add' is a function: 'method' does not apply"):
        run(handler, {"function": "add", "method": "x"})


def test_unknown_names_list_what_is_available() -> None:
    handler = create_handler({"m:add": add, "m:Model": Model})
    with pytest.raises(LookupError, match="unknown function 'sub'; this endpoint serves: m:Model, m:add"):
        run(handler, {"function": "sub"})
    with pytest.raises(LookupError, match="'m:Model' has no public method '_private'"):
        run(handler, {"function": "Model", "method": "_private"})


def test_ambiguous_bare_names_need_the_id() -> None:
    handler = create_handler({"a:add": add, "b:add": add})
    with pytest.raises(RequestError, match="'add' is ambiguous here: use one of a:add, b:add"):
        run(handler, {"function": "add", "args": [1]})
    assert run(handler, {"function": "b:add", "args": [1, 1]}) == 2


def test_user_exceptions_propagate_unchanged() -> None:
    def boom() -> None:
        raise KeyError("missing thing")

    handler = create_handler({"m:boom": boom})
    with pytest.raises(KeyError, match="missing thing"):
        run(handler, {})


# A class's constructor arguments travel with the job ("init"): one instance per distinct arguments.


class Counter:
    made: list[tuple[int, int]] = []

    def __init__(self, start: int = 0, step: int = 1) -> None:
        Counter.made.append((start, step))
        self.value = start
        self.step = step

    def next(self) -> int:
        self.value += self.step
        return self.value


@pytest.fixture
def counter() -> Any:
    Counter.made = []
    return create_handler({"m:Counter": Counter, "m:add": add})


def test_init_arguments_reach_the_constructor_and_the_instance_is_kept(counter: Any) -> None:
    ten = {"function": "Counter", "method": "next", "init": {"args": [10], "kwargs": {"step": 5}}}
    assert run(counter, ten) == 15
    assert run(counter, ten) == 20
    assert run(counter, {**ten, "init": {"kwargs": {"step": 5}, "args": [10]}}) == 25  # the same arguments
    assert run(counter, {**ten, "init": {"args": [10]}}) == 11  # other arguments: another instance
    assert Counter.made == [(10, 5), (10, 1)]


def test_no_init_and_an_empty_init_are_the_same_instance(counter: Any) -> None:
    assert run(counter, {"function": "Counter", "method": "next"}) == 1
    assert run(counter, {"function": "Counter", "method": "next", "init": {"args": [], "kwargs": {}}}) == 2
    assert run(counter, {"function": "Counter", "method": "next", "init": {}}) == 3
    assert Counter.made == [(0, 1)]


def test_instances_are_bounded_the_least_recently_used_dropped(counter: Any) -> None:
    def job(start: int) -> dict[str, Any]:
        return {"function": "Counter", "method": "next", "init": {"args": [start]}}

    for start in range(MAX_INSTANCES):
        run(counter, job(start * 100))
    run(counter, job(0))  # used again: now the most recent
    run(counter, job(MAX_INSTANCES * 100))  # one too many: 100's instance goes
    assert run(counter, job(0)) == 3
    assert run(counter, job(100)) == 101  # made again
    assert Counter.made.count((100, 1)) == 2 and Counter.made.count((0, 1)) == 1


def test_init_problems_are_request_errors(counter: Any) -> None:
    with pytest.raises(RequestError, match=r"^'m:add' is a function: 'init' does not apply$"):
        run(counter, {"function": "add", "args": [1], "init": {"args": [2]}})
    with pytest.raises(RequestError, match=r"^'init' of 'm:Counter' must be an object, not list$"):
        run(counter, {"function": "Counter", "method": "next", "init": [1]})
    with pytest.raises(RequestError, match=r"^'init' takes 'args' and 'kwargs', not 'arg'$"):
        run(counter, {"function": "Counter", "method": "next", "init": {"arg": [1]}})
    with pytest.raises(RequestError, match=r"^'init' 'args' must be a list$"):
        run(counter, {"function": "Counter", "method": "next", "init": {"args": 1}})
    with pytest.raises(TypeError, match="unexpected keyword argument 'size'"):  # as the constructor says it
        run(counter, {"function": "Counter", "method": "next", "init": {"kwargs": {"size": 1}}})
    assert Counter.made == []


unpickled: list[str] = []


def unpickle(output: Any, nonce: str) -> Any:
    """A signed result, checked as the caller checks it, then unpickled."""
    import base64
    import pickle

    from flashc_runtime.signing import result_problem

    assert result_problem(output, "s3cret", nonce) is None
    return pickle.loads(base64.b64decode(output["pickled"]))


class Tripwire:
    """Records that it was unpickled: a refused pickle must never get that far."""

    def __reduce__(self) -> Any:
        return (unpickled.append, ("unpickled",))


def test_a_pickled_init_is_signed_like_the_call(counter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flashc_runtime.signing import SECRET_ENV, dumps, sign, sign_call

    monkeypatch.setenv(SECRET_ENV, "s3cret")
    call = dumps(((), {}))
    made = dumps(((7,), {"step": 2}))
    job: dict[str, Any] = {"function": "Counter", "method": "next", **sign_call("s3cret", "Counter", "next", call)}
    job["init"] = {"pickled": made, "signature": sign("s3cret", "init", job["nonce"], made)}
    assert unpickle(run(counter, job), job["nonce"]) == 9
    assert unpickle(run(counter, job), job["nonce"]) == 11
    assert Counter.made == [(7, 2)]
    unpickled.clear()
    bad = dumps(((Tripwire(),), {}))
    with pytest.raises(RequestError, match=r"^'init': the pickled input's signature is wrong"):
        run(counter, {**job, "init": {"pickled": bad, "signature": sign("other", "init", job["nonce"], bad)}})
    # A signed call is for its function and method only: sent to another, it is refused unread.
    with pytest.raises(RequestError, match=r"signature is wrong"):
        run(counter, {**job, "method": "reset"})
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(RequestError, match=r"^this endpoint accepts no pickled input$"):
        run(counter, job)
    assert unpickled == [] and Counter.made == [(7, 2)]
