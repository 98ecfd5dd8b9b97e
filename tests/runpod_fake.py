"""FakeRunpod: an in-process stand-in for the parts of Runpod that a deploy talks to.

    client --httpx--> fake.transport --> GraphQL   https://api.runpod.io/graphql
                                     --> REST      https://rest.runpod.io/v1/networkvolumes
                                     --> S3        PUT of the archive to a presigned URL it handed out
                                     --> data      https://api.runpod.ai/v2/{id}/health, /runsync

It keeps state (apps, environments, builds, uploads, endpoints, templates, volumes) and checks every
request the way the real services would, from its own schema below (written from the API research,
not from flashc's `operations.py`): the GraphQL document is parsed and validated (unknown root
field, unknown field in a selection, unknown argument, undeclared variable, a variable of the wrong
type) and the variables are coerced against the input types (unknown field, missing required
field, wrong scalar, bad enum value, a manifest that is not a JSON object). A malformed request is
answered as GraphQL servers answer it (HTTP 400, `{"errors": [{"message": ...}]}` with graphql-js's
wording) and recorded in `fake.rejected`, so a test can assert that nothing was rejected. Semantic
errors are answered 200 with `errors`, in Runpod's words where known ("app not found").

Every request is recorded in `fake.calls` as `(name, variables)`: the GraphQL operation's name, or
"upload" (the PUT), "GET networkvolumes", "POST networkvolumes", "health", "runsync".

Faults are scripted per name with `fake.inject(name, *faults)`; each request of that name takes the
next one (a fault with `times=n` stays for n requests):

    Fault.status(503)          answer that HTTP status, apply nothing
    Fault.graphql_error(msg)   answer 200 {"errors": [{"message": msg}]}, apply nothing
    Fault.timeout()            raise httpx.ReadTimeout before applying (`kind="connect"`: ConnectTimeout)
    Fault.connect_error()      raise httpx.ConnectError (nothing reached the server)
    Fault.lost_answer()        apply the request, then raise ReadTimeout (`error="reset"`: ReadError)
    Fault.reset(after=n)       read n bytes of the request's body, then raise httpx.WriteError
    Fault.expired()            (upload) 403 with S3's "Request has expired" body
    Fault.slow(seconds)        record the delay in `fake.delays`; past the client's read timeout the
                               request is applied and the client gets ReadTimeout, as a real slow
                               server would do; never actually sleeps

`fake.expire()` makes every presigned URL handed out so far expired (its `expiresAt` passes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

GRAPHQL_URL = "https://api.runpod.io/graphql"
REST_URL = "https://rest.runpod.io/v1"
DATA_URL = "https://api.runpod.ai/v2"
BUCKET_HOST = "flash-artifacts.s3.us-east-1.amazonaws.com"
API_KEY = "rpa_FAKE0123456789ABCDEFGHIJKLMNOPQRSTUV"

DATA_CENTERS = frozenset(
    {"US-CA-2", "US-IL-1", "US-KS-2", "US-MO-1", "US-MO-2", "US-NC-2", "US-NE-1", "US-WA-1", "EU-CZ-1", "EU-RO-1"}
    | {"EUR-NO-1"}
)

# ---------------------------------------------------------------------------------------------
# Schema: input types (field -> GraphQL type), enums, output types (field -> type [, arguments]).

ENUMS: dict[str, frozenset[str]] = {
    "ScalerType": frozenset({"QUEUE_DELAY", "REQUEST_COUNT"}),
    "EndpointType": frozenset({"QB", "LB"}),
    "FlashBootType": frozenset({"FLASHBOOT", "OFF"}),
}
SCALARS = frozenset({"String", "Int", "Float", "Boolean", "ID", "JSON", "JSONObject"})

_TEMPLATE_COMMON = {
    "name": "String!",
    "imageName": "String!",
    "containerDiskInGb": "Int",
    "containerRegistryAuthId": "String",
    "dockerArgs": "String",
    "env": "[EnvironmentVariableInput]",
    "ports": "String",
    "startScript": "String",
    "advancedStart": "Boolean",
    "config": "JSON",
    "volumeInGb": "Int",
    "volumeMountPath": "String",
    "isServerless": "Boolean",
    "readme": "String",
}
INPUTS: dict[str, dict[str, str]] = {
    "CreateFlashAppInput": {"name": "String!"},
    "CreateFlashEnvironmentInput": {"flashAppId": "String!", "name": "String!"},
    "FlashEnvironmentByNameInput": {"flashAppId": "String!", "name": "String!"},
    "PrepareFlashArtifactUploadInput": {"flashAppId": "String!", "tarballSize": "Int!"},
    "FinalizeFlashArtifactUploadInput": {"flashAppId": "String!", "objectKey": "String!", "manifest": "JSONObject!"},
    "DeployBuildToEnvironmentInput": {"flashEnvironmentId": "String!", "flashBuildId": "String!"},
    "UpdateFlashBuildManifestInput": {"flashBuildId": "String!", "manifest": "JSONObject!"},
    "EnvironmentVariableInput": {"key": "String!", "value": "String!"},
    "NetworkVolumeIdInput": {"networkVolumeId": "String!", "dataCenterId": "String"},
    "EndpointTemplateInput": _TEMPLATE_COMMON,
    "SaveTemplateInput": {**_TEMPLATE_COMMON, "id": "String", "containerDiskInGb": "Int!", "volumeInGb": "Int!"},
    "EndpointInput": {
        "id": "String",
        "name": "String!",
        "templateId": "String",
        "template": "EndpointTemplateInput",
        "type": "EndpointType",
        "gpuIds": "String",
        "gpuCount": "Int",
        "instanceIds": "[String]",
        "allowedCudaVersions": "String",
        "minCudaVersion": "String",
        "idleTimeout": "Int",
        "executionTimeoutMs": "Int",
        "locations": "String",
        "networkVolumeId": "String",
        "networkVolumeIds": "[NetworkVolumeIdInput]",
        "flashEnvironmentId": "String",
        "scalerType": "ScalerType",
        "scalerValue": "Int",
        "workersMin": "Int",
        "workersMax": "Int",
        "workersStandby": "Int",
        "workersPFBTarget": "Int",
        "flashBootType": "FlashBootType",
    },
}


@dataclass(frozen=True)
class OutField:
    type: str
    args: dict[str, str] = field(default_factory=dict)


def _fields(**types: str | OutField) -> dict[str, OutField]:
    return {name: t if isinstance(t, OutField) else OutField(t) for name, t in types.items()}


OUTPUTS: dict[str, dict[str, OutField]] = {
    "Query": _fields(
        flashAppByName=OutField("FlashApp", {"flashAppName": "String!"}),
        flashApp=OutField("FlashApp", {"flashAppId": "String!"}),
        flashEnvironmentByName=OutField("FlashEnvironment", {"input": "FlashEnvironmentByNameInput!"}),
        flashEnvironment=OutField("FlashEnvironment", {"flashEnvironmentId": "String!"}),
        flashBuild=OutField("FlashBuild", {"flashBuildId": "String!"}),
        podTemplate=OutField("PodTemplate", {"id": "String!"}),
        myself="User",
    ),
    "Mutation": _fields(
        createFlashApp=OutField("FlashApp", {"input": "CreateFlashAppInput!"}),
        createFlashEnvironment=OutField("FlashEnvironment", {"input": "CreateFlashEnvironmentInput!"}),
        prepareFlashArtifactUpload=OutField("FlashArtifactUpload", {"input": "PrepareFlashArtifactUploadInput!"}),
        finalizeFlashArtifactUpload=OutField("FlashBuild", {"input": "FinalizeFlashArtifactUploadInput!"}),
        deployBuildToEnvironment=OutField("FlashEnvironment", {"input": "DeployBuildToEnvironmentInput!"}),
        updateFlashBuildManifest=OutField("FlashBuild", {"input": "UpdateFlashBuildManifestInput!"}),
        saveEndpoint=OutField("Endpoint", {"input": "EndpointInput!"}),
        saveTemplate=OutField("PodTemplate", {"input": "SaveTemplateInput"}),
        deleteEndpoint=OutField("Boolean", {"id": "String!"}),
        deleteFlashEnvironment=OutField("Boolean", {"flashEnvironmentId": "String!"}),
        deleteFlashApp=OutField("Boolean", {"flashAppId": "String!"}),
    ),
    "User": _fields(
        id="String",
        endpoint=OutField("Endpoint", {"id": "String!"}),
        endpoints="[Endpoint]",
        flashApps="[FlashApp]",
    ),
    "FlashApp": _fields(
        id="String!",
        name="String!",
        createdAt="String",
        flashEnvironments="[FlashEnvironment]",
        flashBuilds="[FlashBuild]",
    ),
    "FlashEnvironment": _fields(
        id="String!",
        name="String!",
        state="String",
        activeBuildId="String",
        createdAt="String",
        endpoints="[Endpoint]",
        networkVolumes="[NetworkVolume]",
        activeArtifact="FlashArtifact",
    ),
    "FlashArtifact": _fields(objectKey="String", downloadUrl="String", expiresAt="String"),
    "FlashBuild": _fields(id="String!", objectKey="String", createdAt="String", manifest="JSONObject"),
    "FlashArtifactUpload": _fields(uploadUrl="String!", objectKey="String!", expiresAt="String!"),
    "NetworkVolume": _fields(id="String!", name="String", size="Int", dataCenterId="String"),
    "NetworkVolumeId": _fields(networkVolumeId="String", dataCenterId="String"),
    "EnvironmentVariable": _fields(key="String", value="String"),
    "PodTemplate": _fields(
        id="String!",
        name="String",
        imageName="String",
        containerDiskInGb="Int",
        volumeInGb="Int",
        dockerArgs="String",
        env="[EnvironmentVariable]",
        ports="String",
        startScript="String",
        isServerless="Boolean",
        readme="String",
    ),
    "Endpoint": _fields(
        id="String!",
        name="String",
        type="EndpointType",
        templateId="String",
        template="PodTemplate",
        userId="String",
        aiKey="String",
        version="Int",
        gpuIds="String",
        gpuCount="Int",
        instanceIds="[String]",
        allowedCudaVersions="String",
        minCudaVersion="String",
        idleTimeout="Int",
        executionTimeoutMs="Int",
        locations="String",
        networkVolumeId="String",
        networkVolumeIds="[NetworkVolumeId]",
        flashEnvironmentId="String",
        scalerType="ScalerType",
        scalerValue="Int",
        workersMin="Int",
        workersMax="Int",
        workersStandby="Int",
        workersPFBTarget="Int",
        flashBootType="FlashBootType",
        activeBuildid="String",
        idePodId="String",
    ),
}


@dataclass(frozen=True)
class TypeRef:
    name: str | None  # None for a list
    non_null: bool = False
    of: TypeRef | None = None

    def __str__(self) -> str:
        inner = f"[{self.of}]" if self.of is not None else str(self.name)
        return inner + ("!" if self.non_null else "")

    @property
    def named(self) -> str:
        return self.name if self.of is None else self.of.named  # type: ignore[return-value]


def parse_type(text: str) -> TypeRef:
    ref, rest = _parse_type(text.replace(" ", ""))
    if rest:
        raise ValueError(f"bad type {text!r}")
    return ref


def _parse_type(text: str) -> tuple[TypeRef, str]:
    if text.startswith("["):
        inner, rest = _parse_type(text[1:])
        if not rest.startswith("]"):
            raise ValueError(f"bad type {text!r}")
        rest = rest[1:]
        non_null = rest.startswith("!")
        return TypeRef(None, non_null, inner), rest[1:] if non_null else rest
    match = re.match(r"[_A-Za-z]\w*", text)
    if match is None:
        raise ValueError(f"bad type {text!r}")
    rest = text[match.end() :]
    non_null = rest.startswith("!")
    return TypeRef(match[0], non_null), rest[1:] if non_null else rest


# ---------------------------------------------------------------------------------------------
# A GraphQL document reader: one operation, fields with arguments and selections (no fragments,
# aliases or directives: flashc sends none, and the fake says so rather than guess).


class GraphQLError(Exception):
    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


@dataclass
class Var:
    name: str


@dataclass
class Selection:
    name: str
    args: dict[str, Any]
    selections: list[Selection] | None


@dataclass
class Document:
    kind: str
    name: str | None
    variables: dict[str, TypeRef]
    selections: list[Selection]


_TOKEN = re.compile(
    r"(?P<skip>[\s,]+|#[^\n]*)|(?P<punct>\.\.\.|[!$():=@\[\]{}|])|(?P<name>[_A-Za-z]\w*)"
    r'|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<string>"(?:[^"\\\n]|\\.)*")'
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise GraphQLError(f"Syntax Error: Unexpected character: {text[pos]!r}.")
        pos = match.end()
        if match.lastgroup != "skip":
            out.append((match.lastgroup or "", match[0]))
    return out


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None, kind: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            raise GraphQLError("Syntax Error: Unexpected <EOF>.")
        token_kind, token = self.tokens[self.pos]
        if (expected is not None and token != expected) or (kind is not None and token_kind != kind):
            want = f'"{expected}"' if expected else kind
            raise GraphQLError(f'Syntax Error: Expected {want}, found "{token}".')
        self.pos += 1
        return token

    def document(self) -> Document:
        kind, name, variables = "query", None, {}
        if self.peek() != "{":
            kind = self.take(kind="name")
            if kind not in ("query", "mutation", "subscription"):
                raise GraphQLError(f'Syntax Error: Unexpected Name "{kind}".')
            if self.peek() not in ("(", "{"):
                name = self.take(kind="name")
            if self.peek() == "(":
                self.take("(")
                while self.peek() != ")":
                    self.take("$")
                    var = self.take(kind="name")
                    self.take(":")
                    variables[var] = self.type_ref()
                    if self.peek() == "=":
                        raise GraphQLError("fake: default values of variables are not supported")
                self.take(")")
        selections = self.selection_set()
        if self.peek() is not None:
            raise GraphQLError("fake: one operation per document")
        return Document(kind, name, variables, selections)

    def type_ref(self) -> TypeRef:
        if self.peek() == "[":
            self.take("[")
            inner = self.type_ref()
            self.take("]")
            ref = TypeRef(None, False, inner)
        else:
            ref = TypeRef(self.take(kind="name"))
        if self.peek() == "!":
            self.take("!")
            ref = TypeRef(ref.name, True, ref.of)
        return ref

    def selection_set(self) -> list[Selection]:
        self.take("{")
        selections = []
        while self.peek() != "}":
            if self.peek() in ("...", "@"):
                raise GraphQLError("fake: fragments and directives are not supported")
            name = self.take(kind="name")
            if self.peek() == ":":
                raise GraphQLError("fake: aliases are not supported")
            args = {}
            if self.peek() == "(":
                self.take("(")
                while self.peek() != ")":
                    arg = self.take(kind="name")
                    self.take(":")
                    args[arg] = self.value()
                self.take(")")
            sub = self.selection_set() if self.peek() == "{" else None
            selections.append(Selection(name, args, sub))
        self.take("}")
        if not selections:
            raise GraphQLError('Syntax Error: Expected Name, found "}".')
        return selections

    def value(self) -> Any:
        token = self.peek()
        if token == "$":
            self.take("$")
            return Var(self.take(kind="name"))
        if token == "[":
            self.take("[")
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        if token == "{":
            self.take("{")
            obj = {}
            while self.peek() != "}":
                key = self.take(kind="name")
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        kind, text = self.tokens[self.pos]
        self.pos += 1
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return json.loads(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        return text  # an enum value


# ---------------------------------------------------------------------------------------------
# Validation of a document against the schema, and coercion of its variables.


def validate(doc: Document) -> list[str]:
    """graphql-js's messages for what is wrong with the document (empty when it is valid)."""
    errors: list[str] = []
    op = f' by operation "{doc.name}"' if doc.name else ""
    for ref in doc.variables.values():
        if ref.named not in INPUTS and ref.named not in SCALARS and ref.named not in ENUMS:
            errors.append(f'Unknown type "{ref.named}".')
    used: set[str] = set()
    root = "Query" if doc.kind == "query" else "Mutation" if doc.kind == "mutation" else doc.kind.title()
    if root not in OUTPUTS:
        return [f"Schema is not configured to execute {doc.kind} operation."]
    _validate_selections(doc, root, doc.selections, errors, used, op)
    for var in doc.variables:
        if var not in used:
            errors.append(f'Variable "${var}" is never used{op.replace(" by", " in")}.')
    return errors


def _validate_selections(
    doc: Document, type_name: str, selections: list[Selection], errors: list[str], used: set[str], op: str
) -> None:
    fields = OUTPUTS[type_name]
    for sel in selections:
        out = fields.get(sel.name)
        if out is None:
            errors.append(f'Cannot query field "{sel.name}" on type "{type_name}".')
            continue
        for arg, value in sel.args.items():
            if arg not in out.args:
                errors.append(f'Unknown argument "{arg}" on field "{type_name}.{sel.name}".')
                continue
            if isinstance(value, Var):
                used.add(value.name)
                declared = doc.variables.get(value.name)
                if declared is None:
                    errors.append(f'Variable "${value.name}" is not defined{op}.')
                elif not _fits(declared, parse_type(out.args[arg])):
                    expected = out.args[arg]
                    errors.append(
                        f'Variable "${value.name}" of type "{declared}" used in position expecting type "{expected}".'
                    )
        for arg, arg_type in out.args.items():
            if arg_type.endswith("!") and arg not in sel.args:
                errors.append(
                    f'Field "{sel.name}" argument "{arg}" of type "{arg_type}" is required, but it was not provided.'
                )
        ref = parse_type(out.type)
        if ref.named in OUTPUTS:
            if sel.selections is None:
                errors.append(
                    f'Field "{sel.name}" of type "{out.type}" must have a selection of subfields. '
                    f'Did you mean "{sel.name} {{ ... }}"?'
                )
            else:
                _validate_selections(doc, ref.named, sel.selections, errors, used, op)
        elif sel.selections is not None:
            errors.append(f'Field "{sel.name}" must not have a selection since type "{out.type}" has no subfields.')


def _fits(declared: TypeRef, expected: TypeRef) -> bool:
    if expected.non_null and not declared.non_null:
        return False
    if (declared.of is None) != (expected.of is None):
        return False
    if declared.of is not None and expected.of is not None:
        return _fits(declared.of, expected.of)
    return declared.name == expected.name


def coerce_variables(doc: Document, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    errors: list[str] = []
    for var, ref in doc.variables.items():
        if var not in given:
            if ref.non_null:
                errors.append(f'Variable "${var}" of required type "{ref}" was not provided.')
            continue
        value = given[var]
        if value is None and ref.non_null:
            errors.append(f'Variable "${var}" of non-null type "{ref}" must not be null.')
            continue
        problems: list[tuple[str, str]] = []
        values[var] = _coerce(value, ref, var, problems)
        for path, problem in problems:
            at = f' at "{path}"' if path != var else ""
            errors.append(
                f'Variable "${var}" got invalid value {_show(value if not at else _at(value, path))}{at}; {problem}'
            )
    return values, errors


def _at(value: Any, path: str) -> Any:
    for part in path.split(".")[1:]:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
    return value


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _coerce(value: Any, ref: TypeRef, path: str, problems: list[tuple[str, str]]) -> Any:
    if value is None:
        if ref.non_null:
            problems.append((path, f'Expected non-nullable type "{ref}" not to be null.'))
        return None
    if ref.of is not None:
        items = value if isinstance(value, list) else [value]
        return [_coerce(item, ref.of, f"{path}.{i}", problems) for i, item in enumerate(items)]
    name = ref.named
    if name in INPUTS:
        if not isinstance(value, dict):
            problems.append((path, f'Expected type "{name}" to be an object.'))
            return value
        fields = INPUTS[name]
        out = {}
        for key, item in value.items():
            if key not in fields:
                problems.append((path, f'Field "{key}" is not defined by type "{name}".'))
                continue
            out[key] = _coerce(item, parse_type(fields[key]), f"{path}.{key}", problems)
        for key, field_type in fields.items():
            if field_type.endswith("!") and key not in value:
                problems.append((path, f'Field "{key}" of required type "{field_type}" was not provided.'))
        return out
    if name in ENUMS:
        if not isinstance(value, str) or value not in ENUMS[name]:
            problems.append((path, f'Value {_show(value)} does not exist in "{name}" enum.'))
        return value
    if name in ("String", "ID"):
        if not isinstance(value, str):
            problems.append((path, f"String cannot represent a non string value: {_show(value)}"))
    elif name == "Int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((path, f"Int cannot represent non-integer value: {_show(value)}"))
        elif not -(2**31) <= value < 2**31:
            problems.append((path, f"Int cannot represent non 32-bit signed integer value: {value}"))
    elif name == "Float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append((path, f"Float cannot represent non numeric value: {_show(value)}"))
    elif name == "Boolean":
        if not isinstance(value, bool):
            problems.append((path, f"Boolean cannot represent a non boolean value: {_show(value)}"))
    elif name == "JSONObject" and not isinstance(value, dict):
        problems.append((path, f"JSONObject cannot represent non-object value: {_show(value)}"))
    return value


# ---------------------------------------------------------------------------------------------
# Faults


@dataclass
class Fault:
    kind: str
    code: int = 0
    body: str | None = None
    message: str = ""
    after: int = 0
    seconds: float = 0.0
    times: int = 1

    @classmethod
    def status(cls, code: int, body: str | None = None, *, times: int = 1) -> Fault:
        return cls("status", code=code, body=body, times=times)

    @classmethod
    def graphql_error(cls, message: str, *, times: int = 1) -> Fault:
        return cls("graphql_error", message=message, times=times)

    @classmethod
    def timeout(cls, kind: str = "read", *, times: int = 1) -> Fault:
        return cls("timeout", message=kind, times=times)

    @classmethod
    def connect_error(cls, *, times: int = 1) -> Fault:
        return cls("connect_error", times=times)

    @classmethod
    def lost_answer(cls, error: str = "timeout", *, times: int = 1) -> Fault:
        return cls("lost_answer", message=error, times=times)

    @classmethod
    def reset(cls, after: int = 0, *, times: int = 1) -> Fault:
        return cls("reset", after=after, times=times)

    @classmethod
    def expired(cls, *, times: int = 1) -> Fault:
        return cls("expired", times=times)

    @classmethod
    def slow(cls, seconds: float, *, times: int = 1) -> Fault:
        return cls("slow", seconds=seconds, times=times)


@dataclass
class Rejection:
    name: str
    status: int
    messages: list[str]


@dataclass
class Upload:
    url: str
    object_key: str
    app_id: str
    declared_size: int
    expires_at: float
    signature: str
    data: bytes | None = None
    attempts: int = 0

    @property
    def sha256(self) -> str | None:
        return None if self.data is None else hashlib.sha256(self.data).hexdigest()


class _Lost(Exception):
    """Internal: the request was applied; the client gets `error` instead of the answer."""

    def __init__(self, error: Exception) -> None:
        self.error = error


S3_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message>'
    "<X-Amz-Expires>3600</X-Amz-Expires><RequestId>FAKE0001</RequestId></Error>"
)


def _s3_error(code: str, message: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'


# ---------------------------------------------------------------------------------------------


class FakeRunpod:
    """The fake services; `transport` is what a client is given. See the module docstring."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        graphql_url: str = GRAPHQL_URL,
        rest_url: str = REST_URL,
        data_url: str = DATA_URL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.graphql_url = httpx.URL(graphql_url)
        self.rest_url = httpx.URL(rest_url.rstrip("/"))
        self.data_url = httpx.URL(data_url.rstrip("/"))
        self.clock = clock
        self.upload_ttl = 3600.0
        self.apps: dict[str, dict[str, Any]] = {}
        self.environments: dict[str, dict[str, Any]] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, Upload] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[httpx.Request] = []
        self.rejected: list[Rejection] = []
        self.delays: list[tuple[str, float]] = []
        self.mutation_names: set[str] = set()
        self.runsync_output: Callable[[str, Any], Any] = lambda endpoint_id, payload: payload
        self._faults: dict[str, list[Fault]] = {}
        self._ids = itertools.count(1)
        self.transport = _Transport(self)

    # -- scripting and inspection -----------------------------------------------------------------

    def inject(self, name: str, *faults: Fault) -> None:
        """Queue faults for the next requests called `name` (an operation's name, "upload", ...)."""
        self._faults.setdefault(name, []).extend(faults)

    def expire(self, object_key: str | None = None) -> None:
        """Make the presigned URLs handed out so far (or the one for `object_key`) expired."""
        for upload in self.uploads.values():
            if object_key is None or upload.object_key == object_key:
                upload.expires_at = self.clock() - 1

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)

    def writes(self) -> list[str]:
        """The calls that change state: mutations, uploads, volume creations."""
        return [n for n, _ in self.calls if n in self.mutation_names or n in ("upload", "POST networkvolumes")]

    def uploaded(self, sha256: str) -> bool:
        return any(upload.sha256 == sha256 for upload in self.uploads.values())

    def endpoints_in(self, env_id: str) -> list[dict[str, Any]]:
        return [e for e in self.endpoints.values() if e.get("flashEnvironmentId") == env_id]

    def _next_fault(self, name: str) -> Fault | None:
        queue = self._faults.get(name)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    # -- HTTP ---------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = request.url
        if (url.host, url.path) == (self.graphql_url.host, self.graphql_url.path) and request.method == "POST":
            return self._graphql(request)
        if url.host == self.rest_url.host and url.path == self.rest_url.path + "/networkvolumes":
            return self._rest_volumes(request)
        if url.host == BUCKET_HOST and request.method == "PUT":
            return self._put(request)
        if url.host == self.data_url.host and url.path.startswith(self.data_url.path + "/"):
            return self._data_plane(request)
        request.read()
        return httpx.Response(404, json={"error": "not found"})

    def _authorized(self, request: httpx.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _reject(self, name: str, status: int, messages: list[str], code: str) -> httpx.Response:
        self.rejected.append(Rejection(name, status, messages))
        errors = [{"message": m, "extensions": {"code": code}} for m in messages]
        return httpx.Response(status, json={"errors": errors})

    def _faulted(self, name: str, request: httpx.Request, apply: Callable[[], httpx.Response]) -> httpx.Response:
        """Apply the request, through the next scripted fault for `name` if there is one."""
        fault = self._next_fault(name)
        if fault is None:
            request.read()
            return apply()
        if fault.kind == "reset":
            _consume(request, fault.after)
            raise httpx.WriteError("[Errno 104] Connection reset by peer", request=request)
        if fault.kind == "connect_error":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if fault.kind == "timeout" and fault.message == "connect":
            raise httpx.ConnectTimeout("timed out", request=request)
        request.read()
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "status":
            body = (
                fault.body if fault.body is not None else json.dumps({"errors": [{"message": "Internal Server Error"}]})
            )
            return httpx.Response(fault.code, text=body)
        if fault.kind == "graphql_error":
            return httpx.Response(200, json={"errors": [{"message": fault.message}], "data": None})
        if fault.kind == "expired":
            return httpx.Response(403, text=S3_EXPIRED, headers={"Content-Type": "application/xml"})
        if fault.kind == "lost_answer":
            apply()
            if fault.message == "reset":
                raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "slow":
            self.delays.append((name, fault.seconds))
            timeout = request.extensions.get("timeout", {}).get("read")
            response = apply()
            if timeout is not None and fault.seconds >= timeout:
                raise httpx.ReadTimeout("timed out", request=request)
            return response
        raise AssertionError(f"unknown fault {fault.kind}")

    # -- GraphQL --------------------------------------------------------------------------------

    def _graphql(self, request: httpx.Request) -> httpx.Response:
        request.read()
        try:
            body = json.loads(request.content)
            query, variables = body["query"], body.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.calls.append(("<malformed>", {}))
            return self._reject(
                "<malformed>", 400, ["POST body missing, invalid Content-Type, or JSON malformed."], "BAD_REQUEST"
            )
        try:
            doc = _Reader(query).document()
        except GraphQLError as error:
            self.calls.append(("<unparsable>", variables))
            return self._reject("<unparsable>", 400, error.messages, "GRAPHQL_PARSE_FAILED")
        name = doc.name or doc.selections[0].name
        self.calls.append((name, variables))
        if doc.kind == "mutation":
            self.mutation_names.add(name)
        if not self._authorized(request):
            self.rejected.append(Rejection(name, 401, ["Unauthorized"]))
            return httpx.Response(401, json={"errors": [{"message": "Unauthorized"}]})
        problems = validate(doc)
        if problems:
            return self._reject(name, 400, problems, "GRAPHQL_VALIDATION_FAILED")
        values, problems = coerce_variables(doc, variables)
        if problems:
            return self._reject(name, 400, problems, "BAD_USER_INPUT")
        return self._faulted(name, request, lambda: self._execute(doc, values))

    def _execute(self, doc: Document, values: dict[str, Any]) -> httpx.Response:
        root = "Query" if doc.kind == "query" else "Mutation"
        data: dict[str, Any] = {}
        errors = []
        for sel in doc.selections:
            args = _resolve_args(sel.args, values)
            try:
                value = getattr(self, f"_{root.lower()}_{sel.name}")(**args)
                data[sel.name] = _project(value, OUTPUTS[root][sel.name].type, sel.selections, values)
            except GraphQLError as error:
                data[sel.name] = None
                errors.extend({"message": m, "path": [sel.name]} for m in error.messages)
        body: dict[str, Any] = {"data": data}
        if errors:
            body["errors"] = errors
        return httpx.Response(200, json=body)

    # queries

    def _query_flashAppByName(self, flashAppName: str) -> dict[str, Any]:
        for app in self.apps.values():
            if app["name"] == flashAppName:
                return self._app_view(app)
        raise GraphQLError("app not found")

    def _query_flashApp(self, flashAppId: str) -> dict[str, Any]:
        if flashAppId not in self.apps:
            raise GraphQLError("app not found")
        return self._app_view(self.apps[flashAppId])

    def _query_flashEnvironmentByName(self, input: dict[str, Any]) -> dict[str, Any] | None:
        for env in self.environments.values():
            if env["flashAppId"] == input["flashAppId"] and env["name"] == input["name"]:
                return self._env_view(env)
        return None

    def _query_flashEnvironment(self, flashEnvironmentId: str) -> dict[str, Any] | None:
        env = self.environments.get(flashEnvironmentId)
        return None if env is None else self._env_view(env)

    def _query_flashBuild(self, flashBuildId: str) -> dict[str, Any] | None:
        return self.builds.get(flashBuildId)

    def _query_podTemplate(self, id: str) -> dict[str, Any] | None:
        return self.templates.get(id)

    def _query_myself(self) -> dict[str, Any]:
        return {
            "id": "user-fake",
            "endpoint": lambda id: self.endpoints.get(id),
            "endpoints": list(self.endpoints.values()),
            "flashApps": [self._app_view(app) for app in self.apps.values()],
        }

    def _app_view(self, app: dict[str, Any]) -> dict[str, Any]:
        return {
            **app,
            "flashEnvironments": [
                self._env_view(e) for e in self.environments.values() if e["flashAppId"] == app["id"]
            ],
            "flashBuilds": [b for b in self.builds.values() if b["flashAppId"] == app["id"]],
        }

    def _env_view(self, env: dict[str, Any]) -> dict[str, Any]:
        return {**env, "endpoints": self.endpoints_in(env["id"]), "networkVolumes": []}

    # mutations

    def _mutation_createFlashApp(self, input: dict[str, Any]) -> dict[str, Any]:
        if any(app["name"] == input["name"] for app in self.apps.values()):
            raise GraphQLError(f"flash app with name {input['name']} already exists")
        app = {"id": self._id("app-"), "name": input["name"], "createdAt": self._now()}
        self.apps[app["id"]] = app
        return self._app_view(app)

    def _mutation_createFlashEnvironment(self, input: dict[str, Any]) -> dict[str, Any]:
        if input["flashAppId"] not in self.apps:
            raise GraphQLError("app not found")
        if self._query_flashEnvironmentByName(input) is not None:
            raise GraphQLError(f"flash environment with name {input['name']} already exists")
        env = {
            "id": self._id("env-"),
            "name": input["name"],
            "flashAppId": input["flashAppId"],
            "state": "HEALTHY",
            "activeBuildId": None,
            "createdAt": self._now(),
        }
        self.environments[env["id"]] = env
        return self._env_view(env)

    def _mutation_prepareFlashArtifactUpload(self, input: dict[str, Any]) -> dict[str, Any]:
        if input["flashAppId"] not in self.apps:
            raise GraphQLError("app not found")
        if input["tarballSize"] <= 0:
            raise GraphQLError("tarballSize must be positive")
        object_key = f"flash/{input['flashAppId']}/{self._id('artifact-')}.tar.gz"
        signature = hashlib.sha256(object_key.encode()).hexdigest()
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAFAKE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
            f"&X-Amz-Expires={int(self.upload_ttl)}&X-Amz-SignedHeaders=content-type%3Bhost&X-Amz-Signature={signature}"
        )
        upload = Upload(
            url=f"https://{BUCKET_HOST}/{object_key}?{query}",
            object_key=object_key,
            app_id=input["flashAppId"],
            declared_size=input["tarballSize"],
            expires_at=self.clock() + self.upload_ttl,
            signature=signature,
        )
        self.uploads[object_key] = upload
        return {"uploadUrl": upload.url, "objectKey": object_key, "expiresAt": self._iso(upload.expires_at)}

    def _mutation_finalizeFlashArtifactUpload(self, input: dict[str, Any]) -> dict[str, Any]:
        if input["flashAppId"] not in self.apps:
            raise GraphQLError("app not found")
        upload = self.uploads.get(input["objectKey"])
        if upload is None or upload.app_id != input["flashAppId"] or upload.data is None:
            raise GraphQLError("artifact not found: upload it before finalizing")
        build = {
            "id": self._id("build-"),
            "flashAppId": input["flashAppId"],
            "objectKey": input["objectKey"],
            "manifest": input["manifest"],
            "createdAt": self._now(),
        }
        self.builds[build["id"]] = build
        return build

    def _mutation_deployBuildToEnvironment(self, input: dict[str, Any]) -> dict[str, Any]:
        env = self.environments.get(input["flashEnvironmentId"])
        build = self.builds.get(input["flashBuildId"])
        if env is None:
            raise GraphQLError("flash environment not found")
        if build is None or build["flashAppId"] != env["flashAppId"]:
            raise GraphQLError("flash build not found")
        env["activeBuildId"] = build["id"]
        artifact = {
            "objectKey": build["objectKey"],
            "downloadUrl": f"https://{BUCKET_HOST}/{build['objectKey']}?X-Amz-Signature=download",
            "expiresAt": self._iso(self.clock() + self.upload_ttl),
        }
        return {**self._env_view(env), "activeArtifact": artifact}

    def _mutation_updateFlashBuildManifest(self, input: dict[str, Any]) -> dict[str, Any]:
        build = self.builds.get(input["flashBuildId"])
        if build is None:
            raise GraphQLError("flash build not found")
        build["manifest"] = input["manifest"]
        return build

    def _mutation_saveEndpoint(self, input: dict[str, Any]) -> dict[str, Any]:
        fields = {k: v for k, v in input.items() if k != "template"}
        template = input.get("template")
        if "flashEnvironmentId" in fields and fields["flashEnvironmentId"] not in self.environments:
            raise GraphQLError("flash environment not found")
        if fields.get("templateId") is not None and fields["templateId"] not in self.templates:
            raise GraphQLError("template not found")
        if fields.get("networkVolumeId") is not None and fields["networkVolumeId"] not in self.volumes:
            raise GraphQLError("network volume not found")
        idle = fields.get("idleTimeout")
        if idle is not None and not 1 <= idle <= 3600:
            raise GraphQLError("idleTimeout must be between 1 and 3600")
        if "id" in fields:
            endpoint = self.endpoints.get(fields["id"])
            if endpoint is None:
                raise GraphQLError("endpoint not found")
            merged = {**endpoint, **fields, "version": endpoint["version"] + 1}
        else:
            if template is None and fields.get("templateId") is None:
                raise GraphQLError("either template or templateId is required")
            merged = {
                "id": self._id("ep"),
                "type": "QB",
                "userId": "user-fake",
                "aiKey": self._id("aik-"),
                "version": 0,
                "workersMin": 0,
                "workersMax": 3,
                "scalerType": "QUEUE_DELAY",
                "scalerValue": 4,
                **fields,
            }
        if template is not None:
            template_id = merged.get("templateId") or self._id("tpl-")
            self.templates[template_id] = {"id": template_id, "volumeInGb": 0, "isServerless": True, **template}
            merged["templateId"] = template_id
        if merged.get("workersMin", 0) > merged.get("workersMax", 0):
            raise GraphQLError("workersMin cannot be greater than workersMax")
        self.endpoints[merged["id"]] = merged
        return merged

    def _mutation_saveTemplate(self, input: dict[str, Any] | None = None) -> dict[str, Any]:
        if input is None:
            raise GraphQLError("input is required")
        if "id" in input:
            if input["id"] not in self.templates:
                raise GraphQLError("template not found")
            template = {**self.templates[input["id"]], **input}
        else:
            template = {"id": self._id("tpl-"), "isServerless": False, **input}
        self.templates[template["id"]] = template
        return template

    def _mutation_deleteEndpoint(self, id: str) -> None:
        if self.endpoints.pop(id, None) is None:
            raise GraphQLError("endpoint not found")
        return None

    def _mutation_deleteFlashEnvironment(self, flashEnvironmentId: str) -> None:
        if self.environments.pop(flashEnvironmentId, None) is None:
            raise GraphQLError("flash environment not found")

    def _mutation_deleteFlashApp(self, flashAppId: str) -> None:
        if self.apps.pop(flashAppId, None) is None:
            raise GraphQLError("app not found")

    def _iso(self, seconds: float) -> str:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    # -- REST network volumes ---------------------------------------------------------------------

    def _rest_volumes(self, request: httpx.Request) -> httpx.Response:
        name = f"{request.method} networkvolumes"
        request.read()
        body: Any = None
        if request.method == "POST":
            try:
                body = json.loads(request.content)
            except ValueError:
                body = None
        self.calls.append((name, body if isinstance(body, dict) else {}))
        if not self._authorized(request):
            self.rejected.append(Rejection(name, 401, ["Unauthorized"]))
            return httpx.Response(401, json={"error": "Unauthorized"})
        if request.method == "GET":
            return self._faulted(name, request, lambda: httpx.Response(200, json=list(self.volumes.values())))
        if request.method != "POST":
            return httpx.Response(405, json={"error": "method not allowed"})
        problems = _volume_problems(body)
        if problems:
            self.rejected.append(Rejection(name, 400, problems))
            return httpx.Response(400, json={"error": "; ".join(problems)})
        return self._faulted(name, request, lambda: self._create_volume(body))

    def _create_volume(self, body: dict[str, Any]) -> httpx.Response:
        volume = {
            "id": self._id("vol-"),
            "name": body["name"],
            "size": body["size"],
            "dataCenterId": body["dataCenterId"],
        }
        self.volumes[volume["id"]] = volume
        return httpx.Response(200, json=volume)

    # -- the presigned PUT --------------------------------------------------------------------------

    def _put(self, request: httpx.Request) -> httpx.Response:
        object_key = request.url.path.lstrip("/")
        upload = self.uploads.get(object_key)
        self.calls.append(("upload", {"object_key": object_key}))
        if upload is None or request.url.params.get("X-Amz-Signature") != upload.signature:
            request.read()
            return self._s3_reject(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        upload.attempts += 1
        if "Authorization" in request.headers:
            request.read()
            return self._s3_reject(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
                "parameter or the Authorization header should be specified",
            )
        if request.headers.get("Content-Type") != "application/gzip":
            request.read()
            return self._s3_reject(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        if self.clock() >= upload.expires_at:
            request.read()  # an answer, not a malformed request: not in `rejected`
            return httpx.Response(403, text=S3_EXPIRED, headers={"Content-Type": "application/xml"})
        if "Content-Length" not in request.headers:
            request.read()
            return self._s3_reject(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")

        def store() -> httpx.Response:
            data = request.content
            if len(data) != int(request.headers["Content-Length"]):
                return self._s3_reject(400, "IncompleteBody", "You did not provide the number of bytes specified")
            upload.data = data
            return httpx.Response(200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

        return self._faulted("upload", request, store)

    def _s3_reject(self, status: int, code: str, message: str) -> httpx.Response:
        self.rejected.append(Rejection("upload", status, [f"{code}: {message}"]))
        return httpx.Response(status, text=_s3_error(code, message), headers={"Content-Type": "application/xml"})

    # -- the data plane -----------------------------------------------------------------------------

    def _data_plane(self, request: httpx.Request) -> httpx.Response:
        rest = request.url.path[len(self.data_url.path) + 1 :]
        endpoint_id, _, action = rest.partition("/")
        request.read()
        name = {"health": "health", "runsync": "runsync"}.get(action, action)
        payload: Any = None
        if request.method == "POST":
            try:
                payload = json.loads(request.content or b"null")
            except ValueError:
                payload = None
        self.calls.append(
            (name, {"endpoint_id": endpoint_id, **({"body": payload} if request.method == "POST" else {})})
        )
        if not self._authorized(request):
            self.rejected.append(Rejection(name, 401, ["Unauthorized"]))
            return httpx.Response(401, json={"error": "Unauthorized"})
        if endpoint_id not in self.endpoints:
            return httpx.Response(404, json={"error": "endpoint not found"})
        if action == "health" and request.method == "GET":
            return self._faulted(name, request, lambda: httpx.Response(200, json=_HEALTH))
        if action == "runsync" and request.method == "POST":
            if not isinstance(payload, dict) or "input" not in payload:
                self.rejected.append(Rejection(name, 400, ["the body must be a JSON object with 'input'"]))
                return httpx.Response(400, json={"error": "the body must be a JSON object with 'input'"})
            job = {
                "id": f"sync-{self._id('job-')}",
                "status": "COMPLETED",
                "output": self.runsync_output(endpoint_id, payload["input"]),
                "delayTime": 1,
                "executionTime": 2,
                "workerId": "fake-worker-1",
            }
            return self._faulted(name, request, lambda: httpx.Response(200, json=job))
        return httpx.Response(404, json={"error": "not found"})


_HEALTH = {
    "jobs": {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0},
    "workers": {"idle": 0, "initializing": 0, "ready": 0, "running": 0, "throttled": 0, "unhealthy": 0},
}


def _volume_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [f"unknown field '{key}'" for key in body if key not in ("name", "size", "dataCenterId")]
    problems += [f"'{key}' is required" for key in ("name", "size", "dataCenterId") if key not in body]
    if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
        problems.append("'name' must be a non-empty string")
    size = body.get("size")
    if "size" in body and (isinstance(size, bool) or not isinstance(size, int) or not 10 <= size <= 4096):
        problems.append("'size' must be an integer from 10 to 4096")
    if "dataCenterId" in body and body["dataCenterId"] not in DATA_CENTERS:
        problems.append(f"'dataCenterId' {body['dataCenterId']!r} is not a data center")
    return problems


def _resolve_args(args: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {k: _resolve(v, values) for k, v in args.items() if not (isinstance(v, Var) and v.name not in values)}


def _resolve(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, Var):
        return values.get(value.name)
    if isinstance(value, list):
        return [_resolve(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, values) for k, v in value.items()}
    return value


def _project(value: Any, type_text: str, selections: list[Selection] | None, values: dict[str, Any]) -> Any:
    """The answer's JSON for `value` of the field's type, holding only the selected fields."""
    if value is None:
        return None
    ref = parse_type(type_text)
    if ref.of is not None:
        inner = str(ref.of)
        return [_project(item, inner, selections, values) for item in value]
    if ref.named not in OUTPUTS or selections is None:
        return value
    fields = OUTPUTS[ref.named]
    out = {}
    for sel in selections:
        item = value.get(sel.name)
        if callable(item):
            item = item(**_resolve_args(sel.args, values))
        out[sel.name] = _project(item, fields[sel.name].type, sel.selections, values)
    return out


def _consume(request: httpx.Request, limit: int) -> int:
    """Read up to `limit` bytes of the request's body, as a server does before the connection drops."""
    seen = 0
    stream = request.stream
    if isinstance(stream, httpx.SyncByteStream) or hasattr(stream, "__iter__"):
        for chunk in stream:  # type: ignore[union-attr]
            seen += len(chunk)
            if seen >= limit:
                break
    return seen


class _Transport(httpx.BaseTransport):
    """Hands each request to the fake; the fake may raise httpx's transport errors, as a network does."""

    def __init__(self, fake: FakeRunpod) -> None:
        self.fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.fake.handle(request)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
