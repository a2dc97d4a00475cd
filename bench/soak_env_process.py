"""The driver's side of :mod:`bench.soak_env`: start the process, send commands, stop it."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


class SoakEnvProcess:
    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one command and its answer at a time
        self.ready: dict[str, Any] = {}
        self.final: dict[str, Any] = {}

    async def start(
        self, *, chargers: int, speed: float, seed: int, db_host: str, db_port: int
    ) -> dict[str, Any]:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.soak_env",
            "--chargers",
            str(chargers),
            "--speed",
            repr(speed),
            "--seed",
            str(seed),
            "--db-host",
            db_host,
            "--db-port",
            str(db_port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**22,  # the ready line lists every charge point id
        )
        self.ready = await self._answer(within=120)
        return self.ready

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        async with self._lock:
            self._proc.stdin.write(json.dumps(command).encode() + b"\n")
            await self._proc.stdin.drain()
            return await self._answer(within=30)

    async def stop(self) -> dict[str, Any]:
        proc, self._proc = self._proc, None
        if proc is None:
            return self.final
        try:
            assert proc.stdin is not None
            proc.stdin.close()  # end of input: the process stops and reports
            self._proc = proc
            self.final = await self._answer(within=60)
        except (RuntimeError, TimeoutError, ValueError):
            proc.kill()
        finally:
            self._proc = None
            await proc.wait()
        return self.final

    async def _answer(self, *, within: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout=within)
        if not line:
            raise RuntimeError("the soak environment process ended unexpectedly")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ValueError(f"unexpected answer from the soak environment: {line!r}")
        return answer
