"""The route handler factory for load-balanced endpoints: a request in, the route's result out."""

from __future__ import annotations

import asyncio
import enum
import threading
from typing import Annotated, Any, Optional

import pytest
from flashc_runtime import LiveLoadBalancer, remote
from flashc_runtime.handler import RequestError
from flashc_runtime.routes import MethodNotAllowed, RouteHandler, RouteNotFound, create_route_handler

calls: list[str] = []


def list_items(limit: str = "10") -> dict[str, Any]:
    return {"limit": limit}


async def create_item(name: str, price: float = 0.0) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"name": name, "price": price}


def get_item(item_id: str) -> str:
    return f"item {item_id}"


def new_item_form() -> str:
    return "form"


def replace_item(item_id: str, name: str) -> tuple[str, str]:
    return item_id, name


def delete_item(item_id: str, force: str = "no") -> tuple[str, str]:
    return item_id, force


def patch_item(item_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": item_id, **changes}


def strict(x: int) -> int:
    calls.append("strict")
    return x


def thread_name() -> str:
    return threading.current_thread().name


def boom() -> None:
    raise KeyError("user bug")


@remote(LiveLoadBalancer(name="api"), method="GET", path="/x")
def decorated() -> str:
    return "raw"


ROUTES = {
    ("GET", "/items"): list_items,
    ("POST", "/items"): create_item,
    ("GET", "/items/{item_id}"): get_item,
    ("GET", "/items/new"): new_item_form,
    ("PUT", "/items/{item_id}"): replace_item,
    ("DELETE", "/items/{item_id}"): delete_item,
    ("PATCH", "/items/{item_id}"): patch_item,
    ("POST", "/strict"): strict,
    ("GET", "/thread"): thread_name,
    ("GET", "/boom"): boom,
    ("GET", "/x"): decorated,
}


@pytest.fixture
def handle() -> RouteHandler:
    calls.clear()
    return create_route_handler(ROUTES)


def call(handle: RouteHandler, method: str, path: str, **kwargs: Any) -> Any:
    return asyncio.run(handle(method, path, **kwargs))


def test_get_passes_query_parameters(handle: RouteHandler) -> None:
    assert call(handle, "GET", "/items", query={"limit": "3"}) == {"limit": "3"}
    assert call(handle, "GET", "/items") == {"limit": "10"}


def test_post_passes_the_json_body(handle: RouteHandler) -> None:
    assert call(handle, "POST", "/items", body={"name": "pen", "price": 1.5}) == {"name": "pen", "price": 1.5}


def test_path_parameters_with_put_delete_patch(handle: RouteHandler) -> None:
    assert call(handle, "PUT", "/items/7", body={"name": "pen"}) == ("7", "pen")
    assert call(handle, "DELETE", "/items/7", query={"force": "yes"}) == ("7", "yes")
    assert call(handle, "PATCH", "/items/7", body={"price": 2}) == {"id": "7", "price": 2}


def test_trailing_slash_is_ignored(handle: RouteHandler) -> None:
    assert call(handle, "GET", "/items/") == {"limit": "10"}
    assert call(handle, "GET", "/items/7/") == "item 7"


def test_static_segment_beats_parameter(handle: RouteHandler) -> None:
    assert call(handle, "GET", "/items/new") == "form"
    assert call(handle, "GET", "/items/old") == "item old"


def test_wrong_method_is_405_with_the_allowed_methods(handle: RouteHandler) -> None:
    with pytest.raises(MethodNotAllowed) as info:
        call(handle, "POST", "/items/7")
    assert str(info.value) == "method POST not allowed for /items/7; allowed: DELETE, GET, PATCH, PUT"
    assert info.value.allowed == ["DELETE", "GET", "PATCH", "PUT"]


def test_unknown_path_is_404_listing_the_routes() -> None:
    handle = create_route_handler({("GET", "/items"): list_items, ("POST", "/items"): create_item})
    with pytest.raises(RouteNotFound) as info:
        call(handle, "GET", "/nope")
    assert str(info.value) == "no route for GET /nope; routes: GET /items, POST /items"
    with pytest.raises(RouteNotFound):
        call(handle, "GET", "/items//")


def test_body_must_be_an_object(handle: RouteHandler) -> None:
    with pytest.raises(RequestError, match=r"^POST /strict: the JSON body must be an object, not list$"):
        call(handle, "POST", "/strict", body=[1])
    assert calls == []


def test_empty_body_means_no_arguments(handle: RouteHandler) -> None:
    assert call(handle, "PATCH", "/items/7", body=None) == {"id": "7"}
    assert call(handle, "PATCH", "/items/7", body=b"") == {"id": "7"}


def test_key_in_both_path_and_body_is_rejected(handle: RouteHandler) -> None:
    with pytest.raises(RequestError, match=r"^PUT /items/\{item_id\}: 'item_id' given in both the path and the body$"):
        call(handle, "PUT", "/items/7", body={"item_id": "8", "name": "pen"})


def test_missing_argument_is_rejected_before_the_call(handle: RouteHandler) -> None:
    with pytest.raises(RequestError, match=r"^POST /strict: missing a required argument: 'x'$"):
        call(handle, "POST", "/strict", body={})
    assert calls == []


def test_unknown_argument_is_rejected_before_the_call(handle: RouteHandler) -> None:
    with pytest.raises(RequestError, match=r"^POST /strict: got an unexpected keyword argument 'y'$"):
        call(handle, "POST", "/strict", body={"x": 1, "y": 2})
    with pytest.raises(RequestError, match=r"^GET /items: got an unexpected keyword argument 'page'$"):
        call(handle, "GET", "/items", query={"page": "2"})
    assert calls == []


def test_decorated_objects_are_unwrapped(handle: RouteHandler) -> None:
    assert call(handle, "GET", "/x") == "raw"


def test_sync_function_runs_off_the_main_thread(handle: RouteHandler) -> None:
    assert call(handle, "GET", "/thread") != threading.main_thread().name


def test_user_exception_propagates_unchanged(handle: RouteHandler) -> None:
    with pytest.raises(KeyError, match="user bug"):
        call(handle, "GET", "/boom")


def test_duplicate_and_malformed_templates_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^routes GET /a/\{x\} and GET /a/\{y\}/ are the same route$"):
        create_route_handler({("GET", "/a/{x}"): get_item, ("GET", "/a/{y}/"): get_item})
    with pytest.raises(ValueError, match="must be a whole segment"):
        create_route_handler({("GET", "/a/item-{x}"): get_item})


# Path and query values arrive as text: converted by the annotations, as FastAPI converts them.


class Size(str, enum.Enum):
    S = "s"
    L = "l"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def as_int(v: int) -> Any:
    return v


def as_float(v: float) -> Any:
    return v


def as_bool(v: bool) -> Any:
    return v


def as_size(v: Size) -> Any:
    return v


def as_level(v: Level) -> Any:
    return v


def as_optional_int(v: Optional[int] = None) -> Any:  # noqa: UP045 (the spelling FastAPI code uses)
    return v


def as_int_or_none(v: int | None = None) -> Any:
    return v


def as_annotated(v: Annotated[int, "a note"]) -> Any:
    return v


def as_int_or_float(v: int | float) -> Any:
    return v


def as_int_or_str(v: int | str) -> Any:
    return v


def as_str(v: str) -> Any:
    return v


def unannotated(v):  # type: ignore[no-untyped-def]
    return v


TYPED = {
    int: as_int,
    float: as_float,
    bool: as_bool,
    Size: as_size,
    Level: as_level,
    Optional[int]: as_optional_int,  # noqa: UP045
    int | None: as_int_or_none,
    Annotated[int, "a note"]: as_annotated,
    int | float: as_int_or_float,
    int | str: as_int_or_str,
    str: as_str,
}
ARABIC_FIVE = "\u0665"  # float() takes other scripts' digits, FastAPI does not
TEXTS = [
    *("5", " 5 ", "+5", "-0", "5_000", "05", "5.0", "0005.000", "-5.0", "5.5", "5.", "1e3", "0x10", "_5", "1__0"),
    *("1.5", " 1.5", ".5", "inf", "-Infinity", "nan", "1_0.5", "5e", ARABIC_FIVE, ""),
    *("true", "True", "TRUE", "1", "0", "yes", "Yes", "on", "off", "t", "f", "y", "n", "no", "false", "2", " true"),
    *("s", "l", "S", "low", "3", "abc", "None"),
]


@pytest.mark.parametrize("annotation", list(TYPED), ids=str)
def test_path_and_query_text_converts_as_fastapi_converts_it(annotation: Any) -> None:
    from pydantic import TypeAdapter, ValidationError  # FastAPI's validator, in lax mode as for parameters

    adapter = TypeAdapter(annotation)
    handle = create_route_handler({("GET", "/v/{v}"): TYPED[annotation], ("GET", "/q"): TYPED[annotation]})
    for text in TEXTS:
        try:
            expected: Any = adapter.validate_python(text)
        except ValidationError:
            expected = RequestError
        for path, query in ((f"/v/{text}", None), ("/q", {"v": text})):
            if not text and path != "/q":
                continue  # an empty segment matches no route
            try:
                got = call(handle, "GET", path, query=query)
            except RequestError:
                got = RequestError
            assert (got, type(got)) == (expected, type(expected)) or (got != got and expected != expected), (text, path)


def test_unannotated_parameters_keep_the_text() -> None:
    handle = create_route_handler({("GET", "/v/{v}"): unannotated})
    assert call(handle, "GET", "/v/7") == "7"


def test_a_value_that_does_not_convert_is_a_request_error_naming_the_parameter_and_the_type() -> None:
    handle = create_route_handler({("GET", "/items/{item_id}"): typed_item, ("POST", "/items/{item_id}"): typed_item})
    with pytest.raises(RequestError) as info:
        call(handle, "GET", "/items/abc", query={"detail": "maybe", "size": "xl", "limit": "2"})
    assert str(info.value) == (
        "GET /items/{item_id}: path parameter 'item_id' must be an integer, not 'abc'; "
        "query parameter 'detail' must be a boolean (true or false, 1 or 0, yes or no, on or off), not 'maybe'; "
        "query parameter 'size' must be one of 's', 'l', not 'xl'"
    )
    with pytest.raises(
        RequestError, match=r"^POST /items/\{item_id\}: body field 'limit' must be an integer, not 'x'$"
    ):
        call(handle, "POST", "/items/7", body={"limit": "x"})


def typed_item(item_id: int, detail: bool = False, size: Size = Size.S, limit: Optional[int] = None) -> Any:  # noqa: UP045
    return item_id, detail, size, limit


def test_converted_values_reach_the_function() -> None:
    handle = create_route_handler({("GET", "/items/{item_id}"): typed_item, ("POST", "/items/{item_id}"): typed_item})
    assert call(handle, "GET", "/items/7") == (7, False, Size.S, None)
    assert call(handle, "GET", "/items/7", query={"detail": "yes", "size": "l", "limit": "3"}) == (7, True, Size.L, 3)
    # Body values stay as the JSON has them, but text for a scalar parameter converts as the query's does.
    assert call(handle, "POST", "/items/7", body={"detail": True, "limit": "4"}) == (7, True, Size.S, 4)
    assert call(handle, "POST", "/items/7", body={"size": "l", "limit": None}) == (7, False, Size.L, None)


def test_a_body_integer_for_a_float_parameter_is_a_float() -> None:
    handle = create_route_handler({("POST", "/f"): as_float, ("POST", "/i"): as_int})
    assert type(call(handle, "POST", "/f", body={"v": 3})) is float
    assert call(handle, "POST", "/i", body={"v": [1]}) == [1]  # not text: passed as the JSON has it


def test_annotations_that_cannot_be_evaluated_are_read_as_text() -> None:
    # `from __future__ import annotations` with a name only type checkers see: the scalar ones still convert.
    handle = create_route_handler({("GET", "/a/{n}/{m}"): hidden_annotation})
    assert call(handle, "GET", "/a/7/x", query={"flag": "on"}) == (7, "x", True)


def hidden_annotation(n: int, m: OnlyForTypeCheckers, flag: Optional[bool] = None) -> Any:  # type: ignore[name-defined]  # noqa: F821, UP045
    return n, m, flag


def test_an_encoded_slash_stays_inside_its_segment(handle: RouteHandler) -> None:
    # `a%2Fb` is one segment, `a/b`: it matches /items/{item_id}, never a route of two segments.
    assert call(handle, "GET", "/items/a%2Fb") == "item a/b"
    assert call(handle, "GET", "/items/50%25%20off") == "item 50% off"
    with pytest.raises(RouteNotFound):
        call(handle, "GET", "/items/a/b")


def test_results_are_strict_json_nan_and_infinity_fail_clearly() -> None:
    from flashc_runtime.handler import strict_json

    assert strict_json({"x": 1.5, "y": [None, "nan"]}) == b'{"x": 1.5, "y": [null, "nan"]}'
    for bad in (float("nan"), {"v": float("inf")}, [float("-inf")]):
        with pytest.raises(ValueError, match="NaN or Infinity, which JSON cannot carry"):
            strict_json(bad)
