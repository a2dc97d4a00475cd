"""``python -m bench``: collector vs. baseline at 30 / 1,000 / 10,000 chargers, and the writer.

Each measured run is a process of its own (the simulator too), so CPU time and peak memory
belong to that run alone.  See bench/README.md for what is measured and the recorded results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.database import BENCH_DATABASE, DEFAULT_SERVER, Server
from bench.machine import describe, mariadb_version
from bench.simproc import simulator_process

SCALES = (30, 1000, 10000)
# (ticks, seconds per tick) per fleet size unless given: 40 ticks of 30 s at 10,000 chargers
# (CPU over the whole tick; memory judged over the last 20, after a warm-up that holds the
# session tracker's first pass at 5 min); the small fleets get more, shorter ticks so a
# disturbance on a shared machine moves the median less.
DEFAULT_RUN = {30: (10, 10.0), 1000: (10, 10.0), 10000: (40, 30.0)}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is less than 1; give 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive; give a number above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of charged against its simulator and a local MariaDB "
        f"(database `{BENCH_DATABASE}`, created and dropped).",
    )
    parser.add_argument(
        "--mysql-url",
        default=DEFAULT_SERVER,
        help=f"MariaDB/MySQL server on this machine (default: {DEFAULT_SERVER})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    col = sub.add_parser("collector", help="collector and baseline for some fleet sizes")
    col.add_argument(
        "--chargers", type=_positive_int, nargs="+", default=list(SCALES), help="fleet sizes"
    )
    col.add_argument("--latency", type=_positive_float, default=0.1, help="seconds per request")
    col.add_argument("--concurrency", type=_positive_int, default=100, help="requests in flight")
    col.add_argument("--ticks", type=_positive_int, help="ticks per size (default: 10; 40 at 10k)")
    col.add_argument(
        "--interval", type=_positive_float, help="seconds per tick (default: 10; 30 at 10k)"
    )
    col.add_argument("--baseline-ticks", type=_positive_int, default=2)
    col.add_argument(
        "--baseline-sample",
        type=_positive_int,
        default=100,
        help="chargers the baseline asks per tick, extrapolated to the fleet (default: 100)",
    )
    col.add_argument("--no-baseline", action="store_true", help="measure the collector only")
    col.add_argument(
        "--profile",
        metavar="FILE",
        help="pyinstrument profile of the collector: FILE.txt where the CPU goes, "
        "FILE.html async wall time",
    )

    wr = sub.add_parser("writer", help="BatchWriter vs plain asyncmy executemany")
    wr.add_argument("--rows", type=_positive_int, default=200_000)
    wr.add_argument("--repeats", type=_positive_int, default=5)

    full = sub.add_parser("all", help="everything, as recorded in bench/README.md")
    full.add_argument(
        "--write-readme",
        action="store_true",
        help="replace the results in bench/README.md and keep the figures in bench/results.json",
    )
    sub.add_parser("report", help="rebuild bench/README.md's results from bench/results.json")

    worker = sub.add_parser("_worker", help=argparse.SUPPRESS)
    worker.add_argument("spec", help="JSON: what to run")
    return parser


async def _in_worker(spec: dict[str, Any], cwd: str | None = None) -> dict[str, Any]:
    """Run one measured part in a fresh Python process; its JSON result is the last line.

    ``cwd``: another source tree (e.g. an earlier commit's) whose ``bench`` and ``charged``
    the process runs (``python -m`` puts the working directory first on the path)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "_worker",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        kind, code = spec["kind"], proc.returncode
        raise SystemExit(f"bench: the {kind} run failed (exit {code}); see the lines above")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _save_profile(profiler: Any, path: str) -> None:
    if path.endswith(".txt"):
        Path(path).write_text(profiler.output_text(unicode=False, color=False), encoding="utf-8")
    else:
        profiler.write_html(path)


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    from charged.log import configure_logging

    configure_logging(level="warning", fmt="console")
    if spec["kind"] == "collector":
        from bench.collector_run import run_collector

        async def measured() -> dict[str, Any]:
            return await run_collector(
                base_url=spec["base_url"],
                db_url=spec["db_url"],
                ticks=spec["ticks"],
                interval=spec["interval"],
                concurrency=spec["concurrency"],
            )

        if not spec.get("profile"):
            return await measured()
        from pyinstrument import Profiler

        # .txt: where the CPU goes (time blocked in epoll is idle); .html: async wall time
        text = spec["profile"].endswith(".txt")
        with Profiler(async_mode="disabled" if text else "enabled") as profiler:
            result = await measured()
        _save_profile(profiler, spec["profile"])
        return result
    if spec["kind"] == "bare":
        from bench.collector_cpu import run_bare

        return await run_bare(
            base_url=spec["base_url"],
            ticks=spec["ticks"],
            interval=spec["interval"],
            concurrency=spec["concurrency"],
        )
    if spec["kind"] == "baseline":
        from bench.baseline import run_baseline

        return await run_baseline(
            base_url=spec["base_url"],
            db_url=spec["db_url"],
            ticks=spec["ticks"],
            sample=spec["sample"],
        )
    raise SystemExit(f"bench: unknown worker kind {spec['kind']!r}")


async def run_scale(
    server: Server,
    chargers: int,
    *,
    latency: float,
    concurrency: int,
    ticks: int,
    interval: float,
    baseline_ticks: int,
    baseline_sample: int | None,
    profile: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "chargers": chargers,
        "latency": latency,
        "concurrency": concurrency,
    }
    async with simulator_process(chargers, latency) as sim:
        db_url = await server.fresh_database()
        result["collector"] = await _in_worker(
            {
                "kind": "collector",
                "base_url": sim.base_url,
                "db_url": db_url,
                "ticks": ticks,
                "interval": interval,
                "concurrency": concurrency,
                "profile": profile,
            }
        )
        if baseline_ticks:
            db_url = await server.fresh_database()
            sample = baseline_sample if baseline_sample and baseline_sample < chargers else None
            result["baseline"] = await _in_worker(
                {
                    "kind": "baseline",
                    "base_url": sim.base_url,
                    "db_url": db_url,
                    "ticks": baseline_ticks,
                    "sample": sample,
                }
            )
    result["simulator"] = sim.stats
    return result


async def _main(args: argparse.Namespace) -> int:
    if args.command == "_worker":
        print(json.dumps(await _worker(json.loads(args.spec))), flush=True)
        return 0
    if args.command == "report":
        try:
            saved = report.load()
        except (OSError, ValueError, KeyError) as exc:
            print(
                f"bench: cannot read {report.RESULTS} ({exc}); run "
                "`python -m bench all --write-readme` first",
                file=sys.stderr,
            )
            return 1
        report.write_readme(*saved)
        print("bench/README.md rebuilt from bench/results.json")
        return 0
    try:
        server = Server.from_url(args.mysql_url)
        version = await mariadb_version(server.host, server.port, server.user, server.password)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # refused, unknown user, …: any of them means "cannot use it"
        print(
            f"bench: cannot use MariaDB at {server.host}:{server.port} ({exc}); start it "
            "or pass --mysql-url",
            file=sys.stderr,
        )
        return 69
    machine = describe(version)
    print("\n".join(machine), flush=True)
    scales: list[dict[str, Any]] = []
    writer: dict[str, Any] | None = None
    try:
        if args.command in ("collector", "all"):
            sizes = args.chargers if args.command == "collector" else list(SCALES)
            for n in sizes:
                default_ticks, default_interval = DEFAULT_RUN.get(n, (10, 30.0))
                ticks = getattr(args, "ticks", None) or default_ticks
                interval = getattr(args, "interval", None) or default_interval
                print(f"\n— {n} chargers: collector {ticks} ticks …", flush=True)
                scale = await run_scale(
                    server,
                    n,
                    latency=getattr(args, "latency", 0.1),
                    concurrency=getattr(args, "concurrency", 100),
                    ticks=ticks,
                    interval=interval,
                    baseline_ticks=0
                    if getattr(args, "no_baseline", False)
                    else getattr(args, "baseline_ticks", 2),
                    baseline_sample=getattr(args, "baseline_sample", 100),
                    profile=getattr(args, "profile", None),
                )
                scales.append(scale)
                print(report.scale_text(scale), flush=True)
        if args.command in ("writer", "all"):
            from bench.writer_bench import run_writer_bench

            print("\n— writer micro-benchmark …", flush=True)
            await server.fresh_database()
            writer = await run_writer_bench(
                server,
                BENCH_DATABASE,
                rows=getattr(args, "rows", 200_000),
                repeats=getattr(args, "repeats", 5),
            )
            print(report.writer_text(writer), flush=True)
    finally:
        await server.drop_database()
    if args.command == "all" and args.write_readme:
        report.save(machine, scales, writer)
        report.write_readme(machine, scales, writer)
        print("\nbench/README.md and bench/results.json updated", flush=True)
    return 0


def main() -> None:
    args = _parser().parse_args()
    # MariaDB notes such as "database doesn't exist" on DROP … IF EXISTS are expected here.
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
    try:
        sys.exit(asyncio.run(_main(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
