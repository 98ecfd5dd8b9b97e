"""The GraphQL documents flashc sends to Runpod's control plane, one record per operation.

Operation names, root fields, variable names and input types are Runpod's (those the Flash SDK
1.21 sends); each selection holds only the fields flashc reads. The server dispatches on the
document alone: no `operationName` is sent, and a mutation is told from a query by its first word.

| operation                   | kind     | root field                    | variables                                   |
|-----------------------------|----------|-------------------------------|---------------------------------------------|
| getFlashAppByName           | query    | flashAppByName                | flashAppName: String!                       |
| createFlashApp              | mutation | createFlashApp                | input: CreateFlashAppInput!                 |
| createFlashEnvironment      | mutation | createFlashEnvironment        | input: CreateFlashEnvironmentInput!         |
| getFlashEnvironmentByName   | query    | flashEnvironmentByName        | input: FlashEnvironmentByNameInput!         |
| getFlashEnvironment         | query    | flashEnvironment              | flashEnvironmentId: String!                 |
| listFlashBuilds             | query    | flashApp                      | flashAppId: String!                         |
| getFlashBuild               | query    | flashBuild                    | input: String! (the build id)               |
| PrepareArtifactUpload       | mutation | prepareFlashArtifactUpload    | input: PrepareFlashArtifactUploadInput!     |
| FinalizeArtifactUpload      | mutation | finalizeFlashArtifactUpload   | input: FinalizeFlashArtifactUploadInput!    |
| deployBuildToEnvironment    | mutation | deployBuildToEnvironment      | input: DeployBuildToEnvironmentInput!       |
| updateFlashBuildManifest    | mutation | updateFlashBuildManifest      | input: UpdateFlashBuildManifestInput!       |
| saveEndpoint                | mutation | saveEndpoint                  | input: EndpointInput!                       |
| getTemplate                 | query    | podTemplate                   | id: String!                                 |
| saveTemplate                | mutation | saveTemplate                  | input: SaveTemplateInput (nullable)         |
| getEndpoint                 | query    | myself.endpoint               | id: String!                                 |
| deleteEndpoint              | mutation | deleteEndpoint (a scalar)     | id: String!                                 |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CREATE_APP",
    "CREATE_ENVIRONMENT",
    "DELETE_ENDPOINT",
    "DEPLOY_BUILD",
    "ENDPOINT_FIELDS",
    "FINALIZE_UPLOAD",
    "GET_APP_BY_NAME",
    "GET_BUILD",
    "GET_ENDPOINT",
    "GET_ENVIRONMENT",
    "GET_ENVIRONMENT_BY_NAME",
    "GET_TEMPLATE",
    "LIST_BUILDS",
    "OPERATIONS",
    "PREPARE_UPLOAD",
    "SAVE_ENDPOINT",
    "SAVE_TEMPLATE",
    "TEMPLATE_FIELDS",
    "UPDATE_BUILD_MANIFEST",
    "Operation",
]


@dataclass(frozen=True)
class Operation:
    """One GraphQL document: its operation name, whether it is a query or a mutation, and its text.

    `root` is the field of `data` the answer is under."""

    name: str
    kind: Literal["query", "mutation"]
    root: str
    document: str

    @property
    def is_mutation(self) -> bool:
        return self.kind == "mutation"


# The endpoint fields flashc reads back from saveEndpoint: its identity, where it belongs, and the
# settings a plan compares. `aiKey` (a per-endpoint secret) is deliberately not asked for.
ENDPOINT_FIELDS = (
    "id name type templateId flashEnvironmentId gpuIds gpuCount instanceIds locations "
    "networkVolumeId workersMin workersMax idleTimeout scalerType scalerValue "
    "minCudaVersion executionTimeoutMs flashBootType"
)
TEMPLATE_FIELDS = "id name imageName containerDiskInGb dockerArgs env { key value } readme"
_ENVIRONMENT_FIELDS = "id name activeBuildId endpoints { id name } networkVolumes { id name }"

GET_APP_BY_NAME = Operation(
    "getFlashAppByName",
    "query",
    "flashAppByName",
    """query getFlashAppByName($flashAppName: String!) {
  flashAppByName(flashAppName: $flashAppName) {
    id name flashEnvironments { id name activeBuildId }
  }
}""",
)
CREATE_APP = Operation(
    "createFlashApp",
    "mutation",
    "createFlashApp",
    """mutation createFlashApp($input: CreateFlashAppInput!) {
  createFlashApp(input: $input) { id name }
}""",
)
CREATE_ENVIRONMENT = Operation(
    "createFlashEnvironment",
    "mutation",
    "createFlashEnvironment",
    """mutation createFlashEnvironment($input: CreateFlashEnvironmentInput!) {
  createFlashEnvironment(input: $input) { id name }
}""",
)
GET_ENVIRONMENT_BY_NAME = Operation(
    "getFlashEnvironmentByName",
    "query",
    "flashEnvironmentByName",
    f"""query getFlashEnvironmentByName($input: FlashEnvironmentByNameInput!) {{
  flashEnvironmentByName(input: $input) {{ {_ENVIRONMENT_FIELDS} }}
}}""",
)
GET_ENVIRONMENT = Operation(
    "getFlashEnvironment",
    "query",
    "flashEnvironment",
    f"""query getFlashEnvironment($flashEnvironmentId: String!) {{
  flashEnvironment(flashEnvironmentId: $flashEnvironmentId) {{ {_ENVIRONMENT_FIELDS} }}
}}""",
)
LIST_BUILDS = Operation(
    "listFlashBuilds",
    "query",
    "flashApp",
    """query listFlashBuilds($flashAppId: String!) {
  flashApp(flashAppId: $flashAppId) { flashBuilds { id objectKey createdAt } }
}""",
)
GET_BUILD = Operation(
    "getFlashBuild",
    "query",
    "flashBuild",
    """query getFlashBuild($input: String!) {
  flashBuild(flashBuildId: $input) { id manifest }
}""",
)
PREPARE_UPLOAD = Operation(
    "PrepareArtifactUpload",
    "mutation",
    "prepareFlashArtifactUpload",
    """mutation PrepareArtifactUpload($input: PrepareFlashArtifactUploadInput!) {
  prepareFlashArtifactUpload(input: $input) { uploadUrl objectKey expiresAt }
}""",
)
FINALIZE_UPLOAD = Operation(
    "FinalizeArtifactUpload",
    "mutation",
    "finalizeFlashArtifactUpload",
    """mutation FinalizeArtifactUpload($input: FinalizeFlashArtifactUploadInput!) {
  finalizeFlashArtifactUpload(input: $input) { id manifest }
}""",
)
DEPLOY_BUILD = Operation(
    "deployBuildToEnvironment",
    "mutation",
    "deployBuildToEnvironment",
    """mutation deployBuildToEnvironment($input: DeployBuildToEnvironmentInput!) {
  deployBuildToEnvironment(input: $input) { id }
}""",
)
UPDATE_BUILD_MANIFEST = Operation(
    "updateFlashBuildManifest",
    "mutation",
    "updateFlashBuildManifest",
    """mutation updateFlashBuildManifest($input: UpdateFlashBuildManifestInput!) {
  updateFlashBuildManifest(input: $input) { id }
}""",
)
SAVE_ENDPOINT = Operation(
    "saveEndpoint",
    "mutation",
    "saveEndpoint",
    f"""mutation saveEndpoint($input: EndpointInput!) {{
  saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }}
}}""",
)
GET_TEMPLATE = Operation(
    "getTemplate",
    "query",
    "podTemplate",
    f"""query getTemplate($id: String!) {{
  podTemplate(id: $id) {{ {TEMPLATE_FIELDS} }}
}}""",
)
SAVE_TEMPLATE = Operation(
    "saveTemplate",
    "mutation",
    "saveTemplate",
    f"""mutation saveTemplate($input: SaveTemplateInput) {{
  saveTemplate(input: $input) {{ {TEMPLATE_FIELDS} }}
}}""",
)
GET_ENDPOINT = Operation(
    "getEndpoint",
    "query",
    "myself",
    """query getEndpoint($id: String!) {
  myself { endpoint(id: $id) { id } }
}""",
)
DELETE_ENDPOINT = Operation(
    "deleteEndpoint",
    "mutation",
    "deleteEndpoint",
    """mutation deleteEndpoint($id: String!) {
  deleteEndpoint(id: $id)
}""",
)

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        GET_APP_BY_NAME,
        CREATE_APP,
        CREATE_ENVIRONMENT,
        GET_ENVIRONMENT_BY_NAME,
        GET_ENVIRONMENT,
        LIST_BUILDS,
        GET_BUILD,
        PREPARE_UPLOAD,
        FINALIZE_UPLOAD,
        DEPLOY_BUILD,
        UPDATE_BUILD_MANIFEST,
        SAVE_ENDPOINT,
        GET_TEMPLATE,
        SAVE_TEMPLATE,
        GET_ENDPOINT,
        DELETE_ENDPOINT,
    )
}
