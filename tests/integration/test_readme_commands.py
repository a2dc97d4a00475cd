"""The commands README.md and docs/install.md print work as printed.

Every command line in their code blocks (``charged …``, ``/opt/charged/bin/charged …``,
``python3 dev.py …``) must parse with charged's own parser: a renamed option or a removed
command fails here.  Those that can run on this machine run, exactly as printed, in a
directory holding a demo database made as the README says (``charged demo --date
2026-01-05``, 30 chargers, seed 1, up to 11:00; polled every ten fleet minutes here, to be
quick), with the README's config path standing for a copy of config.example.yaml whose
database is an SQLite file and whose secret files do not exist.  What needs the vendor, a
running simulator or root (``check``, ``run``, the control examples, pip) only parses.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from charged.cli import build_parser
from charged.demo import DemoOptions, run_demo
from charged.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "install.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
CHARGED = re.compile(r"^(?:sudo )?(?:[\w./-]*/)?charged(?= |$)")
DEV_PY = re.compile(r"^python3 dev\.py(?= |$)")
README_CONFIG = "/etc/charged/config.yaml"
# charged sub-commands that only read the database and write files into the directory
RUNS_HERE = ("sessions", "export", "plot", "db", "--version", "--help")


@dataclass(frozen=True)
class Printed:
    document: str
    line: str  # as printed, without a trailing comment or a console prompt
    argv: tuple[str, ...]  # the words after `charged` / `dev.py`
    via_dev_py: bool


def printed_commands() -> list[Printed]:
    found = []
    for document in DOCUMENTS:
        for block in FENCE.finditer(document.read_text(encoding="utf-8")):
            if block.group(1) not in ("sh", "console", ""):
                continue
            body = re.sub(r"\\\n\s*", " ", block.group(2))  # continued lines
            for raw in body.splitlines():
                line = raw.strip().removeprefix("$ ")
                charged, dev = CHARGED.match(line), DEV_PY.match(line)
                if not (charged or dev):  # ("charged: …" is output, not a command)
                    continue
                words = shlex.split(line, comments=True)
                command = shlex.join(words)
                if charged:
                    skip = 2 if words[0] == "sudo" else 1
                    found.append(Printed(document.name, command, tuple(words[skip:]), False))
                else:
                    found.append(Printed(document.name, command, tuple(words[2:]), True))
    return found


PRINTED = printed_commands()


def test_the_documents_print_the_commands_a_user_types() -> None:
    lines = {p.line for p in PRINTED}
    assert "python3 dev.py demo" in lines and "python3 dev.py test" in lines
    assert any(p.argv[:2] == ("db", "upgrade") for p in PRINTED)
    assert sum(p.argv[:1] == ("plot",) for p in PRINTED) >= 3
    assert len(PRINTED) > 20


@pytest.mark.parametrize("printed", PRINTED, ids=lambda p: p.line[:70])
def test_every_printed_command_parses(printed: Printed) -> None:
    argv = list(printed.argv)
    if printed.via_dev_py:
        # dev.py takes demo and test itself and hands any other word to charged
        if argv[:1] == ["test"]:
            return
        argv = argv or ["demo"]
    if argv in (["--version"], ["--help"]):
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{printed.document}: `{printed.line}` is refused by charged ({exc.code})")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the README's demo database and the README's config path's stand-in."""
    here = tmp_path_factory.mktemp("readme")
    options = DemoOptions(
        db=here / "charged-demo.db",
        chargers=30,
        seed=1,
        day=date(2026, 1, 5),
        interval=1.0,
        speed=600.0,  # a poll every ten fleet minutes: 07:00-11:00 in 24 s
        duration=24.5,
    )
    asyncio.run(run_demo(options, out=open(here / "demo.out", "w", encoding="utf-8")))  # noqa: SIM115
    example = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    example = re.sub(r"(?m)^  url: .*$", f"  url: sqlite+aiosqlite:///{here / 'real.db'}", example)
    (here / "config.yaml").write_text(example, encoding="utf-8")
    (here / "config.yaml").chmod(0o640)
    # the README upgrades it first; here the order of the tests must not matter
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{here / 'real.db'}"))
    return here


RUNNABLE = [
    p
    for p in PRINTED
    if not p.via_dev_py
    and p.argv[:1] != ("--help",)
    and p.argv
    and p.argv[0] in RUNS_HERE
    and ("--db" in p.argv or README_CONFIG in p.argv or p.argv[0] == "--version")
]


def test_a_safe_subset_runs() -> None:
    kinds = {p.argv[0] for p in RUNNABLE}
    assert {"sessions", "export", "plot", "db", "--version"} <= kinds
    with_config = {p.argv[:2] for p in RUNNABLE if README_CONFIG in p.argv}
    assert {("db", "upgrade"), ("export", "sessions")} <= with_config


@pytest.mark.parametrize("printed", RUNNABLE, ids=lambda p: p.line[:70])
def test_the_command_works_as_printed(printed: Printed, workdir: Path) -> None:
    argv = [str(workdir / "config.yaml") if a == README_CONFIG else a for a in printed.argv]
    proc = subprocess.run(
        [sys.executable, "-m", "charged.cli", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"`{printed.line}`: exit {proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    outputs = [argv[i + 1] for i, a in enumerate(argv) if a in ("-o", "--output")]
    for name in outputs:
        written = workdir / name
        assert written.is_file() and written.stat().st_size > 0, name
    if argv[0] == "sessions" and "--db" in argv:
        assert "no sessions" not in proc.stdout, printed.line
