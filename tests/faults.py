"""A TCP proxy in front of a real server that a test can cut and restore: an outage on demand.

``cut`` resets every proxied connection and stops listening, so clients see what they see when a
database, cache or broker goes away (connections reset, new ones refused); ``restore`` listens again on
the same port. The server behind keeps its state, as a failed-over Aurora, ElastiCache or MSK would.

``blackhole`` is the quieter failure: a server that stops answering without closing anything (a host gone
from the network, a partition). Every open connection falls silent for good, in both directions, and is
never closed; new ones are accepted and then hear nothing. ``forward`` makes new connections work again;
the silenced ones stay silent, as they would after a failover, so only a client with timeouts recovers.
``syn_blackhole`` is the quietest: a port where even the connect never completes.

With ``tls`` the proxy is a TLS listener in front of a plaintext server: MSK's TLS listener in front of the
local broker, whose ``--cert``/``--key`` options do nothing yet (tests/integration/test_kafka_tls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 1 << 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SYN_FILL_MAX = 16  # connections a backlog of 0 may queue before the kernel drops SYNs (1 on Linux)


@contextlib.contextmanager
def syn_blackhole() -> Iterator[int]:
    """A port where every connect hangs in SYN_SENT, as behind a firewall that drops packets or a security
    group that admits nobody: a listener that never accepts, its accept queue (backlog 0) filled, so the
    kernel drops every further SYN. Yields the port; a client waits out its own connect timeout."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        while True:  # queue connections until one hangs: the queue is full
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            fillers.append(probe)
            assert len(fillers) < SYN_FILL_MAX, "the kernel keeps accepting: no SYN is dropped"
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


class CuttableProxy:
    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        port: int | None = None,
        unix: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.tls = tls  # a server context: clients speak TLS to the proxy, which forwards plain bytes
        self.unix = unix  # a Unix socket path to forward to instead (a socket-only Postgres)
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._silent = False  # black hole: new connections are accepted and hear nothing
        self._dead: set[asyncio.StreamWriter] = set()  # writers of silenced connections, never written or closed

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> CuttableProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def blackhole(self) -> None:
        self._call(self._blackhole())

    def forward(self) -> None:
        self._call(self._forward())

    def stop(self) -> None:
        self._call(self._cut())
        self._call(self._forget_dead())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True, ssl=self.tls
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()  # a reset, not a polite close
        self._open.clear()

    async def _blackhole(self) -> None:
        self._silent = True
        self._dead.update(self._open)
        self._open.clear()

    async def _forward(self) -> None:
        self._silent = False

    async def _forget_dead(self) -> None:
        for writer in list(self._dead):
            writer.transport.abort()
        self._dead.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._silent:
            self._dead.add(writer)
            await self._drain_forever(reader)
            return
        try:
            if self.unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self.unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if writer in self._dead:
                    continue  # silenced: what arrives is swallowed
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._open.discard(writer)
            if writer not in self._dead:  # a silenced connection is never closed by us
                with contextlib.suppress(Exception):
                    writer.close()

    @staticmethod
    async def _drain_forever(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(CHUNK):
                pass


def through(url: str, proxy: CuttableProxy) -> str:
    """The URL with its server replaced by the proxy (over TCP, whatever the original used)."""
    parts = urllib.parse.urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}", query=""))


def proxy_to(url: str) -> CuttableProxy:
    """A proxy to a server given by URL: host and port, or a Unix socket directory (``?host=/dir``)."""
    parts = urllib.parse.urlsplit(url)
    socket_dir = urllib.parse.parse_qs(parts.query).get("host", [""])[0]
    if not parts.hostname and socket_dir.startswith("/"):
        return CuttableProxy(0, unix=f"{socket_dir}/.s.PGSQL.{parts.port or 5432}").start()
    return CuttableProxy(parts.port or 0, parts.hostname or "127.0.0.1").start()
