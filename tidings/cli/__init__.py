"""The ``tidings`` command: one entry point, one sub-command module per area.

Each area module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
User mistakes surface as :class:`~tidings.errors.TidingsError` and are printed
in one or two lines, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from tidings.errors import TidingsError


def build_parser() -> argparse.ArgumentParser:
    from tidings.cli import (
        console_cmd,
        demo,
        deploy_cmd,
        dev,
        dlq_cmd,
        docs_cmd,
        new_cmd,
        publish_cmd,
        replay_cmd,
        run_cmd,
        schedule_cmd,
        schemas_cmd,
        topology_cmd,
    )

    parser = argparse.ArgumentParser(
        prog="tidings",
        description="Event-streaming pub/sub on Apache Kafka.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (dev, topology_cmd, schemas_cmd, publish_cmd, run_cmd, schedule_cmd,
                   replay_cmd, dlq_cmd, docs_cmd, new_cmd, console_cmd, demo, deploy_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "demo":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.demo_args = [*extra, *args.demo_args]  # the demo parses its own options
    try:
        code: int = args.func(args)
    except TidingsError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KafkaException as exc:
        # A cluster that went away mid-command: still one line, never a traceback.
        error = exc.args[0] if exc.args else exc
        text = error.str() if isinstance(error, KafkaError) else str(error)
        print(f"tidings: Kafka error at {_bootstrap_hint()}: {text}; is the cluster up? "
              "(`tidings dev up` starts a local one)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tidings: interrupted", file=sys.stderr)
        return 130
    return code


def _bootstrap_hint() -> str:
    from tidings.settings import Settings

    return Settings().bootstrap_servers or "the configured bootstrap servers"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
