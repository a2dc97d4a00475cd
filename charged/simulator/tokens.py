"""Access and refresh tokens of the simulated account: real JWTs, real expiry, the 10-token cap.

Each login mints a token pair; an account holds at most ``cap`` live pairs and a new login
logs out the oldest, as the vendor does (which is why a client must not log in per poll).
A refresh swaps a pair for a new one in the same place in the queue.  Tokens are HS256 JWTs
signed with a per-process secret; clients read ``exp`` without verifying the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from charged.clock import Clock

TOKEN_CAP = 10
REFRESH_LIFETIME = 168 * 3600.0


@dataclass(frozen=True)
class TokenPair:
    token: str
    refresh_token: str
    email: str
    expires: float  # epoch seconds after which the server refuses the access token
    refresh_expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenIssuer:
    def __init__(
        self,
        clock: Clock,
        *,
        cap: int = TOKEN_CAP,
        refresh_lifetime: float = REFRESH_LIFETIME,
        secret: bytes | None = None,
    ) -> None:
        self._clock = clock
        self._cap = cap
        self._refresh_lifetime = refresh_lifetime
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        # per account, oldest first: refresh token → pair
        self._pairs: dict[str, OrderedDict[str, TokenPair]] = {}
        self._by_token: dict[str, TokenPair] = {}
        self._serial = 0

    def mint(self, email: str, lifetime: float, exp_claim: float | None = None) -> TokenPair:
        """A new pair for a login; evicts the account's oldest pair beyond the cap."""
        pair = self._new_pair(email, lifetime, exp_claim)
        pairs = self._pairs.setdefault(email, OrderedDict())
        self._drop_dead(pairs)
        pairs[pair.refresh_token] = pair
        self._by_token[pair.token] = pair
        while len(pairs) > self._cap:
            _, evicted = pairs.popitem(last=False)
            self._by_token.pop(evicted.token, None)
        return pair

    def refresh(
        self, token: str | None, refresh_token: str, lifetime: float, exp_claim: float | None = None
    ) -> TokenPair | None:
        """A new pair in place of the one ``refresh_token`` belongs to; None if it is not live.

        ``token``, when given, must be that pair's access token (expired or not).
        """
        for email, pairs in self._pairs.items():
            old = pairs.get(refresh_token)
            if old is None:
                continue
            if old.refresh_expires <= self._clock.time():
                return None
            if token is not None and token != old.token:
                return None
            new = self._new_pair(email, lifetime, exp_claim)
            # keep the login's place in the queue: rebuild the ordered dict with the swap
            self._pairs[email] = OrderedDict(
                (new.refresh_token, new) if key == refresh_token else (key, value)
                for key, value in pairs.items()
            )
            self._by_token.pop(old.token, None)
            self._by_token[new.token] = new
            return new
        return None

    def check(self, token: str) -> str | None:
        """The account email of a live, unexpired, genuine access token; else None."""
        pair = self._by_token.get(token)
        if pair is None or pair.expires <= self._clock.time():
            return None
        if not self._signature_ok(token):
            return None
        return pair.email

    def live_pairs(self, email: str) -> int:
        pairs = self._pairs.get(email)
        if pairs is None:
            return 0
        self._drop_dead(pairs)
        return len(pairs)

    def _drop_dead(self, pairs: OrderedDict[str, TokenPair]) -> None:
        # A pair whose refresh token expired can never be used again: free its slot.
        now = self._clock.time()
        for key in [k for k, p in pairs.items() if p.refresh_expires <= now]:
            self._by_token.pop(pairs.pop(key).token, None)

    def _new_pair(self, email: str, lifetime: float, exp_claim: float | None) -> TokenPair:
        self._serial += 1
        now = self._clock.time()
        expires = math.floor(now + lifetime)
        claimed = expires if exp_claim is None else math.floor(now + exp_claim)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(
            json.dumps(
                {
                    "sub": email,
                    "jti": f"{self._serial}-{secrets.token_hex(4)}",
                    "iat": math.floor(now),
                    "exp": claimed,
                    "iss": "charged-simulator",
                }
            ).encode()
        )
        signing_input = f"{header}.{payload}".encode()
        signature = _b64(hmac.new(self._secret, signing_input, hashlib.sha256).digest())
        return TokenPair(
            token=f"{header}.{payload}.{signature}",
            refresh_token=secrets.token_urlsafe(32),
            email=email,
            expires=float(expires),
            refresh_expires=now + self._refresh_lifetime,
        )

    def _signature_ok(self, token: str) -> bool:
        head, _, signature = token.rpartition(".")
        expected = _b64(hmac.new(self._secret, head.encode(), hashlib.sha256).digest())
        return hmac.compare_digest(signature, expected)
