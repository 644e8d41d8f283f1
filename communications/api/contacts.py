"""API views: contacts — list with search and filters, create, read, change, delete.

Members read; agents and up write (PRODUCT.md §2). Every write is one call to
communications.services.contacts; another tenant's contact answers 404 like a missing one.
"""

from typing import Any

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import Contact
from communications.selectors.contacts import ORDERINGS, get_contact, list_contacts
from communications.services.contacts import create_contact, delete_contact, update_contact
from jobs.api.common import RedactedObjectField
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TAGS = ["contacts"]
ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: messages per field."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="Your role here is too low."),
    404: OpenApiResponse(
        OpenApiTypes.OBJECT, description="No such contact here; another tenant's answers the same."
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


class ContactInput(serializers.Serializer):
    """A contact as a client writes it: an email address, a phone number or both."""

    name = serializers.CharField(max_length=200, allow_blank=True, default="")
    email = serializers.CharField(max_length=254, allow_blank=True, default="")
    phone = serializers.CharField(
        max_length=40,
        allow_blank=True,
        default="",
        help_text="Any common format; without +country the tenant's default region applies. "
        "Stored in E.164.",
    )
    company = serializers.CharField(max_length=200, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list)
    opted_out = serializers.BooleanField(default=False)
    custom_fields = serializers.DictField(default=dict, help_text="Your own fields, an object.")


class ContactOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True)
    custom_fields = RedactedObjectField(help_text="Values under secret-looking keys are masked.")

    class Meta:
        model = Contact
        fields = (
            "id",
            "name",
            "email",
            "phone",
            "company",
            "tags",
            "opted_out",
            "custom_fields",
            "source",
            "created_by",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ContactQuery(serializers.Serializer):
    search = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    tag = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    opted_out = serializers.BooleanField(required=False, allow_null=True, default=None)
    source = serializers.ChoiceField(  # type: ignore[assignment]  # the query parameter's name
        choices=Contact.Source.choices, required=False, default=""
    )
    created_after = serializers.DateTimeField(required=False, allow_null=True, default=None)
    created_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    ordering = serializers.ChoiceField(
        choices=[*ORDERINGS, *(f"-{name}" for name in ORDERINGS)],
        required=False,
        default="-created_at",
    )


class ContactPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class MembersReadAgentsWrite(APIView):
    permission_classes = [HasTenantRole]

    access_area = "contacts"


LIST_PARAMETERS = [
    TENANT_PARAMETER,
    OpenApiParameter("search", OpenApiTypes.STR, description="In name, email, company, phone."),
    OpenApiParameter("tag", OpenApiTypes.STR, many=True, description="Has every tag given."),
    OpenApiParameter("opted_out", OpenApiTypes.BOOL),
    OpenApiParameter("source", OpenApiTypes.STR, enum=Contact.Source.values),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME),
    OpenApiParameter(
        "ordering",
        OpenApiTypes.STR,
        description=f"One of {', '.join(ORDERINGS)}, with - for descending (-created_at).",
    ),
    OpenApiParameter("page", OpenApiTypes.INT),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="At most 500 (default 50)."),
]


class ContactListView(MembersReadAgentsWrite):
    pagination_class = ContactPagination

    @extend_schema(
        operation_id="contacts_list",
        tags=TAGS,
        parameters=LIST_PARAMETERS,
        responses={200: ContactOutput(many=True), **errors(400, 403)},
    )
    def get(self, request: TenantRequest) -> Response:
        """The tenant's contacts, newest first unless `ordering` says otherwise."""
        query = ContactQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        contacts = list_contacts(
            tenant=request.tenant, tags=filters.pop("tag", None), **filters
        ).select_related("created_by")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(contacts, request, view=self)
        return paginator.get_paginated_response(ContactOutput(page, many=True).data)

    @extend_schema(
        operation_id="contacts_create",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=ContactInput,
        responses={201: ContactOutput, **errors(400, 403)},
    )
    def post(self, request: TenantRequest) -> Response:
        """Add a contact; a duplicate email address or phone number in the tenant is a 400."""
        data = ContactInput(data=request.data)
        data.is_valid(raise_exception=True)
        contact = create_contact(
            tenant=request.tenant,
            by=request.user,
            source=Contact.Source.API,
            **data.validated_data,
        )
        return Response(ContactOutput(contact).data, status=status.HTTP_201_CREATED)


class ContactDetailView(MembersReadAgentsWrite):
    @extend_schema(
        operation_id="contacts_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: ContactOutput, **errors(403, 404)},
    )
    def get(self, request: TenantRequest, pk: int) -> Response:
        return Response(ContactOutput(get_contact(tenant=request.tenant, pk=pk)).data)

    @extend_schema(
        operation_id="contacts_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=ContactInput,
        responses={200: ContactOutput, **errors(400, 403, 404)},
    )
    def put(self, request: TenantRequest, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="contacts_partial_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=ContactInput(partial=True),
        responses={200: ContactOutput, **errors(400, 403, 404)},
    )
    def patch(self, request: TenantRequest, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        operation_id="contacts_destroy",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: TenantRequest, pk: int) -> Response:
        delete_contact(get_contact(tenant=request.tenant, pk=pk), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: TenantRequest, pk: int, *, partial: bool) -> Response:
        contact = get_contact(tenant=request.tenant, pk=pk)
        data = ContactInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = dict(data.validated_data)
        contact = update_contact(contact, by=request.user, **fields)
        return Response(ContactOutput(contact).data)


urlpatterns: list[URLPattern | URLResolver] = [
    path("contacts/", ContactListView.as_view(), name="contact-list"),
    path("contacts/<int:pk>/", ContactDetailView.as_view(), name="contact-detail"),
]
