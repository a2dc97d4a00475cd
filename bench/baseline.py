"""What the original collection scripts did, on the same simulator and database.

Every tick they logged in again (minting a new token each time), asked the chargers one after
another, and stored each row with the SQLAlchemy ORM in a commit of its own: the charge point
merged on its id, then each connector row, then each phase row.  ``date_created`` was the
insert time.  This is written here from that description, on purpose without any of charged's
client, models or writer, so the comparison is with the approach and not with our code.

To be kind to the baseline the list of chargers is read once before the first tick and not
counted.  For a big fleet a tick is measured on a sample of the chargers and extrapolated:
login + (sample time / sample size) × chargers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from bench.measure import cpu_seconds, peak_rss_mb, rss_mb
from charged.simulator import Account
from charged.storage import schema


class Base(DeclarativeBase):
    pass


# ORM classes on the tables the original scripts created (same names and columns).
class ChargePointStatus(Base):
    __table__ = schema.charge_point_status


class ConnectorStatus(Base):
    __table__ = schema.connector_status


class Measurement(Base):
    __table__ = schema.measurement


@dataclass
class BaselineTick:
    tick: int
    login_s: float
    polled: int  # chargers asked in this tick (the sample)
    polled_s: float  # wall time for them, one after another, each row committed
    extrapolated_s: float  # login + polled_s scaled to every charger
    requests: int
    rows: int
    cpu_s: float
    rss_mb: float


async def run_baseline(
    *, base_url: str, db_url: str, ticks: int, sample: int | None
) -> dict[str, Any]:
    account = Account()
    root = f"{base_url}/api/v5"
    engine = create_async_engine(db_url)
    figures: list[BaselineTick] = []
    try:
        async with aiohttp.ClientSession() as http:
            token = await _login(http, root, account)
            async with http.get(
                f"{root}/chargepoints/owned", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                response.raise_for_status()
                ids = [cp["id"] for cp in await response.json()]
            chosen = ids if sample is None else ids[:sample]
            for n in range(1, ticks + 1):
                cpu0 = cpu_seconds()
                started = time.monotonic()
                token = await _login(http, root, account)  # what the scripts did every tick
                logged_in = time.monotonic()
                rows = 0
                for cp_id in chosen:
                    async with http.get(
                        f"{root}/chargepoints/{cp_id}/status",
                        headers={"Authorization": f"Bearer {token}"},
                    ) as response:
                        response.raise_for_status()
                        status = await response.json()
                    rows += await _store(engine, status)
                done = time.monotonic()
                polled_s = done - logged_in
                figures.append(
                    BaselineTick(
                        tick=n,
                        login_s=logged_in - started,
                        polled=len(chosen),
                        polled_s=polled_s,
                        extrapolated_s=(logged_in - started) + polled_s * len(ids) / len(chosen),
                        requests=1 + len(chosen),
                        rows=rows,
                        cpu_s=cpu_seconds() - cpu0,
                        rss_mb=rss_mb(),
                    )
                )
    finally:
        await engine.dispose()
    return {
        "ticks": [asdict(f) for f in figures],
        "chargers": len(ids),
        "sampled": len(chosen) < len(ids),
        "peak_rss_mb": peak_rss_mb(),
    }


async def _login(http: aiohttp.ClientSession, root: str, account: Account) -> str:
    async with http.post(
        f"{root}/auth/login",
        json={"email": account.email, "password": account.password},
        headers={"apiKey": account.api_key},
    ) as response:
        response.raise_for_status()
        return str((await response.json())["token"])


async def _store(engine: Any, status: dict[str, Any]) -> int:
    """One commit per row, as the scripts did; returns the number of rows stored."""
    rows = 0
    async with AsyncSession(engine) as session:
        await session.merge(ChargePointStatus(id=status["id"], status=status["status"]))
        await session.commit()
        rows += 1
        for conn in status.get("connectorStatuses") or []:
            now = datetime.now().replace(microsecond=0)
            session.add(
                ConnectorStatus(
                    charge_point_id=conn["chargePointId"],
                    connector_id=conn["connectorId"],
                    total_consumption_kwh=conn.get("totalConsumptionKwh"),
                    session_type=conn.get("sessionType"),
                    status=conn["status"],
                    start_time=conn.get("startTime"),
                    end_time=conn.get("endTime"),
                    session_id=conn.get("sessionId"),
                    date_created=now,
                )
            )
            await session.commit()
            rows += 1
            for m in conn.get("measurements") or []:
                session.add(
                    Measurement(
                        phase=m["phase"],
                        current=m["current"],
                        voltage=m["voltage"],
                        connector_id=conn["connectorId"],
                        charge_point_id=conn["chargePointId"],
                        session_id=conn.get("sessionId"),
                        date_created=now,
                    )
                )
                await session.commit()
                rows += 1
    return rows
