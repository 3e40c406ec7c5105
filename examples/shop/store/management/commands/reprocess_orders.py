"""Re-run Order.process() on every order; --dry-run shows what it would send."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

import airlock

from ...models import Order


class Command(BaseCommand):
    help = "Reprocess all orders (their emails and shipments go out after the commit)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="change and send nothing; list the effects"
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        # DropAll lets the code run and buffer its intents, and dispatches none.
        with airlock.scope(policy=airlock.DropAll() if dry_run else None) as scope:
            with transaction.atomic():
                for order in Order.objects.order_by("id"):
                    order.process()
                if dry_run:
                    transaction.set_rollback(True)  # the data stays as it was, too
        if dry_run:
            for intent in scope.intents:
                self.stdout.write(f"would run: {intent}")
