"""No token reaches a log or an error body on the local host, even in a request aiohttp cannot parse: its own 400
would quote the offending ``Authorization`` line, and its log would quote it again in a traceback."""

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.local_server import LocalServer

MALFORMED = [b"\x00", b"\r\x0bq", b"\x7f", b"\x01 trailing"]


@pytest.fixture(scope="module")
def own_server(azurite_connection_string: str) -> Iterator[LocalServer]:
    server = LocalServer(azurite_connection_string, "notoken")
    server.start()
    try:
        yield server
    finally:
        server.close()


def send(server: LocalServer, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"\n"):
                break
        return answer


def server_log(server: LocalServer) -> bytes:
    time.sleep(0.3)  # the log line follows the answer
    server.log.seek(0)
    return server.log.read()


@pytest.mark.parametrize("tail", MALFORMED)
def test_a_malformed_authorization_header_is_a_bare_400_that_quotes_nothing(own_server: LocalServer, tail: bytes):
    token = own_server.token.encode()
    answer = send(
        own_server, b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + tail + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.")
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    assert token not in answer
    assert answer.endswith(b"\r\n\r\n400 Bad Request\n")
    log = server_log(own_server)
    assert token not in log
    assert b"Traceback" not in log
    assert b"refused a malformed HTTP request: 400" in log


def test_a_well_formed_request_still_works_and_logs_no_token(own_server: LocalServer):
    token = own_server.token.encode()
    answer = send(
        own_server,
        b"GET /scim/v2/Users?count=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + token + b"\r\n\r\n",
    )
    assert b" 200 " in answer.split(b"\r\n", 1)[0]
    wrong = send(
        own_server,
        b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + token[::-1] + b"\r\n\r\n",
    )
    assert b" 401 " in wrong.split(b"\r\n", 1)[0]
    assert token not in server_log(own_server) and token[::-1] not in server_log(own_server)


def test_a_body_over_the_hosts_limit_is_413_and_one_within_it_reaches_the_endpoint(own_server: LocalServer):
    headers = {"Authorization": f"Bearer {own_server.token}", "Content-Type": "application/scim+json"}
    with httpx.Client(base_url=own_server.base_url, headers=headers, timeout=30) as http:
        assert http.post("/Users", content=b" " * (9 * 1024 * 1024)).status_code == 413
        scim_413 = http.post("/Users", content=b" " * (300 * 1024))
        assert scim_413.status_code == 413
        assert scim_413.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
