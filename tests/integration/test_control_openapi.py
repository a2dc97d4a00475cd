"""Property-based run of docs/control-api.yaml against the control API: no input gives a 500.

schemathesis generates valid and invalid requests (bodies, path parameters) from the OpenAPI
file and sends them with `requests`, so the server runs on its own event loop in a thread,
in front of the simulated vendor API, all on 127.0.0.1.  It also checks the answers against
the documented status codes, content types and response schemas.

Random ids mostly name no charger (404 before anything is sent), so a second run draws the
path's charger from the simulated fleet (and connectors 1–3, 3 being one no Aura has): its
bodies reach the read–modify–write, the commands and the simulator's own checks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection

from charged.chargeamps.client import ChargeAmpsClient
from charged.clock import SystemClock
from charged.control.api import install_control_routes
from charged.control.audit import MemoryAuditSink
from charged.control.operations import Controller
from charged.simulator import Simulator, SimulatorConfig
from charged.simulator.fleet import charge_point_ids

SPEC = Path(__file__).resolve().parents[2] / "docs" / "control-api.yaml"
TOKEN = "schemathesis-token-0123456789"
SEED, CHARGERS = 5, 3
KNOWN = charge_point_ids(SEED, CHARGERS)
schema = schemathesis.openapi.from_path(SPEC)
known = schemathesis.openapi.from_path(SPEC)


@known.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, object] | None
) -> st.SearchStrategy[dict[str, object]]:
    if not path_parameters:
        return st.just(path_parameters or {})
    drawn: dict[str, st.SearchStrategy[object]] = {"cp": st.sampled_from(KNOWN)}
    if "connector" in path_parameters:
        drawn["connector"] = st.sampled_from([1, 2, 3])
    return st.fixed_dictionaries(drawn)


class ServerThread:
    """Simulator + control API on a private event loop; stopped by closing the loop's work."""

    def __init__(self) -> None:
        self.base_url = ""
        self.audit = MemoryAuditSink()
        self.sim: Simulator | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="control-api", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"control API did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to the test thread by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        clock = SystemClock()
        # 60× fleet time: a charger rebooted by one case is back for the next ones
        sim = Simulator(
            SimulatorConfig(chargers=CHARGERS, seed=SEED, start_time=1_767_258_000.0, speed=60)
        )
        await sim.start("127.0.0.1", 0)
        self.sim = sim
        try:
            async with aiohttp.ClientSession() as session:
                client = ChargeAmpsClient(
                    session,
                    base_url=sim.base_url,
                    email=sim.account.email,
                    password=sim.account.password,
                    api_key=sim.account.api_key,
                    clock=clock,
                    max_requests_per_second=None,
                    max_attempts=1,
                )
                controller = Controller(
                    client, self.audit, actor="control-api", clock=clock, verify_interval=0.05
                )
                app = web.Application()
                install_control_routes(app, controller_factory=lambda: controller, token=TOKEN)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                self.base_url = f"http://{host}:{port}"
                self._ready.set()
                try:
                    await self._stop.wait()
                finally:
                    await runner.cleanup()
        finally:
            await sim.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread() as running:
        yield running


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case: schemathesis.Case, server: ServerThread) -> None:
    case.call_and_validate(base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"})


@known.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_for_a_real_charger_makes_a_server_error(
    case: schemathesis.Case, server: ServerThread
) -> None:
    # The hook put a valid charger in the path and the token goes in every request: a case
    # that was negative only there is a valid request now, and may well be accepted.
    meta = case.meta
    mutated = meta is not None and any(
        meta.is_negative_at(where) for where in (ParameterLocation.BODY, ParameterLocation.QUERY)
    )
    case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        excluded_checks=[] if mutated else [negative_data_rejection],
    )


def test_real_charger_cases_reach_the_chargers(server: ServerThread) -> None:
    # Its own run of real-charger cases (not the run above, which may not have run first):
    # they must get past the 404s to the read-modify-write and the validation.
    assert server.sim is not None
    writes_before, records_before = server.sim.writes, len(server.audit.records)
    cases = st.one_of(
        operation.ok().as_strategy(mode, path_parameters=path)
        for operation in schema.get_all_operations()
        if "{cp}" in operation.ok().path
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for path in real_charger_paths(operation.ok().path)
    )

    @given(case=cases)
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: schemathesis.Case) -> None:
        case.call(base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"})

    send()
    assert server.sim.writes > writes_before
    records = server.audit.records[records_before:]
    results = {r.result for r in records if r.charge_point_id in KNOWN}
    assert "rejected" in results
    assert results & {"ok", "unchanged", "failed", "unverified"}


def real_charger_paths(path: str) -> list[dict[str, object]]:
    """Path parameters naming a simulated charger (and connector 1, which every one has)."""
    if "{connector}" in path:
        return [{"cp": KNOWN[0], "connector": 1}]
    return [{"cp": KNOWN[0]}]


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_without_the_token_everything_is_401(case: schemathesis.Case, server: ServerThread) -> None:
    response = case.call(base_url=server.base_url, headers={"Authorization": "Bearer nope"})
    # schemathesis also probes undocumented methods: without the token those are 401 too,
    # so a stranger cannot tell which routes exist from a 405
    assert response.status_code == 401
