"""Django integration: transaction-exact scopes, a request middleware, settings.

``INSTALLED_APPS += ["airlock.integrations.django"]`` configures airlock from
the ``AIRLOCK`` setting at startup (see `.conf` for the keys);
``MIDDLEWARE += ["airlock.integrations.django.AirlockMiddleware"]`` gives
every request its own scope.
"""

from __future__ import annotations

from .._extras import requires

with requires("django"):
    from .conf import (
        SETTING_KEYS,
        configure_from_settings,
        get_executor,
        get_policy,
        get_scope_class,
        get_setting,
    )
    from .middleware import AirlockMiddleware
    from .scope import DjangoScope

__all__ = [
    "SETTING_KEYS",
    "AirlockMiddleware",
    "DjangoScope",
    "configure_from_settings",
    "get_executor",
    "get_policy",
    "get_scope_class",
    "get_setting",
]
