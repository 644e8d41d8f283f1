"""What a newcomer sees after `make run`: the demo data in the admin, walked in a real browser
with real workers and the demo webhook receiver. The README's screenshots come from here
(`UPDATE_SCREENSHOTS=1` writes them to docs/screenshots/)."""

import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import Page, expect

from communications.models import WebhookDelivery
from demo.receiver import DemoReceiver
from jobs.models import Job
from tenants.services import DEMO_SLUG
from tests.e2e.conftest import screenshot
from tests.jobs.conftest import status_of, wait_for

StartWorker = Callable[..., subprocess.Popen]
README_SHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


@pytest.fixture
def receiver(settings, monkeypatch) -> Iterator[DemoReceiver]:
    monkeypatch.setenv("CONVEYOR_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")  # the workers'
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    running = DemoReceiver("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


def shot(page: Page, name: str) -> None:
    path = screenshot(page, name)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        README_SHOTS.mkdir(exist_ok=True)
        shutil.copy(path, README_SHOTS / f"{name}.png")


def test_a_newcomer_walks_the_demo_dashboard_campaign_dead_letter_and_webhooks(
    page: Page, receiver: DemoReceiver, worker_process: StartWorker
):
    call_command("seed_demo", receiver_url=receiver.url, stdout=io.StringIO())
    worker_process("default", "webhooks")
    worker_process("reports", worker_class="jobs.runtime.worker.Worker")
    long = Job.objects.get(tenant__slug=DEMO_SLUG, kind="jobs.sleep", schedule=None)
    wait_for(lambda: status_of(long) == Job.Status.STARTED, timeout=30)

    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "conveyor-demo")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    expect(page).to_have_title("Operations | Conveyor")
    expect(page.locator("#site-name")).to_have_text("Conveyor")

    page.click("text=Queues dashboard")
    expect(page.locator("#cv-queue-reports")).to_contain_text("running")
    shot(page, "dashboard")

    page.goto("/admin/communications/campaign/")
    page.click("#result_list >> text=Spring sale")
    expect(page.locator("#content")).to_contain_text("30 sent")
    expect(page.locator(".field-status")).to_contain_text("Finished")

    page.goto("/admin/jobs/job/?status__exact=failed")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    dead = Job.objects.get(tenant__slug=DEMO_SLUG, status=Job.Status.FAILED, max_attempts=1)
    page.check(f"input.action-select[value='{dead.pk}']")
    page.select_option("select[name=action]", "retry")
    page.click("button[name=index] >> nth=0")
    page.click("input[value='Yes, retry 1 job']")
    expect(page.locator(".messagelist")).to_contain_text("1 retried")
    wait_for(lambda: Job.objects.filter(pk=dead.pk, logs__event="requeued").exists())
    wait_for(
        lambda: status_of(dead) in Job.FINISHED and dead.logs.filter(event="started").count() == 2
    )
    page.goto(f"/admin/jobs/job/{dead.pk}/change/")
    expect(page.locator(".inline-group")).to_contain_text("Retried by hand")

    wait_for(lambda: not WebhookDelivery.objects.filter(status="pending").exists(), timeout=30)
    page.goto("/admin/communications/webhookdelivery/")
    expect(page.locator("#result_list")).to_contain_text("campaign.finished")
    expect(page.locator("#result_list")).to_contain_text("succeeded")
    expect(page.locator("#result_list")).to_contain_text("retrying")
    assert any(r.verified and r.event_type == "campaign.finished" for r in receiver.received)

    page.goto(f"/admin/jobs/job/{long.pk}/change/")
    expect(page.locator("h2", has_text="jobs.sleep")).to_be_visible()
    shown = 10 if os.environ.get("UPDATE_SCREENSHOTS") else 1  # a bar one can see
    wait_for(lambda: Job.objects.get(pk=long.pk).progress >= shown, timeout=60)
    page.reload()
    expect(page.locator(".field-state")).to_contain_text("started")
    shot(page, "job-detail")
