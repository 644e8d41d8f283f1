"""Conveyor's benchmarks, each beside its bare-RQ baseline measured in the same run.

    python -m bench [--rounds N] [--only NAMES] [--quick] [--markdown]
    make bench ARGS="--quick"

Uses DATABASE_URL and REDIS_URL when set (a spare database and a spare Redis database: the
bench tenant's jobs are deleted and the Redis database is flushed), else starts embedded
PostgreSQL and Valkey as `make run` does. Prints one line per figure as it is measured, then
the table: median of the rounds, min–max, the baseline's median and the ratio to it.
"""

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

from bench import servers
from bench.table import Figure, render

ENGINE = ["enqueue", "throughput", "latency", "memory", "concurrency", "fairness", "tracing"]
WEB = ["api", "million"]
AREAS = ["imports", "campaigns", "reports", "workflows"]
ON_REQUEST = ["cleanup", "scaling"]  # minutes of their own: only with --only
NAMES = ENGINE + WEB + AREAS + ON_REQUEST


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (at least 3)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated measurements to run, of: {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller samples and no area figures unless named in --only: about 3 minutes",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--million-database",
        default="conveyor_admin_bench",
        help="database (on DATABASE_URL's server) holding the 1,000,000 jobs; filled once",
    )
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: figures are medians of three or more rounds")
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if not chosen:
        chosen = ENGINE + WEB + ([] if args.quick else AREAS)
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        parser.error(f"unknown measurement(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    args.chosen = chosen
    return args


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def measurements(args: argparse.Namespace) -> list[tuple[str, Callable[[], list[Figure]]]]:
    from bench import concurrency, engine, fairness, tracing, web

    sizes = engine.Sizes.for_run(quick=args.quick)
    rounds, chosen = args.rounds, args.chosen
    steps: list[tuple[str, Callable[[], list[Figure]]]] = []
    if "enqueue" in chosen:
        steps.append(("enqueue", lambda: engine.measure_enqueue(rounds=rounds, sizes=sizes)))
    if {"throughput", "latency", "memory"} & set(chosen):
        steps.append(
            (
                "workers",
                lambda: engine.measure_workers(
                    rounds=rounds,
                    sizes=sizes,
                    throughput="throughput" in chosen,
                    latency="latency" in chosen,
                    memory="memory" in chosen,
                ),
            )
        )
    if "fairness" in chosen:
        steps.append(
            ("fairness", lambda: fairness.measure_fairness(rounds=rounds, quick=args.quick))
        )
    if "tracing" in chosen:
        steps.append(("tracing", lambda: tracing.measure(rounds=rounds, sizes=sizes)))
    if "concurrency" in chosen:
        steps.append(
            (
                "concurrency",
                lambda: concurrency.measure_concurrency(
                    rounds=rounds, sizes=sizes, quick=args.quick
                ),
            )
        )
    if "scaling" in chosen:
        from bench import scaling

        steps.append(("scaling", lambda: scaling.measure_scaling(rounds=rounds, sizes=sizes)))
    if "api" in chosen:
        steps.append(("api", lambda: web.measure_api(rounds=rounds, quick=args.quick)))
    if "million" in chosen:
        steps.append(
            (
                "million",
                lambda: web.measure_million(
                    rounds=rounds, quick=args.quick, database=args.million_database
                ),
            )
        )
    for area in [*AREAS, "cleanup"]:
        if area in chosen:
            steps.append((area, _area(area, rounds)))
    return steps


# Where each area's figures are measured: its own spare database on the same server, as its
# module's documentation says, or the run's database (None).
AREA_DATABASES = {
    "imports": "conveyor_imports_bench",
    "reports": "conveyor_reports_bench",
    "cleanup": "conveyor_cleanup_bench",
    "campaigns": None,
    "workflows": None,
}


def _area(name: str, rounds: int) -> Callable[[], list[Figure]]:
    """Another area's `bench/<name>.py`, when it exists, run by `bench.areas` in its own process."""

    def measure() -> list[Figure]:
        if not (servers.ROOT / "bench" / f"{name}.py").exists():
            say(f"{name}: bench/{name}.py does not exist yet, skipped")
            return []
        database = AREA_DATABASES.get(name)
        env = {"DATABASE_URL": servers.database_url(database)} if database else {}
        output = subprocess.run(
            [sys.executable, "-m", "bench.areas", name, "--rounds", str(rounds)],
            cwd=servers.ROOT,
            env=servers.child_env(**env),
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        lines = [line for line in output.splitlines() if line.startswith("{")]
        return [Figure(**json.loads(line)) for line in lines]

    return measure


def main(argv: list[str]) -> int:
    args = parse(argv)
    started = time.monotonic()
    figures: list[Figure] = []
    failed: list[str] = []
    with servers.running():
        servers.setup_django()
        description = servers.describe()
        for line in description:
            say(line)
        for name, measure in measurements(args):
            say(f"{name}…")
            step_started = time.monotonic()
            try:
                found = measure()
            except Exception:
                traceback.print_exc()
                failed.append(name)
                continue
            for figure in found:
                say(f"  {figure.name}: {figure.median:.2f} {figure.unit}")
            say(f"{name} took {time.monotonic() - step_started:.0f} s")
            figures += found
    minutes = (time.monotonic() - started) / 60
    print()
    for line in description:
        print(f"{'- ' if args.markdown else ''}{line}")
    print(
        f"{'- ' if args.markdown else ''}command: python -m bench {' '.join(argv)}".rstrip()
        + f" ({minutes:.1f} min, median of {args.rounds} rounds)"
    )
    print()
    print(render(figures, markdown=args.markdown))
    if failed:
        print(f"\nfailed: {', '.join(failed)} (see the errors above)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
