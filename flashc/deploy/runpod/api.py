"""A synchronous client of Runpod's control plane: the GraphQL operations of `operations.py` and
the REST network volumes, answering frozen records instead of raw JSON where the caller reads fields.

Errors (every one a `FlashcError`; no message ever holds the key or a presigned URL's query):

    RunpodError           the API refused or failed; `status` (HTTP, or None), `retryable`
    │                     (the caller may read state again and retry), `maybe_applied` (a mutation
    │                     whose answer was lost: it may have taken effect), `messages` (the
    │                     server's GraphQL error messages)
    ├── AuthError         401/403: RUNPOD_API_KEY was rejected
    ├── Unreachable       no answer: connection errors and timeouts, after the retries of a read
    └── UploadError       the archive's PUT to its presigned URL failed (`upload.py`)

Retries: a read (a GraphQL query, a REST GET) is sent up to 4 times, waiting 1 s·2^n (at most
15 s, through the injected `sleep`) after a connection error, a timeout, a 5xx, or a GraphQL error
that says to try again ("try again later", "internal server error", ...). A mutation is sent once:
it may have been applied even when its answer was lost, so the caller reads state again before
retrying; the error it raises says whether that is worth doing. A 4xx is never retried.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, cast

import httpx

from ... import __version__
from ...errors import FlashcError
from . import operations as ops
from .credentials import ApiKey
from .operations import Operation

__all__ = [
    "GRAPHQL_URL",
    "REST_URL",
    "USER_AGENT",
    "App",
    "AuthError",
    "Build",
    "BuildRef",
    "EndpointRef",
    "Environment",
    "EnvironmentRef",
    "RunpodApi",
    "RunpodError",
    "Unreachable",
    "UploadError",
    "UploadSlot",
    "VolumeRef",
    "redact",
]

GRAPHQL_URL = "https://api.runpod.io/graphql"
REST_URL = "https://rest.runpod.io/v1"
USER_AGENT = f"flashc/{__version__}"

READ_ATTEMPTS = 4
_TRANSIENT = (
    "try again later",
    "internal server error",
    "service unavailable",
    "too many requests",
    "temporarily unavailable",
)


class RunpodError(FlashcError):
    """Runpod's API refused a request or could not be asked. See the module docstring."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        maybe_applied: bool = False,
        messages: Iterable[str] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.retryable = retryable
        self.maybe_applied = maybe_applied
        self.messages = tuple(messages)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, retryable={self.retryable})"


class AuthError(RunpodError):
    """The API answered 401 or 403: the key is wrong, revoked, or lacks the permission."""


class Unreachable(RunpodError):
    """No answer: the connection failed or timed out (after the retries, for a read)."""


class UploadError(RunpodError):
    """The archive could not be put at its presigned URL."""


@dataclass(frozen=True)
class EnvironmentRef:
    id: str
    name: str
    active_build_id: str | None


@dataclass(frozen=True)
class App:
    id: str
    name: str
    environments: tuple[EnvironmentRef, ...] = ()

    def environment(self, name: str) -> EnvironmentRef | None:
        return next((env for env in self.environments if env.name == name), None)


@dataclass(frozen=True)
class EndpointRef:
    id: str
    name: str


@dataclass(frozen=True)
class VolumeRef:
    id: str
    name: str


@dataclass(frozen=True)
class Environment:
    id: str
    name: str
    active_build_id: str | None = None
    endpoints: tuple[EndpointRef, ...] = ()
    volumes: tuple[VolumeRef, ...] = ()


@dataclass(frozen=True)
class Build:
    id: str
    manifest: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class BuildRef:
    id: str
    object_key: str | None
    created_at: str | None


@dataclass(frozen=True)
class UploadSlot:
    """Where to put one archive: a presigned URL (its query string is the credential, so the
    repr leaves it out), the object key to finalize, and when the URL stops working."""

    url: str = field(repr=False)
    object_key: str
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"UploadSlot(url={redact(self.url)!r}, object_key={self.object_key!r}, expires_at={self.expires_at!r})"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at.timestamp() <= now


class RunpodApi:
    """Runpod's control plane, over one `httpx.Client` (`transport` replaces the network in tests).

    `calls` counts the HTTP requests made, retries and the archive's PUT included."""

    def __init__(
        self,
        key: ApiKey,
        *,
        graphql_url: str = GRAPHQL_URL,
        rest_url: str = REST_URL,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 300,
    ) -> None:
        self.key = key
        self.graphql_url = graphql_url
        self.rest_url = rest_url.rstrip("/")
        self.calls = 0
        self._sleep = sleep
        self._client = httpx.Client(transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT})
        # The presigned PUT carries its credential in the URL: it must get no Authorization header,
        # and an upload gets more time than a query.
        self._upload_client = httpx.Client(
            transport=transport, timeout=max(timeout, 600), headers={"User-Agent": USER_AGENT}
        )

    def __enter__(self) -> RunpodApi:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        self._upload_client.close()

    def __repr__(self) -> str:
        return f"RunpodApi({self.graphql_url!r}, key={self.key!r})"

    # -- apps, environments, builds ------------------------------------------------------------

    def app_by_name(self, name: str) -> App | None:
        """The app called `name`, or None (the server says "app not found" as an error)."""
        try:
            data = self._graphql(ops.GET_APP_BY_NAME, {"flashAppName": name})
        except RunpodError as error:
            if _says(error, "app not found"):
                return None
            raise
        found = data.get(ops.GET_APP_BY_NAME.root)
        if found is None:
            return None
        app = _object(found, ops.GET_APP_BY_NAME)
        return App(
            id=_str(app, "id", ops.GET_APP_BY_NAME),
            name=_str(app, "name", ops.GET_APP_BY_NAME),
            environments=tuple(
                EnvironmentRef(
                    id=_str(env, "id", ops.GET_APP_BY_NAME),
                    name=_str(env, "name", ops.GET_APP_BY_NAME),
                    active_build_id=_opt_str(env, "activeBuildId", ops.GET_APP_BY_NAME),
                )
                for env in _objects(app.get("flashEnvironments"), ops.GET_APP_BY_NAME)
            ),
        )

    def create_app(self, name: str) -> App:
        app = self._result(ops.CREATE_APP, {"input": {"name": name}})
        return App(id=_str(app, "id", ops.CREATE_APP), name=_str(app, "name", ops.CREATE_APP))

    def environment_by_name(self, app_id: str, name: str) -> Environment | None:
        return self._environment(ops.GET_ENVIRONMENT_BY_NAME, {"input": {"flashAppId": app_id, "name": name}})

    def environment(self, env_id: str) -> Environment | None:
        return self._environment(ops.GET_ENVIRONMENT, {"flashEnvironmentId": env_id})

    def create_environment(self, app_id: str, name: str) -> Environment:
        env = self._result(ops.CREATE_ENVIRONMENT, {"input": {"flashAppId": app_id, "name": name}})
        return Environment(id=_str(env, "id", ops.CREATE_ENVIRONMENT), name=_str(env, "name", ops.CREATE_ENVIRONMENT))

    def builds(self, app_id: str) -> tuple[BuildRef, ...]:
        app = self._result(ops.LIST_BUILDS, {"flashAppId": app_id})
        return tuple(
            BuildRef(
                id=_str(build, "id", ops.LIST_BUILDS),
                object_key=_opt_str(build, "objectKey", ops.LIST_BUILDS),
                created_at=_opt_str(build, "createdAt", ops.LIST_BUILDS),
            )
            for build in _objects(app.get("flashBuilds"), ops.LIST_BUILDS)
        )

    def build(self, build_id: str) -> Build | None:
        try:
            data = self._graphql(ops.GET_BUILD, {"input": build_id})
        except RunpodError as error:
            if _says(error, "not found"):
                return None
            raise
        found = data.get(ops.GET_BUILD.root)
        return None if found is None else _build(_object(found, ops.GET_BUILD), ops.GET_BUILD)

    def prepare_upload(self, app_id: str, size: int) -> UploadSlot:
        """A presigned URL for an archive of `size` bytes (a mutation: sent once)."""
        slot = self._result(ops.PREPARE_UPLOAD, {"input": {"flashAppId": app_id, "tarballSize": size}})
        return UploadSlot(
            url=_str(slot, "uploadUrl", ops.PREPARE_UPLOAD),
            object_key=_str(slot, "objectKey", ops.PREPARE_UPLOAD),
            expires_at=_timestamp(slot.get("expiresAt")),
        )

    def finalize_upload(self, app_id: str, object_key: str, manifest: Mapping[str, Any]) -> Build:
        """Make the uploaded archive a build of the app, with `manifest` as its manifest."""
        variables = {"input": {"flashAppId": app_id, "objectKey": object_key, "manifest": dict(manifest)}}
        return _build(self._result(ops.FINALIZE_UPLOAD, variables), ops.FINALIZE_UPLOAD)

    def deploy_build(self, env_id: str, build_id: str) -> None:
        """Make `build_id` the environment's active build."""
        self._result(ops.DEPLOY_BUILD, {"input": {"flashEnvironmentId": env_id, "flashBuildId": build_id}})

    def update_build_manifest(self, build_id: str, manifest: Mapping[str, Any]) -> None:
        """Replace the build's manifest with `manifest` (whole, not merged)."""
        self._result(ops.UPDATE_BUILD_MANIFEST, {"input": {"flashBuildId": build_id, "manifest": dict(manifest)}})

    # -- endpoints and templates ----------------------------------------------------------------

    def save_endpoint(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create (no `id` in `payload`) or update an endpoint; its fields as saved
        (`operations.ENDPOINT_FIELDS`)."""
        return self._result(ops.SAVE_ENDPOINT, {"input": dict(payload)})

    def template(self, template_id: str) -> dict[str, Any] | None:
        try:
            data = self._graphql(ops.GET_TEMPLATE, {"id": template_id})
        except RunpodError as error:
            if _says(error, "not found"):
                return None
            raise
        found = data.get(ops.GET_TEMPLATE.root)
        return None if found is None else _object(found, ops.GET_TEMPLATE)

    def save_template(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self._result(ops.SAVE_TEMPLATE, {"input": dict(payload)})

    def endpoint_exists(self, endpoint_id: str) -> bool:
        """Whether the account has an endpoint with this id. Unlike the SDK, a failure to ask is
        an error, not "no": taking a flaky network for a deleted endpoint makes duplicates."""
        try:
            myself = self._result(ops.GET_ENDPOINT, {"id": endpoint_id})
        except RunpodError as error:
            if _says(error, "not found"):
                return False
            raise
        endpoint = myself.get("endpoint")
        return isinstance(endpoint, dict) and endpoint.get("id") == endpoint_id

    def delete_endpoint(self, endpoint_id: str) -> None:
        data = self._graphql(ops.DELETE_ENDPOINT, {"id": endpoint_id})
        if ops.DELETE_ENDPOINT.root not in data:
            raise _unexpected(ops.DELETE_ENDPOINT, f"no '{ops.DELETE_ENDPOINT.root}' in the answer")

    # -- network volumes (REST) -----------------------------------------------------------------

    def volumes(self) -> list[dict[str, Any]]:
        """Every network volume of the account (`id`, `name`, `size`, `dataCenterId`)."""
        body = self._rest("GET", "/networkvolumes")
        if isinstance(body, dict) and "networkVolumes" in body:
            body = body["networkVolumes"]
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise RunpodError("Runpod API: GET /networkvolumes answered something other than a list of volumes")
        return cast("list[dict[str, Any]]", body)

    def create_volume(self, name: str, size: int, data_center: str) -> dict[str, Any]:
        """A new network volume of `size` GB in `data_center` (sent once, as every mutation)."""
        body = self._rest("POST", "/networkvolumes", {"dataCenterId": data_center, "name": name, "size": size})
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise RunpodError("Runpod API: POST /networkvolumes answered something other than a volume")
        return body

    # -- the archive's PUT (see upload.py) --------------------------------------------------------

    def put_presigned(self, url: str, content: Iterable[bytes], headers: Mapping[str, str]) -> httpx.Response:
        """One PUT to a presigned URL, without Authorization; transport errors are httpx's."""
        self.calls += 1
        return self._upload_client.put(url, content=content, headers=dict(headers))

    # -- transport --------------------------------------------------------------------------------

    def _result(self, op: Operation, variables: dict[str, Any]) -> dict[str, Any]:
        """The object under the operation's root field; an answer without it is an error."""
        data = self._graphql(op, variables)
        if data.get(op.root) is None:
            raise _unexpected(op, f"no '{op.root}' in the answer")
        return _object(data[op.root], op)

    def _environment(self, op: Operation, variables: dict[str, Any]) -> Environment | None:
        try:
            data = self._graphql(op, variables)
        except RunpodError as error:
            if _says(error, "not found"):
                return None
            raise
        found = data.get(op.root)
        if found is None:
            return None
        env = _object(found, op)
        return Environment(
            id=_str(env, "id", op),
            name=_str(env, "name", op),
            active_build_id=_opt_str(env, "activeBuildId", op),
            endpoints=tuple(
                EndpointRef(_str(e, "id", op), _str(e, "name", op)) for e in _objects(env.get("endpoints"), op)
            ),
            volumes=tuple(
                VolumeRef(_str(v, "id", op), _str(v, "name", op)) for v in _objects(env.get("networkVolumes"), op)
            ),
        )

    def _graphql(self, op: Operation, variables: dict[str, Any]) -> dict[str, Any]:
        """`data` of the operation's answer, a read retried as the module docstring says."""
        attempts = 1 if op.is_mutation else READ_ATTEMPTS
        for attempt in range(attempts):
            try:
                return self._graphql_once(op, variables)
            except _Transient as transient:
                if attempt + 1 == attempts:
                    raise transient.error from transient.__cause__
                self._sleep(min(2.0**attempt, 15.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _graphql_once(self, op: Operation, variables: dict[str, Any]) -> dict[str, Any]:
        where = f"Runpod API: {op.name}"
        response = self._send(
            where, op.is_mutation, "POST", self.graphql_url, {"query": op.document, "variables": variables}
        )
        body = self._check_status(where, op.is_mutation, response)
        if not isinstance(body, dict):
            raise _Transient(
                RunpodError(f"{where}: the answer is not JSON", status=response.status_code, retryable=True)
            )
        errors = body.get("errors")
        if errors is not None:
            messages = [self._clean(str(e.get("message", e)) if isinstance(e, dict) else str(e)) for e in _list(errors)]
            text = "; ".join(messages) or "an error without a message"
            transient = any(word in text.lower() for word in _TRANSIENT)
            error = RunpodError(f"{where}: {text}", status=response.status_code, retryable=transient, messages=messages)
            if transient:
                raise _Transient(error)
            raise error
        data = body.get("data")
        if not isinstance(data, dict):
            raise _unexpected(op, "no 'data' in the answer")
        return data

    def _rest(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        mutation = method != "GET"
        where = f"Runpod API: {method} {path}"
        attempts = 1 if mutation else READ_ATTEMPTS
        for attempt in range(attempts):
            try:
                response = self._send(where, mutation, method, self.rest_url + path, payload)
                body = self._check_status(where, mutation, response)
                if body is None:
                    raise _Transient(RunpodError(f"{where}: the answer is not JSON", retryable=True))
                return body
            except _Transient as transient:
                if attempt + 1 == attempts:
                    raise transient.error from transient.__cause__
                self._sleep(min(2.0**attempt, 15.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, where: str, mutation: bool, method: str, url: str, payload: dict[str, Any] | None
    ) -> httpx.Response:
        """One request; a transport failure becomes a `_Transient` carrying the error to raise."""
        self.calls += 1
        headers = {"Authorization": f"Bearer {self.key.reveal()}"}
        try:
            return self._client.request(method, url, json=payload, headers=headers)
        except httpx.TransportError as exc:
            # A request that never connected was not applied; one that lost its answer may have been.
            sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            what = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
            error = Unreachable(
                f"{where}: {what} ({type(exc).__name__}) talking to {httpx.URL(url).host}",
                retryable=True,
                maybe_applied=mutation and sent,
                hint="check the network; for a mutation, read the state again before retrying",
            )
            raise _Transient(error) from exc

    def _check_status(self, where: str, mutation: bool, response: httpx.Response) -> Any:
        """The JSON body (None when it is not JSON), after turning an HTTP error status into an error."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status in (401, 403):
            raise AuthError(
                f"RUNPOD_API_KEY was rejected (HTTP {status})",
                status=status,
                hint=f"the key ({self.key}) came from {self.key.source}; make a new one in Runpod's console",
            )
        if status >= 400:
            messages = [self._clean(m) for m in _graphql_messages(body)]
            detail = "; ".join(messages) if messages else self._clean(response.text)[:300]
            error = RunpodError(
                f"{where}: HTTP {status}" + (f": {detail}" if detail else ""),
                status=status,
                retryable=status >= 500,
                maybe_applied=mutation and status >= 500,
                messages=messages,
            )
            if status >= 500:
                raise _Transient(error)
            raise error
        return body

    def _clean(self, text: str) -> str:
        """Server text made safe to show: no key, no presigned query strings."""
        return redact(text).replace(self.key.reveal(), str(self.key))


class _Transient(Exception):
    """Internal: the request may succeed if sent again; `error` is what to raise otherwise."""

    def __init__(self, error: RunpodError) -> None:
        super().__init__(error.message)
        self.error = error


_URL_QUERY = re.compile(r"(https?://[^\s\"'<>?]+)\?[^\s\"'<>]*")


def redact(text: str) -> str:
    """`text` with the query string of every URL in it replaced by `?…` (a presigned URL's
    query is its credential)."""
    return _URL_QUERY.sub(r"\1?…", text)


def _says(error: RunpodError, words: str) -> bool:
    return any(words in message.lower() for message in error.messages)


def _graphql_messages(body: Any) -> list[str]:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return [str(e.get("message", "")) for e in body["errors"] if isinstance(e, dict)]
    return []


def _unexpected(op: Operation, what: str) -> RunpodError:
    return RunpodError(f"Runpod API: {op.name} answered unexpectedly: {what}", hint="this is a change in Runpod's API")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _object(value: Any, op: Operation) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unexpected(op, f"expected an object, got {type(value).__name__}")
    return value


def _objects(value: Any, op: Operation) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _unexpected(op, f"expected a list, got {type(value).__name__}")
    return [_object(item, op) for item in value]


def _str(obj: dict[str, Any], name: str, op: Operation) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise _unexpected(op, f"'{name}' is {type(value).__name__}, not a string")
    return value


def _opt_str(obj: dict[str, Any], name: str, op: Operation) -> str | None:
    value = obj.get(name)
    return None if value is None else _str(obj, name, op)


def _build(obj: dict[str, Any], op: Operation) -> Build:
    manifest = obj.get("manifest")
    if manifest is not None and not isinstance(manifest, dict):
        raise _unexpected(op, f"the manifest is {type(manifest).__name__}, not an object")
    return Build(id=_str(obj, "id", op), manifest=manifest)


def _timestamp(value: Any) -> datetime | None:
    """`expiresAt` as a UTC time: an ISO 8601 string or seconds (or milliseconds) since the epoch."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _timestamp(int(text))
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
