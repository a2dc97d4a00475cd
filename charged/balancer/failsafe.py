"""Which chargers of the site the balancer may drive, and why not the others.

A charger the vendor's own cloud load-balances (``isLoadbalanced: true``: an Amp Guard or
Power Guard meter set up in the vendor's partner portal) has a second controller on it; two
controllers writing one limit fight, and the vendor's wins or loses at random.  The balancer
only shadows such a charger unless the site states that the vendor's balancing is off for it
(``vendor_balancing_off``).  The runtime and ``charged check`` ask the same function.
"""

from __future__ import annotations

from collections.abc import Iterable

from charged.balancer.model import Site
from charged.chargeamps.models import ChargePoint

VENDOR_BALANCED = (
    "the vendor's cloud load-balances it (isLoadbalanced: true, an Amp Guard or Power Guard "
    "set up in the partner portal): the balancer only shadows it; if that balancing is off, "
    "list the charger under site.vendor_balancing_off"
)


def shadow_only(site: Site, owned: Iterable[ChargePoint]) -> dict[str, str]:
    """Chargers of ``site`` among ``owned`` that the balancer must not drive → why."""
    reasons: dict[str, str] = {}
    for cp in owned:
        spec = site.charger(cp.id)
        if spec is not None and cp.is_loadbalanced and not spec.vendor_balancing_off:
            reasons[cp.id] = VENDOR_BALANCED
    return reasons
