import pytest
from django.contrib.auth.models import User
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from tenants.models import Role
from tenants.permissions import HasTenantRole, IsSuperuser, TenantRequest
from tests.factories import UserFactory, make_member

pytestmark = pytest.mark.django_db


class EchoView(APIView):
    """Answers with the tenant and role HasTenantRole chose."""

    permission_classes = [HasTenantRole]

    def get(self, request: TenantRequest) -> Response:
        return Response({"tenant": request.tenant.slug, "role": request.role})


class OperatorView(APIView):
    permission_classes = [IsSuperuser]

    def get(self, request: Request) -> Response:
        return Response({})


def call(view: type[APIView], user: User, required_role: str | None = None) -> Response:
    if required_role is not None:
        view = type("RoleView", (view,), {"required_role": required_role})
    request = APIRequestFactory().get("/", HTTP_X_TENANT="acme")
    force_authenticate(request, user=user)
    return view.as_view()(request)


@pytest.mark.parametrize("role", Role.values)
@pytest.mark.parametrize("required_role", Role.values)
def test_a_role_passes_exactly_when_it_is_at_least_the_required_one(tenant, role, required_role):
    user = make_member(tenant, role)

    response = call(EchoView, user, required_role=required_role)

    if Role.rank(role) >= Role.rank(required_role):
        assert response.status_code == 200
        assert response.data == {"tenant": "acme", "role": role}
    else:
        assert response.status_code == 403
        assert f"needs the {required_role} role or higher" in response.data["detail"]
        assert f"yours is {role}" in response.data["detail"]


def test_the_default_required_role_is_viewer(viewer):
    response = call(EchoView, viewer)

    assert response.status_code == 200


def test_a_superuser_passes_any_role_check_as_owner(tenant):
    superuser = UserFactory.create(is_superuser=True)

    response = call(EchoView, superuser, required_role=Role.OWNER)

    assert response.status_code == 200
    assert response.data == {"tenant": "acme", "role": "owner"}


def test_only_superusers_pass_is_superuser(tenant_owner):
    superuser = UserFactory.create(is_superuser=True)

    answers = (call(OperatorView, tenant_owner), call(OperatorView, superuser))

    assert [response.status_code for response in answers] == [403, 200]
    assert answers[0].data["detail"] == "Only a platform operator (superuser) may do this."
