"""An Entra cycle for a user with a custom attribute, over real HTTP through ``python -m scim serve``: the documented
create body (§53), matching on the custom attribute, the PATCH forms of both dialects, and the text the doc's body
carries (a trailing comma inside the custom block is invalid JSON, so it is refused with a 400, never dropped)."""

import secrets

import httpx

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_custom_attribute_cycle(http: httpx.Client):
    user_name = f"ext_{secrets.token_hex(6)}@contoso.com"
    number = secrets.token_hex(4)
    body = {
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "active": True,
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith",
            },
        },
        CUSTOM: {"CustomAttribute": number},
    }
    matched = http.get("/Users", params={"filter": f'{CUSTOM}:CustomAttribute eq "{number}"'})
    assert matched.status_code == 200
    assert matched.json()["totalResults"] == 0
    created = http.post("/Users", json=body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert created.json()[CUSTOM] == {"CustomAttribute": number}

    matched = http.get("/Users", params={"filter": f'{CUSTOM}:CustomAttribute eq "{number}"'})
    assert [r["id"] for r in matched.json()["Resources"]] == [user_id]

    legacy = {"schemas": [PATCH], "Operations": [{"op": "Add", "path": f"{CUSTOM}:costCenter", "value": "88"}]}
    assert http.patch(f"/Users/{user_id}", json=legacy).status_code == 200
    compliant = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "value": {f"{CUSTOM}:CustomAttribute": "2", "displayName": "Ext"}}],
    }
    assert http.patch(f"/Users/{user_id}", json=compliant).status_code == 200
    fetched = http.get(f"/Users/{user_id}").json()
    assert fetched[CUSTOM] == {"CustomAttribute": "2", "costCenter": "88"}
    assert CUSTOM in fetched["schemas"]
    assert fetched["displayName"] == "Ext"

    as_documented = http.post(
        "/Users",
        content=f'{{"schemas":["{USER}"],"userName":"doc_{secrets.token_hex(4)}@contoso.com",'
        f'"{CUSTOM}":{{"CustomAttribute":"701984",}}}}'.encode(),
    )
    assert as_documented.status_code == 400
    assert as_documented.json()["scimType"] == "invalidSyntax"
