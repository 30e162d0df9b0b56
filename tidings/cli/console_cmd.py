"""``tidings console``: serve the operations web page."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tidings.errors import TidingsError
from tidings.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("console", help="the operations web page (topology, groups, "
                                            "lag, dead letters, replays)")
    parser.add_argument("-f", "--file", type=Path, default=None,
                        help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
    parser.add_argument("--port", type=int, default=8080, help="port to serve on (8080)")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (127.0.0.1; 0.0.0.0 exposes it to the "
                             "network: keep the tokens secret)")
    parser.add_argument("--catalogue", default=None, metavar="URL",
                        help="where your published event catalogue (tidings docs html) "
                             "lives; the Events link opens it (default: the console shows "
                             "the catalogue of its own topology)")
    parser.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from tidings.console import Console, Role, Tokens, create_app
    from tidings.kafka_clients import fetch_metadata
    from tidings.topology import load_topology

    try:
        ipaddress.ip_address(args.bind)
    except ValueError:
        if args.bind != "localhost":
            raise TidingsError(f"--bind {args.bind!r} is not an IP address") from None
    if not 0 <= args.port <= 65535:
        raise TidingsError(f"--port {args.port} is not a port number")
    check_catalogue_url(args.catalogue)
    topology = load_topology(Path(args.file) if args.file else Settings().topology,
                             check_imports=False)
    try:
        tokens = Tokens.from_env()
    except ValueError as exc:
        raise TidingsError(str(exc)) from None
    console = Console.open(topology, tokens, catalogue_url=args.catalogue)
    fetch_metadata(console.cluster.admin, console.cluster.bootstrap, console.cluster.timeout)
    shown = "localhost" if args.bind in ("127.0.0.1", "localhost") else args.bind
    print(f"Tidings console for {topology.path.name} ({console.cluster.bootstrap}) at "
          f"http://{shown}:{args.port}/", flush=True)
    for role in tokens.generated:
        token = tokens.operator if role is Role.OPERATOR else tokens.viewer
        env = "TIDINGS_CONSOLE_TOKEN" if role is Role.OPERATOR else \
            "TIDINGS_CONSOLE_VIEWER_TOKEN"
        print(f"  {role.value} token (generated; set {env} to choose one): {token}",
              flush=True)
    if not tokens.generated:
        print("  tokens from TIDINGS_CONSOLE_TOKEN (operator) and "
              "TIDINGS_CONSOLE_VIEWER_TOKEN (viewer)", flush=True)
    if args.bind not in ("127.0.0.1", "localhost", "::1"):
        print(f"  listening on {args.bind}: reachable from other machines", file=sys.stderr)
    config = uvicorn.Config(create_app(console), host=args.bind, port=args.port,
                            log_level="warning", access_log=False)
    uvicorn.Server(config).run()
    return 0


def check_catalogue_url(value: str | None) -> None:
    """``--catalogue`` must be a web address a browser will follow from the console."""
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TidingsError(f"--catalogue {value!r} is not an http(s) address; publish the "
                           "directory tidings docs html writes and give its URL")
