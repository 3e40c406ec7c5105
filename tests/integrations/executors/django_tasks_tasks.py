"""Module-level tasks for the django-tasks tests (the framework requires module-level functions)."""

from __future__ import annotations

from typing import Any

try:  # Django >= 6.0: Django's own task framework (make test-django6)
    from django.tasks import task
except ImportError:  # the backport
    from django_tasks import task


@task(backend="database")
def record(value: Any, tag: str = "run") -> dict[str, Any]:
    """Return what it ran with: the database backend stores it as the result."""
    return {"value": value, "tag": tag}
