"""Operations: health, readiness and metrics over HTTP, and systemd notifications."""

from __future__ import annotations

from charged.ops.health import Readiness, ReadinessState, evaluate_readiness
from charged.ops.sdnotify import SystemdNotifier, TickNotifier
from charged.ops.server import OpsServer, OpsServerError

__all__ = [
    "OpsServer",
    "OpsServerError",
    "Readiness",
    "ReadinessState",
    "SystemdNotifier",
    "TickNotifier",
    "evaluate_readiness",
]
