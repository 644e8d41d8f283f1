"""A tenant admin imports contacts in the admin and watches the job finish, in a real browser."""

import subprocess
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import FilePayload, Page, expect

from communications.models import Contact, ContactImport
from tenants.models import Role, Tenant
from tests.e2e.conftest import log_in, screenshot
from tests.factories import PASSWORD, make_member

StartWorker = Callable[..., subprocess.Popen]


@pytest.fixture(autouse=True)
def remove_files() -> Iterator[None]:
    """The worker is another process and writes to the test settings' MEDIA_ROOT: clean it."""
    yield
    for contact_import in ContactImport.objects.all():
        contact_import.file.delete(save=False)
        contact_import.error_file.delete(save=False)


def test_a_tenant_admin_imports_a_file_and_its_page_follows_the_job(
    page: Page, tenant: Tenant, worker_process: StartWorker
):
    admin = make_member(tenant, Role.ADMIN, username="ines", is_staff=True)
    content = b"Work mail,Who\nada@example.com,Ada\nbob@example.com,Bob\n"
    log_in(page, admin, PASSWORD)

    page.goto("/admin/communications/contact/")
    page.click(".object-tools >> text=Import")
    page.set_input_files(
        "#id_file", files=FilePayload(name="leads.csv", mimeType="text/csv", buffer=content)
    )
    page.fill("#id_mapping", '{"Work mail": "email", "Who": "name"}')
    screenshot(page, "contact-import-form")
    page.click("input[type=submit][value='Import contacts']")
    expect(page.locator(".field-progress")).to_contain_text("pending")
    worker_process("imports", worker_class="jobs.runtime.worker.Worker")

    # No reload here: the page refreshes its progress, then reloads itself once the job ended.
    expect(page.locator(".field-outcome")).to_contain_text("Created 2", timeout=40_000)
    expect(page.locator(".field-progress")).to_contain_text("succeeded")
    screenshot(page, "contact-import")
    assert sorted(Contact.objects.for_tenant(tenant).values_list("name", flat=True)) == [
        "Ada",
        "Bob",
    ]
