"""Email: confirmations over real SMTP (a local aiosmtpd sink), failures classed by code."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from consumers.email import PermanentMailError, TransientMailError, handle, setup
from consumers.email.render import format_money
from consumers.email.smtp_sink import SmtpSink, count_messages, free_port, message_ids
from schemas import LineItem, OrderCreated
from tidings.codec.events import Event
from tidings.consumer.context import EventMeta, HandlerContext, NonRetryableError
from tidings.db import Database, transaction

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


class Mailer:
    """The email group's database, and a way to deliver events as the runtime does."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.connection = database.connect()
        with transaction(self.connection):
            setup(self.connection, database)

    def deliver(self, event: Event, *, event_id: str, attempt: int = 1) -> None:
        def stage(follow_up: Event) -> str:
            raise AssertionError(f"email publishes nothing, got {follow_up}")

        meta = EventMeta(event_id=event_id, event_type=event.event_type, topic="orders",
                         partition=0, offset=0, key=None, headers={}, attempt=attempt)
        ctx = HandlerContext(group="email", meta=meta, db=self.connection,
                             database=self.database, stage=stage)
        with transaction(self.connection):
            handle(event, ctx)

    def sent(self) -> list[tuple[str, str, str]]:
        return list(self.connection.execute(
            "SELECT event_id, order_id, recipient FROM email_sent ORDER BY event_id"
        ).fetchall())


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink(0, tmp_path / "mailbox.db") as sink:
        monkeypatch.setenv("EMAIL_SMTP_HOST", sink.host)
        monkeypatch.setenv("EMAIL_SMTP_PORT", str(sink.port))
        yield sink


@pytest.fixture
def mailer(tmp_path: Path) -> Iterator[Mailer]:
    mailer = Mailer(Database(f"sqlite:///{tmp_path / 'email.db'}"))
    yield mailer
    mailer.connection.close()


def order(email: str = "ada@example.com", order_id: str = "o-42") -> OrderCreated:
    return OrderCreated(
        order_id=order_id, customer_id="cus_1", customer_email=email, currency="EUR",
        items=[LineItem(sku="MUG", quantity=2, unit_price_cents=1000),
               LineItem(sku="TEE", quantity=1, unit_price_cents=500)],
        total_cents=2500, created_at=WHEN,
    )


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_confirmation_arrives_with_a_message_id_from_the_event_id(
    sink: SmtpSink, mailer: Mailer,
) -> None:
    event_id = str(uuid.uuid4())
    mailer.deliver(order(), event_id=event_id)

    [mail] = sink.messages()
    assert mail.message_id == f"<{event_id}@tidings>"
    assert mail.recipients == ("ada@example.com",)
    assert mail.mail_from == "orders@tidings.example"
    assert mail.subject is not None and "o-42" in mail.subject
    message = parsed(mail.raw)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "EUR 25.00" in text.get_content() and "2 x MUG" in text.get_content()
    assert "EUR 25.00" in html.get_content()
    assert mailer.sent() == [(event_id, "o-42", "ada@example.com")]


def test_a_redelivered_event_is_not_mailed_again(sink: SmtpSink, mailer: Mailer) -> None:
    mailer.deliver(order(), event_id="e-1")
    mailer.deliver(order(), event_id="e-1")

    assert count_messages(sink.mailbox) == 1
    assert message_ids(sink.mailbox) == ["<e-1@tidings>"]


def test_the_sender_comes_from_the_environment(
    sink: SmtpSink, mailer: Mailer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMAIL_FROM", "shop@example.org")
    mailer.deliver(order(), event_id="e-1")

    assert [m.mail_from for m in sink.messages()] == ["shop@example.org"]


def test_a_451_is_retryable_and_the_next_attempt_succeeds(
    sink: SmtpSink, mailer: Mailer,
) -> None:
    event = order("ada+flaky@example.com")

    with pytest.raises(TransientMailError, match="451") as failure:
        mailer.deliver(event, event_id="e-1", attempt=1)
    assert not isinstance(failure.value, NonRetryableError)
    assert mailer.sent() == [] and sink.messages() == []

    mailer.deliver(event, event_id="e-1", attempt=2)
    assert [m.recipients for m in sink.messages()] == [("ada+flaky@example.com",)]
    assert len(mailer.sent()) == 1


def test_a_550_is_not_retried(sink: SmtpSink, mailer: Mailer) -> None:
    with pytest.raises(PermanentMailError, match="550") as failure:
        mailer.deliver(order("ada+bounce@example.com"), event_id="e-1")

    assert isinstance(failure.value, NonRetryableError)
    assert mailer.sent() == [] and sink.messages() == []


def test_a_server_that_is_down_is_retryable(
    mailer: Mailer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMAIL_SMTP_PORT", str(free_port()))
    with pytest.raises(TransientMailError, match="ConnectionRefused"):
        mailer.deliver(order(), event_id="e-1")
    assert mailer.sent() == []


def test_the_sink_refuses_flaky_recipients_n_times_each(tmp_path: Path) -> None:
    with SmtpSink(0, tmp_path / "mailbox.db", flaky_failures=2) as sink, \
            smtplib.SMTP(sink.host, sink.port) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@example.com", ["b+flaky@example.com"], b"Subject: x\r\n\r\nx")
        client.sendmail("a@example.com", ["c@example.com"], b"Subject: y\r\n\r\ny")
        client.sendmail("a@example.com", ["b+flaky@example.com"], b"Subject: z\r\n\r\nz")
        assert [m.subject for m in sink.messages()] == ["y", "z"]


def test_the_sink_runs_as_a_program_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, mailbox = free_port(), tmp_path / "mailbox.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.email.smtp_sink", "--port", str(port),
         "--mailbox", str(mailbox)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("a@example.com", ["b@example.com"],
                            b"Message-ID: <m-1@x>\r\nSubject: hi\r\n\r\nhello")
        assert message_ids(mailbox) == ["<m-1@x>"]
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0


@pytest.mark.parametrize(("cents", "currency", "text"), [
    (2500, "EUR", "EUR 25.00"),
    (123456789, "USD", "USD 1,234,567.89"),
    (1500, "JPY", "JPY 1,500"),
    (1500, "KWD", "KWD 1.500"),
    (5, "GBP", "GBP 0.05"),
])
def test_totals_are_formatted_in_the_currency_s_minor_units(
    cents: int, currency: str, text: str,
) -> None:
    assert format_money(cents, currency) == text
