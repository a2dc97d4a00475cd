"""One line per fact about the machine a result was measured on."""

from __future__ import annotations

import os
import platform
import sys

import asyncmy


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


async def mariadb_version(host: str, port: int, user: str, password: str) -> str:
    conn = await asyncmy.connect(host=host, port=port, user=user, password=password)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT VERSION()")
            row = await cur.fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else "unknown"


def describe(db_version: str) -> list[str]:
    return [
        f"CPUs (nproc): {os.cpu_count()}",
        f"CPU model: {cpu_model()}",
        f"RAM: {ram_gib():.1f} GiB",
        f"MariaDB: {db_version}",
        f"Python: {sys.version.split()[0]} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
    ]
