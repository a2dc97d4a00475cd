"""A faithful simulator of the Charge Amps external API, for the demo, tests and benchmarks."""

from __future__ import annotations

from charged.simulator.charger_state import SessionTruth
from charged.simulator.command import add_simulate_arguments, config_from_args, run_simulator
from charged.simulator.config import Account, SimulatorConfig
from charged.simulator.connector import STEP
from charged.simulator.faults import Faults
from charged.simulator.fleet import Fleet
from charged.simulator.server import ServedStatus, Simulator

__all__ = [
    "STEP",
    "Account",
    "Faults",
    "Fleet",
    "ServedStatus",
    "SessionTruth",
    "Simulator",
    "SimulatorConfig",
    "add_simulate_arguments",
    "config_from_args",
    "run_simulator",
]
