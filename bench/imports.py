"""Contact import throughput: a 100,000-row CSV with validation and duplicate checks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conveyor_imports_bench \\
    REDIS_URL=redis://127.0.0.1:6379/13 python -m bench.imports [--rows N] [--rounds R]

Creates the database if it is missing and migrates it. Each round imports a fresh file into a
tenant holding 10,000 contacts: 5 % of the rows match those contacts (by email or phone), 2 %
repeat an earlier row of the file and 1 % are invalid, so every check does real work. It runs
the import job's body (`run_import`) in this process, as the worker would, with the
configured batch size (`--batch`), and a dry run; `--compare-batches` adds batches of 100 as
the baseline, `--phases` times reading, cleaning, planning and writing, `--profile` prints a
cProfile of one import. Use a spare database: the bench tenant's contacts are replaced each round.
"""

import argparse
import cProfile
import pstats
import random
import time

from bench import standalone

standalone.setup()

from django.conf import settings  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from bench.table import Figure  # noqa: E402
from communications.models import Contact, ContactImport  # noqa: E402
from communications.services.import_files import read_table  # noqa: E402
from communications.services.import_rows import Planner, clean_row, match_columns  # noqa: E402
from communications.services.imports import apply_batch, run_import  # noqa: E402
from tenants.models import Tenant  # noqa: E402

EXISTING = 10_000
TARGET = "≥ 5,000 rows/s"


def phone(n: int) -> str:
    """A distinct valid US number per n, written as people write them."""
    return f"(212) {420 + n // 10_000:03d}-{n % 10_000:04d}"


def make_csv(rows: int, *, seed: int) -> bytes:
    """Rows of new contacts, with matches of existing ones, in-file repeats and invalid rows."""
    rng = random.Random(seed)
    lines = ["Full name,E-mail,Phone number,Company,Tags"]
    for n in range(rows):
        roll = rng.random()
        if roll < 0.05:  # an existing contact, by email or by phone
            m = rng.randrange(EXISTING)
            lines.append(
                f"Known {m},known{m}@example.com,,Acme,returning"
                if n % 2
                else f"Known {m},,{phone(m)},Acme,returning"
            )
        elif roll < 0.07 and n:  # a repeat of an earlier row of this file
            m = rng.randrange(n)
            lines.append(f"Again {m},User{m}.{seed}@Example.com,,Initech,repeat")
        elif roll < 0.08:  # invalid
            lines.append(f"Broken {n},broken-{n}-at-example.com,12,Initech,")
        else:
            lines.append(
                f"User {n},user{n}.{seed}@example.com,{phone(EXISTING + n)},Initech,new;csv"
            )
    return ("\n".join(lines) + "\n").encode()


def prepare_tenant() -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(slug="bench-imports", defaults={"name": "Bench"})
    Contact.objects.filter(tenant=tenant).delete()
    Contact.objects.bulk_create(
        Contact(
            tenant=tenant,
            name=f"Known {m}",
            email=f"known{m}@example.com",
            phone="+1212" + phone(m)[6:9] + phone(m)[10:],
        )
        for m in range(EXISTING)
    )
    ContactImport.objects.filter(tenant=tenant).delete()
    with connection.cursor() as cursor:  # the previous round's deleted rows, out of the way
        cursor.execute(f'VACUUM "{Contact._meta.db_table}"')
    return tenant


def one_import(
    content: bytes, *, batch: int, dry_run: bool = False, profile: bool = False
) -> float:
    """Rows per second of one import of `content` into a freshly prepared tenant."""
    tenant = prepare_tenant()
    contact_import = ContactImport(tenant=tenant, format="csv", dry_run=dry_run)
    contact_import.file.save(f"bench-{contact_import.pk}.csv", ContentFile(content), save=False)
    contact_import.save(force_insert=True)
    profiler = cProfile.Profile() if profile else None
    with override_settings(CONTACT_IMPORT_BATCH_SIZE=batch):
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = run_import(contact_import)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
    contact_import.file.delete(save=False)
    contact_import.error_file.delete(save=False)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    return result["rows"] / elapsed


def phases(content: bytes, *, batch: int) -> dict[str, float]:
    """Seconds spent reading, cleaning, planning and writing one import (a real run)."""
    tenant = prepare_tenant()
    contact_import = ContactImport.objects.create(tenant=tenant, format="csv")
    spent = dict.fromkeys(("read and parse", "clean rows", "plan", "write"), 0.0)
    started = time.perf_counter()
    table = read_table(content, format="csv")
    columns = match_columns(table.headers, {})
    spent["read and parse"] = time.perf_counter() - started
    planner = Planner(tenant=tenant, policy=contact_import.policy)
    for start in range(0, len(table.rows), batch):
        started = time.perf_counter()
        rows = [
            clean_row(line, values, columns, region=tenant.default_region)
            for line, values in table.rows[start : start + batch]
        ]
        cleaned = time.perf_counter()
        plan = planner.plan(rows)
        planned = time.perf_counter()
        apply_batch(contact_import, plan, table.headers, done=start + len(rows))
        spent["clean rows"] += cleaned - started
        spent["plan"] += planned - cleaned
        spent["write"] += time.perf_counter() - planned
    return spent


def measure(
    *, rounds: int = 3, rows: int = 100_000, compare_batches: bool = False, profile: bool = False
) -> list[Figure]:
    """Import throughput (rows/s) with the configured batch size, and of a dry run.

    With `compare_batches`, each round also imports with batches of 100 as the baseline.
    """
    call_command("migrate", verbosity=0)
    batch = settings.CONTACT_IMPORT_BATCH_SIZE
    by_100: list[float] = []
    by_batch: list[float] = []
    dry: list[float] = []
    for round_ in range(rounds):
        content = make_csv(rows, seed=round_)
        if compare_batches:
            by_100.append(one_import(content, batch=100))
        by_batch.append(one_import(content, batch=batch, profile=profile and round_ == 0))
        dry.append(one_import(content, batch=batch, dry_run=True))
    name = f"contact import, {rows:,}-row CSV"
    real = Figure(f"{name}, batches of {batch:,}", "rows/s", by_batch, target=TARGET)
    if by_100:
        real.baseline_name, real.baseline_values = "batches of 100", by_100
    return [real, Figure(f"{name}, dry run", "rows/s", dry, target=TARGET)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compare-batches", action="store_true", help="also batches of 100")
    parser.add_argument("--phases", action="store_true", help="time each phase of one import")
    parser.add_argument("--batch", type=int, help="batch size (default CONTACT_IMPORT_BATCH_SIZE)")
    args = parser.parse_args()
    if args.batch:
        settings.CONTACT_IMPORT_BATCH_SIZE = args.batch
    if args.phases:
        call_command("migrate", verbosity=0)
        spent = phases(make_csv(args.rows, seed=0), batch=settings.CONTACT_IMPORT_BATCH_SIZE)
        total = sum(spent.values())
        for phase, seconds in spent.items():
            print(f"{phase:<16} {seconds:6.2f} s  {seconds / total:4.0%}")
        print(f"{'total':<16} {total:6.2f} s  {args.rows / total:,.0f} rows/s")
        return
    figures = measure(
        rounds=args.rounds,
        rows=args.rows,
        compare_batches=args.compare_batches,
        profile=args.profile,
    )
    for figure in figures:
        ratio = f"  {figure.ratio:.2f}× {figure.baseline_name}" if figure.ratio else ""
        low, high = min(figure.values), max(figure.values)
        print(
            f"{figure.name:<58} {figure.median:8,.0f} {figure.unit} ({low:,.0f}–{high:,.0f})"
            f"  target {figure.target}{ratio}",
            flush=True,
        )


if __name__ == "__main__":
    main()
