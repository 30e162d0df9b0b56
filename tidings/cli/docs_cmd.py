"""``tidings docs asyncapi|html``: the event catalogue, from topology.yaml and the schemas."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tidings.cli._environment_arg import add_env_argument
from tidings.settings import Settings
from tidings.topology import load_topology


def register(sub: Any) -> None:
    parser = sub.add_parser("docs", help="the event catalogue: AsyncAPI, or a static site")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    asyncapi = actions.add_parser("asyncapi", help="write an AsyncAPI 3.0 document")
    asyncapi.add_argument("--out", type=Path, default=None, metavar="FILE",
                          help="write it here (.json for JSON, else YAML; default: stdout)")
    asyncapi.add_argument("--version", default="1.0.0",
                          help="the document's info.version (default 1.0.0)")
    asyncapi.add_argument("--server", default=None, metavar="HOST:PORT",
                          help="list this Kafka bootstrap server under servers:")
    html = actions.add_parser("html", help="write a static, offline event catalogue")
    html.add_argument("--out", type=Path, default=Path("build/catalogue"), metavar="DIR",
                      help="the directory to write index.html into (default build/catalogue)")
    for action in (asyncapi, html):
        action.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
        add_env_argument(action)
    asyncapi.set_defaults(func=cmd_asyncapi)
    html.set_defaults(func=cmd_html)


def _catalogue(args: argparse.Namespace) -> Any:
    from tidings.docs import build_catalogue

    path = Path(args.file) if args.file else Settings().topology
    return build_catalogue(load_topology(path, env=args.env, check_imports=False))


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from tidings.docs import asyncapi_document

    document = asyncapi_document(_catalogue(args), version=args.version, server=args.server)
    if args.out is not None and args.out.suffix == ".json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} (AsyncAPI {document['asyncapi']}: "
              f"{len(document['channels'])} channels, {len(document['operations'])} operations)")
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    from tidings.docs import write_site

    catalogue = _catalogue(args)
    index = write_site(catalogue, args.out)
    print(f"wrote {index} ({len(catalogue.events)} events, {len(catalogue.consumers)} "
          "consumer groups); open it in a browser, no server needed")
    return 0
