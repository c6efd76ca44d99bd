"""Replays the user requests of Microsoft's SCIM provisioning tutorial and the two PATCH dialects of its
compliance doc (docs/entra-client.md §12-32) over real HTTP, through ``python -m scim serve``."""

import secrets

import httpx

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def create_doc_user(http: httpx.Client) -> dict:
    """Tutorial "Create User" request, verbatim apart from fresh values."""
    body = {
        "schemas": [USER, ENTERPRISE],
        "externalId": unique("ext"),
        "userName": unique("Test_User") + "@testuser.com",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": unique("Test_User") + "@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    }
    response = http.post("/Users", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    return response.json()


def test_test_connection_query_for_a_random_guid_is_an_empty_list(http: httpx.Client):
    response = http.get("/Users", params={"filter": f'userName eq "{secrets.token_hex(16)}"'})
    assert response.status_code == 200
    assert response.json() == {
        "schemas": [LIST],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_form_encoded_filter_with_plus_for_spaces(http: httpx.Client):
    user = create_doc_user(http)
    response = http.get(f"/Users?filter=externalId+eq+%22{user['externalId']}%22")
    assert response.json()["totalResults"] == 1


def test_create_then_match_by_username_externalid_and_work_email(http: httpx.Client):
    user = create_doc_user(http)
    assert user["active"] is True
    assert user["meta"]["resourceType"] == "User"
    email = user["emails"][0]["value"]
    for flt in (
        f'userName eq "{user["userName"].upper()}"',
        f'externalId eq "{user["externalId"]}"',
        f"externalId eq {user['externalId']}",
        f'emails[type eq "work"].value eq "{email}"',
        f'id eq "{user["id"]}"',
    ):
        listed = http.get("/Users", params={"filter": flt}).json()
        assert listed["totalResults"] == 1, flt
        assert listed["Resources"][0]["id"] == user["id"]


def test_example_2_post_with_nulls_string_boolean_and_malformed_urn(http: httpx.Client):
    name = unique("jyoung") + "@testuser.com"
    body = {
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
        "externalId": "jyoung",
        "userName": name,
        "active": "True",
        "addresses": None,
        "displayName": "Joy Young",
        "emails": [{"type": "work", "value": "jyoung@Contoso.com", "primary": True}],
        "meta": {"resourceType": "User"},
        "name": {"familyName": "Young", "givenName": "Joy"},
        "phoneNumbers": None,
        "preferredLanguage": None,
        "title": None,
        "department": None,
        "manager": None,
    }
    response = http.post("/Users", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["active"] is True
    assert created["schemas"] == [USER]
    assert created["emails"][0]["value"] == "jyoung@Contoso.com"


def test_update_multi_valued_and_single_valued_properties(http: httpx.Client):
    user = create_doc_user(http)
    response = http.patch(
        f"/Users/{user['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            ],
        },
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["emails"] == [{"value": "updatedEmail@microsoft.com", "type": "work", "primary": True}]
    assert patched["name"]["familyName"] == "updatedFamilyName"
    new_name = unique("renamed") + "@testuser.com"
    renamed = http.patch(
        f"/Users/{user['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "userName", "value": new_name}]},
    )
    assert renamed.json()["userName"] == new_name
    assert http.get("/Users", params={"filter": f'userName eq "{new_name}"'}).json()["totalResults"] == 1
    assert (
        http.get("/Users", params={"filter": 'emails[type eq "work"].value eq "updatedemail@microsoft.com"'}).json()[
            "totalResults"
        ]
        >= 1
    )


def test_disable_in_both_dialects_keeps_the_user_findable(http: httpx.Client):
    user = create_doc_user(http)
    for operation in (
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "replace", "path": "active", "value": False},
    ):
        response = http.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": [operation]})
        assert response.status_code == 200
        assert response.json()["active"] is False
    listed = http.get("/Users", params={"filter": f'userName eq "{user["userName"]}"'}).json()
    assert listed["Resources"][0]["active"] is False
    assert http.get(f"/Users/{user['id']}").status_code == 200


def test_add_single_value_and_replace_several_in_both_dialects(http: httpx.Client):
    user = create_doc_user(http)
    for op in ("Add", "add"):
        response = http.patch(
            f"/Users/{user['id']}",
            json={"schemas": [PATCH], "Operations": [{"op": op, "path": "nickName", "value": "Babs"}]},
        )
        assert response.json()["nickName"] == "Babs"
    legacy = [
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": unique("Eqpj")},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
    ]
    result = http.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": legacy}).json()
    assert (result["displayName"], result["name"]["givenName"], result[ENTERPRISE]["employeeNumber"]) == (
        "Pvlo",
        "Gtfd",
        "Eqpj",
    )
    flagged = [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "TestMhvaes@test.microsoft.com"},
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                f"{ENTERPRISE}:employeeNumber": "Aklq",
            },
        },
    ]
    result = http.patch(f"/Users/{user['id']}", json={"schemas": [PATCH], "Operations": flagged}).json()
    assert result["displayName"] == "Bjfe"
    assert result["name"] == {"formatted": "givenName familyName", "familyName": "Unua", "givenName": "Kkom"}
    assert result[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert result["emails"][0]["value"] == "TestMhvaes@test.microsoft.com"
    assert "name.givenName" not in result


def test_work_email_and_mobile_phone_are_created_when_absent(http: httpx.Client):
    created = http.post("/Users", json={"schemas": [USER], "userName": unique("noemail")}).json()
    operations = [
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "w@example.com"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "555-555-5555"},
        {"op": "Replace", "path": 'addresses[type eq "work"].formatted', "value": "18/2111"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Retail"},
    ]
    result = http.patch(f"/Users/{created['id']}", json={"schemas": [PATCH], "Operations": operations}).json()
    assert result["emails"] == [{"value": "w@example.com", "type": "work"}]
    assert result["phoneNumbers"] == [{"value": "555-555-5555", "type": "mobile"}]
    assert result["addresses"] == [{"formatted": "18/2111", "type": "work"}]
    assert result[ENTERPRISE]["department"] == "Retail"


def test_manager_set_change_and_clear_in_every_shape(http: httpx.Client):
    user = create_doc_user(http)
    manager_a, manager_b = create_doc_user(http), create_doc_user(http)
    url = f"/Users/{user['id']}"
    sets = [
        {
            "op": "Add",
            "path": "manager",
            "value": [{"$ref": f"http://x/Users/{manager_a['id']}", "value": manager_a["id"]}],
        },
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": manager_b["id"]},
    ]
    for operation, expected in zip(sets, (manager_a, manager_b), strict=True):
        result = http.patch(url, json={"schemas": [PATCH], "Operations": [operation]}).json()
        assert result[ENTERPRISE]["manager"]["value"] == expected["id"]
    check = http.get("/Users", params={"filter": f'id eq "{user["id"]}" and manager eq "{manager_b["id"]}"'}).json()
    assert check["totalResults"] == 1
    clears = [
        {"op": "remove", "path": f'manager[value eq "{manager_b["id"]}"]'},
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": ""},
    ]
    for clear in clears:
        http.patch(url, json={"schemas": [PATCH], "Operations": [sets[1]]})
        result = http.patch(url, json={"schemas": [PATCH], "Operations": [clear]}).json()
        assert "manager" not in result.get(ENTERPRISE, {})


def test_manager_as_plain_string_on_post_is_returned_as_an_object(http: httpx.Client):
    body = {"schemas": [USER, ENTERPRISE], "userName": unique("emp"), ENTERPRISE: {"manager": "123456"}}
    created = http.post("/Users", json=body).json()
    assert created[ENTERPRISE]["manager"] == {"value": "123456"}


def test_null_updates_clear_optional_attributes(http: httpx.Client):
    created = http.post(
        "/Users", json={"schemas": [USER], "userName": unique("nul"), "title": "T", "nickName": "N"}
    ).json()
    for value in ("", None):
        http.patch(
            f"/Users/{created['id']}",
            json={"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": value}]},
        )
    result = http.get(f"/Users/{created['id']}").json()
    assert "title" not in result
    assert result["nickName"] == "N"


def test_roles_json_strings_inside_objects_are_stored_as_sent(http: httpx.Client):
    created = http.post("/Users", json={"schemas": [USER], "userName": unique("roles")}).json()
    role = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}'
    operation = {"op": "Add", "path": "roles", "value": [{"value": role}]}
    result = http.patch(f"/Users/{created['id']}", json={"schemas": [PATCH], "Operations": [operation]}).json()
    assert result["roles"] == [{"value": role}]


def test_delete_user_is_204_then_404(http: httpx.Client):
    user = create_doc_user(http)
    assert http.delete(f"/Users/{user['id']}").status_code == 204
    missing = http.get(f"/Users/{user['id']}")
    assert missing.status_code == 404
    assert missing.json()["status"] == "404"


def test_missing_or_wrong_token_is_401_with_www_authenticate(server):
    base_url, _ = server
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        response = httpx.get(f"{base_url}/Users", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == "401"
        assert response.headers["cache-control"] == "no-store"


def test_malformed_json_is_400_invalid_syntax(http: httpx.Client):
    response = http.post("/Users", content=b'{"userName": ')
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidSyntax"


def test_discovery_documents(http: httpx.Client):
    config = http.get("/ServiceProviderConfig").json()
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 200}
    schemas = http.get("/Schemas").json()
    assert schemas["schemas"] == [LIST]
    assert {s["id"] for s in schemas["Resources"]} == {USER, ENTERPRISE, "urn:ietf:params:scim:schemas:core:2.0:Group"}
    assert http.get(f"/Schemas/{USER}").json()["name"] == "User"
    types = http.get("/ResourceTypes").json()
    assert [t["endpoint"] for t in types["Resources"]] == ["/Users", "/Groups"]
    assert http.get("/ResourceTypes/User").status_code == 200
    assert http.post("/ServiceProviderConfig", json={}).status_code == 405
    assert http.get("/Schemas/urn:nope").status_code == 404


def test_routes_match_case_insensitively(http: httpx.Client):
    assert http.get("/users", params={"count": "1"}).status_code == 200


def test_paging_visits_each_user_exactly_once(http: httpx.Client):
    for _ in range(7):
        create_doc_user(http)
    total = http.get("/Users", params={"count": "0"}).json()["totalResults"]
    seen: list[str] = []
    start = 1
    while start <= total:
        page = http.get("/Users", params={"startIndex": str(start), "count": "3"}).json()
        assert page["startIndex"] == start
        assert page["totalResults"] == total
        seen += [resource["id"] for resource in page["Resources"]]
        start += 3
    assert len(seen) == total == len(set(seen))


def test_unknown_url_under_the_base_is_a_scim_404(http: httpx.Client):
    response = http.get("/NoSuchEndpoint/abc")
    assert response.status_code == 404
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_search_with_post_honours_filter_and_attributes(http: httpx.Client):
    user = create_doc_user(http)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": f'userName eq "{user["userName"]}"',
        "attributes": ["userName"],
    }
    for path in ("/.search", "/Users/.search"):
        result = http.post(path, json=body).json()
        assert result["totalResults"] == 1
        assert set(result["Resources"][0]) == {"schemas", "id", "userName"}
