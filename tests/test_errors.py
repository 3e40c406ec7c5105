"""SPEC §2.7 (dispatch failures, logging) and §2.8 (the error hierarchy)."""

from __future__ import annotations

import gc
import logging
import warnings

import pytest

import airlock
from core_helpers import Recorder


class SMTPError(Exception):
    pass


def test_hierarchy() -> None:
    assert issubclass(airlock.UsageError, airlock.AirlockError)
    assert issubclass(airlock.NoScopeError, airlock.UsageError)
    assert issubclass(airlock.PolicyEnqueueError, airlock.UsageError)
    assert issubclass(airlock.ScopeStateError, airlock.AirlockError)
    assert not issubclass(airlock.ScopeStateError, airlock.UsageError)
    assert issubclass(airlock.PolicyViolation, airlock.AirlockError)
    assert issubclass(airlock.DispatchError, airlock.AirlockError)
    assert issubclass(airlock.DispatchError, ExceptionGroup)
    assert issubclass(airlock.AirlockError, Exception)


def test_a_failing_intent_does_not_cancel_the_others() -> None:
    rec = Recorder()
    smtp = SMTPError("mail server down")
    value = ValueError("bad")
    with pytest.raises(airlock.DispatchError) as info:
        with airlock.scope() as s:
            airlock.enqueue(rec.task("first"))
            bad_mail = airlock.enqueue(rec.failing("send_email", smtp))
            airlock.enqueue(rec.task("middle"))
            bad_value = airlock.enqueue(rec.failing("charge", value))
            airlock.enqueue(rec.task("last"))
    assert rec.names == ["first", "send_email", "middle", "charge", "last"]  # all attempted, in order
    err = info.value
    assert err.failures == ((bad_mail, smtp), (bad_value, value))
    assert list(err.exceptions) == [smtp, value]
    assert isinstance(err, airlock.AirlockError)
    assert "send_email" in str(err) and "charge" in str(err)
    assert s.is_flushed  # flushed either way


def test_except_star_matches_the_underlying_exception() -> None:
    rec = Recorder()
    smtp = SMTPError("down")
    caught: list[BaseException] = []
    try:
        with airlock.scope():
            airlock.enqueue(rec.failing("send_email", smtp))
            airlock.enqueue(rec.failing("other", KeyError("k")))
    except* SMTPError as group:
        caught.append(group)
    except* KeyError as group:
        caught.append(group)
    assert len(caught) == 2
    mail_group, key_group = caught
    assert isinstance(mail_group, airlock.DispatchError)
    assert list(mail_group.exceptions) == [smtp]
    assert [(i.name, e) for i, e in mail_group.failures] == [("send_email", smtp)]
    assert isinstance(key_group, airlock.DispatchError)
    assert [i.name for i, _ in key_group.failures] == ["other"]


def test_split_keeps_failures_paired() -> None:
    a, b = SMTPError(), KeyError()
    i1, i2 = airlock.Intent(print), airlock.Intent(len)
    err = airlock.DispatchError("2 failed", [(i1, a), (i2, b)])
    match, rest = err.split(SMTPError)
    assert isinstance(match, airlock.DispatchError) and match.failures == ((i1, a),)
    assert isinstance(rest, airlock.DispatchError) and rest.failures == ((i2, b),)


def test_each_failure_is_logged_with_its_intent(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    caplog.set_level(logging.DEBUG, logger="airlock")
    with pytest.raises(airlock.DispatchError):
        with airlock.scope():
            one = airlock.enqueue(rec.failing("one", SMTPError("x")), 1)
            airlock.enqueue(rec.task("fine"))
            two = airlock.enqueue(rec.failing("two", ValueError("y")))
    errors = [r for r in caplog.records if r.name == "airlock" and r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "one(1)" in errors[0].getMessage() and "two()" in errors[1].getMessage()
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], SMTPError)
    assert errors[0].airlock_intent is one
    assert errors[1].airlock_intent is two


def _scope_end_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "airlock" and r.levelno == logging.DEBUG and hasattr(r, "airlock_outcome")
    ]


def test_debug_record_per_flush_and_discard(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airlock")
    with airlock.scope(airlock.BlockTasks({"b"})):
        airlock.enqueue(print, _name="a")
        airlock.enqueue(print, _name="b")
        airlock.enqueue(print, _name="c")
    with pytest.raises(RuntimeError):
        with airlock.scope():
            airlock.enqueue(print, _name="x")
            raise RuntimeError
    flushed, discarded = _scope_end_records(caplog)
    assert flushed.airlock_outcome == "flushed"  # type: ignore[attr-defined]
    assert "2 dispatched, 1 dropped, 0 captured" in flushed.getMessage()
    assert flushed.airlock_dispatched == ["a", "c"] and flushed.airlock_dropped == ["b"]  # type: ignore[attr-defined]
    assert discarded.airlock_outcome == "discarded"  # type: ignore[attr-defined]
    assert "0 dispatched, 1 dropped" in discarded.getMessage()
    assert discarded.airlock_dropped == ["x"]  # type: ignore[attr-defined]


def test_nested_flush_debug_record_counts_captured(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airlock")
    with airlock.scope():
        airlock.enqueue(print, _name="own")
        with airlock.scope():
            airlock.enqueue(print, _name="inner")
    inner, outer = (r.getMessage() for r in _scope_end_records(caplog))
    assert "0 dispatched, 0 dropped, 1 captured" in inner
    assert "2 dispatched, 0 dropped, 0 captured" in outer


def test_debug_record_per_dispatch_names_the_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airlock")
    rec = Recorder()
    with pytest.raises(airlock.DispatchError):
        with airlock.scope():
            airlock.enqueue(rec.task("ok"))
            airlock.enqueue(rec.failing("bad", ValueError()))
    [ran] = [r for r in caplog.records if hasattr(r, "airlock_failed")]
    assert ran.airlock_intents == ["ok", "bad"] and ran.airlock_failed == ["bad"]  # type: ignore[attr-defined]


def test_no_debug_records_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airlock")
    with airlock.scope():
        airlock.enqueue(print, _name="a")
    assert [r for r in caplog.records if r.name == "airlock"] == []


def test_dispatch_error_from_a_custom_dispatch_all_via_raise_failures() -> None:
    class Batching(airlock.Scope):
        def _dispatch_all(self, intents: list[airlock.Intent]) -> None:
            failures: list[tuple[airlock.Intent, Exception]] = [(i, RuntimeError(i.name)) for i in intents]
            self._raise_failures(failures)

    with pytest.raises(airlock.DispatchError) as info:
        with Batching():
            airlock.enqueue(print, _name="a")
    assert [i.name for i, _ in info.value.failures] == ["a"]


def test_executor_returning_an_awaitable_in_a_sync_scope_is_reported_not_lost() -> None:
    started: list[str] = []

    async def notify() -> None:
        started.append("ran")  # a closed coroutine never gets here

    def async_executor(intent: airlock.Intent) -> object:
        return notify()

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(airlock.DispatchError) as info:
            with airlock.Scope(executor=async_executor):
                airlock.enqueue(print, _name="t")
        gc.collect()
    [(intent, exc)] = info.value.failures
    assert intent.name == "t" and isinstance(exc, airlock.UsageError)
    assert "async with airlock.scope()" in str(exc)
    # The coroutine was closed: no "coroutine ... was never awaited" warning.
    assert [w for w in seen if issubclass(w.category, RuntimeWarning)] == []
    assert started == []


def test_awaitable_without_close_in_a_sync_scope_is_reported() -> None:
    class Pending:
        """An awaitable that is not a coroutine (no close())."""

        def __await__(self):  # type: ignore[no-untyped-def]
            yield

    with pytest.raises(airlock.DispatchError) as info:
        with airlock.Scope(executor=lambda intent: Pending()):
            airlock.enqueue(print, _name="t")
    [(intent, exc)] = info.value.failures
    assert intent.name == "t" and isinstance(exc, airlock.UsageError)
