"""The route handler factory for load-balanced endpoints: a request in, the route's result out."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

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
