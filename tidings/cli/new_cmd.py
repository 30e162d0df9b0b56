"""``tidings new consumer|event NAME``: scaffolding that keeps topology.yaml's comments."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tidings.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("new", help="add a consumer group or an event, ready to run")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    consumer = kinds.add_parser(
        "consumer", help="a consumer group: its topology entry, handler and TestBroker test")
    consumer.add_argument("name", help="the group's name, e.g. loyalty")
    consumer.add_argument("--subscribes", required=True, metavar="EVENT[,EVENT...]",
                          help="the events it handles, e.g. order.created,order.cancelled")
    consumer.add_argument("--retry", default="", metavar="DELAY[,DELAY...]",
                          help="retry tiers in order, e.g. 10s,1m (default: none, straight "
                               "to the DLQ)")
    consumer.add_argument("--batch", action="store_true",
                          help="a batch handler: whole batches in one call and transaction")
    event = kinds.add_parser("event", help="an event: its topology entry, v1 schema and model")
    event.add_argument("name", help="the event's name, e.g. loyalty.points-earned")
    event.add_argument("--topic", required=True, help="its topic (declared if new)")
    event.add_argument("--key", default=None,
                       help="the field that keys it (orders per key; default: id)")
    event.add_argument("--fields", default=None, metavar="NAME:TYPE[,...]",
                       help="its fields, e.g. customer_id:string,points:int,note:string? "
                            "(types: string int long boolean double float bytes timestamp "
                            "date uuid; '?' optional). Default: the key and occurred_at")
    event.add_argument("--publisher", default=None, metavar="SERVICE",
                       help="declare SERVICE as its publisher")
    event.add_argument("--doc", default=None, help="one sentence: what happened")
    for kind in (consumer, event):
        kind.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
    consumer.set_defaults(func=cmd_consumer)
    event.set_defaults(func=cmd_event)


def _path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else Settings().topology


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _report(result: Any, path: Path) -> int:
    print(f"added {result.entry} to {path}")
    for created in result.files:
        print(f"  created {os.path.relpath(created)}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_consumer(args: argparse.Namespace) -> int:
    from tidings.scaffold import new_consumer

    path = _path(args)
    result = new_consumer(path, args.name, _split(args.subscribes), retry=_split(args.retry),
                          batch=args.batch)
    code = _report(result, path)
    print(f"next: `tidings topology apply` creates its topics; `tidings run {args.name}` runs it")
    return code


def cmd_event(args: argparse.Namespace) -> int:
    from tidings.scaffold import new_event

    path = _path(args)
    result = new_event(path, args.name, args.topic, key=args.key, fields=args.fields,
                       publisher=args.publisher, doc=args.doc)
    code = _report(result, path)
    print("next: `tidings new consumer NAME --subscribes " + args.name + "` handles it")
    return code
