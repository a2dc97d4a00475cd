"""What a simulator is told at start: the account, the fleet and the faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from charged.simulator.faults import Faults


@dataclass
class Account:
    """The one simulated vendor account; these defaults are documented and used by the demo."""

    email: str = "demo@charged.invalid"
    password: str = field(default="demo-password", repr=False)
    api_key: str = field(default="demo-api-key", repr=False)


@dataclass
class SimulatorConfig:
    chargers: int = 30
    seed: int = 1
    speed: float = 1.0  # fleet seconds per real (clock) second
    account: Account = field(default_factory=Account)
    faults: Faults = field(default_factory=Faults)
    start_time: float | None = None  # fleet epoch start; None: the clock's now
    api_versions: tuple[str, ...] = ("v4", "v5")
    record_served: bool = False  # keep every status body served (tests); off for long runs

    def validate(self) -> None:
        """Raise ValueError with one line naming the first impossible value."""
        if self.chargers < 0:
            raise ValueError(f"chargers must not be negative, got {self.chargers}")
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed:g}")
        if not self.api_versions:
            raise ValueError("api_versions must name at least one version, e.g. v5")
        self.faults.validate()
