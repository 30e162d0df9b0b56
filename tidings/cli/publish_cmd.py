"""``tidings publish EVENT --data JSON`` and ``tidings outbox relay|status``."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tidings.cli._environment_arg import add_env_argument
from tidings.db import open_database
from tidings.durations import parse_duration
from tidings.errors import ConfigError, TidingsError
from tidings.imports import import_reference
from tidings.producer.outbox import OutboxRelay, ensure_outbox_table, read_status
from tidings.producer.reliable import ReliableProducer
from tidings.producer.scheduled import ScheduledDelivery
from tidings.settings import Settings, kafka_client_config
from tidings.topology import Topology, load_topology


def register(sub: Any) -> None:
    publish = sub.add_parser("publish", help="publish one event from the shell")
    publish.add_argument("event", help="event type, e.g. order.created")
    publish.add_argument("--data", required=True, help="the event as JSON ('-' reads stdin)")
    publish.add_argument("--service", help="producer service to publish as (default: the one "
                         "declared to publish EVENT)")
    publish.add_argument("--event-id", help="idempotency key (default: a new UUID)")
    publish.add_argument("--delay", type=parse_duration, default=None, metavar="DURATION",
                         help="have the scheduler deliver it later, e.g. 10m or 1d")
    publish.add_argument("--schedule-id", default=None,
                         help="name the scheduled event for `tidings schedule cancel` "
                              "(default: its event id)")
    publish.add_argument("--timeout", type=float, default=15.0,
                         help="seconds to wait for the broker (default 15)")
    publish.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
    add_env_argument(publish)
    publish.set_defaults(func=cmd_publish)

    outbox = sub.add_parser("outbox", help="relay a service's outbox to Kafka")
    actions = outbox.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    relay = actions.add_parser("relay", help="publish pending outbox rows until stopped")
    status = actions.add_parser("status", help="count pending and sent outbox rows")
    for parser in (relay, status):
        parser.add_argument("--database", required=True,
                            help="the service's database URL, e.g. sqlite:///orders.db")
        parser.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
        add_env_argument(parser)
    relay.add_argument("--batch-size", type=int, default=500)
    relay.set_defaults(func=cmd_relay)
    status.set_defaults(func=cmd_outbox_status)


def _topology(args: argparse.Namespace) -> Topology:
    return load_topology(Path(args.file) if args.file else Settings().topology,
                         check_imports=False, env=args.env)


def cmd_publish(args: argparse.Namespace) -> int:
    from tidings.producer.publisher import Publisher

    topology = _topology(args)
    if args.event not in topology.events:
        known = ", ".join(sorted(topology.events))
        raise TidingsError(f"unknown event {args.event!r} (declared: {known})")
    service = args.service or _only_publisher(topology, args.event)
    spec = topology.events[args.event]
    if not spec.model:
        raise ConfigError(f"event {args.event!r} has no model: in {topology.path.name}")
    model = import_reference(spec.model, topology.root)
    raw = input() if args.data == "-" else args.data
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TidingsError(f"--data is not valid JSON: {exc.msg} at column {exc.colno}") \
            from None
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(the event)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TidingsError(f"{args.event}: {where}: {first['msg']}{more}") from None
    with Publisher(topology, service, delivery_timeout=args.timeout) as publisher:
        if args.delay is not None or args.schedule_id is not None:
            scheduled = publisher.publish(
                event, event_id=args.event_id, schedule_id=args.schedule_id,
                delay=timedelta(milliseconds=args.delay.millis if args.delay else 0))
            assert isinstance(scheduled, ScheduledDelivery)
            print(f"scheduled for {scheduled.deliver_at.isoformat()} as {scheduled.schedule_id} "
                  f"(event-id {scheduled.event_id})")
            return 0
        delivery = publisher.publish(event, event_id=args.event_id)
    print(f"{delivery.topic}/{delivery.partition}/{delivery.offset} event-id {delivery.event_id}")
    return 0


def _only_publisher(topology: Topology, event: str) -> str:
    services = sorted(name for name, spec in topology.producers.items()
                      if event in spec.publishes)
    if len(services) == 1:
        return services[0]
    if not services:
        raise TidingsError(f"no producer in {topology.path.name} publishes {event!r}")
    raise TidingsError(f"several producers publish {event!r} ({', '.join(services)}); "
                       "choose one with --service")


def cmd_relay(args: argparse.Namespace) -> int:
    topology = _topology(args)
    database = open_database(args.database)
    producer = ReliableProducer(kafka_client_config(
        None, topology.cluster.client_properties, topology.cluster.bootstrap_servers,
        near=topology.root))
    relay = OutboxRelay(database, producer, batch_size=args.batch_size)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"relaying {args.database} to {producer.bootstrap}", flush=True)
    relay.run(stop)
    relay.stop()
    print(f"relayed {relay.relayed} event(s)")
    return 0


def cmd_outbox_status(args: argparse.Namespace) -> int:
    database = open_database(args.database)
    connection = database.connect()
    try:
        ensure_outbox_table(database, connection)
        status = read_status(connection)
    finally:
        connection.close()
    print(f"pending {status.pending}, sent {status.sent}")
    return 0
