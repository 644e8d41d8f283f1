"""An operator and a tenant agent use the console in a real browser, with a real worker."""

import re
import subprocess
from collections.abc import Callable

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from jobs.models import Job
from jobs.selectors.queues import list_workers
from jobs.services.jobs import enqueue_job
from jobs.transport import queueing
from tenants.models import Role, Tenant
from tests.e2e.conftest import log_in, screenshot
from tests.factories import PASSWORD, make_member
from tests.jobs.conftest import status_of, wait_for

StartWorker = Callable[..., subprocess.Popen]


def test_an_operator_filters_the_jobs_and_opens_one(page: Page, admin_user: User, tenant: Tenant):
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={"n": 1})
    email = enqueue_job(
        tenant=tenant, kind="tests.email_noop", payload={"to": "ann@example.com", "token": "s3"}
    )
    log_in(page, admin_user, "password")

    page.click("#content-main a[href='/admin/jobs/job/']")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    screenshot(page, "job-list")
    page.click("#changelist-filter a[href*='queue=email']")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.click(f"#result_list >> text={str(email.pk)[:8]}")

    expect(page.locator("h2", has_text="tests.email_noop")).to_be_visible()
    expect(page.locator(".field-state")).to_contain_text("RQ (live)")
    expect(page.locator(".field-state")).to_contain_text("queued")
    expect(page.locator(".field-payload_json")).to_contain_text("ann@example.com")
    expect(page.locator(".field-payload_json")).not_to_contain_text("s3")
    expect(page.locator("#logs-group, .inline-group").first).to_contain_text("Enqueued")
    screenshot(page, "job-detail")


def test_an_operator_cancels_a_running_job_and_sees_it_end_canceled(
    page: Page, admin_user: User, tenant: Tenant, worker_process: StartWorker
):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 60, "steps": 120})
    worker_process("default")
    wait_for(lambda: status_of(job) == Job.Status.STARTED)
    log_in(page, admin_user, "password")

    page.goto(f"/admin/jobs/job/{job.pk}/change/")
    page.select_option("select[name='CHANGE_FORM-action']", "cancel")
    page.click("button[name=index] >> nth=0")
    expect(page.locator("#content")).to_contain_text("1 will be canceled")
    page.click("input[value='Yes, cancel 1 job']")

    expect(page.locator(".messagelist")).to_contain_text("1 asked to stop")
    wait_for(lambda: status_of(job) == Job.Status.CANCELED)
    page.reload()
    expect(page.locator(".field-state .cv-canceled").first).to_be_visible()
    expect(page.locator(".inline-group")).to_contain_text("Canceled while running")


def test_an_operator_retries_a_failed_job_and_sees_it_succeed(
    page: Page, admin_user: User, tenant: Tenant, worker_process: StartWorker
):
    job = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
    worker_process("default")
    wait_for(lambda: status_of(job) == Job.Status.FAILED)
    Job.objects.filter(pk=job.pk).update(payload={"times": 0})  # the cause is fixed meanwhile
    log_in(page, admin_user, "password")

    page.goto("/admin/jobs/job/?status__exact=failed")
    page.check(f"input.action-select[value='{job.pk}']")
    page.select_option("select[name=action]", "retry")
    page.click("button[name=index] >> nth=0")
    page.click("input[value='Yes, retry 1 job']")

    expect(page.locator(".messagelist")).to_contain_text("1 retried")
    wait_for(lambda: status_of(job) == Job.Status.SUCCEEDED)
    page.goto(f"/admin/jobs/job/{job.pk}/change/")
    expect(page.locator(".field-state .cv-succeeded").first).to_be_visible()
    expect(page.locator(".field-attempt_errors")).to_contain_text("PermanentError")
    page.click(".field-attempt_errors summary")
    screenshot(page, "job-detail-retried")


def test_an_operator_pauses_and_resumes_a_queue_from_the_dashboard(
    page: Page, admin_user: User, tenant: Tenant, worker_process: StartWorker
):
    worker_process("default")
    wait_for(lambda: bool(list_workers()))
    log_in(page, admin_user, "password")
    page.click("text=Queues dashboard")
    row = page.locator("#cv-queue-default")

    row.locator("text=Pause").click()
    page.click("input[value='Yes, pause default']")
    expect(page.locator(".messagelist")).to_contain_text("Paused queue default.")
    expect(row).to_contain_text("paused")
    enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    expect(row.locator("td.num >> nth=0")).to_contain_text("2", timeout=12_000)  # refreshed
    assert status_of(job) == Job.Status.QUEUED

    row.locator("text=Resume").click()
    page.click("input[value='Yes, resume default']")
    expect(row).to_contain_text("running")
    wait_for(lambda: status_of(job) == Job.Status.SUCCEEDED)
    assert queueing.paused_queues() == set()
    expect(row.locator("td.num >> nth=4")).to_contain_text("1", timeout=12_000)  # dead letters
    screenshot(page, "dashboard")


def test_the_dashboard_refreshes_itself_without_reloading(
    page: Page, admin_user: User, tenant: Tenant
):
    log_in(page, admin_user, "password")
    page.goto("/admin/queues/")
    page.evaluate("window.notReloaded = true")
    before = page.locator("#cv-checked time").inner_text()

    enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    expect(page.locator("#cv-queue-email td.num >> nth=0")).to_contain_text("1", timeout=12_000)
    assert page.evaluate("window.notReloaded") is True
    assert int(page.locator("#cv-dashboard").get_attribute("data-refreshes") or 0) >= 1
    assert page.locator("#cv-checked time").inner_text() != before


def test_a_tenant_agent_sees_only_their_jobs_may_cancel_and_has_no_queue_controls(
    page: Page, tenant: Tenant, other_tenant: Tenant
):
    agent = make_member(tenant, Role.AGENT, username="agatha", is_staff=True)
    mine = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, delay=3600)
    enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={}, delay=3600)
    log_in(page, agent, PASSWORD)

    expect(page.locator("#content")).not_to_contain_text("Queues dashboard")
    page.goto("/admin/jobs/job/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.check(f"input.action-select[value='{mine.pk}']")
    page.select_option("select[name=action]", "cancel")
    page.click("button[name=index] >> nth=0")
    page.click("input[value='Yes, cancel 1 job']")

    expect(page.locator(".messagelist")).to_contain_text("1 canceled")
    assert status_of(mine) == Job.Status.CANCELED
    assert re.search(r"/admin/jobs/job/", page.url)
    assert page.goto("/admin/queues/").status == 403  # type: ignore[union-attr]
