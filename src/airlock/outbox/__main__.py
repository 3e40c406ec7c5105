"""``python -m airlock.outbox``: run a relay, show counts, create the table, prune, retry.

::

    python -m airlock.outbox init   --url postgresql://...          # create the table
    python -m airlock.outbox relay  --url ... --executor myapp.executors:celery
    python -m airlock.outbox status --url ... [--json]
    python -m airlock.outbox prune  --url ... --older-than 604800
    python -m airlock.outbox retry  --url ... ROW_ID...
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _import(path: str) -> Any:
    """``"pkg.mod:attr"`` or ``"pkg.mod.attr"`` -> the object."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise argparse.ArgumentTypeError(f"not a dotted path to an object: {path!r}")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot import {path!r}: {exc}") from None
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airlock.outbox", description="airlock durable outbox")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="SQLAlchemy database URL of the outbox")
        p.add_argument("--table", default=None, help="outbox table name (default airlock_outbox)")

    relay = sub.add_parser("relay", help="dispatch committed rows through an executor until stopped")
    common(relay)
    relay.add_argument(
        "--executor", type=_import, default=None, help="dotted path to the executor (default: sync)"
    )
    relay.add_argument("--batch-size", type=int, default=100)
    relay.add_argument("--lease", type=float, default=60.0, help="seconds a claimed batch stays leased")
    relay.add_argument("--max-attempts", type=int, default=10, help="attempts before a row is dead")
    relay.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds")
    relay.add_argument("--backoff-cap", type=float, default=300.0, help="longest retry delay in seconds")
    relay.add_argument("--idle-max", type=float, default=5.0, help="longest poll interval when idle")
    relay.add_argument(
        "--retention",
        type=float,
        default=7 * 24 * 3600.0,
        help="prune done rows older than this (seconds; 0: never)",
    )
    relay.add_argument(
        "--dead-retention",
        type=float,
        default=0,
        help="prune dead rows dead longer than this (seconds; 0: keep)",
    )
    relay.add_argument("--until-idle", action="store_true", help="exit once nothing is left to claim")
    relay.add_argument("--log-level", default="INFO")

    status = sub.add_parser("status", help="counts: pending, in flight, failed, dead, done, oldest age")
    common(status)
    status.add_argument("--json", action="store_true", help="print JSON")

    init = sub.add_parser("init", help="create the outbox table if missing")
    common(init)

    prune = sub.add_parser("prune", help="delete done rows older than --older-than seconds")
    common(prune)
    prune.add_argument("--older-than", type=float, required=True)
    prune.add_argument("--dead-older-than", type=float, default=None, help="also delete rows dead this long")

    retry = sub.add_parser("retry", help="put dead rows back to pending")
    common(retry)
    retry.add_argument("ids", nargs="+")
    return parser


def _storage(parser: argparse.ArgumentParser, url: str, table: str | None) -> Any:
    try:
        from ._storage import MissingDriverError, SQLAlchemyStorage
    except ImportError as exc:  # SQLAlchemy itself is missing
        parser.exit(
            2,
            f'{parser.prog}: error: the outbox CLI needs SQLAlchemy ({exc}): pip install "airlock-py[sqlalchemy]"\n',
        )
    try:
        return SQLAlchemyStorage.from_url(url, table)
    except MissingDriverError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except Exception as exc:  # a malformed URL, an unknown dialect
        parser.exit(2, f"{parser.prog}: error: --url {url!r}: {exc}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from ._relay import Relay

    storage = _storage(parser, args.url, args.table)
    try:
        if args.command == "init":
            storage.create_table()
            print(f"outbox table {storage.table.name!r} ready")
        elif args.command == "status":
            counts = storage.status().as_dict()
            if args.json:
                print(json.dumps(counts))
            else:
                for key, value in counts.items():
                    print(f"{key:>10}: {value if value is not None else '-'}")
        elif args.command == "prune":
            print(f"pruned {storage.prune(args.older_than, args.dead_older_than)} done/dead row(s)")
        elif args.command == "retry":
            print(f"{storage.retry(list(args.ids))} row(s) back to pending")
        else:
            logging.basicConfig(
                level=args.log_level.upper(),
                format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
            )
            relay = Relay(
                storage,
                args.executor,
                batch_size=args.batch_size,
                lease=args.lease,
                max_attempts=args.max_attempts,
                backoff=args.backoff,
                backoff_cap=args.backoff_cap,
                idle_max=args.idle_max,
                retention=args.retention or None,
                dead_retention=args.dead_retention or None,
            )
            relay.run(until_idle=args.until_idle)
    finally:
        storage.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
