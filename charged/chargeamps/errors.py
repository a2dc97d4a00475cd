"""Errors of the vendor API client.

Every message is one line a person can act on.  None of them ever carries a password, an
apiKey or a token: they are built from HTTP status codes, endpoint templates and charger ids
only, never from request headers or bodies.
"""

from __future__ import annotations


class ChargeAmpsError(Exception):
    """Base of everything the vendor client raises."""


class AuthenticationError(ChargeAmpsError):
    """Login refused (wrong email, password or apiKey).  Fatal: never retried."""


class ApiError(ChargeAmpsError):
    """A 4xx answer that retrying cannot fix (400, 403, 404, 409, …)."""

    def __init__(self, message: str, *, status: int, endpoint: str) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class ApiAddressError(ApiError):
    """The API answers, but not at the address the config builds (a 404 on login): a
    configuration error, not an outage."""


class ApiUnavailable(ChargeAmpsError):
    """The API did not answer usefully: 5xx, 429, timeout, connection error.

    Raised per attempt (then retried) and once more when the client gives up.
    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    ``retryable`` is False for a failure that already went through its own retries (e.g.
    renewing the token), so an outer retry loop does not multiply them.
    ``sent`` is False when the request certainly never reached the server (no connection
    could be made, or a 429 refused it): only then may a non-idempotent command be repeated.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable
        self.sent = sent


class DeadlineExceeded(ApiUnavailable):
    """The caller's deadline came (or the next wait would pass it) before an answer."""

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message, endpoint=endpoint, retryable=False)


class PayloadError(ChargeAmpsError):
    """A 2xx answer whose JSON (or shape) cannot be understood."""

    def __init__(
        self, message: str, *, charge_point_id: str | None = None, endpoint: str = ""
    ) -> None:
        super().__init__(message)
        self.charge_point_id = charge_point_id
        self.endpoint = endpoint


class BodyNotJson(PayloadError):
    """A 2xx answer whose body is not JSON.  An error for a read (the data is missing); for a
    write the vendor describes its answers as plain strings, so there it is a success."""
