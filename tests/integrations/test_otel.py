"""OpenTelemetry spans and metrics, recorded by the real SDK with in-memory exporters."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import airlock
from airlock.integrations import otel


def send_email(order_id: int) -> None:
    pass


def charge(order_id: int) -> None:
    raise ConnectionError(f"gateway down for {order_id}")


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def counts(self) -> dict[tuple[str, str], int]:
        return {
            (p.attributes["airlock.intent.name"], p.attributes["airlock.intent.outcome"]): p.value
            for p in self.points("airlock.intents")
        }


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    t = Telemetry()
    origin_in_metrics = getattr(request, "param", False)
    otel.install(
        tracer_provider=t.tracer_provider,
        meter_provider=t.meter_provider,
        origin_in_metrics=origin_in_metrics,
    )
    try:
        yield t
    finally:
        otel.uninstall()


def test_flush_records_scope_and_dispatch_spans(telemetry: Telemetry) -> None:
    with airlock.scope(origin="POST /orders/42/pay") as scope:
        airlock.enqueue(send_email, 42)
        with airlock.policy(airlock.BlockTasks({"send_email"})):
            airlock.enqueue(send_email, 43)
    (scope_span,) = telemetry.finished("airlock.scope")
    assert dict(scope_span.attributes) == {
        "airlock.scope.id": scope.id,
        "airlock.scope.outcome": "flushed",
        "airlock.scope.class": "Scope",
        "airlock.origin": "POST /orders/42/pay",
        "airlock.intents.dispatched": 1,
        "airlock.intents.dispatched.names": ("send_email",),
        "airlock.intents.dropped": 1,
        "airlock.intents.dropped.names": ("send_email",),
        "airlock.intents.captured": 0,
    }
    assert [(e.name, dict(e.attributes)) for e in scope_span.events] == [
        (
            "airlock.intent",
            {
                "airlock.intent.name": "send_email",
                "airlock.intent.outcome": "dispatched",
                "airlock.intent.origin": "POST /orders/42/pay",
            },
        ),
        (
            "airlock.intent",
            {
                "airlock.intent.name": "send_email",
                "airlock.intent.outcome": "dropped",
                "airlock.intent.origin": "POST /orders/42/pay",
            },
        ),
    ]
    (dispatch_span,) = telemetry.finished("airlock.dispatch")
    assert dispatch_span.attributes["airlock.scope.id"] == scope.id
    assert dispatch_span.attributes["airlock.origin"] == "POST /orders/42/pay"
    assert dispatch_span.attributes["airlock.intents.names"] == ("send_email",)
    assert dispatch_span.status.status_code == StatusCode.UNSET
    assert dispatch_span.end_time >= dispatch_span.start_time
    assert telemetry.counts() == {
        ("send_email", "dispatched"): 1,
        ("send_email", "dropped"): 1,
        ("send_email", "succeeded"): 1,
    }
    (duration,) = telemetry.points("airlock.dispatch.duration")
    assert duration.count == 1 and duration.attributes == {"airlock.outcome": "succeeded"}


def test_failures_are_recorded_as_errors(telemetry: Telemetry) -> None:
    with pytest.raises(airlock.DispatchError):
        with airlock.scope(origin="task:settle"):
            airlock.enqueue(charge, 1)
            airlock.enqueue(send_email, 1)
    (span,) = telemetry.finished("airlock.dispatch")
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "1 intent(s) failed: charge"
    outcomes = [
        (e.attributes.get("airlock.intent.name"), e.attributes.get("airlock.intent.outcome"))
        for e in span.events
        if e.name == "airlock.intent"
    ]
    assert outcomes == [("charge", "failed"), ("send_email", "succeeded")]
    (exception,) = [e for e in span.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "ConnectionError"
    assert exception.attributes["airlock.intent.name"] == "charge"
    assert telemetry.counts()[("charge", "failed")] == 1
    assert telemetry.counts()[("send_email", "succeeded")] == 1


def test_discard_and_capture(telemetry: Telemetry) -> None:
    with airlock.scope(policy=airlock.DropAll()) as outer:
        with airlock.scope() as inner:
            airlock.enqueue(send_email, 1)
        with pytest.raises(KeyError), airlock.scope() as failed:
            airlock.enqueue(send_email, 2)
            raise KeyError("x")
    by_id = {s.attributes["airlock.scope.id"]: s for s in telemetry.finished("airlock.scope")}
    assert by_id[inner.id].attributes["airlock.intents.captured"] == 1
    assert by_id[failed.id].attributes["airlock.scope.outcome"] == "discarded"
    assert by_id[failed.id].attributes["airlock.intents.dropped"] == 1
    assert by_id[outer.id].attributes["airlock.intents.dropped"] == 1
    assert telemetry.finished("airlock.dispatch") == []
    assert telemetry.counts() == {("send_email", "captured"): 1, ("send_email", "dropped"): 2}


def test_spans_are_children_of_the_current_span(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /checkout") as request_span:
        with airlock.scope():
            airlock.enqueue(send_email, 1)
    for name in ("airlock.scope", "airlock.dispatch"):
        (span,) = telemetry.finished(name)
        assert span.parent is not None and span.parent.span_id == request_span.get_span_context().span_id
        assert span.context.trace_id == request_span.get_span_context().trace_id


@pytest.mark.parametrize("telemetry", [True], indirect=True)
def test_origin_in_metrics_on_request(telemetry: Telemetry) -> None:
    with airlock.scope(origin="GET /"):
        airlock.enqueue(send_email, 1)
    origins = {p.attributes.get("airlock.origin") for p in telemetry.points("airlock.intents")}
    assert origins == {"GET /"}


def test_metrics_leave_out_origins_by_default(telemetry: Telemetry) -> None:
    with airlock.scope(origin="GET /orders/1"):
        airlock.enqueue(send_email, 1)
    assert all("airlock.origin" not in p.attributes for p in telemetry.points("airlock.intents"))


def test_install_replaces_and_uninstall_stops(telemetry: Telemetry) -> None:
    second = Telemetry()
    otel.install(tracer_provider=second.tracer_provider, meter_provider=second.meter_provider)
    with airlock.scope():
        airlock.enqueue(send_email, 1)
    assert telemetry.spans.get_finished_spans() == ()
    assert len(second.spans.get_finished_spans()) == 2
    otel.uninstall()
    with airlock.scope():
        airlock.enqueue(send_email, 2)
    assert len(second.spans.get_finished_spans()) == 2


def test_core_import_does_not_load_opentelemetry() -> None:
    code = (
        "import sys, airlock, airlock.testing; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


_task_tracer: Any = None  # the test's tracer, while the relay runs


def relayed_task(order_id: int) -> None:
    """Relayed from the outbox: records a span of its own, as an instrumented task body would."""
    with _task_tracer.start_as_current_span("task body"):
        pass


def test_trace_context_travels_through_the_outbox(telemetry: Telemetry, tmp_path: Any) -> None:
    global _task_tracer
    from sqlalchemy.orm import Session

    from airlock.outbox import OutboxScope, Relay, SQLAlchemyStorage

    _task_tracer = telemetry.tracer_provider.get_tracer("task")
    storage = SQLAlchemyStorage.from_url(f"sqlite:///{tmp_path / 'outbox.db'}")
    storage.create_table()
    app_tracer = telemetry.tracer_provider.get_tracer("app")
    try:
        with app_tracer.start_as_current_span("POST /orders") as request_span:
            with Session(storage.engine) as session, session.begin():
                with airlock.scope(_cls=OutboxScope, session=session):
                    airlock.enqueue(relayed_task, 42)
        with Session(storage.engine) as session, session.begin():
            with airlock.scope(_cls=OutboxScope, session=session):
                airlock.enqueue(relayed_task, 43)  # no span current: nothing carried
        assert trace.get_current_span() is trace.INVALID_SPAN  # the relay runs outside the request
        Relay(storage, idle_max=0.05).run(until_idle=True, handle_signals=False)
    finally:
        _task_tracer = None
        storage.drop_table()
        storage.close()
    request = request_span.get_span_context()
    relay_spans = telemetry.finished("airlock.relay relayed_task")
    assert len(relay_spans) == 1
    (relay_span,) = relay_spans
    assert relay_span.kind == trace.SpanKind.CONSUMER
    assert relay_span.context.trace_id == request.trace_id and relay_span.parent.span_id == request.span_id
    assert [(link.context.trace_id, link.context.span_id) for link in relay_span.links] == [
        (request.trace_id, request.span_id)
    ]
    bodies = telemetry.finished("task body")
    assert len(bodies) == 2  # both rows ran
    traced = [b for b in bodies if b.parent is not None]
    assert len(traced) == 1 and traced[0].parent.span_id == relay_span.context.span_id
    assert traced[0].context.trace_id == request.trace_id
