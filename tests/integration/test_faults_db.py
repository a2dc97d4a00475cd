"""Database faults against `charged run` as a real process: MariaDB behind a TCP proxy the
test cuts, restores and slows down; the simulator in this process records what it served.

Each scenario ends by comparing, row for row, what the simulator served with what is in the
database: nothing missing, nothing duplicated.  The waits below poll the daemon's own
/metrics and /readyz (bounded by a deadline); no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url

from charged.simulator import Simulator, SimulatorConfig
from charged.storage.engine import create_engine
from charged.storage.schema import metadata
from charged.storage.spool_records import HEADER_SIZE, read_record
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.mysql

STEP_DEADLINE = 60.0  # seconds any one awaited condition may take before the test fails
POLL = 0.05
RESULTS = ("ok", "partial", "failed")  # the labels of charged_ticks_total
HOW = ("written", "spooled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    """One `charged run` process; its log goes to a file the failure messages quote."""

    def __init__(self, workdir: Path, config: Path, ops_port: int, name: str) -> None:
        self.workdir = workdir
        self.config = config
        self.ops_port = ops_port
        self.log = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "charged.cli",
                "run",
                "-c",
                str(self.config),
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=log,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def metrics(self) -> dict[str, float]:
        """Every sample as ``name{label=value,...}`` → value."""
        text = await self._get("/metrics")
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text[1]):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = await self._get("/readyz")
        doc: dict[str, Any] = json.loads(body)
        return status, doc

    async def _get(self, path: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"http://127.0.0.1:{self.ops_port}{path}") as r,
        ):
            return r.status, await r.text()

    async def wait_for(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_DEADLINE
        while True:
            assert self.proc is not None
            if self.proc.returncode is not None:
                pytest.fail(
                    f"charged run exited ({self.proc.returncode}) waiting for {what}:\n"
                    f"{self.output()[-4000:]}"
                )
            with contextlib.suppress(aiohttp.ClientError, OSError):
                if await check():
                    return
            if loop.time() > deadline:
                pytest.fail(f"timed out waiting for {what}:\n{self.output()[-4000:]}")
            await asyncio.sleep(POLL)  # polling another process; not waiting for time

    async def metric(self, name: str) -> float:
        return (await self.metrics()).get(name, 0.0)

    async def wait_ticks_in_db(self, more: int) -> None:
        """Wait until ``more`` further ticks are committed (not merely spooled)."""
        start = await self.metric("charged_rows_written_total{table=poll_cycle}")

        async def enough() -> bool:
            written = await self.metric("charged_rows_written_total{table=poll_cycle}")
            return written >= start + more

        await self.wait_for(f"{more} ticks in the database", enough)

    async def wait_spool_empty(self) -> None:
        async def empty() -> bool:
            m = await self.metrics()
            return m.get("charged_spool_bytes", 1.0) == 0.0

        await self.wait_for("the spool to drain", empty)

    async def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def exit_code(self) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout=STEP_DEADLINE)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"charged run did not exit:\n{self.output()[-4000:]}")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Scenario:
    """Simulator + proxy + config shared by the daemons of one test."""

    def __init__(self, sim: Simulator, proxy: TcpProxy, db_url: str, workdir: Path) -> None:
        self.sim = sim
        self.proxy = proxy
        self.db_url = db_url
        self.workdir = workdir
        self.ops_port = free_port()
        self.daemons: list[Daemon] = []
        self.config = workdir / "config.yaml"

    def write_config(self, *, drain_timeout: float = 10.0) -> None:
        proxied = make_url(self.db_url).set(host="127.0.0.1", port=self.proxy.port)
        doc = {
            "api": {
                "base_url": self.sim.base_url,
                "email": self.sim.account.email,
                "password": self.sim.account.password,
                "api_key": self.sim.account.api_key,
                "token_cache": str(self.workdir / "token.json"),
                "max_requests_per_second": None,
            },
            "collector": {"interval": 1},
            "database": {"url": proxied.render_as_string(hide_password=False)},
            "writer": {"flush_interval": 0.2, "retry_backoff_max": 0.5},
            "spool": {"directory": str(self.workdir / "spool"), "fsync_interval": 0.2},
            "ops": {"host": "127.0.0.1", "port": self.ops_port},
            "shutdown": {"drain_timeout": drain_timeout},
            "log": {"level": "info", "format": "json"},
        }
        self.config.write_text(json.dumps(doc))  # JSON is YAML
        self.config.chmod(0o600)

    def assert_no_secret_in(self, *texts: str | bytes) -> None:
        """Neither the account's secrets nor the tokens the daemon holds appear in ``texts``."""
        cached = json.loads((self.workdir / "token.json").read_text())
        secrets = [
            self.sim.account.password,
            self.sim.account.api_key,
            cached["token"],
            cached["refreshToken"],
        ]
        for text in texts:
            blob = text.encode() if isinstance(text, str) else text
            for secret in secrets:
                assert secret.encode() not in blob, "a secret leaked"

    async def slow_database_behind_a_tick(self, d: Daemon, *, delay: float) -> None:
        """Slow every packet to the database by ``delay`` s; return once a tick's rows are
        queued behind it (so a flush is in progress)."""
        self.proxy.delay = delay
        ticks = await d.metric("charged_ticks_total{result=ok}")

        async def next_tick_queued() -> bool:
            return await d.metric("charged_ticks_total{result=ok}") > ticks

        await d.wait_for("a tick queued behind the slow database", next_tick_queued)

    async def daemon(self) -> Daemon:
        d = Daemon(self.workdir, self.config, self.ops_port, f"daemon{len(self.daemons)}")
        self.daemons.append(d)
        await d.start()

        async def ready() -> bool:
            status, _ = await d.readyz()
            return status == 200

        await d.wait_for("the first tick in the database (/readyz 200)", ready)
        return d


@pytest.fixture
async def scenario(mysql_url: str, tmp_path: Path) -> AsyncIterator[Scenario]:
    sim = Simulator(SimulatorConfig(chargers=6, seed=11, speed=60.0))
    sim.record_served = True
    await sim.start("127.0.0.1", 0)
    url = make_url(mysql_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    s = Scenario(sim, proxy, mysql_url, tmp_path)
    s.write_config()
    try:
        yield s
    finally:
        for d in s.daemons:
            await d.kill()
        await proxy.close()
        await sim.stop()


def spooled_payloads(segment: Path) -> bytes:
    """The decompressed payloads of every record in a spool segment, concatenated."""
    out = []
    size = segment.stat().st_size
    with segment.open("rb") as f:
        pos = 0
        while (record := read_record(f, pos, size)) is not None:
            flags, payload = record
            out.append(zlib.decompress(payload) if flags & 1 else payload)
            pos += HEADER_SIZE + len(payload)
    assert out, f"no readable record in {segment}"
    return b"".join(out)


# ------------------------------------------------------------------ the comparison


async def fetch(db_url: str, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, in time order (then in the order inserted)."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            t = metadata.tables[table]
            when = next((t.c[c] for c in ("date_created", "tick_time") if c in t.c), None)
            order = [*([when] if when is not None else []), *t.primary_key.columns]
            rows = await conn.execute(select(t).order_by(*order))
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


def connectors_of(body: dict[str, Any]) -> dict[int, tuple[Any, ...]]:
    """connector id -> (status, kWh, session, phases) as served (rounded as stored)."""
    return {
        c["connectorId"]: (
            c["status"],
            round(c["totalConsumptionKwh"], 3),
            c.get("sessionId"),
            {
                m["phase"]: (round(m["current"], 3), round(m["voltage"], 1))
                for m in c.get("measurements") or []
            },
        )
        for c in body.get("connectorStatuses") or []
    }


# a gap whose request the client gave up on: the simulator may have served its body
GAVE_UP = ("no answer within", "connection failed", "deadline reached")


async def assert_database_holds_exactly_what_was_served(sim: Simulator, db_url: str) -> int:
    """Tick by tick, charger by charger, the stored rows are the bodies the simulator served,
    in order: nothing missing, nothing twice, nothing never served; with the poll_cycle,
    poll_gap and charge_point_status rows saying the same.  Returns the connector rows.

    A body the simulator served but the client gave up on (its deadline passed on a busy
    machine) is not stored; it is a poll_gap for that charger at that tick, so such skips
    are allowed up to the charger's gaps of that kind."""
    everyone = set(sim.charge_point_ids())
    stored: dict[tuple[str, Any], dict[int, tuple[Any, ...]]] = defaultdict(dict)
    phases: dict[tuple[str, int, Any], dict[str, tuple[float, float]]] = defaultdict(dict)
    rows_at: dict[Any, int] = defaultdict(int)  # tick time -> connector and phase rows
    connector_rows = 0
    for row in await fetch(db_url, "measurement"):
        at = (row["charge_point_id"], row["connector_id"], row["date_created"])
        assert row["phase"] not in phases[at], f"measurement stored twice: {at}"
        phases[at][row["phase"]] = (round(row["current"], 3), round(row["voltage"], 1))
        rows_at[row["date_created"]] += 1
    for row in await fetch(db_url, "connector_status"):
        cp, cid, at = row["charge_point_id"], row["connector_id"], row["date_created"]
        assert cid not in stored[(cp, at)], f"connector stored twice: {cp}/{cid} at {at}"
        kwh = round(float(row["total_consumption_kwh"]), 3)
        stored[(cp, at)][cid] = (row["status"], kwh, row["session_id"], phases[(cp, cid, at)])
        rows_at[at] += 1
        connector_rows += 1
    assert {(cp, cid, at) for cp, cid, at in phases} <= {
        (cp, cid, at) for (cp, at), connectors in stored.items() for cid in connectors
    }, "phases stored without their connector"
    answered: dict[Any, set[str]] = defaultdict(set)  # tick time -> chargers stored
    for cp, at in stored:
        answered[at].add(cp)

    gaps: dict[Any, dict[str, str]] = defaultdict(dict)
    for gap in await fetch(db_url, "poll_gap"):
        assert gap["charge_point_id"] not in gaps[gap["tick_time"]], "a gap stored twice"
        gaps[gap["tick_time"]][gap["charge_point_id"]] = gap["reason"]
    cycles = await fetch(db_url, "poll_cycle")
    ticks = [c["tick_time"] for c in cycles]
    assert len(set(ticks)) == len(ticks), "a tick stored twice"
    assert set(answered) <= set(ticks), "polls stored without their tick's poll_cycle row"
    assert set(gaps) <= set(ticks), "gaps stored without their tick's poll_cycle row"
    for c in cycles:
        at, ok, failed = c["tick_time"], answered.get(c["tick_time"], set()), gaps[c["tick_time"]]
        assert ok | set(failed) == everyone and not ok & set(failed), f"tick {at}"
        assert (c["chargers_asked"], c["chargers_ok"], c["chargers_failed"]) == (
            len(everyone),
            len(ok),
            len(failed),
        ), f"tick {at}"
        # connectors and phases, plus each answering charger's charge_point_status row
        assert c["rows"] == rows_at[at] + len(ok), f"tick {at}"
    for earlier, later in itertools.pairwise(cycles):
        seconds = (later["tick_time"] - earlier["tick_time"]).total_seconds()
        assert seconds >= 1 + later["skipped_ticks"]  # interval 1 s; skipped ones counted

    served: dict[str, list[dict[int, tuple[Any, ...]]]] = defaultdict(list)
    for s in sim.served:
        served[s.charge_point_id].append(connectors_of(s.body))
    for cp in everyone:
        bodies, position, skipped = served[cp], 0, 0
        for at in (t for t in ticks if cp in answered[t]):
            while position < len(bodies) and bodies[position] != stored[(cp, at)]:
                position, skipped = position + 1, skipped + 1
            assert position < len(bodies), f"{cp} at {at}: stored, but never served (in order)"
            position += 1
        skipped += len(bodies) - position
        given_up = sum(any(w in g.get(cp, "") for w in GAVE_UP) for g in gaps.values())
        assert skipped <= given_up, f"{cp}: {skipped} bodies served but not stored"

    # charge_point_status: every charger, as it answered last, seen at its last tick
    last_body = {s.charge_point_id: s.body for s in sim.served}
    by_id = {r["id"]: r for r in await fetch(db_url, "charge_point_status")}
    assert set(by_id) == everyone
    for cp, row in by_id.items():
        last_seen = max(t for t in ticks if cp in answered[t])
        assert row["last_seen"] == last_seen, cp
        if connectors_of(last_body[cp]) == stored[(cp, last_seen)]:  # not given up on
            assert row["status"] == last_body[cp]["status"], cp
        assert row["name"], cp
    return connector_rows


# ------------------------------------------------------------------ scenarios


async def test_database_outage_spools_readyz_503_then_replays_everything(
    scenario: Scenario,
) -> None:
    d = await scenario.daemon()
    await d.wait_ticks_in_db(2)

    await scenario.proxy.cut()
    spooled_before = await d.metric("charged_rows_spooled_total{table=connector_status}")

    async def not_ready() -> bool:
        status, body = await d.readyz()
        return status == 503 and body["db_writable"] is False

    await d.wait_for("/readyz 503 during the outage", not_ready)
    status, body = await d.readyz()
    assert status == 503 and body["status"] == "not ready" and body["reasons"]

    async def several_ticks_spooled() -> bool:
        spooled = await d.metric("charged_rows_spooled_total{table=connector_status}")
        return spooled >= spooled_before + 3 * 2 * 6  # 3 ticks of 6 two-socket chargers

    await d.wait_for("rows counted as spooled", several_ticks_spooled)
    assert await d.metric("charged_spool_bytes") > 0
    # what the alert rules read: ChargedDatabaseDown, ChargedSpoolFilling (bytes / max)
    assert await d.metric("charged_database_writable") == 0
    assert await d.metric("charged_spool_max_bytes") > await d.metric("charged_spool_bytes")
    assert await d.metric("charged_db_errors_total") > 0
    # no secret in what the service writes: the spool, the metrics (the log is checked below)
    spool_files = sorted((scenario.workdir / "spool").glob("*.spool"))
    assert spool_files
    _, metrics_text = await d._get("/metrics")
    scenario.assert_no_secret_in(metrics_text, *(spooled_payloads(f) for f in spool_files))

    await scenario.proxy.restore()
    await d.wait_spool_empty()

    async def ready() -> bool:
        return (await d.readyz())[0] == 200

    await d.wait_for("/readyz 200 after the outage", ready)
    await d.wait_ticks_in_db(1)
    m = await d.metrics()
    assert m.get("charged_rows_dropped_total{table=connector_status}", 0.0) == 0.0
    assert m["charged_database_writable"] == 1

    await d.signal(signal.SIGTERM)
    assert await d.exit_code() == 0, d.output()[-4000:]
    rows = await assert_database_holds_exactly_what_was_served(scenario.sim, scenario.db_url)
    assert rows >= 6 * 2 * 6  # at least six ticks of twelve connectors
    assert "database write failed; spooling rows to disk" in d.output()
    assert "spool replayed into the database" in d.output()
    scenario.assert_no_secret_in(d.output())


async def test_killed_while_database_down_replays_its_spool_after_restart(
    scenario: Scenario,
) -> None:
    d = await scenario.daemon()
    await d.wait_ticks_in_db(1)
    await scenario.proxy.cut()

    async def spooling() -> bool:
        return await d.metric("charged_rows_spooled_total{table=connector_status}") >= 24

    await d.wait_for("two ticks spooled", spooling)
    # Stop new data (the API answers 503), then wait until every served row is safe on disk
    # or in the database: rows still in memory would die with any process, by design of
    # SIGKILL; the spool's promise is what was handed to it.
    scenario.sim.faults.error_rate = 1.0
    # Three failed ticks after the last body served: the writer takes rows in order, so
    # with the poll_cycle rows of those ticks safe, every poll before them is safe too.
    # (Matching counters alone let the kill cost a served body about one run in ten.)
    failed_before = await d.metric("charged_ticks_total{result=failed}")

    async def all_served_is_safe() -> bool:
        served = sum(len(s.body.get("connectorStatuses") or []) for s in scenario.sim.served)
        m = await d.metrics()
        safe = (
            m["charged_rows_spooled_total{table=connector_status}"]
            + m["charged_rows_written_total{table=connector_status}"]
        )
        # and every tick's poll_cycle row (queued after its polls, before it is counted)
        ticks = sum(m.get(f"charged_ticks_total{{result={r}}}", 0.0) for r in RESULTS)
        cycles = sum(m.get(f"charged_rows_{how}_total{{table=poll_cycle}}", 0.0) for how in HOW)
        failed = m.get("charged_ticks_total{result=failed}", 0.0)
        return safe >= served and cycles >= ticks and failed >= failed_before + 3

    await d.wait_for("everything served to be written or spooled", all_served_is_safe)
    await d.signal(signal.SIGKILL)
    assert await d.exit_code() == -signal.SIGKILL
    assert any((scenario.workdir / "spool").glob("*.spool"))

    await scenario.proxy.restore()
    scenario.sim.faults.error_rate = 0.0
    again = await scenario.daemon()
    await again.wait_spool_empty()
    await again.wait_ticks_in_db(2)
    await again.signal(signal.SIGTERM)
    assert await again.exit_code() == 0, again.output()[-4000:]
    assert "spool holds batches from an earlier run" in again.output()
    await assert_database_holds_exactly_what_was_served(scenario.sim, scenario.db_url)


async def test_sigterm_in_the_middle_of_a_slow_flush_spools_the_rest_and_exits_0(
    scenario: Scenario,
) -> None:
    scenario.write_config(drain_timeout=1.0)
    d = await scenario.daemon()
    await d.wait_ticks_in_db(1)
    # A slow database: every packet to the server waits 0.5 s, so one flush takes seconds.
    await scenario.slow_database_behind_a_tick(d, delay=0.5)
    await d.signal(signal.SIGTERM)
    assert await d.exit_code() == 0, d.output()[-4000:]
    log = d.output()
    assert "writer stopped at its deadline; unwritten rows are in the spool" in log
    assert "rows dropped" not in log

    scenario.proxy.delay = 0.0
    again = await scenario.daemon()
    await again.wait_spool_empty()
    await again.wait_ticks_in_db(1)
    await again.signal(signal.SIGTERM)
    assert await again.exit_code() == 0, again.output()[-4000:]
    await assert_database_holds_exactly_what_was_served(scenario.sim, scenario.db_url)


async def test_a_second_signal_spools_at_once_and_exits_0(scenario: Scenario) -> None:
    scenario.write_config(drain_timeout=600.0)
    d = await scenario.daemon()
    await d.wait_ticks_in_db(1)
    # so slow a database that the drain would take minutes: only a second signal ends it
    await scenario.slow_database_behind_a_tick(d, delay=3.0)
    await d.signal(signal.SIGTERM)

    async def draining() -> bool:
        return "stopping" in d.output()

    await d.wait_for("the first signal to start the drain", draining)
    await d.signal(signal.SIGTERM)
    assert await d.exit_code() == 0, d.output()[-4000:]
    assert "unwritten rows are in the spool" in d.output()

    scenario.proxy.delay = 0.0
    again = await scenario.daemon()
    await again.wait_spool_empty()
    await again.wait_ticks_in_db(1)
    await again.signal(signal.SIGTERM)
    assert await again.exit_code() == 0, again.output()[-4000:]
    await assert_database_holds_exactly_what_was_served(scenario.sim, scenario.db_url)
