"""Imports on the forking worker the `imports` queue runs in production, and their cancel."""

from collections.abc import Iterator

import pytest

from communications.models import Contact, ContactImport
from jobs.models import Job
from jobs.services.jobs import cancel_job
from tests.communications.imports_helpers import csv_bytes, job_of, upload
from tests.workers import wait_for

# The worker is another process: it reads the uploads from the test settings' MEDIA_ROOT.
pytestmark = pytest.mark.django_db(transaction=True)
IMPORTS = "/api/v1/contacts/imports/"


@pytest.fixture(autouse=True)
def remove_files() -> Iterator[None]:
    """The shared test MEDIA_ROOT keeps no upload of these tests."""
    yield
    for contact_import in ContactImport.objects.all():
        contact_import.file.delete(save=False)
        contact_import.error_file.delete(save=False)


def status_of(contact_import: ContactImport) -> str:
    return job_of(contact_import).status


def test_an_import_runs_on_the_forking_worker(tenant, tenant_admin, worker_process):
    worker_process("imports", worker_class="jobs.runtime.worker.Worker")
    content = csv_bytes("Email,Phone", *[f"u{n}@example.com,+1212420{n:04d}" for n in range(300)])

    contact_import = upload(tenant, tenant_admin, content)
    wait_for(lambda: status_of(contact_import) == Job.Status.SUCCEEDED, timeout=60)

    contact_import.refresh_from_db()
    assert contact_import.counts == {"new": 300, "updated": 0, "skipped": 0, "invalid": 0}
    assert Contact.objects.for_tenant(tenant).count() == 300


def test_a_canceled_import_keeps_its_committed_batches_and_reads_as_canceled(
    tenant, tenant_admin, worker_process, monkeypatch, api_client
):
    monkeypatch.setenv("CONTACT_IMPORT_BATCH_SIZE", "50")  # read by the worker's settings
    worker_process("imports", worker_class="jobs.runtime.worker.Worker")
    lines = [f"u{n}@example.com,+1212421{n:04d}" for n in range(6000)]
    contact_import = upload(tenant, tenant_admin, csv_bytes("Email,Phone", *lines))
    wait_for(lambda: ContactImport.objects.get(pk=contact_import.pk).processed_rows > 0, timeout=60)

    cancel_job(job_of(contact_import))
    wait_for(lambda: status_of(contact_import) == Job.Status.CANCELED, timeout=60)

    contact_import.refresh_from_db()
    assert 0 < contact_import.new_count < 6000
    # Each batch commits its contacts with the counters: what the row says is what is there.
    assert Contact.objects.for_tenant(tenant).count() == contact_import.new_count
    api_client.force_authenticate(tenant_admin)
    body = api_client.get(f"{IMPORTS}{contact_import.pk}/").json()
    assert body["status"] == "canceled"
    assert body["error"].startswith("The job was canceled before it finished")
