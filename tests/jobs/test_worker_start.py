"""What a worker process loads before its first job: each queue's preloads, then a frozen heap."""

import json
import subprocess
import sys

import pytest

from tests.workers import BASE_DIR, _worker_env

STARTED = """
import gc, json, sys
import django
django.setup()
from jobs.transport import queueing
from jobs.runtime.worker import {worker_class}
before = "weasyprint" in sys.modules
{worker_class}({queues!r}, connection=queueing.connection())
print(json.dumps({{
    "before": before,
    "weasyprint": "weasyprint" in sys.modules,
    "kinds": "tests.jobs.kinds" in sys.modules,
    "frozen": gc.get_freeze_count(),
}}))
"""


def _start(worker_class: str, queues: list[str]) -> dict:
    program = STARTED.format(worker_class=worker_class, queues=queues)
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=BASE_DIR,
        env=_worker_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
def test_a_reports_worker_preloads_weasyprint_and_freezes_what_it_loaded():
    started = _start("Worker", ["reports"])

    assert started["before"] is False
    assert started["weasyprint"] is True
    assert started["kinds"] is True  # CONVEYOR_PRELOAD still counts
    assert started["frozen"] > 10_000


@pytest.mark.django_db(transaction=True)
def test_a_worker_of_other_queues_does_not_load_what_reports_need():
    started = _start("FastWorker", ["default", "email"])

    assert started["weasyprint"] is False
    assert started["kinds"] is True
    assert started["frozen"] > 10_000
