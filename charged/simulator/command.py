"""`charged simulate`: command-line options, and serving until cancelled."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

import yaml

from charged.simulator.config import Account, SimulatorConfig
from charged.simulator.faults import Faults
from charged.simulator.fleet import charge_point_ids
from charged.simulator.grid import grid_from_mapping
from charged.simulator.physics import PhysicsConfig
from charged.simulator.scenario import read_scenario
from charged.simulator.server import GROUND_TRUTH_PATH, Simulator


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not allowed here; give a positive number")
    return value


def _amperes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of amperes") from None
    if not 6 <= value <= 32:
        raise argparse.ArgumentTypeError(f"{text} A is not 6–32 A (what an Aura is installed for)")
    return value


def _charger_amperes(text: str) -> tuple[str, float]:
    cp_id, sep, amps = text.partition("=")
    if not sep or not cp_id.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not CP=AMPERES, e.g. 2104894082C=16")
    return cp_id.strip(), _amperes(amps)


def _charger_value(text: str) -> tuple[str, str]:
    cp_id, sep, value = text.partition("=")
    if not sep or not cp_id.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not CP=VALUE, e.g. 2104894082C=Faulted")
    return cp_id.strip(), value.strip()


def _share(text: str) -> float:
    value = _non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share; give a number from 0 to 1")
    return value


def _delay(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        pair = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not SECONDS or MIN-MAX seconds, e.g. 30-60"
        ) from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text}: give 0 <= MIN <= MAX seconds")
    return pair


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Account()
    # Options that clash only together (shares adding up to more than 1) are found after
    # parsing; config_from_args reports them through the parser as a usage error.
    parser.set_defaults(simulate_usage_error=parser.error)
    parser.add_argument(
        "--chargers",
        type=_non_negative_int,
        default=30,
        help="number of Aura charge points (default: 30)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=_non_negative_int,
        default=8080,
        help="port to listen on; 0 picks a free one (default: 8080)",
    )
    parser.add_argument("--seed", type=int, default=1, help="fleet random seed (default: 1)")
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="fleet seconds per real second (default: 1)",
    )
    parser.add_argument(
        "--installation-current",
        type=_amperes,
        default=32.0,
        metavar="A",
        help="installationCurrent of every charger, 6–32 A (default: 32); a maxCurrent above "
        "it is refused with 400 (or clipped: --above-installation clip)",
    )
    parser.add_argument(
        "--installation-current-of",
        type=_charger_amperes,
        action="append",
        default=[],
        metavar="CP=A",
        help="installationCurrent of one charger, e.g. 2104894082C=16 (repeatable)",
    )
    site = parser.add_argument_group(
        "site physics",
        "a wired site: fuse tree, phase rotations, limits acting late, the ground truth per "
        "fuse and phase at GET /simulator/ground-truth; on with --site or --scenario",
    )
    site.add_argument(
        "--site",
        type=Path,
        metavar="FILE",
        help="YAML: fuse: {name, limit (A, one or per phase), chargers: [ids], children: "
        "[...]}, rotations: {CP: L2L3L1}",
    )
    site.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="CSV of visits (arrival, departure, energy_kwh, phases, max_current[, charger, "
        "connector, follows_limit]) instead of sampled arrivals",
    )
    site.add_argument(
        "--limit-delay",
        type=_delay,
        default=(30, 60),
        metavar="MIN-MAX",
        help="seconds before a changed limit acts, drawn per change (default: 30-60)",
    )
    site.add_argument(
        "--half-followers",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of sampled cars that draw half their limit (default: 0)",
    )
    parser.add_argument(
        "--above-installation",
        choices=("reject", "clip"),
        default="reject",
        help="a maxCurrent above the installation current (the reference does not say): "
        "refused with 400 (default) or clipped to it",
    )
    parser.add_argument(
        "--mixed-fleet",
        action="store_true",
        help="every kind of charger the vendor documents, in turn: CAPI Auras naming or "
        "numbering their statuses or using OCPP's names, OCPP 1.6 Auras (names, numbers), "
        "a Halo (connector 2 a Schuko socket), an Aura with a single connector owner",
    )
    parser.add_argument(
        "--organisation-id",
        default="demo-organisation",
        help="the account's organisation: GET /api/v5/organisations/ID/chargepoints/statuses "
        "answers every charger at once (default: demo-organisation)",
    )
    parser.add_argument(
        "--conflicts",
        action="store_true",
        help="answer a change to an offline charger, or a remote start with no car, with 409 "
        "+ JSON (not documented by the vendor) instead of accepting it with no effect",
    )
    parser.add_argument(
        "--email", default=defaults.email, help=f"account email (default: {defaults.email})"
    )
    parser.add_argument(
        "--password",
        default=defaults.password,
        help="account password (default: the documented demo password)",
    )
    parser.add_argument(
        "--api-key",
        default=defaults.api_key,
        help="apiKey the login must send (default: the documented demo key)",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency", type=_non_negative_float, default=0.0, help="seconds added to every response"
    )
    faults.add_argument(
        "--jitter",
        type=_non_negative_float,
        default=0.0,
        help="plus a uniform random 0..JITTER seconds",
    )
    faults.add_argument(
        "--error-rate", type=_share, default=0.0, help="share of data requests answered 500/502/503"
    )
    faults.add_argument(
        "--rate-limit-rate",
        type=_share,
        default=0.0,
        help="share of data requests answered 429 with Retry-After",
    )
    faults.add_argument(
        "--retry-after",
        type=_non_negative_float,
        default=1.0,
        help="seconds in the Retry-After header (default: 1)",
    )
    faults.add_argument(
        "--timeout-rate", type=_share, default=0.0, help="share of data requests never answered"
    )
    faults.add_argument(
        "--malformed",
        action="append",
        default=[],
        metavar="CP",
        help="charge point whose status is garbage JSON (repeatable)",
    )
    faults.add_argument(
        "--offline",
        action="append",
        default=[],
        metavar="CP",
        help="charge point reported Offline (repeatable)",
    )
    faults.add_argument(
        "--connector-status",
        type=_charger_value,
        action="append",
        default=[],
        metavar="CP=VALUE",
        help="every connector of CP reads VALUE as its status, e.g. CP=Faulted, CP=7 or a "
        "word no document names (repeatable)",
    )
    faults.add_argument(
        "--null-readings",
        action="append",
        default=[],
        metavar="CP",
        help="charge point whose measurements carry a null current (L2) and voltage (L3)",
    )
    faults.add_argument(
        "--no-measurements", action="store_true", help="measurements null even while charging"
    )
    faults.add_argument(
        "--token-lifetime",
        type=_positive_float,
        default=7200.0,
        help="seconds an access token is accepted (default: 7200)",
    )
    faults.add_argument(
        "--token-exp-claim",
        type=_positive_float,
        default=None,
        help="seconds the JWT exp announces, if not the real lifetime "
        "(announce 7200 with a short --token-lifetime: tokens expire early)",
    )
    faults.add_argument(
        "--ignore-writes",
        action="append",
        default=[],
        metavar="CP",
        help="charge point whose settings PUT answers 200 but changes nothing",
    )


def config_from_args(ns: argparse.Namespace) -> SimulatorConfig:
    """The config the parsed options describe.

    Options that clash are a usage error of the parser they came from (one line, exit 2);
    a namespace built by hand gets a ValueError instead.
    """
    faults = Faults(
        latency=ns.latency,
        latency_jitter=ns.jitter,
        error_rate=ns.error_rate,
        rate_limit_rate=ns.rate_limit_rate,
        retry_after=ns.retry_after,
        timeout_rate=ns.timeout_rate,
        malformed=set(ns.malformed),
        offline=set(ns.offline),
        no_measurements=ns.no_measurements,
        token_lifetime=ns.token_lifetime,
        token_exp_claim=ns.token_exp_claim,
        ignore_writes=set(ns.ignore_writes),
        connector_status=dict(getattr(ns, "connector_status", [])),
        null_readings=set(getattr(ns, "null_readings", [])),
    )
    config = SimulatorConfig(
        chargers=ns.chargers,
        seed=ns.seed,
        speed=ns.speed,
        account=Account(email=ns.email, password=ns.password, api_key=ns.api_key),
        faults=faults,
        installation_current=getattr(ns, "installation_current", 32.0),
        installation_currents=dict(getattr(ns, "installation_current_of", [])),
        mixed_fleet=getattr(ns, "mixed_fleet", False),
        organisation_id=getattr(ns, "organisation_id", "demo-organisation"),
        conflicts=getattr(ns, "conflicts", False),
        above_installation=getattr(ns, "above_installation", "reject"),
    )
    usage_error = getattr(ns, "simulate_usage_error", None)
    try:
        config.physics = _physics_from_args(ns, config)
    except ValueError as exc:
        if usage_error is None:
            raise
        usage_error(str(exc))
    if usage_error is not None:
        try:
            config.validate_installation()
        except ValueError as exc:
            usage_error(str(exc))  # prints one line, exits 2
    try:
        config.validate()
    except ValueError as exc:
        if usage_error is None:
            raise
        usage_error(f"{exc}; lower one of them")  # prints one line, exits 2
        raise  # not reached: argparse's error() exits
    return config


def _physics_from_args(ns: argparse.Namespace, config: SimulatorConfig) -> PhysicsConfig | None:
    site_file: Path | None = getattr(ns, "site", None)
    scenario_file: Path | None = getattr(ns, "scenario", None)
    if site_file is None and scenario_file is None:
        return None
    site = None
    if site_file is not None:
        try:
            data = yaml.safe_load(site_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"--site {site_file}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"--site {site_file}: not YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"--site {site_file}: must be a mapping with fuse and rotations")
        try:
            site = grid_from_mapping(data, charge_point_ids(config.seed, config.chargers))
        except ValueError as exc:
            raise ValueError(f"--site {site_file}: {exc}") from None
    visits = None
    if scenario_file is not None:
        visits = read_scenario(scenario_file, charge_point_ids(config.seed, config.chargers))
    return PhysicsConfig(
        site=site,
        limit_delay=ns.limit_delay,
        half_follower_share=ns.half_followers,
        visits=None if visits is None else visits.visits,
        sample_arrivals=visits is None,
    )


async def run_simulator(
    config: SimulatorConfig,
    host: str,
    port: int,
    *,
    out: Callable[[str], object] = print,
) -> None:
    """Serve the simulated API until cancelled; tells where and with which account."""
    simulator = Simulator(config)
    await simulator.start(host, port)
    try:
        account = config.account
        # The simulated account's credentials are printed on purpose: they are not secrets
        # but what a client of this local fake must be configured with.
        kinds = "chargers of every kind" if config.mixed_fleet else "Aura chargers"
        out(
            f"charged simulate: {config.chargers} {kinds} at {simulator.base_url}/api/v5 "
            f"(also /api/v4; fleet clock ×{config.speed:g}, seed {config.seed}; "
            f"organisation {config.organisation_id})"
        )
        out(
            f"account: email {account.email}  password {account.password}  apiKey {account.api_key}"
        )
        if config.installation_current != 32.0 or config.installation_currents:
            exceptions = "".join(
                f", {cp_id} {amps:g} A"
                for cp_id, amps in sorted(config.installation_currents.items())
            )
            out(f"installation current: {config.installation_current:g} A{exceptions}")
        if config.physics is not None:
            low, high = config.physics.limit_delay
            fuses = len(list(config.physics.grid_spec().root.walk()))
            out(
                f"site physics: {fuses} fuse(s), limits act after {low}-{high} s, "
                f"ground truth at {simulator.base_url}{GROUND_TRUTH_PATH}"
            )
        active = _active_faults(config.faults)
        out(f"faults: {active}" if active else "faults: none")
        await asyncio.Event().wait()  # until cancelled
    finally:
        await simulator.stop()


def _active_faults(faults: Faults) -> str:
    parts = []
    if faults.latency or faults.latency_jitter:
        parts.append(f"latency {faults.latency:g}+{faults.latency_jitter:g}s")
    for name in ("error_rate", "rate_limit_rate", "timeout_rate"):
        if getattr(faults, name):
            parts.append(f"{name.replace('_', ' ')} {getattr(faults, name):g}")
    for name in ("malformed", "offline", "ignore_writes", "null_readings"):
        if getattr(faults, name):
            parts.append(f"{name.replace('_', ' ')} {','.join(sorted(getattr(faults, name)))}")
    if faults.no_measurements:
        parts.append("no measurements")
    if faults.connector_status:
        shown = ",".join(f"{cp}={v}" for cp, v in sorted(faults.connector_status.items()))
        parts.append(f"connector status {shown}")
    if faults.token_lifetime != 7200.0 or faults.token_exp_claim is not None:
        parts.append(f"token lifetime {faults.token_lifetime:g}s")
    return ", ".join(parts)
