"""One line of `charged check`'s report: what was checked, how it went, what to do.

Kept apart from :mod:`charged.check` so that the checks living in modules of their own
(``charged.check_site``) build the same lines without importing the whole check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str  # what was checked: config, database, api, site, spool, token cache
    status: Status
    message: str  # one line; never a password, apiKey or token
    exit_code: int = 0  # for a failure: the exit code it stands for
    # lines printed under the message (the site's fuse tree), indented; not in the JSON
    details: tuple[str, ...] = ()
    # the same facts for scripts: the JSON's "data" (e.g. the tree, or the charger concerned)
    data: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "status": self.status.value.lower(),
            "message": self.message,
            "exit_code": self.exit_code,
        }
        if self.data is not None:
            out["data"] = dict(self.data)
        return out
