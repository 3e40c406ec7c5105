"""The in-process executor, under its integration name.

Compatibility location: the executor belongs to the core as
``airlock._execute`` (the default executor); ``sync_executor`` is the same
function, kept importable from here.
"""

from __future__ import annotations

from ..._dispatch import execute as sync_executor

__all__ = ["sync_executor"]
