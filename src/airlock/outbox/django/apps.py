"""The Django app of the outbox: ``INSTALLED_APPS += ["airlock.outbox.django"]``."""

from __future__ import annotations

from django.apps import AppConfig


class AirlockOutboxConfig(AppConfig):
    """App label ``airlock_outbox``: the ``OutboxRow`` model, its admin and ``manage.py airlock_relay``."""

    name = "airlock.outbox.django"
    label = "airlock_outbox"
    verbose_name = "airlock outbox"
    default_auto_field = "django.db.models.BigAutoField"
