"""The Charge Amps external API: typed models, token handling and the aiohttp client."""

from __future__ import annotations

from charged.chargeamps.auth import TokenManager, TokenPair, TokenStore
from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.errors import (
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    ChargeAmpsError,
    DeadlineExceeded,
    PayloadError,
)

__all__ = [
    "ApiError",
    "ApiUnavailable",
    "AuthenticationError",
    "ChargeAmpsClient",
    "ChargeAmpsError",
    "DeadlineExceeded",
    "PayloadError",
    "TokenManager",
    "TokenPair",
    "TokenStore",
]
