"""System checks for the ``AIRLOCK`` setting (``manage.py check``).

airlock.E001  AIRLOCK is not a dict, or has unknown keys (the hint lists the valid ones)
airlock.E002  POLICY does not import, or is not a policy
airlock.E003  EXECUTOR does not import, or is not callable
airlock.E004  SCOPE does not import, or is not a subclass of airlock.Scope
airlock.E005  SCOPE_KWARGS is not a dict, names an unknown database, or does not build SCOPE
airlock.W001  the executor is the in-process one while a task-queue framework is installed
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from airlock.integrations.executors.sync import sync_executor

from .conf import SettingError, find_setting_errors, get_executor

__all__ = ["TASK_QUEUES", "check_airlock_setting", "check_in_process_executor"]

#: Task-queue frameworks with an airlock executor: importable name -> the executor's dotted path.
TASK_QUEUES: dict[str, str] = {
    "celery": "airlock.integrations.executors.celery.celery_executor",
    "dramatiq": "airlock.integrations.executors.dramatiq.dramatiq_executor",
    "huey": "airlock.integrations.executors.huey.huey_executor",
    "rq": "airlock.integrations.executors.rq.rq_executor",
    "django_q": "airlock.integrations.executors.django_q.django_q_executor",
}


@register()
def check_airlock_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report every problem with ``settings.AIRLOCK`` as an ``airlock.E00x`` error."""
    return [Error(e.msg, hint=e.hint, id=e.check_id) for e in find_setting_errors()]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@register()
def check_in_process_executor(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``airlock.W001``: tasks would run in the web process by accident.

    The default executor calls each task in-process, inside the request. With
    a task queue installed that is rarely what the project meant: usually the
    ``EXECUTOR`` setting was forgotten. Silence it with
    ``SILENCED_SYSTEM_CHECKS = ["airlock.W001"]`` when it is deliberate.
    """
    try:
        executor = get_executor()
    except SettingError:
        return []  # reported as airlock.E003
    if executor is not sync_executor:
        return []
    found = [name for name in TASK_QUEUES if _installed(name)]
    if not found:
        return []
    return [
        Warning(
            f"airlock runs every task in-process (AIRLOCK['EXECUTOR'] is not set) while "
            f"{', '.join(found)} {'is' if len(found) == 1 else 'are'} installed",
            hint=(
                f"Set AIRLOCK = {{'EXECUTOR': '{TASK_QUEUES[found[0]]}'}} to send the tasks to the queue, "
                "or add 'airlock.W001' to SILENCED_SYSTEM_CHECKS if running them in-process is intended"
            ),
            id="airlock.W001",
        )
    ]
