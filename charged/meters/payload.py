"""A meter's payload → amperes per site phase (pure).

The payload is JSON; each phase's value is found by a dotted path (``data.phases.0.current``:
mapping keys, and list positions as numbers).  A value is a number, or a string holding one
(some meters send ``"12.3"``).  Power (W) becomes current by dividing by the voltage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

PhaseCurrents = tuple[float, float, float]


class PayloadError(ValueError):
    """A payload that gives no reading; the message says which field and why, in one line."""


@dataclass(frozen=True, slots=True)
class PayloadSpec:
    fields: tuple[str, str, str]  # the dotted path of L1, L2, L3
    unit: Literal["A", "W"] = "A"
    voltage: float = 230.0

    @classmethod
    def of(cls, fields: Sequence[str], unit: Literal["A", "W"], voltage: float) -> PayloadSpec:
        return cls((fields[0], fields[1], fields[2]), unit, voltage)


def decode(body: bytes | bytearray | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the payload is not JSON") from None


def phase_currents(document: Any, spec: PayloadSpec) -> PhaseCurrents:
    """The three phases' currents (A) in ``document`` (decoded JSON)."""
    out = [0.0, 0.0, 0.0]
    for phase, path in enumerate(spec.fields):
        value = _number(_find(document, path), path)
        out[phase] = value / spec.voltage if spec.unit == "W" else value
    return (out[0], out[1], out[2])


def _find(document: Any, path: str) -> Any:
    here = document
    for part in path.split("."):
        if isinstance(here, dict) and part in here:
            here = here[part]
        elif isinstance(here, list) and part.isdigit() and int(part) < len(here):
            here = here[int(part)]
        else:
            raise PayloadError(f"field {path}: the payload has no {part!r} there")
    return here


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise PayloadError(f"field {path}: {value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise PayloadError(f"field {path}: {value[:40]!r} is not a number") from None
    else:
        raise PayloadError(f"field {path}: {type(value).__name__} is not a number")
    if not math.isfinite(number):
        raise PayloadError(f"field {path}: {value!r} is not a finite number")
    return number
