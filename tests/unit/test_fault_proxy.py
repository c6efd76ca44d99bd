"""The fault proxy against a local echo server: each mode does to a connection what the storage-fault tests rely on.

Only loopback sockets, no Azurite: a proxy that silently forwarded instead of failing would make every fault test
pass for the wrong reason.
"""

import http.client
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fault_proxy import Fault, FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    with FaultProxy(echo_port) as proxy:
        yield proxy


def connect(proxy: FaultProxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def exchange(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data``; what came back before as many bytes arrived or the connection ended."""
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def ended(sock: socket.socket) -> bool:
    """Whether the other side closed or reset the connection without sending anything more."""
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def test_pass_forwards_both_ways_on_one_connection(proxy: FaultProxy):
    with connect(proxy) as sock:
        assert exchange(sock, b"first") == b"first"
        assert exchange(sock, b"second") == b"second"
    assert (proxy.connections, proxy.faulted) == (1, 0)


def test_refuse_stops_listening_and_heal_listens_again_on_the_same_port(proxy: FaultProxy):
    port = proxy.port
    proxy.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.heal()
    assert proxy.port == port
    with connect(proxy) as sock:
        assert exchange(sock, b"back") == b"back"


def test_switching_a_fault_on_closes_pooled_connections(proxy: FaultProxy):
    with connect(proxy) as sock:
        assert exchange(sock, b"warm") == b"warm"
        proxy.set_mode("blackhole")
        assert ended(sock)


def test_drop_closes_without_forwarding(proxy: FaultProxy):
    proxy.set_mode("drop")
    with connect(proxy) as sock:
        assert sock.recv(1) == b""
    assert proxy.faulted == 1


def test_reset_aborts_the_connection(proxy: FaultProxy):
    proxy.set_mode("reset")
    with pytest.raises(ConnectionResetError), connect(proxy) as sock:  # the RST may even beat connect() home
        exchange(sock, b"anyone?")


def test_delay_holds_every_request(proxy: FaultProxy):
    proxy.set_mode("delay", seconds=0.4)
    with connect(proxy) as sock:
        for data in (b"one", b"two"):
            started = time.monotonic()
            assert exchange(sock, data) == data
            assert time.monotonic() - started >= 0.4


def test_blackhole_reads_but_never_answers_until_healed(proxy: FaultProxy):
    proxy.set_mode("blackhole")
    with connect(proxy, timeout=0.3) as sock:
        sock.sendall(b"hello?")
        with pytest.raises(TimeoutError):
            sock.recv(1)
        proxy.heal()
        sock.settimeout(5)
        assert ended(sock)
    with connect(proxy) as sock:
        assert exchange(sock, b"healed") == b"healed"


@pytest.mark.parametrize("after_bytes", [0, 3])
def test_cut_forwards_the_request_and_relays_only_the_first_bytes(proxy: FaultProxy, after_bytes: int):
    proxy.set_mode("cut", after_bytes=after_bytes)
    with connect(proxy) as sock:
        assert exchange(sock, b"abcdefgh") == b"abcdefgh"[:after_bytes]
        assert ended(sock)


@pytest.mark.parametrize(("status", "code"), [(503, "ServerBusy"), (500, "InternalError"), (429, "TooManyRequests")])
def test_respond_answers_each_request_with_a_storage_error_on_a_kept_alive_connection(
    proxy: FaultProxy, status: int, code: str
):
    proxy.set_mode("respond", status=status)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        for body in (b'{"RowKey": "a"}', b""):
            connection.request("POST", "/devstoreaccount1/Tables", body=body)
            response = connection.getresponse()
            assert (response.status, response.getheader("x-ms-error-code")) == (status, code)
            assert json.loads(response.read())["odata.error"]["code"] == code
    finally:
        connection.close()
    assert proxy.connections == 1


def flaky_outcomes(proxy: FaultProxy, seed: int, connections: int = 40) -> list[bool]:
    """Whether each of ``connections`` sequential connections got through, under a 50 % drop."""
    proxy.set_fault(Fault("flaky", probability=0.5, faults=("drop",), seed=seed))
    outcomes = []
    for _ in range(connections):
        try:
            with connect(proxy) as sock:
                outcomes.append(exchange(sock, b"ping") == b"ping")
        except ConnectionError:
            outcomes.append(False)
    return outcomes


def test_flaky_faults_a_seeded_share_of_connections(proxy: FaultProxy):
    first = flaky_outcomes(proxy, seed=7)
    assert 0 < first.count(False) < len(first)
    assert proxy.faulted == first.count(False)
    assert flaky_outcomes(proxy, seed=7) == first
    assert flaky_outcomes(proxy, seed=8) != first


def test_flaky_cannot_pick_a_fault_that_is_not_per_connection():
    with pytest.raises(ValueError, match="flaky"):
        Fault("flaky", probability=0.5, faults=("refuse",))
