"""`charged simulate`'s pieces: options → config, and serving until cancelled."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import aiohttp
import pytest

from charged.simulator import Account, add_simulate_arguments, config_from_args, run_simulator
from charged.simulator.fleet import charge_point_ids


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="charged simulate")
    add_simulate_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_documented_account_and_no_faults() -> None:
    config = config_from_args(parse())
    assert (config.chargers, config.seed, config.speed) == (30, 1, 1.0)
    assert config.account == Account()
    assert config.account.email == "demo@charged.invalid"
    f = config.faults
    assert (f.latency, f.error_rate, f.rate_limit_rate, f.timeout_rate) == (0, 0, 0, 0)
    assert not (f.malformed or f.offline or f.no_measurements or f.ignore_writes)


def test_every_option_reaches_the_config() -> None:
    config = config_from_args(
        parse(
            "--chargers",
            "5",
            "--seed",
            "9",
            "--speed",
            "60",
            "--email",
            "a@b.invalid",
            "--password",
            "pw",
            "--api-key",
            "key",
            "--latency",
            "0.2",
            "--jitter",
            "0.1",
            "--error-rate",
            "0.1",
            "--rate-limit-rate",
            "0.05",
            "--retry-after",
            "3",
            "--timeout-rate",
            "0.01",
            "--malformed",
            "1903000191A",
            "--offline",
            "X1",
            "--offline",
            "X2",
            "--no-measurements",
            "--token-lifetime",
            "60",
            "--token-exp-claim",
            "7200",
            "--ignore-writes",
            "X3",
            "--installation-current",
            "25",
            "--installation-current-of",
            "2208404216D=16",  # the second charger of seed 9
        )
    )
    assert config.installation_current == 25.0
    assert config.installation_currents == {"2208404216D": 16.0}
    assert (config.chargers, config.seed, config.speed) == (5, 9, 60.0)
    assert config.account == Account("a@b.invalid", "pw", "key")
    f = config.faults
    assert (f.latency, f.latency_jitter, f.error_rate, f.rate_limit_rate) == (0.2, 0.1, 0.1, 0.05)
    assert (f.retry_after, f.timeout_rate, f.token_lifetime, f.token_exp_claim) == (
        3.0,
        0.01,
        60.0,
        7200.0,
    )
    assert f.malformed == {"1903000191A"} and f.offline == {"X1", "X2"}
    assert f.no_measurements and f.ignore_writes == {"X3"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--chargers", "-1"), "negative"),
        (("--error-rate", "1.5"), "from 0 to 1"),
        (("--speed", "0"), "positive"),
        (("--latency", "soon"), "not a number"),
        (("--installation-current", "40"), "not 6–32 A"),
        (("--installation-current-of", "16"), "is not CP=AMPERES"),
    ],
)
def test_bad_options_say_what_is_wrong(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err and argv[0] in err


def test_shares_that_add_up_to_more_than_all_requests_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        config_from_args(parse("--error-rate", "0.6", "--rate-limit-rate", "0.6"))
    assert exited.value.code == 2
    assert "must not exceed 1; lower one of them" in capsys.readouterr().err.splitlines()[-1]
    by_hand = argparse.Namespace(**{**vars(parse()), "simulate_usage_error": None})
    by_hand.error_rate = by_hand.timeout_rate = 0.6
    with pytest.raises(ValueError, match="must not exceed 1"):
        config_from_args(by_hand)


def test_an_installation_current_for_a_charger_the_fleet_lacks_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        config_from_args(parse("--chargers", "2", "--installation-current-of", "NOPE=16"))
    assert exited.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(
            "installation current for NOPE, which is not one of the 2 simulated chargers of seed 1"
        )
    )


async def test_run_simulator_prints_where_and_who_then_serves_until_cancelled() -> None:
    lines: list[str] = []
    ready = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        if line.startswith("faults:"):
            ready.set()

    config = config_from_args(parse("--chargers", "3", "--port", "0"))
    task = asyncio.create_task(run_simulator(config, "127.0.0.1", 0, out=out))
    await asyncio.wait_for(ready.wait(), timeout=10)
    url = lines[0].split(" at ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v5")
    assert "3 Aura chargers" in lines[0]
    assert "demo@charged.invalid" in lines[1] and "demo-password" in lines[1]
    assert "demo-api-key" in lines[1]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/auth/login",
            headers={"apiKey": "demo-api-key"},
            json={"email": "demo@charged.invalid", "password": "demo-password"},
        ) as resp:
            assert resp.status == 200
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # cancellation is not swallowed
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"{url}/chargepoints/owned"):
                pass  # the port is closed again


def test_site_scenario_and_delay_make_a_wired_site(tmp_path: Path) -> None:
    ids = charge_point_ids(1, 3)
    site = tmp_path / "site.yaml"
    site.write_text(
        "fuse: {name: main, limit: 40, chargers: [1], children: "
        "[{name: row, limit: [16, 20, 20], chargers: [2, 3]}]}\n"
        f"rotations: {{2: L2L3L1, {ids[2]}: L3L1L2}}\n"
    )
    scenario = tmp_path / "day.csv"
    scenario.write_text(
        "arrival,departure,energy_kwh,phases,max_current,charger,connector,follows_limit\n"
        "2026-01-05T07:00:00+00:00,2026-01-05T09:00:00+00:00,5,1,16,,,\n"
        "2026-01-05T07:00:00+00:00,2026-01-05T09:00:00+00:00,5,3,10,3,2,0.5\n"
        "2026-01-05T07:30:00Z,2026-01-05T08:00:00Z,2,1,32,,,\n"
    )
    config = config_from_args(
        parse(
            "--chargers",
            "3",
            "--site",
            str(site),
            "--scenario",
            str(scenario),
            "--limit-delay",
            "40-50",
            "--half-followers",
            "0.2",
        )
    )
    physics = config.physics
    assert physics is not None and physics.site is not None
    assert physics.limit_delay == (40, 50) and physics.half_follower_share == 0.2
    assert physics.site.root.chargers == (ids[0],)
    assert physics.site.root.children[0].chargers == (ids[1], ids[2])
    assert dict(physics.site.rotations) == {ids[1]: "L2L3L1", ids[2]: "L3L1L2"}
    assert physics.visits is not None and not physics.sample_arrivals
    # first free in fleet order: the first row on charger 1 connector 1, the third (a later
    # arrival, while 1/1 is taken) on 1/2; the second where it says
    assert [k for k, v in sorted(physics.visits.items()) for _ in v] == sorted(
        [(ids[0], 1), (ids[0], 2), (ids[2], 2)]
    )
    assert physics.visits[(ids[2], 2)][0].car.follows_limit == 0.5


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2026-01-05T07:00:00,2026-01-05T09:00:00Z,5,1,16", "row 2, column arrival: "),
        ("2026-01-05T07:00:00Z,2026-01-05T06:00:00Z,5,1,16", "row 2, column departure: must"),
        ("2026-01-05T07:00:00Z,2026-01-05T09:00:00Z,5,2,16", "row 2, column phases: '2' is"),
        ("2026-01-05T07:00:00Z,2026-01-05T09:00:00Z,x,1,16", "row 2, column energy_kwh: 'x'"),
        ("2026-01-05T07:00:00Z,2026-01-05T09:00:00Z,5,1,40", "row 2, column max_current: 40"),
    ],
)
def test_a_bad_scenario_row_is_a_usage_error_naming_row_and_column(
    tmp_path: Path, row: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "bad.csv"
    scenario.write_text(f"arrival,departure,energy_kwh,phases,max_current\n{row}\n")
    with pytest.raises(SystemExit) as exited:
        config_from_args(parse("--chargers", "1", "--scenario", str(scenario)))
    assert exited.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_a_bad_site_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("fuse: {name: main, limit: 40, chargers: [7]}\n")
    with pytest.raises(SystemExit) as exited:
        config_from_args(parse("--chargers", "2", "--site", str(site)))
    assert exited.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "--site" in err and "charger position 7 is not 1–2" in err
