"""The entity-group transaction's wire format, without a server: what each operation becomes in the ``$batch``
body, and how each kind of answer reads back (the shapes Table Storage documents for a changeset)."""

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import DecodeError
from azure.data.tables import EntityProperty, TableTransactionError, UpdateMode

from scim.store import entity_group, keys

TABLE = "https://account.table.core.windows.net/Resources"


def body(operations: list) -> str:
    return entity_group.encode(TABLE, operations, "batch_b", "changeset_c", "2019-02-02").decode("utf-8")


def request_lines(operations: list) -> list[str]:
    """The request line of every operation, in order."""
    return [line for line in body(operations).split("\r\n") if line.endswith(" HTTP/1.1")]


def test_each_operation_becomes_its_own_http_request():
    row = {"PartitionKey": "t:User", "RowKey": "id:1", "doc": "{}"}
    lines = request_lines(
        [
            ("create", row),
            ("upsert", row),
            ("upsert", row, {"mode": UpdateMode.REPLACE}),
            ("update", row, {"mode": UpdateMode.REPLACE}),
            ("update", row, {"mode": UpdateMode.MERGE}),
            ("delete", row),
        ]
    )
    address = f"{TABLE}(PartitionKey='t%3AUser',RowKey='id%3A1')"
    assert lines == [
        f"POST {TABLE} HTTP/1.1",
        f"PATCH {address} HTTP/1.1",
        f"PUT {address} HTTP/1.1",
        f"PUT {address} HTTP/1.1",
        f"PATCH {address} HTTP/1.1",
        f"DELETE {address} HTTP/1.1",
    ]


def test_only_updates_and_deletes_carry_if_match_and_a_given_etag_is_kept():
    row = {"PartitionKey": "p", "RowKey": "r"}
    etag = "W/\"datetime'2026-11-29T12%3A00%3A00.1Z'\""
    text = body(
        [
            ("upsert", row),
            ("update", row, {"etag": etag, "match_condition": MatchConditions.IfNotModified}),
            ("delete", row),
        ]
    )
    parts = text.split("--changeset_c")[1:4]
    assert "If-Match" not in parts[0]
    assert f"If-Match: {etag}\r\n" in parts[1]
    assert "If-Match: *\r\n" in parts[2]


def test_an_insert_asks_for_no_entity_back():
    assert "Prefer: return-no-content" in body([("create", {"PartitionKey": "p", "RowKey": "r"})])


def test_keys_are_quoted_for_the_odata_address():
    lines = request_lines([("delete", {"PartitionKey": "a'b", "RowKey": "é #%"})])
    assert lines == [f"DELETE {TABLE}(PartitionKey='a%27%27b',RowKey='%C3%A9%20%23%25') HTTP/1.1"]


@pytest.mark.parametrize(
    "key",
    ["", "g:0123abcd:fe98", "t-1_x.y~z:Membership", "a'b", "a b", "é", "a/b?c=d&e", "%3A", "A:b:C", "x\n", "\uff41"],
)
def test_a_key_is_written_exactly_as_url_encoding_writes_it(key):
    """Our own keys skip ``quote`` (scim/store/keys.py): the address must be the same either way."""
    written = quote(key.replace("'", "''"), safe="")
    assert keys.entity_address(key, key) == f"(PartitionKey='{written}',RowKey='{written}')"


def test_content_length_counts_bytes_not_characters():
    text = body([("create", {"PartitionKey": "p", "RowKey": "r", "name": "Zoë 日本"})])
    content = text.split("\r\n\r\n")[3].split("\r\n")[0]
    assert f"Content-Length: {len(content.encode('utf-8'))}\r\n" in text
    assert len(content.encode("utf-8")) > len(content)


def test_strings_go_untyped_and_other_values_typed_as_the_sdk_types_them():
    text = entity_group.serialize(
        {
            "s": "x",
            "n": 5,
            "big": EntityProperty(2**40, "Edm.Int64"),
            "f": 1.5,
            "b": True,
            "when": datetime(2020, 1, 1, tzinfo=UTC),
            "gone": None,
        }
    )
    assert text == (
        '{"s":"x","n":5,"big":"1099511627776","big@odata.type":"Edm.Int64","f":1.5,"f@odata.type":"Edm.Double",'
        '"b":true,"when":"2020-01-01T00:00:00.000000Z","when@odata.type":"Edm.DateTime"}'
    )


def test_a_value_the_sdk_cannot_store_is_refused_before_sending():
    with pytest.raises(TypeError):
        entity_group.serialize({"too_big": 2**40})


def answer(*messages: str, changeset: bool = True) -> tuple[str, bytes]:
    if changeset:
        inner = "".join(
            f"--changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"{message}\r\n"
            for message in messages
        )
        parts = f"Content-Type: multipart/mixed; boundary=changesetresponse_x\r\n\r\n{inner}--changesetresponse_x--\r\n"
    else:
        parts = f"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{messages[0]}\r\n"
    text = f"--batchresponse_y\r\n{parts}--batchresponse_y--\r\n"
    return "multipart/mixed; boundary=batchresponse_y", text.encode("utf-8")


def test_every_operation_answered_gives_each_etag_in_order():
    content_type, text = answer(
        'HTTP/1.1 204 No Content\r\nContent-ID: 0\r\nETag: W/"1"\r\n',
        "HTTP/1.1 204 No Content\r\nContent-ID: 1\r\n",
        'HTTP/1.1 204 No Content\r\netag: W/"3"\r\n',
    )
    assert entity_group.decode(content_type, text, 3) == [{"etag": 'W/"1"'}, {}, {"etag": 'W/"3"'}]


def test_a_refused_operation_is_the_sdks_transaction_error_with_its_index():
    error = (
        '{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US",'
        '"value":"2:The specified entity already exists.\\nRequestId:r"}}}'
    )
    content_type, text = answer(
        f"HTTP/1.1 409 Conflict\r\nContent-ID: 2\r\nContent-Type: application/json;odata=minimalmetadata\r\n\r\n{error}"
    )
    with pytest.raises(TableTransactionError) as refused:
        entity_group.decode(content_type, text, 5)
    assert (refused.value.status_code, refused.value.index, refused.value.error_code) == (409, 2, "EntityAlreadyExists")


def test_a_refusal_outside_a_changeset_is_read_too():
    error = '{"odata.error":{"code":"InvalidInput","message":{"value":"0:Bad."}}}'
    content_type, text = answer(f"HTTP/1.1 400 Bad Request\r\n\r\n{error}", changeset=False)
    with pytest.raises(TableTransactionError) as refused:
        entity_group.decode(content_type, text, 1)
    assert (refused.value.status_code, refused.value.index, refused.value.error_code) == (400, 0, "InvalidInput")


@pytest.mark.parametrize("cut", [10, 60, 140, -30])
def test_an_answer_cut_short_is_a_decode_error(cut: int):
    content_type, text = answer('HTTP/1.1 204 No Content\r\nETag: W/"1"\r\n', "HTTP/1.1 204 No Content\r\n")
    with pytest.raises(DecodeError):
        entity_group.decode(content_type, text[:cut], 2)


def test_fewer_answers_than_operations_is_a_decode_error():
    content_type, text = answer("HTTP/1.1 204 No Content\r\n")
    with pytest.raises(DecodeError):
        entity_group.decode(content_type, text, 2)


def test_an_answer_without_a_boundary_is_a_decode_error():
    with pytest.raises(DecodeError):
        entity_group.decode("multipart/mixed", b"--x\r\n", 1)
