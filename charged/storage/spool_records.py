"""The spool's records: a batch encoded, framed with a checksum, read back and found again.

A record is a 13-byte header (magic, flags, payload length, CRC32 of flags + payload) followed
by the payload: compact JSON (per table a column list and value rows; datetimes tagged so they
come back as datetimes), zlib-compressed when the spool's ``compress`` is on.  A record that
fails its checksum is passed over: the reader resynchronises on the next valid header, so one
bad sector costs one record, not the spool.  A segment that ends in an incomplete record (a
write cut short) has that tail cut off when the spool opens (:func:`scan_segment`).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

RowBatch = Mapping[str, Sequence[Mapping[str, Any]]]
DecodedBatch = dict[str, list[dict[str, Any]]]

MAGIC = b"CHSP"
HEADER = struct.Struct("<4sBII")  # magic, flags, payload length, crc32(flags + payload)
HEADER_SIZE = HEADER.size
FLAG_ZLIB = 0x01
_KNOWN_FLAGS = FLAG_ZLIB
_FORMAT_VERSION = 1
_RESYNC_CHUNK = 1 << 20
# a header claiming more than this is corrupt whatever the file size says
_MAX_RECORD = 1 << 31


# ------------------------------------------------------------------ encoding


def _encode_value(value: object) -> object:
    # json.dumps calls this only for what JSON cannot hold natively.
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    raise TypeError(
        f"cannot spool a value of type {type(value).__name__}; row values must be "
        "str, int, float, bool, None, datetime or date"
    )


def _decode_object(obj: dict[str, Any]) -> object:
    # The payload's own structure uses lists only (besides the top level), so a one-key
    # dict with a tag is always an encoded value.
    if len(obj) == 1:
        if "$dt" in obj:
            return datetime.fromisoformat(obj["$dt"])
        if "$d" in obj:
            return date.fromisoformat(obj["$d"])
    return obj


def encode_batch(batch: RowBatch) -> bytes:
    """The batch as compact JSON: per run of rows with the same keys, columns + value rows."""
    groups: list[list[Any]] = []
    for table, rows in batch.items():
        if not rows:
            groups.append([table, [], []])
            continue
        cols: tuple[str, ...] | None = None
        values: list[list[Any]] = []
        for row in rows:
            keys = tuple(row)
            if keys != cols:
                cols = keys
                values = []
                groups.append([table, list(keys), values])
            values.append(list(row.values()))
    doc = {"v": _FORMAT_VERSION, "g": groups}
    return json.dumps(doc, separators=(",", ":"), default=_encode_value).encode()


def decode_batch(payload: bytes) -> DecodedBatch:
    doc = json.loads(payload, object_hook=_decode_object)
    if not isinstance(doc, dict) or doc.get("v") != _FORMAT_VERSION:
        raise ValueError("unknown spool record version")
    batch: DecodedBatch = {}
    for table, cols, values in doc["g"]:
        rows = batch.setdefault(table, [])
        rows.extend(dict(zip(cols, vals, strict=True)) for vals in values)
    return batch


def _crc(flags: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(bytes((flags,))))


def frame(payload: bytes, flags: int) -> bytes:
    return HEADER.pack(MAGIC, flags, len(payload), _crc(flags, payload)) + payload


# ------------------------------------------------------------------ reading


def read_record(f: IO[bytes], pos: int, size: int) -> tuple[int, bytes] | None:
    """(flags, payload) of a valid record at ``pos``, or None if there is none."""
    if size - pos < HEADER_SIZE:
        return None
    f.seek(pos)
    header = f.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return None
    magic, flags, length, crc = HEADER.unpack(header)
    if (
        magic != MAGIC
        or flags & ~_KNOWN_FLAGS
        or length > min(size - pos - HEADER_SIZE, _MAX_RECORD)
    ):
        return None
    payload = f.read(length)
    if len(payload) != length or _crc(flags, payload) != crc:
        return None
    return flags, payload


def resync(f: IO[bytes], pos: int, size: int) -> int | None:
    """Offset of the next valid record after ``pos``, or None if none follows."""
    start = pos + 1
    while start < size:
        f.seek(start)
        chunk = f.read(_RESYNC_CHUNK + len(MAGIC) - 1)
        if not chunk:
            return None
        idx = chunk.find(MAGIC)
        while idx != -1:
            candidate = start + idx
            if read_record(f, candidate, size) is not None:
                return candidate
            idx = chunk.find(MAGIC, idx + 1)
        start += _RESYNC_CHUNK
    return None


def scan_segment(path: Path, start: int, size: int, log: Any) -> tuple[int, int]:
    """(size after cutting a torn tail, valid records from ``start``)."""
    count = 0
    pos = start
    with open(path, "rb") as f:
        while pos < size:
            rec = read_record(f, pos, size)
            if rec is not None:
                count += 1
                pos += HEADER_SIZE + len(rec[1])
                continue
            nxt = resync(f, pos, size)
            if nxt is None:
                break
            pos = nxt  # corrupt middle: left for peek() to skip (and report)
    if pos < size:
        # Nothing valid follows: a write cut short by a killed process or a full disk.
        log.warning(
            "spool segment ends in an incomplete record; cutting it off",
            segment=path.name,
            bytes=size - pos,
        )
        with open(path, "r+b") as f:
            f.truncate(pos)
        size = pos
    return size, count
