"""Send intents to Dramatiq: ``actor.send_with_options(args=, kwargs=, **dispatch_options)``.

A task is a Dramatiq actor when it has a ``send_with_options`` method: a
``dramatiq.Actor``, a subclass, a proxy or a test double
(``Mock(spec=dramatiq.Actor)``) are all sent the same way. Anything else is a
plain callable: it is called in-process and its dispatch options are ignored
(as airlock-py 0.1 documented).

Dispatch options go to ``send_with_options`` untouched: ``delay``
(milliseconds or a ``timedelta``) and whatever the broker's middleware reads
(``max_retries``, ``time_limit``, ``on_success``, your own middleware's
options, ...). Dramatiq does not restrict their names, so neither does airlock.

``dramatiq_executor.validate`` runs at enqueue and refuses what Dramatiq
could never send: arguments or option values the configured encoder (JSON by
default) cannot encode, a ``delay`` that is not a number of milliseconds or a
``timedelta``, an ``on_success``/``on_failure`` that is not an actor or an
actor name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .._extras import requires

with requires("dramatiq"):
    import dramatiq

from ..._intent import Intent
from ._checks import check_option_type, check_options_serializable, check_serializable

__all__ = ["dramatiq_executor"]


def _sender(task: Any) -> Any:
    """The task's ``send_with_options``, or ``None`` for a plain callable."""
    send = getattr(task, "send_with_options", None)
    return send if callable(send) else None


def dramatiq_executor(intent: Intent) -> Any:
    """Send ``intent`` to its actor's queue; call a plain callable in-process.

    Returns the Dramatiq ``Message`` sent (or the plain call's result).
    """
    task = intent.task
    send = _sender(task)
    if send is None:
        return task(*intent.args, **intent.kwargs)
    return send(args=intent.args, kwargs=dict(intent.kwargs), **(intent.dispatch_options or {}))


def validate(intent: Intent) -> None:
    """Fail at enqueue on an argument or option value Dramatiq could never send."""
    if _sender(intent.task) is None:
        return  # called in-process: nothing is encoded, options are ignored
    check_option_type(intent, "Dramatiq", "delay", (int, float, timedelta), "milliseconds or a timedelta")
    for name in ("on_success", "on_failure"):
        check_option_type(intent, "Dramatiq", name, (str, dramatiq.Actor), "an actor or an actor name")
    encoder = dramatiq.get_encoder()
    check_serializable(intent, type(encoder).__name__, encoder.encode)
    options = intent.dispatch_options
    if options:
        # The message carries the options (actors as their names) next to the arguments.
        carried = {k: v for k, v in options.items() if k not in ("delay", "on_success", "on_failure")}
        check_options_serializable(intent, type(encoder).__name__, encoder.encode, carried)


dramatiq_executor.validate = validate  # type: ignore[attr-defined]
