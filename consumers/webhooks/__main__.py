"""``python -m consumers.webhooks``: the webhooks group and its HTTP API in one process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import uvicorn

from consumers.webhooks.api import create_app
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database, transaction
from tidings.errors import TidingsError
from tidings.settings import Settings, kafka_client_config
from tidings.topology import load_topology

GROUP = "webhooks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumers.webhooks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
    parser.add_argument("--env", default=None, help="the topology environment")
    parser.add_argument("--group", default=GROUP, help="the consumer group (webhooks)")
    parser.add_argument("--database", default=None,
                        help="database URL (default: $TIDINGS_DATABASE_URL or "
                             "sqlite:///.tidings/webhooks.db)")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get(
        "WEBHOOKS_API_PORT", "8090")), help="HTTP API port (default 8090)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("TIDINGS_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s {args.group} %(levelname)s %(message)s")
    try:
        topology = load_topology(args.file or Settings().topology, env=args.env)
        url = args.database or os.environ.get("TIDINGS_DATABASE_URL") \
            or f"sqlite:///.tidings/{args.group}.db"
        database = open_database(url)
        setup = resolve_group(topology, args.group, database)
        if setup.setup_hook is not None:  # tables before the API's first request
            connection = database.connect()
            try:
                with transaction(connection):
                    setup.setup_hook(connection, database)
            finally:
                connection.close()
        server = uvicorn.Server(uvicorn.Config(
            create_app(database, list(setup.spec.subscribes)), host=args.host,
            port=args.api_port, log_level="warning"))
        api = threading.Thread(target=server.run, name="webhooks-api", daemon=True)
        api.start()
        runtime = ConsumerRuntime(setup, kafka_client_config(
            None, topology.cluster.properties, topology.cluster.bootstrap_servers,
            near=topology.root), RuntimeOptions(metrics_port=args.metrics_port))

        def stop(*_: object) -> None:
            runtime.stop()
            server.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)
        runtime.run()
        server.should_exit = True
        api.join(timeout=10)
    except TidingsError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
