"""Entity-group transactions on the wire: the ``$batch`` request written and its answer read by this module instead
of ``TableClient.submit_transaction``.

The SDK builds and parses the multipart/mixed body with the stdlib ``email`` package: 23-28 ms of CPU for a
100-row transaction (``bench/transaction_encoding.py``), on the event loop, for every membership chunk and every
change with its change-feed row. That was the largest stall other tenants' requests waited behind (README,
"Fairness") and most of what the change feed added to a write. The format is small and fixed (Table Storage's
"Performing entity group transactions"): one changeset of HTTP requests in, one changeset of HTTP answers out, or
one answer naming the operation that failed. Written here, it costs a few string joins.

The request still goes through the table client's own pipeline (its credential, our transport, the same
connections) and errors come out as the SDK's exceptions, so callers and retries see what they saw before:
:class:`azure.data.tables.TableTransactionError` with ``status_code``, ``index`` and ``error_code`` for a refused
operation, the SDK's decoded error for a refused request, :class:`azure.core.exceptions.DecodeError` (transient)
for an answer cut short. It leans on four private names of the SDK (``TableClient._client`` and
``_primary_hostname``, ``_decode_error``, ``_add_entity_properties``): ``azure-data-tables`` is pinned, and
``tests/integration/test_entity_group.py`` compares every operation and refusal with the SDK's own
``submit_transaction`` on Azurite, so an upgrade that moves them fails there.
"""

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import DecodeError
from azure.core.rest import HttpRequest
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables._error import _decode_error, _validate_tablename_error
from azure.data.tables._serialize import _add_entity_properties
from azure.data.tables.aio import TableClient

from scim.store import keys

_METHODS = {"create": "POST", "delete": "DELETE"}


async def submit(table: TableClient, operations: Sequence[Any]) -> list[dict[str, Any]]:
    """Commit ``operations`` (the SDK's tuples: ``(kind, entity[, options])``) atomically; one ``{"etag": …}``
    per operation, in order, as ``TableClient.submit_transaction`` returns."""
    if not operations:
        return []
    if len({operation[1]["PartitionKey"] for operation in operations}) > 1:
        raise ValueError("Partition Keys in the batch must all be the same.")  # the SDK's check: Azurite has none
    base = f"{table.scheme}://{table._primary_hostname}"  # the SDK's own address for $batch
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    body = encode(f"{base}/{table.table_name}", operations, batch, changeset, table.api_version)
    request = HttpRequest(
        "POST",
        f"{base}/$batch",
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=body,
    )
    response = await table._client.send_request(request, stream=True)  # the SDK's own pipeline
    await response.read()  # streamed, as the SDK does, so that no policy tries to decode a multipart body
    if response.status_code != 202:
        error = _decode_error(response)
        _validate_tablename_error(error, table.table_name)
        raise error
    return decode(response.headers.get("Content-Type", ""), response.content, len(operations))


def encode(table_url: str, operations: Sequence[Any], batch: str, changeset: str, api_version: str) -> bytes:
    """The ``$batch`` body: every operation a part of one changeset, each an HTTP request on the table."""
    parts = [
        f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n",
    ]
    for number, operation in enumerate(operations):
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n\r\n{_request(table_url, operation, api_version)}\r\n"
        )
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    return "".join(parts).encode("utf-8")


def _request(table_url: str, operation: Any, api_version: str) -> str:
    """One operation as the HTTP request Table Storage would take alone: insert, merge or replace (upsert without
    a condition, update with one) or delete, with its If-Match."""
    kind, entity = operation[0], operation[1]
    options: Mapping[str, Any] = operation[2] if len(operation) > 2 else {}
    mode = options.get("mode", UpdateMode.MERGE)
    headers = [f"x-ms-version: {api_version}", "DataServiceVersion: 3.0", "Accept: application/json;odata=nometadata"]
    if kind == "create":
        url, method = table_url, "POST"
        headers.append("Prefer: return-no-content")
    else:
        url = table_url + keys.entity_address(entity["PartitionKey"], entity["RowKey"])
        method = _METHODS.get(kind) or ("PUT" if mode == UpdateMode.REPLACE else "PATCH")
        if kind != "upsert":
            headers.append(f"If-Match: {_if_match(options)}")
    if kind == "delete":
        return f"{method} {url} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    content = serialize(entity)
    headers += ["Content-Type: application/json", f"Content-Length: {len(content.encode('utf-8'))}"]
    return f"{method} {url} HTTP/1.1\r\n" + "\r\n".join(headers) + f"\r\n\r\n{content}"


def _if_match(options: Mapping[str, Any]) -> str:
    """An update or delete with the caller's ETag when it asked for one, else on any version (as the SDK does)."""
    if options.get("match_condition") == MatchConditions.IfNotModified:
        return str(options["etag"])
    return "*"


def serialize(entity: Mapping[str, Any]) -> str:
    """The entity's JSON. Strings, which are nearly all we store, need no OData type (a JSON string is an
    Edm.String); any other value goes through the SDK's own conversion, so it is typed exactly as the SDK would."""
    document: dict[str, Any] = {}
    for name, value in entity.items():
        if type(value) is str:
            document[name] = value
        else:
            document.update(_add_entity_properties({name: value}))
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def decode(content_type: str, body: bytes, count: int) -> list[dict[str, Any]]:
    """The changeset's answers: ``count`` ETags, or the refused operation as :class:`TableTransactionError`. An
    answer that does not parse is a cut or garbled response (transient, like any lost answer)."""
    try:
        answers = _answers(content_type, body.decode("utf-8"))
    except (ValueError, IndexError) as exc:
        raise DecodeError("the transaction's answer could not be read") from exc
    failed = [answer for answer in answers if not 200 <= answer[0] < 300]
    if failed:
        raise _refused(*failed[0])
    if len(answers) != count:
        raise DecodeError(f"the transaction's answer has {len(answers)} parts for {count} operations")
    return [{"etag": headers["etag"]} if "etag" in headers else {} for _, headers, _ in answers]


def _answers(content_type: str, text: str) -> list[tuple[int, dict[str, str], str]]:
    """Every HTTP answer in the batch's (one) changeset, or the batch's lone answer when there is no changeset."""
    boundary = _boundary(content_type)
    first = _parts(text, boundary)[0]
    mime_headers, inner = _split_headers(first)
    if mime_headers.get("content-type", "").startswith("multipart/mixed"):
        return [_answer(_split_headers(part)[1]) for part in _parts(inner, _boundary(mime_headers["content-type"]))]
    return [_answer(inner)]


def _boundary(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise ValueError("no boundary")


def _parts(text: str, boundary: str) -> list[str]:
    """The parts between ``--boundary`` lines, without the closing ``--boundary--``; at least one or ValueError."""
    delimiter = f"--{boundary}"
    end = text.index(f"{delimiter}--")
    pieces = text[:end].split(delimiter)[1:]
    if not pieces:
        raise ValueError("no parts")
    return [piece.removeprefix("\r\n") for piece in pieces]


def _split_headers(part: str) -> tuple[dict[str, str], str]:
    head, separator, rest = part.partition("\r\n\r\n")
    if not separator:
        raise ValueError("no end of headers")
    headers = {}
    for line in head.split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _answer(message: str) -> tuple[int, dict[str, str], str]:
    status_line, _, rest = message.partition("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers, body = ({}, rest[2:]) if rest.startswith("\r\n") else _split_headers(rest)
    return status, headers, body.rstrip("\r\n")


def _refused(status: int, headers: dict[str, str], body: str) -> TableTransactionError:
    """The SDK's error for a refused operation: its index is the number before the message's first colon."""
    code, message = headers.get("x-ms-error-code", ""), body
    try:
        error = json.loads(body)["odata.error"]
        code, message = error.get("code", code), error["message"]["value"]
    except (ValueError, KeyError, TypeError):
        pass
    exc = TableTransactionError(message=f"{message}\nErrorCode:{code}")
    exc.status_code, exc.error_code = status, code
    return exc
