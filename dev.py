#!/usr/bin/env python3
"""Bootstrap for the two quick-start commands; needs nothing but Python 3.11+.

    python3 dev.py demo [demo options]   # simulator + collector + SQLite, in a local .venv
    python3 dev.py test [pytest options] # the test suite

Creates ``.venv`` next to this file on first use and installs the package (with its
development extras for ``test``); reinstalls only when ``pyproject.toml`` changes.
Any other first word is passed to the ``charged`` command inside the venv.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("CHARGED_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py runs on whatever python3 is
        sys.exit(f"charged needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV} …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = f".[{extras}]" if extras else "."
    print(f"installing charged{f'[{extras}]' if extras else ''} into {VENV} …", flush=True)
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            spec,
        ],
        cwd=ROOT,
        check=True,
    )
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("demo", [])
    if command == "test":
        _ensure_venv("dev")
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)
    _ensure_venv("")
    # the venv's charged is not on PATH: commands it prints for the reader (the demo's "look
    # at it" lines) are to start as this one did
    env = {**os.environ, "CHARGED_COMMAND": f"python3 {shlex.quote(sys.argv[0])}"}
    return subprocess.call([str(BIN / "charged"), command, *rest], env=env)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"installation failed (exit {exc.returncode}); see the pip output above")
    except KeyboardInterrupt:
        sys.exit(130)
