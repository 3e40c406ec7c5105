"""Executors: HOW intents run. Each is a plain callable taking an ``Intent``.

An executor may also offer ``validate(intent)``: airlock calls it at enqueue
time so that an intent the backend could never send fails at the line that
made it, not after the transaction committed.
"""
