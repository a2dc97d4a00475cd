"""What a control request may ask for, checked before anything is sent to a charger.

The CLI (strings) and the HTTP API (JSON) both end up here, so both refuse the same values
with the same one-line reasons.  The CLI is lenient with what a person types (``off``,
``--max-current none``); JSON bodies are held to ``docs/control-api.yaml`` exactly
(``"Off"``, an integer or ``null``: never ``"off"`` or ``"12"``).  A change names only the
fields to change; the rest of the settings object is read from the charger and written back
untouched (the vendor API resets any field a PUT omits).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeAlias, TypeVar

MODES: Final = ("On", "Off", "Schedule")
DIMMER_LEVELS: Final = ("Off", "Low", "Medium", "High")
RFID_FORMATS: Final = ("Hex", "Dec", "ReverseDec")

# maxCurrent: null = no user limit, 0 = pause (connector only), else this range in amperes.
MIN_CURRENT: Final = 6
MAX_CURRENT: Final = 32
PAUSE_CURRENT: Final = 0

# The vendor's v5 description: an RFID is 4, 7 or 10 bytes (the ISO 14443 UID sizes).
RFID_LENGTHS: Final = (4, 7, 10)
_CHARGER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_DIGITS = re.compile(r"[0-9]+")
# what the OpenAPI file allows a JSON rfid to be
_JSON_HEX_RFID = re.compile(r"(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})")
_JSON_DEC_RFID = re.compile(r"[0-9]{1,25}")  # 10 bytes: 2^80 has 25 digits

JsonValue: TypeAlias = "str | int | float | bool | None"
T = TypeVar("T")


class InvalidValue(ValueError):
    """A value a person asked for that cannot be sent; the message is one line."""


class Unset(Enum):
    """Marks a field that the request does not touch (``None`` is a real maxCurrent)."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
MaxCurrent: TypeAlias = "int | None"


@dataclass(frozen=True, slots=True)
class ConnectorChange:
    mode: str | None = None
    max_current: MaxCurrent | Unset = UNSET
    rfid_lock: bool | None = None
    cable_lock: bool | None = None

    def wanted(self) -> dict[str, JsonValue]:
        """The requested fields by their API names, in a stable order."""
        out: dict[str, JsonValue] = {}
        if self.mode is not None:
            out["mode"] = self.mode
        if not isinstance(self.max_current, Unset):
            out["maxCurrent"] = self.max_current
        if self.rfid_lock is not None:
            out["rfidLock"] = self.rfid_lock
        if self.cable_lock is not None:
            out["cableLock"] = self.cable_lock
        return out


@dataclass(frozen=True, slots=True)
class ChargePointChange:
    dimmer: str | None = None
    down_light: bool | None = None
    max_current: MaxCurrent | Unset = UNSET

    def wanted(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        if self.dimmer is not None:
            out["dimmer"] = self.dimmer
        if self.down_light is not None:
            out["downLight"] = self.down_light
        if not isinstance(self.max_current, Unset):
            out["maxCurrent"] = self.max_current
        return out


@dataclass(frozen=True, slots=True)
class RemoteStart:
    rfid: str
    rfid_format: str
    rfid_length: int

    def to_json(self) -> dict[str, JsonValue]:
        return {"rfid": self.rfid, "rfidFormat": self.rfid_format, "rfidLength": self.rfid_length}

    def describe(self) -> str:
        return f"{self.rfid} ({self.rfid_format}, {self.rfid_length} bytes)"


# ---------------------------------------------------------------- single values


def _choice(value: object, choices: tuple[str, ...], what: str, *, strict: bool) -> str:
    """``strict``: exactly one of ``choices`` (JSON); else any case, spaces around (CLI)."""
    if isinstance(value, str):
        for choice in choices:
            if value == choice or (not strict and value.strip().lower() == choice.lower()):
                return choice
    raise InvalidValue(f"{what} must be one of {', '.join(choices)}, got {_show(value)}")


def parse_mode(value: object, *, strict: bool = False) -> str:
    return _choice(value, MODES, "mode", strict=strict)


def parse_dimmer(value: object, *, strict: bool = False) -> str:
    return _choice(value, DIMMER_LEVELS, "dimmer", strict=strict)


def parse_rfid_format(value: object, *, strict: bool = False) -> str:
    return _choice(value, RFID_FORMATS, "rfidFormat", strict=strict)


def parse_switch(value: object, what: str) -> bool:
    """A lock or light: JSON true/false, or on/off (yes/no, true/false) from a command line."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("on", "yes", "true"):
            return True
        if word in ("off", "no", "false"):
            return False
    raise InvalidValue(f"{what} must be on or off (true or false), got {_show(value)}")


def parse_max_current(
    value: object, *, allow_pause: bool = True, strict: bool = False
) -> MaxCurrent:
    """null / "none" = no limit, 0 = pause (connectors only), else whole amperes 6–32.

    ``strict`` (JSON): only ``null`` or an integer; the CLI's strings ("none", "10") and
    whole floats (10.0) are not what the OpenAPI file allows.
    """
    what = "maxCurrent"
    amps: int
    if value is None:
        return None
    if strict:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(
                f"{what} must be whole amperes ({_range_text(allow_pause)}) as a JSON integer, "
                f"or null for no limit, got {_show(value)}"
            )
        amps = value
    elif isinstance(value, bool):
        raise InvalidValue(f"{what} must be a number of amperes or none, got {_show(value)}")
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("none", "null", "unlimited"):
            return None
        if not _DIGITS.fullmatch(text):
            raise InvalidValue(
                f"{what} must be whole amperes ({_range_text(allow_pause)}) or none, "
                f"got {_show(value)}"
            )
        amps = int(text)
    elif isinstance(value, int):
        amps = value
    elif isinstance(value, float) and value.is_integer():
        amps = int(value)
    else:
        raise InvalidValue(
            f"{what} must be whole amperes ({_range_text(allow_pause)}) or none, got {_show(value)}"
        )
    if amps == PAUSE_CURRENT and allow_pause:
        return amps
    if not MIN_CURRENT <= amps <= MAX_CURRENT:
        raise InvalidValue(f"{what} must be {_range_text(allow_pause)}, got {amps}")
    return amps


def _range_text(allow_pause: bool) -> str:
    pause = "0 to pause, or " if allow_pause else ""
    return f"{pause}{MIN_CURRENT}–{MAX_CURRENT} A"


def check_installation_current(
    amps: MaxCurrent, installation_current: float | None, where: str
) -> None:
    """A limit above what the charger's wiring is installed for is refused, not clipped."""
    if amps is None or amps == PAUSE_CURRENT or installation_current is None:
        return
    if amps > installation_current:
        raise InvalidValue(
            f"maxCurrent {amps} A is above the installation current of {where} "
            f"({installation_current:g} A)"
        )


def parse_charger_id(value: object) -> str:
    if isinstance(value, str) and _CHARGER_ID.fullmatch(value.strip()):
        return value.strip()
    raise InvalidValue(
        f"charger id must be letters, digits and - _ . : (e.g. 2003000123A), got {_show(value)}"
    )


def parse_connector_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise InvalidValue(f"connector must be a number such as 1 or 2, got {_show(value)}")
    if not 1 <= number <= 99:
        raise InvalidValue(f"connector must be between 1 and 99, got {number}")
    return number


def parse_charger_list(text: str) -> tuple[str, ...]:
    """``CP1,CP2`` → ids, in order, without repeats."""
    return _unique(parse_charger_id(part) for part in _parts(text, "charger"))


def parse_connector_list(text: str) -> tuple[int, ...]:
    return _unique(parse_connector_id(part) for part in _parts(text, "connector"))


def remote_start(
    rfid: object, rfid_format: object = "Hex", rfid_length: object = None, *, strict: bool = False
) -> RemoteStart:
    """An RFID as the vendor documents it: 4, 7 or 10 bytes; given as hex digits (two per
    byte, ``Hex``) or as a decimal number with its length (``Dec``, ``ReverseDec``).

    ``strict`` (JSON): a Hex id is 8, 14 or 20 hex digits, a decimal one 1–25 digits,
    nothing around them, and rfidLength is an integer.
    """
    fmt = parse_rfid_format(rfid_format, strict=strict)
    if not isinstance(rfid, str) or not rfid.strip():
        raise InvalidValue(f"rfid must be the tag's id as text, got {_show(rfid)}")
    tag = rfid if strict else rfid.strip()
    if strict:
        pattern = _JSON_HEX_RFID if fmt == "Hex" else _JSON_DEC_RFID
        kind = (
            "4, 7 or 10 bytes of two hex digits each (8, 14 or 20 digits)"
            if fmt == "Hex"
            else "1–25 decimal digits"
        )
        if not pattern.fullmatch(tag):
            raise InvalidValue(f"rfid in {fmt} format must be {kind}, got {_show(rfid)}")
        if rfid_length is not None and (
            isinstance(rfid_length, bool) or not isinstance(rfid_length, int)
        ):
            raise InvalidValue(
                f"rfidLength must be a JSON integer (bytes), got {_show(rfid_length)}"
            )
    pattern, kind = (_HEX, "hex digits") if fmt == "Hex" else (_DIGITS, "decimal digits")
    if len(tag) > 64:
        raise InvalidValue(f"rfid is too long: an RFID is 4, 7 or 10 bytes, got {_show(rfid)}")
    if not pattern.fullmatch(tag):
        raise InvalidValue(f"rfid in {fmt} format must be {kind}, got {_show(rfid)}")
    if rfid_length is None:
        if fmt != "Hex":
            raise InvalidValue(f"rfidLength (bytes) is needed for a {fmt} RFID")
        if len(tag) % 2:
            raise InvalidValue(f"a Hex rfid needs two digits per byte, got {len(tag)} digits")
        length = len(tag) // 2
    elif isinstance(rfid_length, bool):
        raise InvalidValue(f"rfidLength must be a number of bytes, got {_show(rfid_length)}")
    elif isinstance(rfid_length, int):
        length = rfid_length
    elif isinstance(rfid_length, str) and _DIGITS.fullmatch(rfid_length.strip()):
        length = int(rfid_length)
    else:
        raise InvalidValue(f"rfidLength must be a number of bytes, got {_show(rfid_length)}")
    if length not in RFID_LENGTHS:
        raise InvalidValue(f"rfidLength must be 4, 7 or 10 bytes (as documented), got {length}")
    if fmt == "Hex" and len(tag) != 2 * length:
        raise InvalidValue(
            f"a Hex rfid of {length} bytes has {2 * length} digits, got {len(tag)} digits"
        )
    return RemoteStart(rfid=tag, rfid_format=fmt, rfid_length=length)


# ---------------------------------------------------------------- JSON bodies (HTTP API)

CONNECTOR_FIELDS: Final = ("mode", "maxCurrent", "rfidLock", "cableLock")
CHARGEPOINT_FIELDS: Final = ("dimmer", "downLight", "maxCurrent")
REMOTE_START_FIELDS: Final = ("rfid", "rfidFormat", "rfidLength")


def _body(data: object, allowed: tuple[str, ...], what: str) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise InvalidValue(f"the body must be a JSON object with {what}")
    unknown = sorted(_field_name(key) for key in data if key not in allowed)
    if unknown:
        if not allowed:
            raise InvalidValue(
                f"unknown field(s) {', '.join(unknown)}: this request takes no fields "
                "(send {} or no body)"
            )
        raise InvalidValue(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return data


def asked_fields(data: object) -> dict[str, JsonValue]:
    """The fields a JSON body asked for, as they came (for the audit row of a refusal)."""
    if not isinstance(data, dict):
        return {}
    return {
        str(key): value if isinstance(value, str | int | float | bool | None) else _show(value)
        for key, value in data.items()
    }


def connector_change_from_json(data: object) -> ConnectorChange:
    body = _body(data, CONNECTOR_FIELDS, "any of " + ", ".join(CONNECTOR_FIELDS))
    change = ConnectorChange(
        mode=parse_mode(body["mode"], strict=True) if "mode" in body else None,
        max_current=(
            parse_max_current(body["maxCurrent"], strict=True) if "maxCurrent" in body else UNSET
        ),
        rfid_lock=_json_bool(body, "rfidLock"),
        cable_lock=_json_bool(body, "cableLock"),
    )
    if not change.wanted():
        raise InvalidValue("nothing to change: give at least one of " + ", ".join(CONNECTOR_FIELDS))
    return change


def chargepoint_change_from_json(data: object) -> ChargePointChange:
    body = _body(data, CHARGEPOINT_FIELDS, "any of " + ", ".join(CHARGEPOINT_FIELDS))
    change = ChargePointChange(
        dimmer=parse_dimmer(body["dimmer"], strict=True) if "dimmer" in body else None,
        down_light=_json_bool(body, "downLight"),
        max_current=(
            parse_max_current(body["maxCurrent"], allow_pause=False, strict=True)
            if "maxCurrent" in body
            else UNSET
        ),
    )
    if not change.wanted():
        raise InvalidValue(
            "nothing to change: give at least one of " + ", ".join(CHARGEPOINT_FIELDS)
        )
    return change


def remote_start_from_json(data: object) -> RemoteStart:
    body = _body(data, REMOTE_START_FIELDS, "rfid (and optionally rfidFormat, rfidLength)")
    if "rfid" not in body:
        raise InvalidValue("rfid is required: the tag id the session is started for")
    return remote_start(
        body["rfid"], body.get("rfidFormat", "Hex"), body.get("rfidLength"), strict=True
    )


def empty_body(data: object) -> None:
    """Stop and reboot take no parameters: an empty object only (the caller passes ``{}``
    for a request without a body; a JSON ``null`` is not an object)."""
    _body(data, (), "no fields")


def _json_bool(body: Mapping[str, object], key: str) -> bool | None:
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, bool):
        raise InvalidValue(f"{key} must be true or false, got {_show(value)}")
    return value


# ---------------------------------------------------------------- helpers


def _parts(text: str, what: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise InvalidValue(f"{what} list must be comma-separated without empty items, got {text!r}")
    return parts


def _unique(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


def _field_name(key: object) -> str:
    """A field name as it may appear in a one-line message: control characters escaped."""
    text = str(key)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= 40 else text[:39] + "…"


def _show(value: object) -> str:
    """A value as it may appear in a one-line message (short, never multi-line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
