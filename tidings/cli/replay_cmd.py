"""``tidings replay``: re-deliver a range of a topic to one consumer group."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidings.audit import recorded
from tidings.cli._durations_arg import accept_negative_durations
from tidings.cli._environment_arg import add_env_argument
from tidings.errors import TidingsError
from tidings.replay import (
    Cluster,
    Mode,
    ReplayRequest,
    execute_replay,
    execute_undo,
    parse_partitions,
    plan_replay,
    plan_undo,
)
from tidings.replay.progress import TextBar
from tidings.settings import Settings
from tidings.topology import Topology, load_topology


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "replay", help="re-deliver a range of a topic to one consumer group",
        description="Re-deliver [--from, --to) of --topic to --group only. Dry run unless "
                    "--execute or --yes. Bounds: ISO times (2026-03-14T15:00Z), durations "
                    "before now (-2h), or partition:offset lists (0:120,1:80).")
    parser.add_argument("-f", "--file", type=Path, default=None,
                        help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
    add_env_argument(parser)
    parser.add_argument("--group", required=True, help="the one consumer group to replay to")
    parser.add_argument("--topic", help="the declared topic to replay from")
    parser.add_argument("--from", dest="start", help="start of the range (included)")
    parser.add_argument("--to", dest="end", help="end of the range (excluded; default: now)")
    parser.add_argument("--mode", choices=["auto", "copy", "rewind"], default="auto",
                        help="auto (default): rewind a stopped group, copy for a running one "
                             "or a bounded range")
    parser.add_argument("--reprocess", action="store_true",
                        help="run the handler again even for events it already applied")
    parser.add_argument("--partitions", default=None, metavar="LIST",
                        help="copy only these partitions (e.g. 0-5 or 0,2,4): one share of a "
                             "large backfill; run one copier per share, on any machines")
    parser.add_argument("--rate", type=float, default=None, metavar="EVENTS/S",
                        help="copy at most this many events per second on average")
    parser.add_argument("--execute", "--yes", "-y", dest="execute", action="store_true",
                        help="carry the plan out (without it: dry run)")
    parser.add_argument("--undo", action="store_true",
                        help="restore the offsets the group had before its last rewind")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    accept_negative_durations(parser)
    parser.set_defaults(func=cmd_replay)


def load(args: argparse.Namespace) -> Topology:
    return load_topology(Path(args.file) if args.file else Settings().topology,
                         check_imports=False, env=args.env)


def cmd_replay(args: argparse.Namespace) -> int:
    if args.rate is not None and args.rate <= 0:
        raise TidingsError("--rate must be a positive number of events per second")
    topology = load(args)
    if args.undo:
        return _undo(args, topology)
    if not args.topic or not args.start:
        raise TidingsError("replay needs --topic and --from (e.g. --topic orders --from -1h)")
    plan = plan_replay(topology, ReplayRequest(
        group=args.group, topic=args.topic, start=args.start, end=args.end,
        mode=args.mode, reprocess=args.reprocess,
        partitions=parse_partitions(args.partitions) if args.partitions else None))
    print(plan.render(), flush=True)
    if plan.empty:
        return 0
    if not args.execute:
        print("Dry run: nothing changed. Add --execute (or --yes) to replay.")
        return 0
    try:
        with recorded(Cluster(topology), action="replay", target=plan.group,
                      plan=plan.render()) as outcome:
            result = execute_replay(plan, topology, rate=args.rate, show_progress=False,
                                    on_progress=None if args.no_progress else TextBar())
            outcome.append(f"{result.mode.value}: {result.events} event(s) "
                           f"(replay {result.replay_id})")
    except KeyboardInterrupt:
        print(f"tidings: replay {plan.replay_id} interrupted; run the same command again "
              "to resume it (nothing is copied twice)", file=sys.stderr)
        return 130
    if result.mode is Mode.REWIND:
        print(f"Rewound group {plan.group} on {plan.topic} ({result.partitions_moved} "
              f"partition(s)); `tidings replay --undo --group {plan.group}` restores the "
              "previous offsets.")
    else:
        print(f"Copied {result.events} event(s) to {plan.target} in {result.elapsed:.1f}s "
              f"(replay {result.replay_id}).")
    return 0


def _undo(args: argparse.Namespace, topology: Topology) -> int:
    plan = plan_undo(topology, args.group)
    print(plan.render())
    if not args.execute:
        print("Dry run: nothing changed. Add --execute (or --yes) to restore these offsets.")
        return 0
    with recorded(Cluster(topology), action="replay.undo", target=plan.group,
                  plan=plan.render()) as outcome:
        moved = execute_undo(plan, topology)
        outcome.append(f"restored {moved} partition(s) of {plan.topic}")
    print(f"Restored the offsets of group {plan.group} on {plan.topic} ({moved} partition(s)).")
    return 0
