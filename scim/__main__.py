"""``python -m scim serve``: run the endpoint locally, optionally with its own Azurite.
``python -m scim check``: find (and with ``--repair``, fix) stored rows that disagree, safely while serving.
``python -m scim entra …``: connect Entra provisioning through Microsoft Graph (the admin side, scim/admin/entra).
``python -m scim tenants``: tenants and their stored credentials (:mod:`scim.admin.tenants_cli`).
``python -m scim changes``: a tenant's change feed (:mod:`scim.admin.changes_cli`)."""

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from scim.local import azurite
from scim.local.host import REPO_ROOT, load_local_settings, serve
from scim.settings import ConfigurationError, Settings, StorageSettings

if TYPE_CHECKING:
    from scim.consistency import Report
    from scim.indexes import IndexedAttribute
    from scim.store.tables import TableStore

EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scim")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the functions of function_app.py over HTTP")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=7071)
    run.add_argument("--azurite", action="store_true", help="start Azurite (data in .azurite/) for this run")
    run.add_argument("--azurite-port", type=int, default=10002)
    run.add_argument("--azurite-queue-port", type=int, default=azurite.DEFAULT_QUEUE_PORT)
    check = commands.add_parser("check", help="check the stored rows' consistency (exit 1 if findings remain)")
    check.add_argument("--tenant", action="append", help="check only this tenant (repeatable; default: all)")
    check.add_argument("--repair", action="store_true", help="repair what is safe to repair, conditionally")
    check.add_argument("--json", action="store_true", help="print the report as one JSON document")
    rebuild = commands.add_parser("reindex", help="build the rows of SCIM_INDEXED_ATTRIBUTES, online and resumably")
    rebuild.add_argument("--tenant", action="append", help="only this tenant (repeatable; default: all)")
    commands.add_parser("entra", help="connect Entra provisioning through Microsoft Graph (python -m scim entra -h)")
    if sys.argv[1:2] == ["entra"]:  # the admin side loads msal and requests only when asked for
        from scim.admin.entra.cli import main as entra

        raise SystemExit(entra(sys.argv[2:]))
    from scim.admin import tenants_cli  # the admin side: only this entry point loads it

    tenants_cli.add_parser(commands)
    from scim.admin import changes_cli

    changes_cli.add_parser(commands)
    args = parser.parse_args()
    load_local_settings()
    if args.command == "tenants":
        raise SystemExit(tenants_cli.run(args))
    if args.command == "changes":
        raise SystemExit(changes_cli.run(args))
    if args.command == "check":
        raise SystemExit(_check(args.tenant, args.repair, args.json))
    if args.command == "reindex":
        raise SystemExit(_reindex(args.tenant))
    _serve(args)


def _serve(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    processes = []
    if args.azurite:
        connection = azurite.connection_string(args.azurite_port, queue_port=args.azurite_queue_port)
        os.environ["SCIM_STORAGE_CONNECTION_STRING"] = connection
    try:
        Settings.from_environment()
    except ConfigurationError as problem:
        raise SystemExit(f"Refusing to serve: {problem}. See local.settings.sample.json.") from problem
    if not _port_free(args.host, args.port):
        raise SystemExit(
            f"Port {args.port} on {args.host} is already in use (another `python -m scim serve`?): "
            "stop that one, or pass --port with a free port."
        )
    if args.azurite:
        taken = [port for port in (args.azurite_port, args.azurite_queue_port) if not _port_free("127.0.0.1", port)]
        if taken:
            raise SystemExit(
                f"Refusing to start a second Azurite: port {taken[0]} is in use, probably by another "
                "`scim serve --azurite`, and two Azurites must not share .azurite/. To serve that one's data on "
                "another port, run without --azurite and with SCIM_STORAGE_CONNECTION_STRING pointing at it "
                "(UseDevelopmentStorage=true for port 10002)."
            )
        processes.append(azurite.start(args.azurite_port, REPO_ROOT / ".azurite"))
        try:
            processes.append(azurite.start_queue(args.azurite_queue_port, REPO_ROOT / ".azurite"))
        except (OSError, RuntimeError):
            azurite.stop(processes[0])
            raise
        print(
            f"Storage: Azurite tables on 127.0.0.1:{args.azurite_port}, queues on {args.azurite_queue_port}, "
            "data in .azurite/ (stopped on exit)"
        )
    print(f"SCIM endpoint: http://{args.host}:{args.port}/scim/v2")
    try:
        serve(args.host, args.port)
    finally:
        for process in processes:
            azurite.stop(process)


def _port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now; checked before anything starts, so a clash is one line."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _check(tenants: list[str] | None, repair: bool, as_json: bool) -> int:
    """Exit 0 when clean or everything found was repaired, 1 when findings remain, 2 when storage is unusable.
    The check machinery is imported here, so that ``serve`` does not pay for it."""
    from scim.consistency import check
    from scim.store.contract import StoreUnavailable
    from scim.store.tables import TableStore

    storage = StorageSettings.read_environment()
    try:
        storage.check()
    except ConfigurationError as problem:
        return _unusable(str(problem))
    table_prefix = storage.table_prefix
    try:
        indexed = _indexed_attributes()
        stuck = _stuck_minutes()
        store = TableStore.from_settings(storage.connection_string, storage.table_uri, table_prefix)
    except ConfigurationError as problem:
        return _unusable(str(problem))
    except ValueError as problem:  # the SDK's word for a malformed connection string
        return _unusable(f"SCIM_STORAGE_CONNECTION_STRING is not usable: {_first_line(problem)}")
    try:
        report = asyncio.run(_closing(store, check(store, tenants, repair, indexed, stuck)))
    except StoreUnavailable as failure:
        return _unusable(f"Table Storage failed ({table_prefix}Resources): {_first_line(failure.__cause__)}")
    _print_report(report, as_json)
    return 0 if all(finding.repaired for finding in report.findings) else EXIT_FINDINGS


STUCK_PUBLISHER_MINUTES = 10.0


def _stuck_minutes() -> float | None:
    """Whether ``check`` looks for a stuck change-feed publisher: only where one runs (feed on, queue not off)."""
    from scim.settings import parse_queue_name, parse_switch

    feed_on = parse_switch(os.environ.get("SCIM_CHANGE_FEED", ""), "SCIM_CHANGE_FEED")
    queue = parse_queue_name(os.environ.get("SCIM_CHANGE_FEED_QUEUE", ""))
    return STUCK_PUBLISHER_MINUTES if feed_on and queue else None


def _indexed_attributes() -> "tuple[IndexedAttribute, ...]":
    from scim import indexes

    return indexes.parse(os.environ.get("SCIM_INDEXED_ATTRIBUTES", ""))


def _reindex(tenants: list[str] | None) -> int:
    """Exit 0 when every listed attribute's index is complete for the tenants, 2 when storage is unusable."""
    from scim.reindex import reindex
    from scim.store.contract import StoreUnavailable
    from scim.store.tables import TableStore

    storage = StorageSettings.read_environment()
    try:
        storage.check()
        indexed = _indexed_attributes()
        store = TableStore.from_settings(storage.connection_string, storage.table_uri, storage.table_prefix)
    except ConfigurationError as problem:
        return _unusable(str(problem))
    except ValueError as problem:
        return _unusable(f"SCIM_STORAGE_CONNECTION_STRING is not usable: {_first_line(problem)}")
    if not indexed:
        print("SCIM_INDEXED_ATTRIBUTES is empty: nothing to build")
        return 0
    started = time.monotonic()
    try:
        report = asyncio.run(_closing(store, reindex(store, indexed, tenants)))
    except StoreUnavailable as failure:
        return _unusable(f"Table Storage failed: {_first_line(failure.__cause__)}; run it again to resume")
    seconds = time.monotonic() - started
    for label in report.completed:
        print(f"{label}: complete")
    for label in report.already_ready:
        print(f"{label}: was already complete")
    rate = report.resources_read / seconds if seconds else 0.0
    print(
        f"{report.resources_read} resources read, {report.rows_inserted} rows inserted, "
        f"{report.rows_withdrawn} withdrawn, {seconds:.1f} s ({rate:.0f} resources/s)"
    )
    return 0


async def _closing(store: "TableStore", work: Awaitable[Any]) -> Any:
    try:
        return await work
    finally:
        await store.close()


def _print_report(report: "Report", as_json: bool) -> None:
    if as_json:
        print(json.dumps({**asdict(report), "clean": report.clean}, indent=2))
        return
    for finding in report.findings:
        repaired = " [repaired]" if finding.repaired else ""
        print(f"{finding.tenant}: {finding.kind} {finding.partition} {finding.row_key}: {finding.detail}{repaired}")
    fixed = sum(finding.repaired for finding in report.findings)
    print(
        f"{len(report.tenants)} tenant(s), {report.rows_scanned} rows scanned, "
        f"{len(report.findings)} finding(s), {fixed} repaired"
    )


def _unusable(problem: str) -> int:
    print(f"scim check: {problem}", file=sys.stderr)
    return EXIT_UNUSABLE


def _first_line(problem: BaseException | None) -> str:
    """Storage errors carry the whole HTTP exchange; one line says what went wrong, without a stack trace."""
    lines = str(problem or "").strip().splitlines()
    return lines[0] if lines else "no detail"


if __name__ == "__main__":
    main()
