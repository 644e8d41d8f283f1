"""API views: the requesting user's own notifications in the request's tenant.

List (optionally unread only), mark one read, mark all read, count the unread. Nobody sees
another user's notifications: theirs answer 404 like missing ones, whatever the role.
"""

from typing import cast

from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import Notification
from communications.selectors.notifications import (
    count_unread,
    get_notification,
    list_notifications,
)
from communications.services.notifications import mark_all_read, mark_read
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TAGS = ["notifications"]
NOT_FOUND = OpenApiResponse(
    OpenApiTypes.OBJECT, description="No such notification of yours in this tenant."
)


def me(request: TenantRequest) -> User:
    """The requesting user (HasTenantRole let only signed-in users through)."""
    return cast(User, request.user)


class NotificationOutput(serializers.ModelSerializer):
    is_read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ("id", "title", "body", "link", "is_read", "read_at", "created_at")
        read_only_fields = fields

    def get_is_read(self, notification: Notification) -> bool:
        return notification.read_at is not None


class MarkedOutput(serializers.Serializer):
    marked = serializers.IntegerField(help_text="Notifications that were unread until now.")


class UnreadCountOutput(serializers.Serializer):
    unread = serializers.IntegerField()


class OwnNotifications(APIView):
    permission_classes = [HasTenantRole]
    access_area = "notifications"


class NotificationListView(OwnNotifications):
    pagination_class = PageNumberPagination

    class Query(serializers.Serializer):
        unread = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        operation_id="notifications_list",
        tags=TAGS,
        parameters=[
            TENANT_PARAMETER,
            OpenApiParameter("unread", OpenApiTypes.BOOL, description="true: only unread ones."),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: NotificationOutput(many=True)},
    )
    def get(self, request: TenantRequest) -> Response:
        """Your notifications in this tenant, newest first."""
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        notifications = list_notifications(
            tenant=request.tenant, user=me(request), unread=query.validated_data["unread"]
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(notifications, request, view=self)
        return paginator.get_paginated_response(NotificationOutput(page, many=True).data)


class NotificationReadView(OwnNotifications):
    @extend_schema(
        operation_id="notifications_read",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={200: NotificationOutput, 404: NOT_FOUND},
    )
    def post(self, request: TenantRequest, pk: int) -> Response:
        """Mark one of your notifications read (again is harmless)."""
        notification = get_notification(tenant=request.tenant, user=me(request), pk=pk)
        return Response(NotificationOutput(mark_read(notification)).data)


class NotificationReadAllView(OwnNotifications):
    @extend_schema(
        operation_id="notifications_read_all",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={200: MarkedOutput},
    )
    def post(self, request: TenantRequest) -> Response:
        """Mark all your notifications in this tenant read."""
        marked = mark_all_read(tenant=request.tenant, user=me(request))
        return Response(MarkedOutput({"marked": marked}).data)


class NotificationUnreadCountView(OwnNotifications):
    @extend_schema(
        operation_id="notifications_unread_count",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: UnreadCountOutput},
    )
    def get(self, request: TenantRequest) -> Response:
        """How many of your notifications in this tenant are unread."""
        unread = count_unread(tenant=request.tenant, user=me(request))
        return Response(UnreadCountOutput({"unread": unread}).data)


urlpatterns: list[URLPattern | URLResolver] = [
    path("notifications/", NotificationListView.as_view(), name="notification-list"),
    path(
        "notifications/read-all/", NotificationReadAllView.as_view(), name="notification-read-all"
    ),
    path(
        "notifications/unread-count/",
        NotificationUnreadCountView.as_view(),
        name="notification-unread-count",
    ),
    path("notifications/<int:pk>/read/", NotificationReadView.as_view(), name="notification-read"),
]
