"""A real local SMTP server that keeps what it receives in a SQLite mailbox.

For the demo and tests: the email handler talks SMTP to it exactly as it would to
a relay. Two recipient rules make failures real SMTP answers:

* an address containing ``+flaky`` is refused with ``451 4.3.0 try again later``
  the first N times the server sees it (``--flaky-failures``, default 1), then
  accepted -- a transient failure that a retry fixes;
* an address containing ``+bounce`` is refused with ``550 5.1.1 no such user`` --
  permanent.

Run it with ``python -m consumers.email.smtp_sink --port 8025 --mailbox PATH``; from
Python, ``with SmtpSink(port, mailbox) as sink: ... sink.messages()``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller

FLAKY_MARK, BOUNCE_MARK = "+flaky", "+bounce"
TRANSIENT_REPLY = "451 4.3.0 try again later"
PERMANENT_REPLY = "550 5.1.1 no such user"

_TABLE = """CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    mail_from TEXT NOT NULL,
    recipients TEXT NOT NULL,
    subject TEXT,
    raw BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL
)"""


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the sink accepted."""

    message_id: str | None
    mail_from: str
    recipients: tuple[str, ...]
    subject: str | None
    raw: bytes
    received_at_ms: int


def _open(mailbox: Path) -> sqlite3.Connection:
    mailbox.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(mailbox, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(_TABLE)
    return connection


class _Handler:
    """aiosmtpd's hooks: the recipient rules, and storing each accepted message."""

    def __init__(self, mailbox: Path, flaky_failures: int) -> None:
        self.mailbox = mailbox
        self.flaky_failures = flaky_failures
        # Per address, so that each +flaky customer fails its first N attempts.
        self.refused: Counter[str] = Counter()

    async def handle_RCPT(  # aiosmtpd finds its hooks by these names
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str],
    ) -> str:
        lowered = address.lower()
        if BOUNCE_MARK in lowered:
            return PERMANENT_REPLY
        if FLAKY_MARK in lowered and self.refused[lowered] < self.flaky_failures:
            self.refused[lowered] += 1
            return TRANSIENT_REPLY
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd finds its hooks by these names
        self, server: Any, session: Any, envelope: Any,
    ) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        parsed = message_from_bytes(raw, policy=policy.default)
        connection = _open(self.mailbox)
        try:
            connection.execute(
                "INSERT INTO messages (message_id, mail_from, recipients, subject, raw, "
                "received_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (parsed.get("Message-ID"), envelope.mail_from, "\n".join(envelope.rcpt_tos),
                 parsed.get("Subject"), raw, int(time.time() * 1000)),
            )
        finally:
            connection.close()
        return "250 OK message stored"


class SmtpSink:
    """The sink as an object: ``start()``, ``stop()``, ``messages()``; a context manager.

    ``port=0`` picks a free port (read it from ``.port`` after construction).
    """

    def __init__(self, port: int = 8025, mailbox: Path | str = "mailbox.db", *,
                 flaky_failures: int = 1, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.mailbox = Path(mailbox)
        self._handler = _Handler(self.mailbox, flaky_failures)
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen; returns once the server answers."""
        _open(self.mailbox).close()
        controller = Controller(self._handler, hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (messages stay in the mailbox)."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[ReceivedMessage]:
        """Every message received so far, oldest first."""
        return messages(self.mailbox)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def messages(mailbox: Path | str) -> list[ReceivedMessage]:
    """The messages in a mailbox file, oldest first (none if it does not exist)."""
    if not Path(mailbox).exists():
        return []
    connection = _open(Path(mailbox))
    try:
        rows = connection.execute(
            "SELECT message_id, mail_from, recipients, subject, raw, received_at_ms "
            "FROM messages ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    return [
        ReceivedMessage(message_id, mail_from, tuple(recipients.split("\n")), subject,
                        bytes(raw), received_at_ms)
        for message_id, mail_from, recipients, subject, raw, received_at_ms in rows
    ]


def count_messages(mailbox: Path | str) -> int:
    """How many messages a mailbox holds (a resent mail counts twice)."""
    return len(messages(mailbox))


def message_ids(mailbox: Path | str) -> list[str]:
    """The Message-IDs in a mailbox, oldest first, duplicates kept (to spot resends)."""
    return [m.message_id for m in messages(mailbox) if m.message_id is not None]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consumers.email.smtp_sink``: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m consumers.email.smtp_sink",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--mailbox", type=Path, default=Path(".tidings/mailbox.db"))
    parser.add_argument("--flaky-failures", type=int, default=1, metavar="N",
                        help="refuse each +flaky recipient this many times first (default 1)")
    args = parser.parse_args(argv)
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sink = SmtpSink(args.port, args.mailbox, flaky_failures=args.flaky_failures,
                    host=args.host)
    try:
        sink.start()
    except OSError as exc:
        print(f"smtp_sink: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"smtp_sink: listening on {args.host}:{sink.port}, mailbox {args.mailbox}",
          flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
