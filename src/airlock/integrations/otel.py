"""OpenTelemetry spans and metrics for airlock (``pip install "airlock-py[otel]"``).

``install()`` registers an observer (see [`airlock.add_observer()`][airlock.add_observer]) that
turns what scopes do into telemetry:

Spans (tracer ``"airlock"``), children of whatever span is current where the
scope ends or dispatches (the request's or the task's span):

* ``airlock.scope`` when a scope flushes or discards: attributes
  ``airlock.scope.id``, ``airlock.scope.outcome`` (``flushed``/``discarded``),
  ``airlock.origin``, the counts ``airlock.intents.dispatched`` /
  ``.dropped`` / ``.captured`` and the names of each group; one span event
  ``airlock.intent`` per intent with its ``airlock.intent.name``,
  ``airlock.intent.origin`` and ``airlock.intent.outcome``.
* ``airlock.dispatch`` when an executor actually ran intents (at the flush, or
  later, e.g. after a commit), spanning the time the batch took: scope id,
  origin, ``airlock.intents.count``, ``airlock.intents.names``, one
  ``airlock.intent`` event per intent (outcome ``succeeded``/``failed``), each
  failure recorded as an exception, and status ERROR if any failed.

Metrics (meter ``"airlock"``):

* counter ``airlock.intents`` (``{intent}``), attributes ``airlock.intent.name``
  and ``airlock.intent.outcome``: ``dispatched``, ``dropped``, ``captured`` at
  scope end; ``succeeded``, ``failed`` when run;
* histogram ``airlock.dispatch.duration`` (seconds) per dispatched batch.

Scope ids and origins (request paths with ids in them) would make metric
series unbounded, so metrics carry them only if you ask:
``install(origin_in_metrics=True)``. Spans always carry both.

Through the durable outbox, the trace context travels with the intent: an
intent enqueued into an outbox scope stores the current W3C ``traceparent``
(and ``tracestate``, through the globally configured propagator) in its row,
and the relay runs the row inside an ``airlock.relay <task name>`` span
(kind CONSUMER) that continues that trace and links to the enqueuing span, so
the relayed task's own spans hang under the request that asked for it.

This module imports OpenTelemetry at its top; ``import airlock`` never does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ._extras import requires

with requires("otel"):
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import airlock
from airlock import DispatchEvent, Intent, ScopeEndEvent
from airlock.outbox import _carriers

__all__ = ["OpenTelemetryObserver", "OutboxTraceCarrier", "install", "uninstall"]

_installed: list[OpenTelemetryObserver] = []


class OpenTelemetryObserver:
    """An airlock observer that records spans and metrics (see the module docs)."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        origin_in_metrics: bool = False,
    ) -> None:
        self.tracer = trace.get_tracer("airlock", airlock.__version__, tracer_provider)
        meter = metrics.get_meter("airlock", airlock.__version__, meter_provider)
        self.intents = meter.create_counter(
            "airlock.intents",
            unit="{intent}",
            description="Intents by outcome: dispatched, dropped, "
            "captured (at scope end), succeeded, failed (when run)",
        )
        self.duration = meter.create_histogram(
            "airlock.dispatch.duration",
            unit="s",
            description="Time an executor took to run a batch of intents",
        )
        self.origin_in_metrics = origin_in_metrics

    def _count(self, intents: Iterable[Intent], outcome: str) -> None:
        for intent in intents:
            attributes = {"airlock.intent.name": intent.name, "airlock.intent.outcome": outcome}
            if self.origin_in_metrics and intent.origin is not None:
                attributes["airlock.origin"] = intent.origin
            self.intents.add(1, attributes)

    def on_scope_end(self, event: ScopeEndEvent) -> None:
        """Record an ``airlock.scope`` span and count the intents by outcome."""
        now = time.time_ns()
        groups = (("dispatched", event.dispatched), ("dropped", event.dropped), ("captured", event.captured))
        attributes: dict[str, Any] = {
            "airlock.scope.id": event.scope_id,
            "airlock.scope.outcome": event.outcome,
            "airlock.scope.class": type(event.scope).__name__,
        }
        if event.origin is not None:
            attributes["airlock.origin"] = event.origin
        for outcome, intents in groups:
            attributes[f"airlock.intents.{outcome}"] = len(intents)
            if intents:
                attributes[f"airlock.intents.{outcome}.names"] = [i.name for i in intents]
        span = self.tracer.start_span("airlock.scope", start_time=now, attributes=attributes)
        for outcome, intents in groups:
            for intent in intents:
                span.add_event("airlock.intent", _intent_attributes(intent, outcome), timestamp=now)
        span.end(end_time=now)
        for outcome, intents in groups:
            self._count(intents, outcome)

    def on_dispatch(self, event: DispatchEvent) -> None:
        """Record an ``airlock.dispatch`` span covering the batch, with its failures."""
        end = time.time_ns()
        start = end - int(event.duration * 1e9)
        failed_ids = {id(intent) for intent, _ in event.failures}
        attributes: dict[str, Any] = {
            "airlock.scope.id": event.scope_id,
            "airlock.intents.count": len(event.intents),
            "airlock.intents.names": [i.name for i in event.intents],
            "airlock.intents.failed": len(event.failures),
        }
        if event.origin is not None:
            attributes["airlock.origin"] = event.origin
        span = self.tracer.start_span("airlock.dispatch", start_time=start, attributes=attributes)
        for intent in event.intents:
            outcome = "failed" if id(intent) in failed_ids else "succeeded"
            span.add_event("airlock.intent", _intent_attributes(intent, outcome), timestamp=end)
        for intent, exc in event.failures:
            span.record_exception(exc, attributes={"airlock.intent.name": intent.name}, timestamp=end)
        if event.failures:
            names = ", ".join(intent.name for intent, _ in event.failures)
            span.set_status(Status(StatusCode.ERROR, f"{len(event.failures)} intent(s) failed: {names}"))
        span.end(end_time=end)
        self._count((i for i in event.intents if id(i) not in failed_ids), "succeeded")
        self._count((i for i, _ in event.failures), "failed")
        duration_attributes = {"airlock.outcome": "failed" if event.failures else "succeeded"}
        self.duration.record(event.duration, duration_attributes)


class OutboxTraceCarrier:
    """Carries the trace context through the outbox (see the module docs); registered by [`install()`][airlock.integrations.otel.install]."""

    name = "otel"

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def capture(self) -> dict[str, str] | None:
        carried: dict[str, str] = {}
        propagate.inject(carried)
        return carried if "traceparent" in carried else None

    @contextmanager
    def restore(self, carried: dict[str, str], task_name: str) -> Iterator[object]:
        context = propagate.extract(carried)
        enqueued_by = trace.get_current_span(context).get_span_context()
        links = [Link(enqueued_by, {"airlock.link": "enqueued_by"})] if enqueued_by.is_valid else []
        with self.tracer.start_as_current_span(
            f"airlock.relay {task_name}",
            context=context,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={"airlock.intent.name": task_name},
        ) as span:
            yield span


def _intent_attributes(intent: Intent, outcome: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"airlock.intent.name": intent.name, "airlock.intent.outcome": outcome}
    if intent.origin is not None:
        attributes["airlock.intent.origin"] = intent.origin
    return attributes


def install(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    origin_in_metrics: bool = False,
) -> OpenTelemetryObserver:
    """Start recording airlock spans and metrics; returns the observer.

    Providers default to the global ones (``opentelemetry.trace`` /
    ``opentelemetry.metrics``). Installing again replaces the previous
    observer, so telemetry is never recorded twice.
    """
    uninstall()
    observer = OpenTelemetryObserver(
        tracer_provider=tracer_provider, meter_provider=meter_provider, origin_in_metrics=origin_in_metrics
    )
    airlock.add_observer(observer)
    _installed.append(observer)
    _carriers.add_carrier(OutboxTraceCarrier(observer.tracer))
    return observer


def uninstall() -> None:
    """Stop recording (no error if [`install()`][airlock.integrations.otel.install] was not called)."""
    while _installed:
        airlock.remove_observer(_installed.pop())
    _carriers.remove_carrier(OutboxTraceCarrier.name)
