"""The Celery integration in a real ``celery -A app worker`` process (prefork and solo pools).

Each worker is started by the test, on the real broker (Redis, RabbitMQ), runs
``integrations.celery_worker.app`` (which calls ``install_global_intercept()``
and configures a ``**kwargs`` scope class, as a project would), and is stopped
after the module. Every assertion is about what the worker did: which
messages it ran, with which ids.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from celery import chain, chord, group

import airlock
from airlock.integrations.celery import install_global_intercept, uninstall_global_intercept
from airlock.integrations.executors.celery import celery_executor
from integrations.celery_worker.process import Worker, running_worker
from services import require_service

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(
    scope="module",
    params=[("redis", "prefork"), ("redis", "solo"), ("amqp", "prefork"), ("amqp", "solo")],
    ids=lambda p: "-".join(p),
)
def worker(request: pytest.FixtureRequest) -> Iterator[Worker]:
    broker_kind, pool = request.param
    results_url = require_service("redis")
    broker_url = results_url if broker_kind == "redis" else require_service("amqp")
    with running_worker(broker_kind, broker_url, results_url, pool) as running:
        yield running


@pytest.fixture(scope="module")
def record_stub(worker: Worker) -> Any:
    """The worker's ``record`` task as this process knows it: a stand-in, never run here."""

    @worker.client.task(name="worker_app.record", shared=False)
    def record(value: Any, tag: str = "run") -> None:
        raise AssertionError("runs in the worker only")

    return record


@pytest.fixture
def intercepted(record_stub: Any) -> Iterator[Any]:
    """This process intercepts too (as a web process of the same project would)."""
    install_global_intercept()
    airlock.configure(executor=celery_executor)
    try:
        yield record_stub
    finally:
        uninstall_global_intercept()


def _key(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "-").rstrip("]")


def _run_parent(worker: Worker, mode: str, key: str) -> None:
    worker.client.send_task("worker_app.parent", args=(mode, key), queue=worker.queue)


def _runs_of(worker: Worker, key: str) -> list[dict[str, Any]]:
    return [run for run in worker.runs() if run["args"][1].startswith(key)]


def test_each_task_run_has_its_own_scope(worker: Worker, request: pytest.FixtureRequest) -> None:
    key = _key(request)
    for mode in ("ok", "raise", "retry"):
        _run_parent(worker, mode, f"{key}-{mode}")
    # Four parent runs end: ok, raise, retry (attempt 0), retry (attempt 1).
    worker.wait_until(lambda: len(_runs_of(worker, key)) == 4, "four parent runs")
    worker.settle()  # anything those runs sent has run by now
    runs = _runs_of(worker, key)

    assert sorted(worker.values(key)) == sorted(
        [
            f"{key}-ok-delay-0",
            f"{key}-ok-enqueue-0",  # success: flushed
            f"{key}-retry-delay-1",
            f"{key}-retry-enqueue-1",  # the retried attempt succeeded
        ]
    )  # fmt: skip  -- nothing from the run that raised, nothing from the attempt that retried
    assert sorted((r["args"][0], r["retries"], r["state"]) for r in runs) == [
        ("ok", 0, "SUCCESS"), ("raise", 0, "FAILURE"), ("retry", 0, "RETRY"), ("retry", 1, "SUCCESS"),
    ]  # fmt: skip
    for run in runs:
        # The configured scope class, built with keyword arguments only.
        assert run["scope"] == "KwargsScope"
        assert run["origin"] == "worker_app.parent"
        assert "policy" not in run["received"]  # no policy configured: none passed
        assert "executor" in run["received"]  # configured: passed


def test_replace_hands_the_work_on(worker: Worker, request: pytest.FixtureRequest) -> None:
    key = _key(request)
    _run_parent(worker, "replace", key)
    worker.wait_until(lambda: f"{key}-replacement" in worker.values(key), "the replacement task")
    worker.settle()
    assert sorted(worker.values(key)) == sorted([f"{key}-delay-0", f"{key}-enqueue-0", f"{key}-replacement"])


def test_a_chain_of_shimmed_tasks_runs_to_its_end(worker: Worker, request: pytest.FixtureRequest) -> None:
    key = _key(request)
    step = "worker_app.shim_step"
    signature = worker.client.signature
    chain(signature(step, args=(1,), kwargs={"key": key}), signature(step, kwargs={"key": key}),
          signature(step, kwargs={"key": key})).apply_async(queue=worker.queue)  # fmt: skip
    worker.wait_until(lambda: len(worker.values(key)) == 3, "three chain steps")
    assert worker.values(key) == [f"{key}-step-1", f"{key}-step-2", f"{key}-step-3"]


def test_a_task_called_as_a_function_inside_a_run(worker: Worker, request: pytest.FixtureRequest) -> None:
    key = _key(request)
    worker.client.send_task("worker_app.direct", args=(key,), queue=worker.queue)
    worker.wait_until(lambda: len(worker.values(key)) == 2, "the direct call and the enqueued task")
    assert [r["value"] for r in worker.records() if r["tag"] == "direct" and r["value"].startswith(key)] == [
        f"{key}-called-directly",  # ran in the parent's process, at the call
        f"{key}-enqueued",  # sent when the parent's run flushed
    ]


def test_canvas_in_a_task_run_is_sent_whole_on_success_and_never_on_failure(
    worker: Worker, request: pytest.FixtureRequest
) -> None:
    key = _key(request)
    worker.client.send_task("worker_app.fan_out", args=(f"{key}-fail", True), queue=worker.queue)
    worker.client.send_task("worker_app.fan_out", args=(f"{key}-ok", False), queue=worker.queue)
    expected = [f"{key}-ok-group-0", f"{key}-ok-group-1", f"{key}-ok-chain-0", f"{key}-ok-chain-1"]
    worker.wait_until(lambda: len(worker.values(f"{key}-ok-")) == 4, "the group and chain members")
    chord_bodies = worker.wait_until(
        lambda: [r for r in worker.records() if r["tag"] == f"{key}-ok-chord"], "the chord body"
    )
    worker.settle()
    assert sorted(worker.values(key)) == sorted(expected)
    assert [sorted(r["value"]) for r in chord_bodies] == [[1, 2]]
    assert not [r for r in worker.records() if r["tag"] == f"{key}-fail-chord"]
    assert [r["state"] for r in worker.runs() if r["args"][0].startswith(key)] == ["FAILURE", "SUCCESS"]


def test_canvas_in_a_scope_is_buffered_then_sent_with_the_ids_it_returned(
    worker: Worker, intercepted: Any, request: pytest.FixtureRequest
) -> None:
    key = _key(request)
    record = intercepted
    with airlock.scope() as scope:
        grouped = group(record.s(f"{key}-group-{i}", tag="canvas") for i in range(2)).apply_async()
        chained = chain(
            record.si(f"{key}-chain-0", tag="canvas"), record.si(f"{key}-chain-1", tag="canvas")
        ).delay()
        signed = record.s(f"{key}-signature", tag="canvas").apply_async(countdown=0)
        header = [worker.client.signature("worker_app.value", args=(n,)) for n in (1, 2)]
        chorded = chord(header, record.s(tag=f"{key}-chord")).apply_async()
        assert len(scope.intents) == 4  # each canvas is one intent
        assert worker.queue_size() == 0  # nothing reached the broker yet
    worker.wait_until(lambda: len(worker.values(key)) == 5, "every group, chain and signature member")
    (body,) = worker.wait_until(
        lambda: [r for r in worker.records() if r["tag"] == f"{key}-chord"], "the chord body"
    )
    assert sorted(body["value"]) == [1, 2]
    assert body["task_id"] == chorded.id
    ids = {r["value"]: r["task_id"] for r in worker.records() if str(r["value"]).startswith(key)}
    assert [ids[f"{key}-group-{i}"] for i in range(2)] == [child.id for child in grouped.results]
    assert ids[f"{key}-chain-1"] == chained.id
    assert ids[f"{key}-chain-0"] == chained.parent.id
    assert ids[f"{key}-signature"] == signed.id


def test_canvas_in_a_discarded_scope_is_never_sent(
    worker: Worker, intercepted: Any, request: pytest.FixtureRequest
) -> None:
    key = _key(request)
    record = intercepted
    with pytest.raises(LookupError):
        with airlock.scope():
            group(record.s(f"{key}-group-{i}") for i in range(2)).apply_async()
            chain(record.si(f"{key}-chain-0"), record.si(f"{key}-chain-1")).apply_async()
            record.delay(f"{key}-delay")
            raise LookupError("the unit of work failed")
    assert worker.queue_size() == 0
    worker.settle()
    assert worker.values(key) == []


def test_intercepted_delay_returns_the_id_the_worker_sees(
    worker: Worker, intercepted: Any, request: pytest.FixtureRequest
) -> None:
    key = _key(request)
    record = intercepted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with airlock.scope() as scope:
            delayed = record.delay(f"{key}-delay")
            applied = record.apply_async(
                (f"{key}-apply",), {"tag": "apply"}, priority=5, max_retries=0, headers={"tenant": "acme"}
            )
            assert len(scope.intents) == 2
    assert any(f"Direct call to {record.name}.delay" in str(w.message) for w in caught)
    assert any(f"Direct call to {record.name}.apply_async" in str(w.message) for w in caught)
    worker.wait_until(lambda: len(worker.values(key)) == 2, "both tasks")
    seen = {r["value"]: r["task_id"] for r in worker.records() if str(r["value"]).startswith(key)}
    assert seen == {f"{key}-delay": delayed.id, f"{key}-apply": applied.id}
    tenants = {r["value"]: r["tenant"] for r in worker.records() if str(r["value"]).startswith(key)}
    assert tenants == {f"{key}-delay": None, f"{key}-apply": "acme"}  # options reached the broker untouched
    assert delayed.id != applied.id
