"""The spool's ack position: ``ack.json``, ``{"segment": N, "offset": M}``, in its directory.

Everything before the position is in the database.  It is written (not fsynced) on every ack,
all-or-nothing through a rename, and made durable by the spool's flush (:func:`fsync_ack`).
When the spool opens it is read back: no file is the start of the spool, an unreadable one
means replaying the whole spool.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ACK_FILE = "ack.json"


def load_ack(directory: Path, log: Any) -> tuple[int, int]:
    path = directory / ACK_FILE
    try:
        doc = json.loads(path.read_bytes())
        seq, offset = int(doc["segment"]), int(doc["offset"])
        if seq < 0 or offset < 0:
            raise ValueError("negative position")
    except FileNotFoundError:
        return 0, 0
    except (OSError, ValueError, KeyError, TypeError):
        # Replaying too much is harmless (idempotent inserts); losing data is not.
        log.warning("spool ack file unreadable; replaying the whole spool")
        return 0, 0
    return seq, offset


def write_ack(directory: Path, seq: int, offset: int) -> None:
    """Replace the ack file by ``(seq, offset)``; OSError when it cannot be written."""
    tmp = directory / (ACK_FILE + ".tmp")
    tmp.write_bytes(json.dumps({"segment": seq, "offset": offset}).encode())
    os.replace(tmp, directory / ACK_FILE)


def fsync_ack(directory: Path) -> None:
    """fsync the ack file if there is one (the directory is the caller's to fsync)."""
    ack = directory / ACK_FILE
    if ack.exists():
        fd = os.open(ack, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
