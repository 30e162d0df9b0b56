"""``tidings schedule list|cancel``: what the scheduler holds, and cancelling it."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidings.cli._environment_arg import add_env_argument
from tidings.producer.reliable import ReliableProducer
from tidings.producer.scheduled import cancellation_event
from tidings.settings import Settings, kafka_client_config
from tidings.topology import Topology, load_topology


def register(sub: Any) -> None:
    parser = sub.add_parser("schedule", help="list or cancel scheduled events")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="events waiting for their time, and the "
                                              "recurring schedules")
    listing.add_argument("--limit", type=int, default=50, help="show at most N (default 50)")
    listing.add_argument("--event", default=None, help="only events of this type")
    cancel = actions.add_parser("cancel", help="cancel what is scheduled under an id")
    cancel.add_argument("schedule_id", nargs="+", help="schedule id(s)")
    for p in (listing, cancel):
        p.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
        add_env_argument(p)
    listing.set_defaults(func=cmd_list)
    cancel.set_defaults(func=cmd_cancel)


def _load(args: argparse.Namespace) -> tuple[Topology, dict[str, Any]]:
    topology = load_topology(Path(args.file) if args.file else Settings().topology,
                             check_imports=False, env=args.env)
    config = kafka_client_config(None, topology.cluster.properties,
                                 topology.cluster.bootstrap_servers, near=topology.root)
    return topology, config


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _in(ms: int, now: int) -> str:
    seconds = (ms - now) / 1000
    if seconds <= 0:
        return "due"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def cmd_list(args: argparse.Namespace) -> int:
    from tidings.scheduling.listing import recurring, waiting_events

    topology, config = _load(args)
    waiting = [w for w in waiting_events(topology, config)
               if args.event is None or w.event_type == args.event]
    now = int(time.time() * 1000)
    cancelled = sum(w.cancelled for w in waiting)
    print(f"{len(waiting) - cancelled} scheduled event(s) waiting"
          + (f", {cancelled} cancelled (dropped when due)" if cancelled else ""))
    if waiting:
        print(f"  {'DELIVER AT (UTC)':<25}{'IN':>8}  {'EVENT':<22}{'SCHEDULE ID':<40}TO")
        for item in waiting[:max(0, args.limit)]:
            mark = " (cancelled)" if item.cancelled else ""
            print(f"  {_when(item.deliver_at):<25}{_in(item.deliver_at, now):>8}  "
                  f"{item.event_type:<22}{item.schedule_id:<40}{item.target_topic}{mark}")
        if len(waiting) > args.limit:
            print(f"  ... {len(waiting) - args.limit} more; raise --limit to see them")
    schedules = recurring(topology, config)
    if schedules:
        print(f"\n{len(schedules)} recurring schedule(s)")
        print(f"  {'NAME':<20}{'WHEN':<36}{'EVENT':<22}{'HANDLED UP TO':<26}NEXT TICK")
        for status in schedules:
            print(f"  {status.name:<20}{status.when:<36}{status.event:<22}"
                  f"{_when(status.last_tick):<26}"
                  f"{_when(status.next_tick) if status.last_tick else 'when the scheduler runs'}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    topology, config = _load(args)
    producer = ReliableProducer(config)
    try:
        futures = [(sid, producer.send(record.topic, record.value, key=record.key,
                                       event_id=record.event_id))
                   for sid in args.schedule_id
                   for record in [cancellation_event(topology, sid, by="tidings-cli")]]
        for sid, future in futures:
            future.result(timeout=producer.delivery_timeout + 5)
            print(f"cancelled {sid}: the scheduler drops what was scheduled under it "
                  "before now")
    finally:
        producer.close()
    return 0
