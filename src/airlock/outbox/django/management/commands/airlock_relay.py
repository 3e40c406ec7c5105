"""``manage.py airlock_relay``: dispatch the outbox rows of a Django database."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from airlock import get_configuration
from airlock.outbox._relay import Relay
from airlock.outbox.django._storage import DjangoStorage


class Command(BaseCommand):
    help = "Dispatch committed airlock outbox rows through the executor (until SIGTERM/SIGINT)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="database alias of the outbox")
        parser.add_argument("--executor", default=None, help="dotted path (default: the configured executor)")
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--lease", type=float, default=60.0)
        parser.add_argument("--max-attempts", type=int, default=10)
        parser.add_argument("--backoff", type=float, default=1.0)
        parser.add_argument("--backoff-cap", type=float, default=300.0)
        parser.add_argument("--idle-max", type=float, default=5.0)
        parser.add_argument(
            "--retention", type=float, default=7 * 24 * 3600.0, help="seconds; 0: never prune"
        )
        parser.add_argument(
            "--dead-retention",
            type=float,
            default=0,
            help="seconds; prune dead rows dead this long (0: keep)",
        )
        parser.add_argument("--until-idle", action="store_true", help="exit once nothing is left to claim")
        parser.add_argument(
            "--log-level",
            default="INFO",
            help="level of the relay's log on stderr, unless LOGGING configures it",
        )
        parser.add_argument("--status", action="store_true", help="print the counts and exit")
        parser.add_argument("--json", action="store_true", help="with --status: print JSON")
        parser.add_argument(
            "--prune", type=float, default=None, metavar="SECONDS", help="prune done rows and exit"
        )
        parser.add_argument(
            "--prune-dead",
            type=float,
            default=None,
            metavar="SECONDS",
            help="with --prune: also prune dead rows",
        )
        parser.add_argument(
            "--retry", nargs="+", default=None, metavar="ID", help="put dead rows back and exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            storage = DjangoStorage(options["database"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["status"]:
            counts = storage.status().as_dict()
            if options["json"]:
                self.stdout.write(json.dumps(counts))
            else:
                for key, value in counts.items():
                    self.stdout.write(f"{key:>10}: {value if value is not None else '-'}")
            return
        if options["prune"] is not None:
            self.stdout.write(
                f"pruned {storage.prune(options['prune'], options['prune_dead'])} done/dead row(s)"
            )
            return
        if options["retry"]:
            self.stdout.write(f"{storage.retry(options['retry'])} row(s) back to pending")
            return
        self._log_to_stderr(options["log_level"])
        executor = get_configuration()["executor"]
        if options["executor"]:
            try:
                executor = import_string(options["executor"])
            except ImportError as exc:
                raise CommandError(f"--executor: cannot import {options['executor']!r}: {exc}") from None
        try:
            relay = Relay(
                storage,
                executor,
                batch_size=options["batch_size"],
                lease=options["lease"],
                max_attempts=options["max_attempts"],
                backoff=options["backoff"],
                backoff_cap=options["backoff_cap"],
                idle_max=options["idle_max"],
                retention=options["retention"] or None,
                dead_retention=options["dead_retention"] or None,
            )
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        try:
            stats = relay.run(until_idle=options["until_idle"])
        finally:
            storage.close()
        self.stdout.write(f"relayed {stats.dispatched} row(s): {stats.failed} failed, {stats.dead} dead")

    def _log_to_stderr(self, level: str) -> None:
        """Show the relay's log (start, stats, failures, outages) unless the project's LOGGING routes it."""
        log = logging.getLogger("airlock.outbox")
        node: logging.Logger | None = log
        while node is not None:  # a handler of the project's own (airlock's NullHandler does not count)
            if any(not isinstance(h, logging.NullHandler) for h in node.handlers):
                return
            node = node.parent if node.propagate else None
        handler = logging.StreamHandler(self.stderr._out)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(level.upper())
