"""API views: message templates — CRUD of a tenant's own, the built-in defaults, previews.

Members read and preview; admins and owners write (PRODUCT.md §2). A template that does not
compile, or uses a variable its sample does not define, is refused with 400 at its field.
"""

from typing import Any

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import Channel, Contact, MessageTemplate
from communications.selectors.contacts import get_contact
from communications.selectors.templates import (
    builtin_templates,
    get_template,
    list_templates,
    overridden_names,
    resolve_template,
)
from communications.services.templates import (
    create_template,
    delete_template,
    preview_template,
    update_template,
)
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TAGS = ["templates"]
ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Invalid input, a syntax error or an undefined variable: messages per field.",
    ),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="Your role here is too low."),
    404: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="No such template here; another tenant's answers the same.",
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


# --- Input and output ---------------------------------------------------------------------------


class TemplateInput(serializers.Serializer):
    """Email: subject and html_body and/or text_body. SMS and WhatsApp: body."""

    name = serializers.SlugField(max_length=100, help_text="e.g. welcome (overrides the built-in)")
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.EMAIL)
    description = serializers.CharField(max_length=300, allow_blank=True, default="")
    subject = serializers.CharField(
        max_length=300, allow_blank=True, default="", trim_whitespace=False
    )
    html_body = serializers.CharField(allow_blank=True, default="", trim_whitespace=False)
    text_body = serializers.CharField(allow_blank=True, default="", trim_whitespace=False)
    body = serializers.CharField(allow_blank=True, default="", trim_whitespace=False)
    sample_variables = serializers.DictField(
        default=dict, help_text="Example values of the template's own variables."
    )


class TemplateOutput(serializers.ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = (
            "id",
            "name",
            "channel",
            "description",
            "subject",
            "html_body",
            "text_body",
            "body",
            "sample_variables",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class BuiltinOutput(serializers.Serializer):
    name = serializers.CharField()
    channel = serializers.CharField()
    description = serializers.CharField()
    subject = serializers.CharField()
    html_body = serializers.CharField()
    text_body = serializers.CharField()
    body = serializers.CharField()
    sample_variables = serializers.DictField()
    overridden = serializers.BooleanField(help_text="This tenant has its own template instead.")


class PreviewInput(serializers.Serializer):
    contact_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Render for this contact."
    )
    variables = serializers.DictField(
        default=dict, help_text="Values over the template's sample variables."
    )


class NamedPreviewInput(PreviewInput):
    name = serializers.SlugField(max_length=100)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.EMAIL)


class RenderedOutput(serializers.Serializer):
    subject = serializers.CharField(help_text="Empty for SMS and WhatsApp.")
    html = serializers.CharField(help_text="Empty for SMS and WhatsApp.")
    text = serializers.CharField(help_text="The plain-text alternative, or the SMS/WhatsApp body.")


# --- Views --------------------------------------------------------------------------------------


class MembersReadAdminsWrite(APIView):
    permission_classes = [HasTenantRole]

    access_area = "templates"


class MembersPreview(APIView):
    permission_classes = [HasTenantRole]
    access_area = "template_previews"


class TemplateListView(MembersReadAdminsWrite):
    pagination_class = PageNumberPagination

    class Query(serializers.Serializer):
        channel = serializers.ChoiceField(choices=Channel.choices, required=False, default="")
        search = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(
        operation_id="templates_list",
        tags=TAGS,
        parameters=[
            TENANT_PARAMETER,
            OpenApiParameter("channel", OpenApiTypes.STR, enum=Channel.values),
            OpenApiParameter("search", OpenApiTypes.STR, description="In name and description."),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: TemplateOutput(many=True), **errors(400, 403)},
    )
    def get(self, request: TenantRequest) -> Response:
        """The tenant's own templates, by name; built-in defaults are at templates/builtins/."""
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        templates = list_templates(tenant=request.tenant, **query.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(templates, request, view=self)
        return paginator.get_paginated_response(TemplateOutput(page, many=True).data)

    @extend_schema(
        operation_id="templates_create",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=TemplateInput,
        responses={201: TemplateOutput, **errors(400, 403)},
    )
    def post(self, request: TenantRequest) -> Response:
        """Add a template; a built-in's name and channel makes it the tenant's version of it."""
        data = TemplateInput(data=request.data)
        data.is_valid(raise_exception=True)
        template = create_template(tenant=request.tenant, by=request.user, **data.validated_data)
        return Response(TemplateOutput(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(MembersReadAdminsWrite):
    @extend_schema(
        operation_id="templates_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: TemplateOutput, **errors(403, 404)},
    )
    def get(self, request: TenantRequest, pk: int) -> Response:
        return Response(TemplateOutput(get_template(tenant=request.tenant, pk=pk)).data)

    @extend_schema(
        operation_id="templates_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=TemplateInput,
        responses={200: TemplateOutput, **errors(400, 403, 404)},
    )
    def put(self, request: TenantRequest, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="templates_partial_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=TemplateInput(partial=True),
        responses={200: TemplateOutput, **errors(400, 403, 404)},
    )
    def patch(self, request: TenantRequest, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        operation_id="templates_destroy",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: TenantRequest, pk: int) -> Response:
        """Delete the tenant's template; a built-in of the same name applies again."""
        delete_template(get_template(tenant=request.tenant, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: TenantRequest, pk: int, *, partial: bool) -> Response:
        template = get_template(tenant=request.tenant, pk=pk)
        data = TemplateInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        template = update_template(template, **data.validated_data)
        return Response(TemplateOutput(template).data)


class TemplatePreviewView(MembersPreview):
    @extend_schema(
        operation_id="templates_preview",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=PreviewInput,
        responses={200: RenderedOutput, **errors(400, 403, 404)},
    )
    def post(self, request: TenantRequest, pk: int) -> Response:
        """Render the template with its sample data, a contact's fields and your variables."""
        template = get_template(tenant=request.tenant, pk=pk)
        return _preview(request, template, PreviewInput(data=request.data))


class NamedTemplatePreviewView(MembersPreview):
    @extend_schema(
        operation_id="templates_preview_by_name",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=NamedPreviewInput,
        responses={200: RenderedOutput, **errors(400, 403, 404)},
    )
    def post(self, request: TenantRequest) -> Response:
        """Render what a name means for the tenant: its own template, else the built-in."""
        data = NamedPreviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        name, channel = data.validated_data["name"], data.validated_data["channel"]
        template = resolve_template(name, tenant=request.tenant, channel=channel)
        return _preview(request, template, data)


class BuiltinTemplateListView(MembersPreview):
    @extend_schema(
        operation_id="templates_builtins",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: BuiltinOutput(many=True), **errors(403)},
    )
    def get(self, request: TenantRequest) -> Response:
        """The built-in defaults with their sources: start from one to write your own."""
        overridden = overridden_names(tenant=request.tenant)
        rows = [
            {**vars(builtin), "overridden": (builtin.name, builtin.channel) in overridden}
            for builtin in builtin_templates()
        ]
        return Response(BuiltinOutput(rows, many=True).data)


def _preview(request: TenantRequest, template: Any, data: PreviewInput) -> Response:
    data.is_valid(raise_exception=True)
    contact_id = data.validated_data["contact_id"]
    contact: Contact | None = None
    if contact_id is not None:
        try:
            contact = get_contact(tenant=request.tenant, pk=contact_id)
        except Contact.DoesNotExist:
            raise serializers.ValidationError(
                {"contact_id": ["There is no such contact in this tenant."]}
            ) from None
    rendered = preview_template(
        template,
        tenant=request.tenant,
        contact=contact,
        variables=data.validated_data["variables"],
    )
    return Response(RenderedOutput(rendered).data)


urlpatterns: list[URLPattern | URLResolver] = [
    path("templates/", TemplateListView.as_view(), name="template-list"),
    path("templates/builtins/", BuiltinTemplateListView.as_view(), name="template-builtins"),
    path("templates/preview/", NamedTemplatePreviewView.as_view(), name="template-preview-name"),
    path("templates/<int:pk>/", TemplateDetailView.as_view(), name="template-detail"),
    path("templates/<int:pk>/preview/", TemplatePreviewView.as_view(), name="template-preview"),
]
