"""API view: the public job kinds a member may enqueue, with their defaults."""

from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import TENANT_ERRORS, errors
from jobs.kinds import JobKind, public_kinds
from jobs.transport.limits import concurrency_for, rate_for
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest


class KindOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    role = serializers.CharField(help_text="The lowest role that may enqueue or schedule it.")
    timeout = serializers.IntegerField(source="default_timeout", help_text="Seconds per attempt.")
    max_attempts = serializers.IntegerField(source="default_max_attempts")
    rate_limit = serializers.SerializerMethodField(help_text="Starts allowed for your tenant.")
    concurrency = serializers.SerializerMethodField(help_text="Running at once for your tenant.")
    payload_schema = serializers.SerializerMethodField()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_rate_limit(self, kind: JobKind) -> str | None:
        rate = rate_for(self.context["tenant"], kind)
        return rate[1] if rate else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_concurrency(self, kind: JobKind) -> int | None:
        slot = concurrency_for(self.context["tenant"], kind)
        return slot[1] if slot else None

    @extend_schema_field(
        serializers.DictField(
            child=inline_serializer(
                "PayloadFieldOutput",
                {"type": serializers.CharField(), "required": serializers.BooleanField()},
            )
        )
    )
    def get_payload_schema(self, kind: JobKind) -> dict[str, Any]:
        return kind.payload_schema()


class KindListView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: KindOutput(many=True), **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "The sleeper",
                value={
                    "name": "jobs.sleep",
                    "description": "Sleep for `seconds` in `steps`, reporting progress.",
                    "queue": "default",
                    "role": "agent",
                    "timeout": 180,
                    "max_attempts": 3,
                    "rate_limit": None,
                    "concurrency": None,
                    "payload_schema": {
                        "seconds": {"type": "float", "required": True},
                        "steps": {"type": "integer", "required": False},
                    },
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: TenantRequest) -> Response:
        """The public kinds your role may enqueue, their payload fields and defaults here."""
        offered = public_kinds(request.role)
        kinds = KindOutput(offered, many=True, context={"tenant": request.tenant})
        return Response(kinds.data)


urlpatterns: list[URLPattern] = [
    path("kinds/", KindListView.as_view(), name="kind-list"),
]
