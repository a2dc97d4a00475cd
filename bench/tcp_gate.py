"""A TCP relay in front of the database that can be shut and opened again on the same port.

The soak test points the collector's database URL at the gate: ``shut()`` refuses new
connections and cuts the open ones (the database "goes away" mid-write, as a restart or a
network cut does), ``open()`` lets traffic through again.  The database server itself is
never touched, so other users of it (a running test suite) are not disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpGate:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._host = host
        self.port = 0  # chosen by the OS at the first open(), kept afterwards
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted since start, for the report

    @property
    def is_open(self) -> bool:
        return self._server is not None

    async def open(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, self._host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        """Stop listening and cut every relayed connection at once (no FIN handshake)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for stream in list(self._streams):
            stream.transport.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._streams.add(client_w)
        self.connections += 1
        try:
            try:
                upstream_r, upstream_w = await asyncio.open_connection(*self._target)
            except OSError:
                client_w.transport.abort()
                return
            self._streams.add(upstream_w)
            try:
                await asyncio.gather(_pump(client_r, upstream_w), _pump(upstream_r, client_w))
            finally:
                self._streams.discard(upstream_w)
                upstream_w.transport.abort()
        finally:
            self._streams.discard(client_w)
            client_w.transport.abort()
            self._tasks.discard(task)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    # Either side closing or failing ends this direction; the caller then cuts both sides.
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()
