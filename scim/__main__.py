"""``python -m scim serve``: run the endpoint locally, optionally with its own Azurite."""

import argparse
import logging
import os

from scim.local import azurite
from scim.local.host import REPO_ROOT, load_local_settings, serve
from scim.settings import ConfigurationError, Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scim")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the functions of function_app.py over HTTP")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=7071)
    run.add_argument("--azurite", action="store_true", help="start Azurite (data in .azurite/) for this run")
    run.add_argument("--azurite-port", type=int, default=10002)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load_local_settings()
    process = None
    if args.azurite:
        process = azurite.start(args.azurite_port, REPO_ROOT / ".azurite")
        os.environ.setdefault("SCIM_STORAGE_CONNECTION_STRING", azurite.connection_string(args.azurite_port))
    try:
        Settings.from_environment()
    except ConfigurationError as problem:
        raise SystemExit(f"Refusing to serve: {problem}. See local.settings.sample.json.") from problem
    print(f"SCIM endpoint: http://{args.host}:{args.port}/scim/v2")
    try:
        serve(args.host, args.port)
    finally:
        if process is not None:
            azurite.stop(process)


if __name__ == "__main__":
    main()
