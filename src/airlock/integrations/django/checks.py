"""System checks for the ``AIRLOCK`` setting (``manage.py check``).

airlock.E001  AIRLOCK is not a dict, or has unknown keys (the hint lists the valid ones)
airlock.E002  POLICY does not import, or is not a policy
airlock.E003  EXECUTOR does not import, or is not callable
airlock.E004  SCOPE does not import, or is not a subclass of airlock.Scope
airlock.E005  SCOPE_KWARGS is not a dict, names an unknown database, or does not fit SCOPE
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from .conf import find_setting_errors

__all__ = ["check_airlock_setting"]


@register()
def check_airlock_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report every problem with ``settings.AIRLOCK`` as an ``airlock.E00x`` error."""
    return [Error(e.msg, hint=e.hint, id=e.check_id) for e in find_setting_errors()]
