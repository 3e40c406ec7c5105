"""Executors: HOW intents run. Each is a plain function taking an ``Intent``.

Every built-in executor is an [`airlock.Executor`][airlock.Executor] (the runtime-checkable
protocol ``__call__(intent) -> None``); wrapping one (retries, routing) is
ordinary function composition. The executors for task queues recognise a
backend's task by the method they call on it (``apply_async``,
``send_with_options``, ``schedule``, ``enqueue``), so subclasses, proxies and
test doubles work like the real task; any other callable is called
in-process, its dispatch options ignored. Dispatch options reach the backend
untouched.

An executor may also offer ``validate(intent)``: airlock calls it at enqueue
time so that an intent the backend could never send fails at the line that
made it, not after the transaction committed.
"""
