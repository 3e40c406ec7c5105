"""Send intents to Dramatiq: ``actor.send_with_options(args=, kwargs=, **dispatch_options)``.

Dispatch options are Dramatiq's own: ``delay`` (milliseconds or a
``timedelta``) and every option the broker's middleware declares
(``max_retries``, ``time_limit``, ``on_success``, ...). A plain callable (not
an actor) is called in-process.

``dramatiq_executor.validate`` runs at enqueue: unknown option names and
arguments the configured encoder (JSON by default) cannot encode fail there.
"""

from __future__ import annotations

from typing import Any

from .._extras import requires

with requires("dramatiq"):
    import dramatiq

from ..._intent import Intent
from ._checks import check_option_names, check_serializable

__all__ = ["dramatiq_executor"]


def dramatiq_executor(intent: Intent) -> Any:
    """Send ``intent`` to its actor's queue; call a plain callable in-process.

    Returns the Dramatiq ``Message`` sent (or the plain call's result).
    """
    task = intent.task
    if not isinstance(task, dramatiq.Actor):
        return task(*intent.args, **intent.kwargs)
    return task.send_with_options(args=intent.args, kwargs=intent.kwargs, **(intent.dispatch_options or {}))


def validate(intent: Intent) -> None:
    """Fail at enqueue on an unknown option name or an argument the encoder cannot encode."""
    task = intent.task
    if not isinstance(task, dramatiq.Actor):
        if intent.dispatch_options:
            raise TypeError(
                f"{intent.name} is a plain callable, not a Dramatiq actor, so the dramatiq executor calls it "
                f"in-process and cannot honour dispatch options {sorted(intent.dispatch_options)}"
            )
        return
    check_option_names(intent, "Dramatiq", {"delay"} | set(task.broker.actor_options))
    encoder = dramatiq.get_encoder()
    check_serializable(intent, type(encoder).__name__, lambda value: encoder.encode(value))


dramatiq_executor.validate = validate  # type: ignore[attr-defined]
