"""Entra's other mapped shapes, with the bodies Microsoft documents ("Customize Microsoft Entra attribute mappings",
shared/research/entra-client.md §52, §54): app role assignments in each of their three expressions, entitlements,
fax numbers, "other" addresses, ims, photos and x509Certificates. Stored and returned as sent, PATCHed by their
Entra paths."""

from typing import Any

from tests.conftest import Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ROLE_TYPE = "WindowsAzureActiveDirectoryRole"


def patch_body(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def create(client: Client, user_name: str, **attributes: Any) -> dict:
    response = await client.call("POST", "Users", {"schemas": [USER], "userName": user_name, **attributes})
    assert response.status == 201, response.document
    return response.document


async def fetch(client: Client, user_id: str) -> dict:
    response = await client.call("GET", f"Users/{user_id}")
    assert response.status == 200
    return response.document


async def patch(client: Client, user_id: str, *operations: dict) -> dict:
    response = await client.call("PATCH", f"Users/{user_id}", patch_body(*operations))
    assert response.status == 200, response.document
    return await fetch(client, user_id)


async def test_single_app_role_assignment_post_and_patch(client: Client):
    """SingleAppRoleAssignment: objects on POST; on PATCH, ``value`` is a JSON-encoded string, kept as sent."""
    roles = [{"primary": True, "type": ROLE_TYPE, "value": "Admin"}]
    user = await create(client, "role1@contoso.com", roles=roles)
    assert user["roles"] == roles
    encoded = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}'
    fetched = await patch(client, user["id"], {"op": "Add", "path": "roles", "value": [{"value": encoded}]})
    assert fetched["roles"] == [*roles, {"value": encoded}]


async def test_app_role_assignments_complex_keeps_display_name(client: Client):
    """AppRoleAssignmentsComplex sends ``displayName`` (not RFC ``display``) on each role; it is kept."""
    roles = [
        {"primary": False, "type": ROLE_TYPE, "displayName": "Admin", "value": "Admin"},
        {"primary": False, "type": ROLE_TYPE, "displayName": "User", "value": "User"},
    ]
    user = await create(client, "role2@contoso.com", roles=roles)
    assert (await fetch(client, user["id"]))["roles"] == roles
    encoded = '{"id":"1","value":"Reader","displayName":"Reader"}'
    fetched = await patch(client, user["id"], {"op": "Add", "path": "roles", "value": [{"value": encoded}]})
    assert fetched["roles"] == [*roles, {"value": encoded}]


async def test_assertive_app_role_assignments_replace(client: Client):
    user = await create(client, "role3@contoso.com", roles=[{"primary": True, "type": ROLE_TYPE, "value": "Old"}])
    roles = [
        {"primary": False, "type": ROLE_TYPE, "display": "User", "value": "User"},
        {"primary": False, "type": ROLE_TYPE, "display": "Test", "value": "Test"},
    ]
    fetched = await patch(client, user["id"], {"op": "replace", "path": "roles", "value": roles})
    assert fetched["roles"] == roles


async def test_primary_role_value_path(client: Client):
    """``roles[primary eq "True"].value``: Entra writes the boolean as a string in the filter."""
    user = await create(client, "role4@contoso.com", roles=[{"primary": True, "type": ROLE_TYPE, "value": "Admin"}])
    fetched = await patch(
        client, user["id"], {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "Owner"}
    )
    assert fetched["roles"] == [{"primary": True, "type": ROLE_TYPE, "value": "Owner"}]
    other = await create(client, "role5@contoso.com")
    fetched = await patch(client, other["id"], {"op": "Add", "path": 'roles[primary eq "True"].value', "value": "A"})
    assert fetched["roles"] == [{"primary": True, "value": "A"}]


async def test_entitlements(client: Client):
    entitlements = [{"value": "license-e5", "type": "license", "primary": True, "display": "E5"}]
    user = await create(client, "ent@contoso.com", entitlements=entitlements)
    assert (await fetch(client, user["id"]))["entitlements"] == entitlements
    fetched = await patch(
        client, user["id"], {"op": "Replace", "path": 'entitlements[type eq "license"].value', "value": "license-e3"}
    )
    assert fetched["entitlements"][0]["value"] == "license-e3"


async def test_fax_number_and_other_address_by_their_entra_paths(client: Client):
    """``Facsimile-TelephoneNumber→phoneNumbers[type eq "fax"].value`` and ``physical-Delivery-OfficeName→
    addresses[type eq "other"].Formatted`` (capital F in Microsoft's table)."""
    phones = [
        {"value": "555-555-5555", "type": "work"},
        {"value": "555-555-5555", "type": "mobile"},
        {"value": "555-555-5555", "type": "fax"},
    ]
    user = await create(client, "fax@contoso.com", phoneNumbers=phones)
    assert (await fetch(client, user["id"]))["phoneNumbers"] == phones
    fetched = await patch(
        client,
        user["id"],
        {"op": "Replace", "path": 'phoneNumbers[type eq "fax"].value', "value": "55555555555"},
        {"op": "Add", "path": 'addresses[type eq "other"].Formatted', "value": "Building 4, 2nd floor"},
    )
    assert fetched["phoneNumbers"][2] == {"value": "55555555555", "type": "fax"}
    assert fetched["addresses"] == [{"type": "other", "formatted": "Building 4, 2nd floor"}]
    fetched = await patch(client, user["id"], {"op": "Remove", "path": 'phoneNumbers[type eq "fax"]'})
    assert [p["type"] for p in fetched["phoneNumbers"]] == ["work", "mobile"]


async def test_ims_photos_and_certificates(client: Client):
    ims = [{"value": "someaimhandle", "type": "aim"}]
    photos = [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}]
    certificates = [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}]
    user = await create(client, "ims@contoso.com", ims=ims, photos=photos, x509Certificates=certificates)
    fetched = await fetch(client, user["id"])
    assert fetched["ims"] == ims
    assert fetched["photos"] == photos
    assert fetched["x509Certificates"] == certificates
    fetched = await patch(
        client,
        user["id"],
        {"op": "Replace", "path": 'ims[type eq "aim"].value', "value": "otherhandle"},
        {"op": "Add", "path": 'ims[type eq "skype"].value', "value": "skypename"},
        {"op": "Replace", "path": 'photos[type eq "thumbnail"].value', "value": "https://photos.example.com/t"},
        {"op": "Add", "path": "x509Certificates", "value": [{"value": "MIIB"}]},
    )
    assert fetched["ims"] == [{"value": "otherhandle", "type": "aim"}, {"value": "skypename", "type": "skype"}]
    assert fetched["photos"][1] == {"value": "https://photos.example.com/t", "type": "thumbnail"}
    assert fetched["x509Certificates"] == [*certificates, {"value": "MIIB"}]
    fetched = await patch(client, user["id"], {"op": "remove", "path": "x509Certificates"})
    assert "x509Certificates" not in fetched
