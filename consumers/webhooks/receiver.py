"""A real local HTTP receiver of webhooks, for the demo and tests.

It does what a careful subscriber does: verifies the Standard Webhooks signature
(401 for a missing or tampered one), and deduplicates by ``webhook-id`` (a second
delivery of an id is acknowledged and not counted again). To be a hard subscriber it
can also answer 500 to a share of requests at random (``fail_rate``), or to its first
few (``fail_first``), and go down
(:meth:`WebhookReceiver.down`: the port is closed, connections are refused) and come
back (:meth:`WebhookReceiver.up`).

``python -m consumers.webhooks.receiver --port 9000 --secret whsec_...`` prints what
it accepts.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from consumers.webhooks.signing import ID, verify


@dataclass
class Received:
    """One webhook-id the receiver accepted."""

    webhook_id: str
    body: dict[str, Any]
    first_at: float
    deliveries: int = 1


@dataclass
class ReceiverStats:
    accepted: dict[str, Received] = field(default_factory=dict)
    duplicates: int = 0
    rejected: int = 0  # bad signature
    failed: int = 0    # answered 500 on purpose
    requests: int = 0


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class WebhookReceiver:
    """A threaded HTTP server on ``port`` that accepts webhooks signed with any of
    ``secrets``."""

    def __init__(self, port: int, secrets: list[str], *, fail_rate: float = 0.0,
                 seed: int | None = None, fail_first: int = 0) -> None:
        self.port = port
        self.secrets = list(secrets)
        self.fail_rate = fail_rate
        #: Answer 500 to this many genuine requests first (a deterministic failure).
        self.fail_first = fail_first
        self.stats = ReceiverStats()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def up(self) -> None:
        """Listen (again) on the port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: a receiver that goes down refuses every
            # attempt, with no kept-alive connection still being served.
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status, text = receiver.receive({k.lower(): v for k, v in
                                                 self.headers.items()}, body)
                payload = text.encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="webhook-receiver", daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- one request -------------------------------------------------------------------

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        with self._lock:
            self.stats.requests += 1
            problems = [verify(secret, headers, body) for secret in self.secrets]
            if all(problems):
                self.stats.rejected += 1
                return 401, f"rejected: {problems[0]}"
            if self.stats.failed < self.fail_first or (
                    self.fail_rate and self._random.random() < self.fail_rate):
                self.stats.failed += 1
                return 500, "failing on purpose"
            webhook_id = headers[ID]
            seen = self.stats.accepted.get(webhook_id)
            if seen is not None:
                seen.deliveries += 1
                self.stats.duplicates += 1
                return 200, "duplicate, already processed"
            self.stats.accepted[webhook_id] = Received(webhook_id, json.loads(body),
                                                       time.time())
            return 200, "ok"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [item.body for item in self.stats.accepted.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumers.webhooks.receiver",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", action="append", required=True,
                        help="a whsec_ secret to accept (repeatable)")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(args.port, args.secret, fail_rate=args.fail_rate)
    receiver.up()
    print(f"receiving webhooks at {receiver.url}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(1)
            bodies = receiver.bodies()
            for body in bodies[seen:]:
                print(json.dumps(body), flush=True)
            seen = len(bodies)
    except KeyboardInterrupt:
        receiver.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
