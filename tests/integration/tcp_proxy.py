"""A TCP proxy on 127.0.0.1 that a test can cut, restore and slow down: a database outage
(or a slow database) without touching the real server."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``.

    :meth:`cut` stops listening and aborts every open connection (clients see resets and
    refused connections, as when a server dies); :meth:`restore` listens again on the same
    port.  ``delay`` seconds are added before each chunk sent to the target (a slow server).
    """

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self._target = (target_host, target_port)
        self.delay = delay
        self._server: asyncio.Server | None = None
        self._port = 0
        self._links: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        return self._port

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        return self._port

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._links.update((client_w, server_w))
        for src, dst, slow in ((client_r, server_w, True), (server_r, client_w, False)):
            task = asyncio.create_task(self._pump(src, dst, slow))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
        try:
            while chunk := await src.read(65536):
                if slow and self.delay > 0:
                    await asyncio.sleep(self.delay)  # the simulated slowness itself
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(dst)
            with contextlib.suppress(Exception):
                dst.close()
