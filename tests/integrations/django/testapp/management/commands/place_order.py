"""A management command in the documented shape: one scope per run, --dry-run drops."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

import airlock

from ...effects import record
from ...models import Order


class Command(BaseCommand):
    help = "Place an order; its effects run after the commit (or are only listed with --dry-run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("label")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, label: str, dry_run: bool, **options: Any) -> None:
        with airlock.scope(policy=airlock.DropAll() if dry_run else None) as scope:
            with transaction.atomic():
                Order.objects.create(label=label)
                airlock.enqueue(record, f"email {label}")
                airlock.enqueue(record, f"warehouse {label}")
        if dry_run:
            for intent in scope.intents:
                self.stdout.write(f"would run: {intent}")
