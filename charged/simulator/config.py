"""What a simulator is told at start: the account, the fleet and the faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from charged.simulator.faults import Faults
from charged.simulator.fleet import (
    INSTALLATION_CURRENT,
    charge_point_ids,
    check_installation_current,
)
from charged.simulator.physics import PhysicsConfig


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
    # installationCurrent (A) of every charger, and the exceptions by charge point id
    installation_current: float = INSTALLATION_CURRENT
    installation_currents: dict[str, float] = field(default_factory=dict)
    # the site's wiring and the cars' physics (fuse tree, rotations, limit delay, ground
    # truth); None: the plain field-study model, limits acting at once
    physics: PhysicsConfig | None = None
    # chargers whose isLoadbalanced reads true (the vendor's cloud balances them)
    loadbalanced: frozenset[str] = frozenset()
    # every kind of charger the documents describe (charged.simulator.kinds), not all Auras
    mixed_fleet: bool = False
    # the account's organisation: GET /organisations/{id}/chargepoints/statuses (v5)
    organisation_id: str = "demo-organisation"
    # What the reference leaves unsaid, each as an option.  conflicts: a change to an
    # offline charger, or a remote start with no car, is answered 409 + JSON (an answer the
    # vendor documents only for register) instead of being accepted with no effect.
    conflicts: bool = False
    # a maxCurrent above the installation current: refused (400) or clipped to it
    above_installation: Literal["reject", "clip"] = "reject"

    def validate(self) -> None:
        """Raise ValueError with one line naming the first impossible value."""
        if self.chargers < 0:
            raise ValueError(f"chargers must not be negative, got {self.chargers}")
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed:g}")
        if not self.api_versions:
            raise ValueError("api_versions must name at least one version, e.g. v5")
        if self.above_installation not in ("reject", "clip"):
            raise ValueError(
                f"above_installation must be reject or clip, got {self.above_installation!r}"
            )
        if not self.organisation_id.strip() or "/" in self.organisation_id:
            raise ValueError(
                f"organisation_id must be a non-empty id without '/', got {self.organisation_id!r}"
            )
        self.validate_installation()
        self.faults.validate()
        if self.physics is not None:
            self.physics.validate(charge_point_ids(self.seed, self.chargers))

    def validate_installation(self) -> None:
        """The installation currents: 6–32 A, and only for chargers the fleet has."""
        check_installation_current(self.installation_current, "every charger")
        for cp_id, amps in self.installation_currents.items():
            check_installation_current(amps, cp_id)
        if self.installation_currents:
            strangers = sorted(
                set(self.installation_currents) - set(charge_point_ids(self.seed, self.chargers))
            )
            if strangers:
                raise ValueError(
                    f"installation current for {strangers[0]}, which is not one of the "
                    f"{self.chargers} simulated chargers of seed {self.seed}"
                )
