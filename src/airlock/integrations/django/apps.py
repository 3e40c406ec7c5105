"""The Django app: ``INSTALLED_APPS += ["airlock.integrations.django"]``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed

__all__ = ["AirlockConfig"]


class AirlockConfig(AppConfig):
    """Configures airlock from ``settings.AIRLOCK`` at startup and registers the checks.

    After this, ``airlock.scope()`` and ``@airlock.scoped()`` anywhere in the
    project (views, management commands, Celery tasks) build the configured
    scope class, [`DjangoScope`][airlock.integrations.django.DjangoScope] by default.
    """

    name = "airlock.integrations.django"
    label = "airlock"
    verbose_name = "airlock"
    default = True

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import configure_from_settings

        configure_from_settings()
        setting_changed.connect(_reconfigure, dispatch_uid="airlock.reconfigure")


def _reconfigure(*, setting: str, **kwargs: Any) -> None:
    # override_settings(AIRLOCK=...) in tests takes effect at once. Not strict:
    # a broken value is reported by the checks, and airlock fails closed.
    if setting == "AIRLOCK":
        from .conf import configure_from_settings

        configure_from_settings(strict=False)
