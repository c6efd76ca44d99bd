"""The resource models this endpoint serves, and the discovery documents that describe them truthfully.

scim2-models gives the RFC 7643 models; the subclasses here loosen the two places where its strictness would
transform or refuse data Entra sends: e-mail values are stored exactly as sent (the library would lower-case the
domain and refuse addresses it cannot parse), and the manager's ``$ref`` is optional (Entra sends only ``value``).
"""

import re
from functools import cache
from typing import Annotated, Any

from pydantic import Field
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    Email,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Manager,
    Meta,
    Patch,
    Reference,
    Required,
    ResourceType,
    Role,
    SchemaExtension,
    ScimPolicy,
    ServiceProviderConfig,
    Sort,
    User,
)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
EXTENSION_URN = re.compile(r"urn:ietf:params:scim:schemas:extension:(?:[^:\s]+:){2,}(user|group)", re.IGNORECASE)
"""``urn:ietf:params:scim:schemas:extension:<name>:<version>:<ResourceType>``: the form RFC 7643 §3.3 gives extension
schemas and the one Entra's attribute-list editor asks custom attributes to be named in."""
DECLARED_EXTENSIONS = {"User": frozenset({ENTERPRISE_SCHEMA.lower()}), "Group": frozenset()}
MAX_RESULTS = 200
"""The most resources one list page returns (``filter.maxResults``); a larger ``count`` is clamped to it."""
MAX_MEMBERS_PER_GET = 1000
"""The most members one GET of a group returns; ``membersAfter=<last id>`` reads the next ones."""
MAX_PAYLOAD_BYTES = 256 * 1024
"""The largest request body accepted; advertised as ``bulk.maxPayloadSize``."""

ENTRA_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)
"""How much this endpoint tolerates: attributes no schema declares are dropped, Entra's ``remove`` with a value list
removes those values, and a PATCH path filter that matches nothing creates the entry it describes."""


def extension_resource_type(urn: str) -> str | None:
    """The resource type (``User``/``Group``) an extension URN names, or None when ``urn`` is not one."""
    match = EXTENSION_URN.fullmatch(urn)
    return match.group(1).capitalize() if match else None


def is_undeclared_extension(urn: str | None, resource_type: str) -> bool:
    """Whether ``urn`` names an extension of ``resource_type`` that no schema here declares (its attributes are kept
    as sent, see :mod:`scim.extensions`)."""
    return (
        urn is not None
        and extension_resource_type(urn) == resource_type
        and urn.lower() not in DECLARED_EXTENSIONS[resource_type]
    )


class StoredEmail(Email):
    """An e-mail kept verbatim: Entra's tutorial asks that values are stored in the format they were sent."""

    value: str | None = None


class StoredRole(Role):
    """An app role assignment as Entra's ``AppRoleAssignmentsComplex`` expression sends it: with ``displayName``
    beside RFC 7643's ``display`` (research/entra-client.md §54), which the RFC model would drop."""

    display_name: str | None = None
    """The role's display name, as Entra's AppRoleAssignmentsComplex expression sends it."""


class ManagerReference(Manager):
    """The enterprise manager, whose ``$ref`` Entra never sends."""

    ref: Annotated[Reference["User"] | None, Required.false] = Field(  # type: ignore[type-arg]
        None, serialization_alias="$ref", validation_alias="$ref"
    )


class Enterprise(EnterpriseUser):
    """The enterprise extension with a manager that needs no ``$ref``."""

    manager: ManagerReference | None = None


class ScimUser(User[Enterprise]):  # type: ignore[type-var]
    """The User resource: RFC 7643 core schema plus the enterprise extension."""

    emails: list[StoredEmail] | None = None
    roles: list[StoredRole] | None = None


class ScimGroup(Group):
    """The Group resource (RFC 7643 §4.2); its members are stored as rows, never in the group's document."""


MEMBERS_DESCRIPTION = (
    f"A list of members of the Group. A GET returns at most {MAX_MEMBERS_PER_GET} members, ordered by id; "
    "add membersAfter=<last member id> to the request to read the next ones."
)


def service_provider_config(base_url: str) -> dict[str, Any]:
    """What the endpoint supports, and nothing it does not."""
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=MAX_PAYLOAD_BYTES),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A bearer token from SCIM_BEARER_TOKENS, sent as 'Authorization: Bearer <token>'",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base_url}/ServiceProviderConfig"),
    )
    return config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


@cache
def _schema_documents() -> tuple[dict[str, Any], ...]:
    user = ScimUser.to_schema()
    user.name = "User"
    user.description = "User Account"
    enterprise = Enterprise.to_schema()
    enterprise.name = "EnterpriseUser"
    enterprise.description = "Enterprise User"
    group = ScimGroup.to_schema()
    group.name = "Group"
    group.description = "Group"
    for attribute in group.attributes or ():
        if attribute.name == "members":
            attribute.description = MEMBERS_DESCRIPTION
    return tuple(doc.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for doc in (user, enterprise, group))


def schema_documents(base_url: str) -> list[dict[str, Any]]:
    """The /Schemas resources, with ``meta.location`` under this deployment's base URL."""
    from scim import declarations  # loads after this module: it builds on these models

    declared = tuple(
        extension.schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        for resource_type in ("User", "Group")
        for extension in declarations.active(resource_type)
    )
    documents = []
    for document in _schema_documents() + declared:
        document = dict(document)
        document["meta"] = {"resourceType": "Schema", "location": f"{base_url}/Schemas/{document['id']}"}
        documents.append(document)
    return documents


def resource_type_documents(base_url: str) -> list[dict[str, Any]]:
    """The /ResourceTypes resources, with the declared extensions (``SCIM_SCHEMA_EXTENSIONS``) of each."""
    from scim import declarations

    def declared(resource_type: str) -> list[SchemaExtension]:
        return [
            SchemaExtension(schema_=extension.urn, required=extension.required)
            for extension in declarations.active(resource_type)
        ]

    user = ResourceType(
        id="User",
        name="User",
        endpoint="/Users",
        description="User Account",
        schema_=USER_SCHEMA,
        schema_extensions=[SchemaExtension(schema_=ENTERPRISE_SCHEMA, required=False), *declared("User")],
        meta=Meta(resource_type="ResourceType", location=f"{base_url}/ResourceTypes/User"),
    )
    group = ResourceType(
        id="Group",
        name="Group",
        endpoint="/Groups",
        description="Group",
        schema_=GROUP_SCHEMA,
        schema_extensions=declared("Group") or None,
        meta=Meta(resource_type="ResourceType", location=f"{base_url}/ResourceTypes/Group"),
    )
    return [resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for resource in (user, group)]
