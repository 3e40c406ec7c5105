"""The public API as users write it, checked by ``mypy --strict`` (never run by pytest).

``assert_type`` pins what mypy infers: if a signature loses or loosens its
types, this file stops type-checking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, assert_type

import airlock
from airlock import Intent, Scope
from airlock.testing import CapturedIntents, assert_enqueued, assert_not_enqueued, capture


def send_email(order_id: int, *, force: bool = False) -> None: ...


async def deliver(order_id: int) -> None: ...


# enqueue returns the Intent; its fields are typed.
with airlock.scope() as s:
    assert_type(s, Scope)
    intent = airlock.enqueue(send_email, 1, force=True)
    assert_type(intent, Intent)
    assert_type(intent.args, tuple[Any, ...])
    assert_type(intent.kwargs, dict[str, Any])
    assert_type(intent.name, str)
    assert_type(intent.origin, str | None)
    assert_type(intent.dispatch_options, dict[str, Any] | None)
    assert_type(intent.passes_local_policies(), bool)
    airlock.enqueue(send_email, 2, _name="receipt", _origin="cli", _dispatch_options={"queue": "low"})
    assert_type(s.intents, list[Intent])
    assert_type(s.own_intents, list[Intent])
    assert_type(s.captured_intents, list[Intent])
    assert_type(s.is_active, bool)
    assert_type(s.parent, Scope | None)
    assert_type(airlock.get_current_scope(), Scope | None)

# Policies, local policies, configuration.
with airlock.scope(policy=airlock.DropAll()):
    with airlock.policy(airlock.BlockTasks({"send_email"}, raise_on_enqueue=True)):
        pass
airlock.scope(airlock.CoalesceDuplicates(names=["rebuild_cache"]))
airlock.scope(airlock.LogOnFlush(logging.getLogger("app")))
airlock.scope(airlock.AssertNoEffects(), executor=lambda i: i.task(*i.args, **i.kwargs), origin="x")
airlock.configure(policy=airlock.AllowAll(), scope_kwargs={})
config = airlock.get_configuration()
assert_type(config["scope_cls"], type[Scope] | None)
airlock.reset_configuration()


class OnlyEmails(airlock.Policy):
    def allows(self, intent: Intent) -> bool:
        return intent.name.startswith("send_")


class Strict:  # a policy by protocol, without subclassing
    def on_enqueue(self, intent: Intent) -> None:
        raise airlock.PolicyViolation(str(intent))

    def allows(self, intent: Intent) -> bool:
        return False


strict: airlock.PolicyProtocol = Strict()
airlock.scope(strict)
airlock.scope(OnlyEmails())


# A custom scope and a custom executor.
class AuditScope(Scope):
    def should_flush(self, error: BaseException | None) -> bool:
        return error is None or isinstance(error, KeyboardInterrupt)

    def before_descendant_flushes(self, exiting_scope: Scope, intents: list[Intent]) -> list[Intent]:
        return [i for i in intents if i.name == "audit"]


def logging_executor(intent: Intent) -> None:
    logging.getLogger("app").info("running %s", intent)
    intent.task(*intent.args, **intent.kwargs)


with airlock.scope(_cls=AuditScope, executor=logging_executor) as audit:
    assert_type(audit, Scope)
audit_scope = AuditScope(executor=logging_executor)
audit_scope.enter()
audit_scope.exit()
if audit_scope.should_flush(None):
    assert_type(audit_scope.flush(), list[Intent])
else:
    assert_type(audit_scope.discard(), list[Intent])


# scoped keeps the decorated function's signature, sync and async.
@airlock.scoped
def handle(order_id: int) -> str:
    airlock.enqueue(send_email, order_id)
    return "ok"


@airlock.scoped(airlock.DropAll())
async def handle_async(order_id: int) -> int:
    airlock.enqueue(deliver, order_id)
    return order_id


assert_type(handle(1), str)
as_callable: Callable[[int], Coroutine[Any, Any, int]] = handle_async


async def main() -> None:
    assert_type(await handle_async(1), int)
    async with airlock.scope() as scope:
        assert_type(scope, Scope)
        airlock.enqueue(deliver, 1)
    manual = Scope()
    assert_type(await manual.aenter(), Scope)
    manual.exit()
    assert_type(await manual.aflush(), list[Intent])


asyncio.run(main())

# Errors.
try:
    pass
except airlock.DispatchError as error:
    for failed_intent, exception in error.failures:
        assert_type(failed_intent, Intent)
        assert_type(exception, Exception)
except airlock.AirlockError:
    pass


# Observers.
class Counter:
    def __init__(self) -> None:
        self.ended = 0

    def on_scope_end(self, event: airlock.ScopeEndEvent) -> None:
        assert_type(event.outcome, Literal["flushed", "discarded"])
        assert_type(event.dispatched, tuple[Intent, ...])
        self.ended += 1

    def on_dispatch(self, event: airlock.DispatchEvent) -> None:
        assert_type(event.duration, float)
        assert_type(event.scope_id, int)


counter = Counter()
airlock.add_observer(counter)
airlock.remove_observer(counter)

# Threads.
wrapped = airlock.carry_context(handle)
assert_type(wrapped(3), str)

# Testing helpers.
with capture() as captured:
    assert_type(captured, CapturedIntents)
    airlock.enqueue(send_email, 1)
assert_type(captured[0], Intent)
assert_type(captured.names, list[str])
assert_type(assert_enqueued(captured, send_email, 1), list[Intent])
assert_enqueued(captured, "send_email", _count=1)
assert_not_enqueued(captured, deliver)
