"""Command-line failures and exit codes, shared by ``charged`` and every sub-command.

A module of its own so that :mod:`charged.cli`, which wires the sub-commands together, and the
sub-command modules it imports can all use them without importing each other.

Exit codes (sysexits where one fits): 0 success; 1 unexpected error or a failed change; 2 bad
usage; 69 database or vendor API unreachable; 77 login refused (wrong email, password or
apiKey, or a database user the server refuses); 78 bad configuration; 141 the reader of
standard output went away, as for a Unix tool killed by SIGPIPE.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_NOPERM = 77
EXIT_CONFIG = 78
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


class Fatal(Exception):
    """An expected failure: printed as one line, exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def translate_errors(exc: BaseException) -> Fatal | None:
    """Expected failures → one line and an exit code; anything else is a bug (None)."""
    # imported here: this module is imported by `charged --help`, which must stay quick
    from charged.chargeamps.errors import (
        ApiAddressError,
        ApiUnavailable,
        AuthenticationError,
        ChargeAmpsError,
    )
    from charged.collector.supervisor import NoChargersError
    from charged.ops.server import OpsServerError
    from charged.storage.engine import DatabaseAccessDenied, DatabaseUrlError, StorageError
    from charged.storage.spool import SpoolError

    if isinstance(exc, AuthenticationError | DatabaseAccessDenied):
        return Fatal(str(exc), EXIT_NOPERM)
    if isinstance(exc, DatabaseUrlError | ApiAddressError):
        return Fatal(str(exc), EXIT_CONFIG)
    if isinstance(exc, ApiUnavailable | StorageError):
        return Fatal(str(exc), EXIT_UNAVAILABLE)
    if isinstance(exc, NoChargersError | ChargeAmpsError | SpoolError):
        return Fatal(str(exc), EXIT_ERROR)
    if isinstance(exc, OpsServerError):
        return Fatal(str(exc), EXIT_UNAVAILABLE)
    return None
