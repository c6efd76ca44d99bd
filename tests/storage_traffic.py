"""An HTTP/1.1 proxy in front of Azurite that records every storage request, and can add a fixed latency to each.

Round trips are counted on the wire, not by the endpoint's own counters: a count the code under test keeps could
miss a call its author forgot to count. The proxy reads each request and its response whole (``Content-Length`` or
chunked), so it knows when each storage call started and ended; with a delay, each request is held ``delay`` seconds
before it is forwarded, as a network hop to Table Storage would hold it.

    with TrafficProxy(azurite_port, delay=0.010) as proxy:
        store = TableStore.from_settings(azurite.connection_string(proxy.port), None, "t")
        with proxy.recording() as calls:
            ...                                   # one SCIM request
        len(calls), sequential(calls)

It runs its own event loop in a daemon thread, so it serves a handler test on pytest's loop as well as a server in a
subprocess (the round-trip benchmark).
"""

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

_NO_BODY_STATUSES = frozenset({204, 304})
_BATCH_OPERATION = re.compile(rb"^(?:GET|POST|PUT|PATCH|DELETE|MERGE) https?://", re.MULTILINE)
"""Each operation inside a ``$batch`` body is an embedded HTTP request line with an absolute URL."""


@dataclass(frozen=True)
class StorageCall:
    """One storage request as the proxy saw it: ``started`` when it arrived, ``ended`` when its answer was sent back
    (``time.monotonic()``, which every process on the machine shares)."""

    method: str
    path: str
    status: int
    """0 when the request was forwarded but no answer came back."""
    started: float
    ended: float
    operations: int = 1
    """Rows an entity-group transaction (``batch``) carried: the operations embedded in its multipart body."""
    rows: int = 0
    """Rows a read returned: the entities in its JSON answer."""

    @property
    def kind(self) -> str:
        """What the call did, in Table Storage's terms: ``batch``, ``query``, ``point-read``, ``write`` or ``table``."""
        resource = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        if resource == "$batch":
            return "batch"
        if resource.startswith("Tables"):
            return "table"
        if self.method == "GET":
            return "point-read" if "(" in resource and "PartitionKey=" in resource else "query"
        return "write"


def sequential(calls: list[StorageCall]) -> int:
    """The sequential round trips among ``calls``: the most calls of which no two overlapped in time, i.e. the
    longest chain of calls each started after the one before had ended. Calls run concurrently overlap (each lasts
    at least the proxy's delay), so they count once; a call that had to wait for another's answer counts again."""
    chain, free_at = 0, float("-inf")
    for call in sorted(calls, key=lambda c: c.ended):
        if call.started >= free_at:
            chain += 1
            free_at = call.ended
    return chain


class TrafficProxy:
    """Listens on 127.0.0.1:``port`` (a free one) and forwards HTTP/1.1 to ``target_port``, recording each call."""

    def __init__(self, target_port: int, delay: float = 0.0, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        """Seconds each request is held before it is forwarded; may be changed while the proxy runs."""
        self.port = 0
        self.calls: list[StorageCall] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="traffic-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()
        self._in_flight = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[StorageCall]]:
        """The calls that started inside the block (filled in when the block ends)."""
        calls: list[StorageCall] = []
        first = self.mark()
        try:
            yield calls
        finally:
            calls.extend(self.since(first))

    def mark(self) -> int:
        """How many calls are recorded, once every call in flight has ended (a call is recorded after its answer
        was relayed, so a client may already be past it)."""
        self._settle()
        with self._lock:
            return len(self.calls)

    def _settle(self) -> None:
        deadline = time.monotonic() + 5
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.001)

    def since(self, mark: int) -> list[StorageCall]:
        """Calls recorded after :meth:`mark` returned ``mark``, once every call in flight has ended."""
        self._settle()
        with self._lock:
            return list(self.calls[mark:])

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        try:
            while True:
                request = await _read_message(reader, is_request=True)
                if request is None:
                    return
                started = time.monotonic()
                self._in_flight += 1
                status = rows = 0  # a request sent whose answer never came (the storage side went away) is still a call
                try:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    upstream_writer.write(request.raw)
                    await upstream_writer.drain()
                    response = await _read_message(upstream_reader, is_request=False, method=request.method)
                    if response is None:
                        return
                    status = response.status
                    rows = response.raw.count(b'"RowKey":') if request.method == "GET" else 0
                    writer.write(response.raw)
                    await writer.drain()
                finally:
                    operations = len(_BATCH_OPERATION.findall(request.raw)) if "$batch" in request.target else 1
                    ended = time.monotonic()
                    call = StorageCall(request.method, request.target, status, started, ended, operations, rows)
                    with self._lock:
                        self.calls.append(call)
                    self._in_flight -= 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # either side went away, or the proxy is closing: the connection ends
        finally:
            upstream_writer.close()
            writer.close()


@dataclass(frozen=True)
class _Message:
    raw: bytes
    method: str
    target: str
    status: int


async def _read_message(reader: asyncio.StreamReader, is_request: bool, method: str = "") -> _Message | None:
    """One whole HTTP/1.1 message (head and body), or None when the peer closed between messages."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    status = 0 if is_request else int(first[1])
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif not is_request and method != "HEAD" and status not in _NO_BODY_STATUSES and status >= 200:
        body = await reader.read()  # no length: the body ends when the server closes
    if is_request:
        return _Message(head + body, first[0], first[1], 0)
    return _Message(head + body, method, "", status)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body as it came (sizes, chunks and trailers), so that it is forwarded unchanged."""
    raw = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        raw += size_line
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                raw += trailer
                if trailer == b"\r\n":
                    return raw
        raw += await reader.readexactly(size + 2)


def summary(calls: list[StorageCall]) -> dict[str, Any]:
    """Calls by kind, for assertion messages and the benchmark's detail output."""
    kinds: dict[str, int] = {}
    for call in calls:
        kinds[call.kind] = kinds.get(call.kind, 0) + 1
    return {"requests": len(calls), "sequential": sequential(calls), "kinds": kinds}
