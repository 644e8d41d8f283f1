"""The OpenAPI schema, its docs pages, the browsable API, and a fuzz run against a live server."""

from typing import Any

import pytest
import schemathesis
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tenants.models import Role, Tenant
from tests.factories import TenantFactory, make_api_key, make_member

# Bounded per operation, with no example database, so the run stays short in CI.
FUZZ_EXAMPLES = 15
# Every operation in the schema is held to its documentation: no 5xx, only the status codes and
# content types it lists, and answers that match their schemas.
FULL_CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))

    assert "/api/v1/jobs/{job_id}/cancel/:" in (tmp_path / "s.yml").read_text()


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_everything_from_the_project_itself(api_client, page):
    response = api_client.get(page)

    html = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html


def test_the_browsable_api_lists_jobs_and_offers_the_enqueue_form_to_an_agent(
    api_client, agent, tenant
):
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    api_client.force_login(agent)

    response = api_client.get("/api/v1/jobs/", HTTP_ACCEPT="text/html")

    html = response.content.decode()
    assert response.status_code == 200
    assert "jobs.noop" in html
    assert 'name="kind"' in html


# --- Fuzzing -----------------------------------------------------------------------------------


@pytest.fixture
def fuzz_caller(tenant: Tenant) -> dict[str, str]:
    """An operator's API key bound to the tenant, with a few jobs to find."""
    operator = make_member(tenant, Role.OWNER, is_superuser=True)
    TenantFactory.create(slug="other")
    for status in (Job.Status.QUEUED, Job.Status.FAILED, Job.Status.STARTED):
        job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
        Job.objects.filter(pk=job.pk).update(status=status)
    _key, raw_key = make_api_key(operator, tenant=tenant)
    return {"Authorization": f"Bearer {raw_key}"}


def _fuzz_cases() -> list[tuple[str, str, GenerationMode]]:
    """Each operation with valid inputs, and with invalid ones where it takes any."""
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    cases = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


@pytest.fixture(scope="module")
def api_schema(live_server: Any) -> OpenApiSchema:
    """The live server's schema, fetched once (generating it takes a while)."""
    config = SchemathesisConfig()
    config.projects.override.generation.update(deterministic=True, allow_x00=True)
    return schemathesis.openapi.from_url(f"{live_server.url}/api/schema/", config=config)


@pytest.mark.parametrize(("method", "path", "mode"), _fuzz_cases())
def test_the_api_answers_fuzzed_requests_without_errors_and_as_documented(
    api_schema: OpenApiSchema,
    fuzz_caller: dict[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Case) -> None:
        case.call_and_validate(headers=fuzz_caller, checks=FULL_CHECKS)

    answers_as_documented()
