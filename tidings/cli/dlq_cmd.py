"""``tidings dlq list|show|redrive|purge``: inspect and drain dead-letter topics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidings.audit import recorded
from tidings.cli._durations_arg import accept_negative_durations
from tidings.cli._environment_arg import add_env_argument
from tidings.dlq import (
    DEFAULT_MAX_REDRIVES,
    dlq_summary,
    dlq_topics,
    execute_purge,
    execute_redrive,
    groups_with_dlq,
    plan_purge,
    plan_redrive,
    render_letter,
    render_summary,
    show_letters,
)
from tidings.dlq.select import LetterFilter
from tidings.errors import TidingsError
from tidings.replay import Cluster, check_group_and_topic
from tidings.replay.progress import TextBar
from tidings.settings import Settings
from tidings.topology import Topology, load_topology


def register(sub: Any) -> None:
    parser = sub.add_parser("dlq", help="list, show, redrive or purge dead letters")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(p: argparse.ArgumentParser, *, group_required: bool = True) -> None:
        p.add_argument("-f", "--file", type=Path, default=None,
                       help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
        add_env_argument(p)
        p.add_argument("--group", required=group_required, help="the consumer group")

    listing = actions.add_parser("list", help="counts per group and error class")
    common(listing, group_required=False)
    listing.set_defaults(func=cmd_list)

    show = actions.add_parser("show", help="each dead letter, decoded (oldest first)")
    common(show)
    selection(show)
    show.add_argument("--limit", type=int, default=20, help="show at most N (default 20)")
    show.add_argument("--offset", type=int, default=0,
                      help="skip the first N letters of the selection (paging)")
    accept_negative_durations(show)
    show.set_defaults(func=cmd_show)

    redrive = actions.add_parser("redrive", help="send dead letters back to their group")
    common(redrive)
    selection(redrive)
    redrive.add_argument("--rate", type=float, default=None, metavar="EVENTS/S",
                         help="at most this many events per second on average")
    redrive.add_argument("--max-redrives", type=int, default=DEFAULT_MAX_REDRIVES,
                         help="hold back events redriven this many times already "
                              f"(default {DEFAULT_MAX_REDRIVES})")
    redrive.add_argument("--force", action="store_true",
                         help="send events held back by --max-redrives too")
    redrive.add_argument("--yes", "--execute", "-y", dest="execute", action="store_true",
                         help="carry the plan out (without it: dry run)")
    redrive.add_argument("--no-progress", action="store_true", help="no progress bar")
    accept_negative_durations(redrive)
    redrive.set_defaults(func=cmd_redrive)

    purge = actions.add_parser("purge", help="delete dead letters older than a time")
    common(purge)
    purge.add_argument("--before", required=True,
                       help="delete dead letters from before this time (ISO, or -7d)")
    purge.add_argument("--yes", "-y", dest="execute", action="store_true",
                       help="delete (without it: dry run)")
    accept_negative_durations(purge)
    purge.set_defaults(func=cmd_purge)


def selection(p: argparse.ArgumentParser) -> None:
    """The options that select dead letters (``dlq show`` and ``dlq redrive``)."""
    p.add_argument("--error-class", default=None,
                   help="only this error class (full name or its last part)")
    p.add_argument("--event-type", default=None, help="only this event type (order.created)")
    p.add_argument("--event-id", action="append", default=[], metavar="ID",
                   help="only this event (repeat for several)")
    p.add_argument("--key", default=None, help="only events with this key")
    p.add_argument("--from", dest="since", default=None,
                   help="dead-lettered at or after this time (ISO, or -2h)")
    p.add_argument("--to", dest="until", default=None,
                   help="dead-lettered before this time (ISO, or -30m)")


def letter_filter(args: argparse.Namespace) -> LetterFilter:
    return LetterFilter.parse(error_class=args.error_class, event_type=args.event_type,
                              event_ids=args.event_id, key=args.key, since=args.since,
                              until=args.until)


def load(args: argparse.Namespace) -> Topology:
    return load_topology(Path(args.file) if args.file else Settings().topology,
                         check_imports=False, env=args.env)


def cmd_list(args: argparse.Namespace) -> int:
    topology = load(args)
    if args.group is not None:
        dlq_topics(topology, args.group)  # an unknown group or one without DLQ: an error
    groups = [args.group] if args.group else groups_with_dlq(topology)
    print(render_summary(dlq_summary(topology, args.group), groups))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    topology = load(args)
    select = letter_filter(args)
    dlq_topics(topology, args.group)
    page = show_letters(topology, args.group, limit=args.limit, offset=args.offset,
                        select=select)
    for item in page.letters:
        print(render_letter(item))
    shown = f"{select.describe()}: " if not select.empty else ""
    if not page.total:
        print(f"no dead letters for group {args.group}"
              + (f" ({select.describe()})" if not select.empty else ""))
    elif page.letters:
        print(f"{shown}letters {page.offset + 1}-{page.offset + len(page.letters)} of "
              f"{page.total} ({page.events} distinct events)"
              + (f"; {page.more} more: --offset {page.offset + len(page.letters)}"
                 if page.more else ""))
    else:
        print(f"{shown}--offset {page.offset} is past the last of {page.total} letters")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    if args.rate is not None and args.rate <= 0:
        raise TidingsError("--rate must be a positive number of events per second")
    topology = load(args)
    check_group_and_topic(topology, args.group, None)
    plan = plan_redrive(topology, args.group, select=letter_filter(args), force=args.force,
                        max_redrives=args.max_redrives)
    print(plan.render(), flush=True)
    if plan.empty:
        return 0
    if not args.execute:
        print("Dry run: nothing sent. Add --yes to redrive.")
        return 0
    try:
        with recorded(Cluster(topology), action="dlq.redrive", target=args.group,
                      plan=plan.render()) as outcome:
            result = execute_redrive(plan, topology, rate=args.rate, show_progress=False,
                                     on_progress=None if args.no_progress else TextBar())
            outcome.append(f"redrove {result.sent} event(s) (redrive {result.redrive_id})")
    except KeyboardInterrupt:
        print(f"tidings: redrive {plan.redrive_id} interrupted; run the same command again "
              "to resume it (nothing is sent twice)", file=sys.stderr)
        return 130
    print(f"Redrove {result.sent} event(s) in {result.elapsed:.1f}s "
          f"(redrive {result.redrive_id}).")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    topology = load(args)
    plan = plan_purge(topology, args.group, args.before)
    print(plan.render())
    if not plan.count:
        return 0
    if not args.execute:
        print("Dry run: nothing deleted. Add --yes to delete them.")
        return 0
    with recorded(Cluster(topology), action="dlq.purge", target=args.group,
                  plan=plan.render()) as outcome:
        deleted = execute_purge(plan, topology)
        outcome.append(f"purged {deleted} dead letter(s) of group {args.group}")
    print(f"Purged {deleted} dead letter(s) of group {args.group}.")
    return 0
