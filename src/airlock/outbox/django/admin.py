"""Read-only admin for outbox rows, with "retry" and "dead-letter" actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .._model import DEAD, PENDING
from .models import OutboxRow


@admin.register(OutboxRow)
class OutboxRowAdmin(admin.ModelAdmin):
    """Rows are written by scopes and the relay only; people look, retry, or dead-letter."""

    list_display = (
        "seq",
        "name",
        "state",
        "attempts",
        "created_at",
        "available_at",
        "done_at",
        "short_error",
    )
    list_filter = ("state", "name")
    search_fields = ("outbox_id", "name", "task", "ordering_key")
    ordering = ("-seq",)
    actions = ["retry", "dead_letter"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in OutboxRow._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="last error")
    def short_error(self, obj: OutboxRow) -> str:
        error = obj.last_error or ""
        return error if len(error) <= 80 else error[:77] + "..."

    @admin.action(description="Retry now (back to pending, attempts reset)", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboxRow]) -> None:
        n = queryset.filter(state__in=(PENDING, DEAD)).update(state=PENDING, attempts=0, available_at=None)
        self.message_user(request, f"{n} row(s) back to pending.", messages.SUCCESS)

    @admin.action(description="Dead-letter (never dispatch)", permissions=["change"])
    def dead_letter(self, request: HttpRequest, queryset: QuerySet[OutboxRow]) -> None:
        n = queryset.filter(state=PENDING).update(state=DEAD, last_error="dead-lettered by hand")
        self.message_user(request, f"{n} row(s) dead-lettered.", messages.SUCCESS)
