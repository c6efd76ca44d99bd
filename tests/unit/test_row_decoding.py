"""An answer that is not the JSON of a page or of a row (cut, garbled) is a DecodeError, which the store retries like
any lost answer; a row's ETag lands in ``metadata`` and its ``Timestamp`` is not parsed."""

import pytest
from azure.core.exceptions import DecodeError

from scim.store import retries, row_reads


@pytest.mark.parametrize(
    "body",
    [b"", b'{"value": [{"RowKey": "a"}', b"<html>gateway</html>", b'{"odata.metadata": "x"}', b'{"value": 3}',
     b'{"value": ["a"]}', b"\xff\xfe"],
    ids=["empty", "cut", "not json", "no value", "value not a list", "row not an object", "not utf-8"],
)  # fmt: skip
def test_an_answer_that_is_not_a_page_is_a_transient_decode_error(body: bytes):
    with pytest.raises(DecodeError) as caught:
        row_reads.decode(body)
    assert retries.is_transient(caught.value)


@pytest.mark.parametrize("body", [b"", b'{"RowKey": "a"', b"[]", b"null", b"<html/>"])
def test_a_point_reads_answer_that_is_not_a_row_is_a_transient_decode_error(body: bytes):
    with pytest.raises(DecodeError) as caught:
        row_reads.decode_row(body)
    assert retries.is_transient(caught.value)


def test_a_rows_etag_goes_to_metadata_and_its_timestamp_is_left_out():
    body = (
        b'{"value": [{"odata.etag": "W/\\"datetime\'1\'\\"", "PartitionKey": "p", "RowKey": "r",'
        b' "Timestamp": "2026-11-29T12:00:00.1234567Z", "doc": "{}", "published": true, "n": 3}]}'
    )
    (row,) = row_reads.decode(body)
    assert dict(row) == {"PartitionKey": "p", "RowKey": "r", "doc": "{}", "published": True, "n": 3}
    assert row.metadata["etag"] == "W/\"datetime'1'\""
