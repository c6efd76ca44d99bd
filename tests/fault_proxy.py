"""A TCP proxy that breaks the path to a server on demand, for fault-injection tests and the soak benchmark.

Faults are injected on the wire rather than by mocking the SDK, so that the whole client stack (aiohttp's pool of
keep-alive connections, azure-core's retry policy, the store's error translation) meets them exactly as it would
meet a real network or storage failure. The proxy runs its own event loop in a daemon thread: it then serves a
handler test running on pytest's loop (which may block in a synchronous call) as well as a subprocess.

    with FaultProxy(azurite_port) as proxy:
        client_talks_to(proxy.port)
        proxy.set_mode("drop")
        ...
        proxy.heal()
"""

import asyncio
import json
import random
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Literal, Self, TypeVar

Mode = Literal["pass", "refuse", "drop", "reset", "delay", "blackhole", "cut", "respond", "flaky"]
CHUNK = 65536
CLOSE_TIMEOUT = 5.0
_T = TypeVar("_T")
_STORAGE_CODES = {429: "TooManyRequests", 500: "InternalError", 503: "ServerBusy"}
"""The error codes Table Storage (and the Cosmos DB Table API, for 429) put in a throttling or failure answer."""


@dataclass(frozen=True)
class Fault:
    """What the proxy does to each new connection; an option matters only to the mode that names it.

    - ``pass``: forward both ways.
    - ``refuse``: nobody listens, so a connect is refused (the port stays reserved, and is listened on again).
    - ``drop``: accept, then close at once without forwarding.
    - ``reset``: accept, then abort with a TCP RST.
    - ``delay``: forward, holding every byte the client sends for ``seconds`` (a latency, not a bandwidth limit).
      Bytes still held when the client gives up never reach the server: the request was not delivered.
    - ``blackhole``: accept and read, never forward, never answer.
    - ``cut``: forward the request, relay only the first ``after_bytes`` bytes of the answer, then close. With 0 the
      server has done the work and the client never learns it: the ambiguous write.
    - ``respond``: answer every request with a canned Table Storage error of ``status``, never reaching the server.
    - ``flaky``: give a random ``probability`` share of new connections one of ``faults`` (seeded by ``seed``, so a
      benchmark run can be repeated), the rest ``pass``.
    """

    mode: Mode = "pass"
    seconds: float = 0.0
    after_bytes: int = 0
    status: int = 503
    probability: float = 0.0
    faults: tuple[Mode, ...] = ("drop", "reset", "cut")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode == "flaky" and {"refuse", "flaky", "pass"} & set(self.faults):
            raise ValueError("flaky picks a fault per connection: refuse, flaky and pass cannot be picked")

    def pick(self, rng: random.Random) -> "Fault":
        """The fault one new connection gets."""
        if self.mode != "flaky":
            return self
        if rng.random() < self.probability:
            return replace(self, mode=rng.choice(self.faults))
        return Fault()


class FaultProxy:
    """Listens on ``port`` (127.0.0.1) and forwards to ``target``, applying the fault set by :meth:`set_mode`.

    Switching to any fault closes every open connection first: clients keep pooled keep-alive connections, and a fault
    that spared them would not be seen until the pool happened to open a new one. :meth:`heal` closes the
    connections opened during the fault (a blackholed one would otherwise hang its client) and forwards again.
    Every switch has taken effect when the call returns.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        """Connections accepted so far, ``faulted`` of them under a fault; counted in the proxy's thread."""
        self.faulted = 0
        self._fault = Fault()
        self._rng = random.Random(0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{target_port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._reserved: socket.socket | None = None
        self._open: dict[asyncio.Task[Any], bool] = {}
        """Each connection's task, and whether it was accepted under a fault."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()
        self._run(self._listen())

    def close(self) -> None:
        self._run(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def set_mode(self, mode: Mode, **options: Any) -> None:
        """Switch to ``Fault(mode, **options)``, e.g. ``set_mode("cut", after_bytes=40)``."""
        self.set_fault(Fault(mode, **options))

    def set_fault(self, fault: Fault) -> None:
        self._run(self._switch(fault))

    def heal(self) -> None:
        self.set_mode("pass")

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _switch(self, fault: Fault) -> None:
        self._rng = random.Random(fault.seed)
        self._fault = fault
        await self._close_connections(everyone=fault.mode != "pass")
        if fault.mode == "refuse":
            self._unlisten()
        elif self._server is None:
            await self._listen()

    async def _close_connections(self, everyone: bool) -> None:
        doomed = [task for task, faulty in self._open.items() if everyone or faulty]
        for task in doomed:
            task.cancel()
        if doomed:  # bounded: a switch must take effect even if one connection is slow to wind down
            await asyncio.wait(doomed, timeout=CLOSE_TIMEOUT)

    async def _listen(self) -> None:
        """Listen on the port held so far (any free port the first time), then release the reservation."""
        listener = _bind(self.port)
        self.port = listener.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=listener)
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    def _unlisten(self) -> None:
        """Stop listening, keeping the port bound so that no other process takes it before :meth:`heal`."""
        if self._server is None:
            return
        self._reserved = _bind(self.port)
        self._server.close()
        self._server = None

    async def _shut(self) -> None:
        await self._close_connections(everyone=True)
        for listening in (self._server, self._reserved):
            if listening is not None:
                listening.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self._fault.pick(self._rng)
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = fault.mode != "pass"
        self.connections += 1
        self.faulted += fault.mode != "pass"
        try:
            await self._serve(fault, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client or the server went away: the connection ends either way
        except asyncio.CancelledError:
            pass  # the proxy closed it on a switch; re-raised, asyncio's stream callback would log a traceback
        finally:
            del self._open[task]
            if fault.mode == "reset":
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()

    async def _serve(self, fault: Fault, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if fault.mode in ("drop", "reset"):
            return
        if fault.mode == "blackhole":
            while await reader.read(CHUNK):
                pass
        elif fault.mode == "respond":
            await _answer_every_request(reader, writer, _storage_error(fault.status))
        else:
            await self._forward(fault, reader, writer)

    async def _forward(self, fault: Fault, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        limit = fault.after_bytes if fault.mode == "cut" else None
        pumps = [
            asyncio.create_task(_carry(reader, upstream_writer, fault.seconds if fault.mode == "delay" else 0.0)),
            asyncio.create_task(_relay(upstream_reader, writer, limit)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            upstream_writer.close()  # before any await: a cancel arriving during the gather must not leak it
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


def _bind(port: int) -> socket.socket:
    """A socket on ``port`` that may share it with the one listening there (SO_REUSEPORT), so that a refusing proxy
    can keep the port bound without listening, and listen on it again before letting the placeholder go."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def _carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Client to server, each chunk released ``delay`` seconds after it arrived.

    Reading goes on while earlier chunks wait, so that a request split over several reads is delayed once, not once
    per read."""
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, data = await held.get()
            await asyncio.sleep(due - loop.time())
            writer.write(data)
            await writer.drain()

    releaser = asyncio.create_task(release())
    try:
        while data := await reader.read(CHUNK):
            held.put_nowait((loop.time() + delay, data))
            if releaser.done():
                return  # the server side failed: the connection is over
    finally:
        releaser.cancel()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None) -> None:
    """Server to client, stopping after ``limit`` bytes if there is one."""
    sent = 0
    while data := await reader.read(CHUNK):
        if limit is not None:
            data = data[: limit - sent]
        writer.write(data)
        await writer.drain()
        sent += len(data)
        if limit is not None and sent >= limit:
            return


async def _answer_every_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes) -> None:
    """Read each request (head, then a ``Content-Length`` body, as azure-core frames them) and answer it, keeping the
    connection alive as a throttling storage front end does."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(_content_length(head))
        writer.write(answer)
        await writer.drain()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _storage_error(status: int) -> bytes:
    """An error answer shaped like Table Storage's (JSON ``odata.error``, ``x-ms-error-code``), so that the SDK parses
    it as it would a real one."""
    code = _STORAGE_CODES.get(status, HTTPStatus(status).phrase.replace(" ", ""))
    message = {"lang": "en-US", "value": f"{HTTPStatus(status).phrase} (injected by the test's fault proxy)"}
    body = json.dumps({"odata.error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-ms-error-code: {code}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body
