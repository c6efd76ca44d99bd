"""``python -m scim changes --tenant T [--after POSITION] [--follow] [--json]``: read a tenant's change feed from
the table, as the HTTP feed does, for operators and scripts that would rather not hold a SCIM credential.

Without ``--follow`` it prints what has settled and, last, ``next: <position>`` (on stderr with ``--json``, so that
stdout stays one CloudEvent per line); with ``--follow`` it keeps reading until interrupted.
"""

import argparse
import asyncio
import json
import os
import sys

from scim.change_feed import MAX_PAGE, page
from scim.changes import POSITION
from scim.errors import ScimError
from scim.settings import DEFAULT_RETENTION_DAYS, ConfigurationError, StorageSettings, parse_number, parse_settle
from scim.store.contract import StoreUnavailable
from scim.store.tables import TableStore

FOLLOW_PAUSE_SECONDS = 1.0
EXIT_UNUSABLE = 2
EXIT_EXPIRED = 3
"""``--after`` is older than the retention: the caller must re-read Users and Groups (a script can tell this apart)."""


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    changes = commands.add_parser("changes", help="print a tenant's change feed (CloudEvents)")
    changes.add_argument("--tenant", required=True)
    changes.add_argument("--after", help="the position to resume from (a page's next)")
    changes.add_argument("--follow", action="store_true", help="keep reading new events until interrupted")
    changes.add_argument("--json", action="store_true", help="one CloudEvent JSON per line")
    changes.add_argument("--limit", type=int, default=MAX_PAGE, help="events per page read")
    changes.add_argument(
        "--settle",
        type=float,
        help="seconds behind the writes (default SCIM_CHANGE_FEED_SETTLE_SECONDS); less is safe only with no writer",
    )


def run(args: argparse.Namespace) -> int:
    storage = StorageSettings.read_environment()
    try:
        storage.check()
        settle = parse_settle(os.environ.get("SCIM_CHANGE_FEED_SETTLE_SECONDS", ""))
        settle = settle if args.settle is None else max(args.settle, 0.0)
        name = "SCIM_CHANGE_FEED_RETENTION_DAYS"
        retention = parse_number(os.environ.get(name, ""), name, DEFAULT_RETENTION_DAYS)
    except ConfigurationError as problem:
        print(f"scim changes: {problem}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.after and not POSITION.fullmatch(args.after):
        print("scim changes: --after must be a position the feed printed", file=sys.stderr)
        return EXIT_UNUSABLE
    store = TableStore.from_settings(storage.connection_string, storage.table_uri, storage.table_prefix)
    try:
        return asyncio.run(_read(store, args, settle, retention))
    except KeyboardInterrupt:
        return 0


async def _read(store: TableStore, args: argparse.Namespace, settle: float, retention: float) -> int:
    after = args.after
    try:
        while True:
            document = await page(store, args.tenant, after, max(1, min(args.limit, MAX_PAGE)), settle, retention)
            for event in document["events"]:
                print(json.dumps(event, ensure_ascii=False) if args.json else _line(event), flush=True)
            after = document["next"]
            if document["events"]:
                continue
            if not args.follow:
                print(f"next: {after}", file=sys.stderr if args.json else sys.stdout)
                return 0
            await asyncio.sleep(FOLLOW_PAUSE_SECONDS)
    except ScimError as expired:
        print(f"scim changes: {expired.detail}", file=sys.stderr)
        return EXIT_EXPIRED
    except StoreUnavailable as failure:
        print(f"scim changes: Table Storage failed: {str(failure.__cause__ or '').splitlines()[:1]}", file=sys.stderr)
        return EXIT_UNUSABLE
    finally:
        await store.close()


def _line(event: dict) -> str:
    data = event["data"]
    detail = data.get("members") or data.get("changedAttributes") or []
    return f"{event['position']} {event['type']} {event['subject']} {' '.join(detail)}".rstrip()
